"""CLEVER throughput: seconds per image for ``keras_equivariant.metrics.clever_u``, against a
reference measured in the same process at EQUAL gradient samples per target.

Reference: ART's ``clever_u`` (adversarial-robustness-toolbox) when it can be imported -- it is
NOT a project dependency; install it into a throwaway directory and point ``--art-path`` at it:

    pip install --target /tmp/art-venv/site --no-deps adversarial-robustness-toolbox==1.20.1 \
        scikit-learn joblib threadpoolctl narwhals cloudpickle tqdm six

Otherwise the reference is a naive eager loop (one ``GradientTape`` per sample and target).
ART draws a pool of ``pool_factor * batch_size`` samples per target and bootstraps its batch
maxima from it, so ``pool_factor = Nb`` gives it the same ``Nb * Ns`` gradients per target.

Model: ``keras_equivariant.BaselineCNN(depth=10)`` (untrained, 10 classes, 32x32x3, weights
seeded so the score is the same run to run); image: the first test image of the CIFAR-10 subset
shipped in ``data/`` (uniform noise when it is absent).

Like with like: a speed ratio means something only if both sides compute the same thing. Both
scores are printed, and the ratio is reported only when they agree within
``--agreement-factor`` (default 2); otherwise the reference's computation (at small budgets ART's
Weibull fit can fail and return scores orders of magnitude off) is named as not comparable
("not comparable: ART's Weibull fit failed").

The "paper" preset (500 x 1024 samples, ~4.6M gradients per image for 10 classes) is too long
for a CPU run, so by default it is extrapolated from ``--paper-batches`` measured batches plus a
measured Weibull fit of 500 maxima per target (printed as such).

Usage:
    python benchmarks/clever_throughput.py [--art-path /tmp/art-venv/site] [--skip-fast]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # unless set: docs/performance.md

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_equivariant import BaselineCNN, data, metrics  # noqa: E402
from keras_equivariant.attacks import sample_uniform_ball  # noqa: E402
from keras_equivariant.utils.platform import describe  # noqa: E402


def build_model(seed=0):
    keras.utils.set_random_seed(seed)
    return BaselineCNN(num_classes=10, depth=10), f"BaselineCNN(depth=10), seed {seed}"


def load_image():
    folder = data.sample_data_dir()
    if folder is not None:
        images, _ = data.load_arrays("cifar10", "test", data_dir=folder, max_examples=10)
        return (images[0].astype("float32") / 255.0,
                "a test image of the shipped CIFAR-10 subset")
    return np.random.default_rng(0).uniform(size=(32, 32, 3)).astype("float32"), "uniform noise"


def at_least_two(text):
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"must be >= 2 (clever_u fits its Weibull distribution to the maxima of at least 2 "
            f"batches); received {value}")
    return value


def comparable(ours, reference, factor):
    """Whether two scores agree within ``factor`` (both positive and finite)."""
    if not (np.isfinite(ours) and np.isfinite(reference)) or ours <= 0 or reference <= 0:
        return False
    return max(ours / reference, reference / ours) <= factor


def timed(function):
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def art_reference(model, image, num_batches, num_samples, radius):
    """ART clever_u at pool_factor = num_batches (equal gradients per target).

    ``KerasClassifier`` (the wrapper for Keras models; ART 1.20's ``TensorFlowV2Classifier``
    fails in ``class_gradient`` on a NumPy integer label inside ``clever_t``).
    """
    from art.estimators.classification import KerasClassifier
    from art.metrics import clever_u as art_clever_u

    classifier = KerasClassifier(model, use_logits=True, clip_values=(0.0, 1.0))
    return art_clever_u(classifier, image, nb_batches=num_batches, batch_size=num_samples,
                        radius=radius, norm=2, pool_factor=num_batches, verbose=False)


def naive_reference(model, image, num_batches, num_samples, radius):
    """Per-sample, per-target eager GradientTape loop with the same sampler and fit."""
    logits = model(image[None], training=False).numpy()[0]
    predicted = int(np.argmax(logits))
    scores = []
    for target in range(10):
        if target == predicted:
            continue
        deltas = sample_uniform_ball((num_batches * num_samples, image.size), radius, "2",
                                     seed=(target, 0)).numpy()
        norms = []
        for delta in deltas:
            x = tf.constant(np.clip(image + delta.reshape(image.shape), 0, 1)[None])
            with tf.GradientTape() as tape:
                tape.watch(x)
                z = model(x, training=False)
                margin = z[0, predicted] - z[0, target]
            norms.append(float(tf.norm(tape.gradient(margin, x))))
        maxima = np.max(np.reshape(norms, (num_batches, num_samples)), axis=1)
        fit = metrics.fit_reverse_weibull(maxima)
        scores.append(min((logits[predicted] - logits[target]) / fit.estimate, radius))
    return min(scores)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--art-path", default="/tmp/art-venv/site",
                        help="directory holding an ART install (prepended to sys.path)")
    parser.add_argument("--reference-size", type=int, nargs=2, default=(10, 10),
                        metavar=("NB", "NS"), help="Nb Ns for the equal-size comparison")
    parser.add_argument("--paper-batches", type=at_least_two, default=4,
                        help="batches of 1024 measured to extrapolate the paper preset "
                             "(must be >= 2: the Weibull fit needs at least 2 batch maxima; "
                             "default %(default)s)")
    parser.add_argument("--agreement-factor", type=float, default=2.0,
                        help="report the speed ratio only if the two scores agree within this "
                             "factor (default %(default)s)")
    parser.add_argument("--full-paper", action="store_true", help="run the paper preset fully")
    parser.add_argument("--skip-fast", action="store_true")
    args = parser.parse_args()

    model, model_name = build_model()
    image, image_name = load_image()
    radius = 2.0
    print(f"model: {model_name}, {model.count_params():,} parameters; image: {image_name}")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"TF {tf.__version__}, Keras {keras.__version__}, devices: "
          f"{[d.device_type for d in tf.config.list_logical_devices()]}; machine: {describe()}; "
          f"load average {load}")
    print(f"norm L2, radius {radius}, untargeted (9 targets)\n")

    num_batches, num_samples = args.reference_size
    cold, ours = timed(lambda: metrics.clever_u(
        model, image, num_batches=num_batches, num_samples_per_batch=num_samples,
        radius=radius, verbose=0))
    warm, ours = timed(lambda: metrics.clever_u(
        model, image, num_batches=num_batches, num_samples_per_batch=num_samples,
        radius=radius, verbose=0))
    print(f"[equal size] Nb x Ns = {num_batches} x {num_samples} gradients per target")
    print(f"  ours       : {warm:8.2f} s/image warm, {cold:8.2f} s cold (incl. tracing); "
          f"score {ours.score:.4g}, fallback {ours.fallback}")
    if args.art_path and os.path.isdir(args.art_path):
        sys.path.insert(0, args.art_path)
    try:
        import art  # noqa: F401

        name, reference = f"ART {art.__version__} clever_u", art_reference
    except ImportError:
        name, reference = "naive per-sample GradientTape loop", naive_reference
    seconds, score = timed(lambda: reference(model, image, num_batches, num_samples, radius))
    print(f"  reference  : {seconds:8.2f} s/image ({name}); score {score:.4g}")
    if comparable(ours.score, score, args.agreement_factor):
        print(f"  speed-up   : {seconds / warm:.1f}x warm, {seconds / cold:.1f}x cold "
              f"(scores agree within {args.agreement_factor:g}x)\n")
    else:
        cause = ("ART's Weibull fit failed" if name.startswith("ART") else
                 "the two computations differ")
        print(f"  speed-up   : not comparable: {cause} (scores differ by more than "
              f"{args.agreement_factor:g}x; raise --reference-size until they agree)\n")

    if not args.skip_fast:
        seconds, result = timed(lambda: metrics.clever_u(model, image, preset="fast",
                                                         radius=radius, verbose=0))
        print(f"[preset fast] 100 x 256: {seconds:.1f} s/image (warm model trace reused); "
              f"score {result.score:.4g}, K-S p {result.ks_pvalue:.3g}, "
              f"fallback {result.fallback}, fit {result.fit.status}")

    if args.full_paper:
        seconds, result = timed(lambda: metrics.clever_u(model, image, preset="paper",
                                                         radius=radius))
        print(f"[preset paper] 500 x 1024: {seconds:.1f} s/image; score {result.score:.4g}")
    else:
        measured, _ = timed(lambda: metrics.clever_u(
            model, image, num_batches=args.paper_batches, num_samples_per_batch=1024,
            radius=radius, verbose=0))
        maxima = np.random.default_rng(0).weibull(3.0, size=500)
        fit_seconds, _ = timed(lambda: [metrics.fit_reverse_weibull(maxima) for _ in range(9)])
        per_batch = measured / args.paper_batches
        print(f"[preset paper] 500 x 1024: ~{per_batch * 500 + fit_seconds:.0f} s/image "
              f"EXTRAPOLATED from {args.paper_batches} measured batches ({per_batch:.2f} s/batch "
              f"of 1024 samples x 9 targets) + {fit_seconds:.1f} s for 9 fits of 500 maxima")


if __name__ == "__main__":
    main()
