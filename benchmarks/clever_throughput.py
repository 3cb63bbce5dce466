"""CLEVER throughput: seconds per image for ``keras_equivariant.metrics.clever_u``, against a
reference measured in the same process at EQUAL gradient samples per target.

Reference: ART's ``clever_u`` (adversarial-robustness-toolbox) when it can be imported -- it is
NOT a project dependency; install it into a throwaway directory and point ``--art-path`` at it:

    pip install --target /tmp/art-venv/site --no-deps adversarial-robustness-toolbox==1.20.1 \
        scikit-learn joblib threadpoolctl narwhals cloudpickle tqdm six

Otherwise the reference is a naive eager loop (one ``GradientTape`` per sample and target).
ART draws a pool of ``pool_factor * batch_size`` samples per target and bootstraps its batch
maxima from it, so ``pool_factor = Nb`` gives it the same ``Nb * Ns`` gradients per target.

Model: ``keras_equivariant.BaselineCNN(depth=10)`` (untrained, 10 classes, 32x32x3); if the
package does not provide it, a plain 10-conv CNN with the same plan defined below (printed).
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

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_equivariant  # noqa: E402
from keras_equivariant import metrics  # noqa: E402
from keras_equivariant.attacks import sample_uniform_ball  # noqa: E402

DATA = "/work/shared/data/cifar10_subset.npz"


def build_model():
    if hasattr(keras_equivariant, "BaselineCNN"):
        return keras_equivariant.BaselineCNN(num_classes=10, depth=10), "BaselineCNN(depth=10)"
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(2.0, offset=-1.0)(inputs)
    for filters, pool in [(16, 1), (32, 1), (32, 0), (64, 1), (64, 0), (128, 1), (128, 0),
                          (256, 1), (256, 0), (256, 0)]:
        x = keras.layers.Conv2D(filters, 3, padding="same")(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
        if pool:
            x = keras.layers.MaxPooling2D()(x)
    outputs = keras.layers.Dense(10)(keras.layers.GlobalMaxPooling2D()(x))
    return keras.Model(inputs, outputs), "plain 10-conv CNN (BaselineCNN plan; builder missing)"


def load_image():
    if os.path.exists(DATA):
        with np.load(DATA) as data:
            key = "x_test" if "x_test" in data.files else next(
                k for k in data.files if data[k].ndim == 4)
            image = data[key][0]
        image = image.astype("float32")
        return image / 255.0 if image.max() > 1.0 else image, "first test image of cifar10_subset.npz"
    return np.random.default_rng(0).uniform(size=(32, 32, 3)).astype("float32"), "uniform noise"


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
    parser.add_argument("--paper-batches", type=int, default=4,
                        help="batches of 1024 measured to extrapolate the paper preset")
    parser.add_argument("--full-paper", action="store_true", help="run the paper preset fully")
    parser.add_argument("--skip-fast", action="store_true")
    args = parser.parse_args()

    model, model_name = build_model()
    image, image_name = load_image()
    radius = 2.0
    print(f"model: {model_name}, {model.count_params():,} parameters; image: {image_name}")
    print(f"TF {tf.__version__}, Keras {keras.__version__}, devices: "
          f"{[d.device_type for d in tf.config.list_logical_devices()]}, "
          f"{os.cpu_count()} CPU cores visible (machine shared: timings are noisy)")
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
    print(f"  speed-up   : {seconds / warm:.1f}x warm, {seconds / cold:.1f}x cold\n")

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
