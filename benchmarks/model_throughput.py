"""Training and inference throughput (images/s) of the 10-layer models, before and after ``fold``.

Measured in one process, the models interleaved round by round so that machine load affects all
of them alike; ratios are against ``BaselineCNN(depth=10)`` and against the PyTorch twins, both
measured in the same process.

- training: ``model.train_on_batch`` (Adam, cross-entropy on logits; the compiled train
  function of ``model.fit``), batch 128 of 32x32x3 images;
- input gradient: forward + backward to the input in inference mode (what FGSM/PGD/CLEVER
  repeat), under ``tf.function``;
- inference: ``model(x, training=False)`` under ``tf.function``, batch 128, for each model and
  for ``keras_equivariant.export.fold(model)``.

Peers: when ``torch`` is importable (``--peers-path DIR`` puts e.g. a ``pip install --target DIR
torch e2cnn`` on the path; torch is never a project dependency), the PyTorch twins of
``benchmarks/_torch_twins.py`` (the official code's BaselineCNN(10) and C8 rot-scale model,
e2cnn lifting when e2cnn imports) are timed in the same rounds, same batch, same thread count,
and each row prints the ratio. Every table names the CPU model and TensorFlow's oneDNN state.

The inference table ends with the speed-up of each folded model over the same model unfolded,
measured in the same interleaved rounds.

``--backend jax`` also times the training step of every model on Keras' JAX backend (the same
``train_on_batch``, which Keras compiles with ``jax.jit`` there) in a worker process started with
``KERAS_BACKEND=jax`` (one backend per process), its rounds interleaved with the TensorFlow
training rounds, and prints the JAX/TF time ratio of each model.

Usage::

    python benchmarks/model_throughput.py [--batch-size 128] [--rounds 5] [--jit-compile]
        [--dtype-policy mixed_bfloat16] [--peers-path /tmp/peers] [--inference-only]
        [--backend tensorflow|jax] [--match "ParallelRotScaleGCNN(10, equivariant)"]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # unless set: docs/performance.md

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from _timing import (  # noqa: E402  (sibling module: run as a script)
    WorkerRounds,
    add_backend_arguments,
    input_gradient_step,
    load_torch_twins,
    serve_rounds,
    time_interleaved,
    time_rounds,
)
from keras_equivariant import BaselineCNN, ParallelRotScaleGCNN  # noqa: E402
from keras_equivariant.export import fold  # noqa: E402
from keras_equivariant.utils.platform import describe  # noqa: E402

REFERENCE = "BaselineCNN(10)"
MODELS = [
    (REFERENCE, lambda: BaselineCNN(depth=10)),
    ("ParallelRotScaleGCNN(10, equivariant)",
     lambda: ParallelRotScaleGCNN(depth=10, variant="equivariant")),
    ("ParallelRotScaleGCNN(10, paper)", lambda: ParallelRotScaleGCNN(depth=10, variant="paper")),
]
# Which PyTorch twin (benchmarks/_torch_twins.py) each of our rows is compared with.
TWIN_OF = {
    REFERENCE: "BaselineCNN(10)",
    "ParallelRotScaleGCNN(10, equivariant)": "ParallelRotScaleGCNN(10, paper)",
    "ParallelRotScaleGCNN(10, paper)": "ParallelRotScaleGCNN(10, paper)",
}


def training_step(model, images, labels, jit_compile):
    """``model.train_on_batch`` on one batch (Adam, cross-entropy on logits), compiled and warm.

    On the JAX backend Keras always compiles the train step with ``jax.jit``.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-8),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True if keras.backend.backend() == "jax" else jit_compile,
    )
    model.train_on_batch(images, labels)  # trace and warm up

    def step():
        return model.train_on_batch(images, labels)

    return step


def inference_step(model, images, jit_compile):
    forward = tf.function(lambda x: model(x, training=False), jit_compile=jit_compile)
    forward(images)  # trace and warm up

    def step():
        return forward(images).numpy()

    return step


def batch(batch_size):
    """The benchmark's images and labels (the same on every backend)."""
    rng = np.random.default_rng(0)
    return rng.random((batch_size, 32, 32, 3), dtype=np.float32), rng.integers(0, 10, batch_size)


def selected_models(match):
    """The rows of ``MODELS`` whose name contains ``match``, and the reference."""
    return [(name, builder) for name, builder in MODELS if match in name or name == REFERENCE]


def _jax_worker(args):
    """Builds the training step of every model on JAX, then serves timing rounds."""
    keras.config.set_dtype_policy(args.dtype_policy)
    images, labels = batch(args.batch_size)
    steps = {name: training_step(builder(), images, labels, True)
             for name, builder in selected_models(args.match)}
    serve_rounds(steps, args.repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="calls per round and model")
    parser.add_argument("--jit-compile", action="store_true", help="compile with XLA")
    parser.add_argument("--dtype-policy", default="float32",
                        help='Keras dtype policy, e.g. "mixed_bfloat16" (AMX/AVX512-BF16 CPUs)')
    parser.add_argument("--peers-path", default=None,
                        help="folders (os.pathsep-separated) holding torch and e2cnn for the "
                        "PyTorch twin rows")
    parser.add_argument("--inference-only", action="store_true",
                        help="skip the training and input-gradient measurements")
    add_backend_arguments(parser, "the training steps",
                          ("models", "ParallelRotScaleGCNN(10, equivariant)"))
    args = parser.parse_args(argv)
    if args.jax_worker:
        return _jax_worker(args)
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("Run model_throughput.py on the TensorFlow backend "
                         "(KERAS_BACKEND=tensorflow); --backend jax starts its own JAX worker.")
    worker = None
    if args.backend == "jax" and not args.inference_only:
        worker = WorkerRounds(__file__, ["--jax-worker", "--batch-size", str(args.batch_size),
                                         "--repeats", str(args.repeats), "--dtype-policy",
                                         args.dtype_policy, "--match", args.match], "jax")
    twins = load_torch_twins(args.peers_path)
    keras.config.set_dtype_policy(args.dtype_policy)

    images, labels = batch(args.batch_size)
    training, gradients, inference, parameters = {}, {}, {}, {}
    for name, builder in selected_models(args.match):
        model = builder()
        parameters[name] = model.count_params()
        inference[f"{name} inference"] = inference_step(model, images, args.jit_compile)
        inference[f"{name} inference, folded"] = inference_step(
            fold(model), images, args.jit_compile)
        if not args.inference_only:
            gradients[name] = input_gradient_step(model, tf.constant(images),
                                                  tf.constant(labels), args.jit_compile)
            training[name] = training_step(model, images, labels, args.jit_compile)
    peer_rows = {}
    if twins is not None and not args.inference_only:
        torch_images = twins.torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
        torch_labels = twins.torch.from_numpy(labels)
        for twin_name, twin_class in twins.TWINS.items():
            twin = twin_class()
            row = f"PyTorch {twin_name}" + (
                "" if getattr(twin, "uses_e2cnn", True) else " (plain-conv stand-in for e2cnn)")
            peer_rows[twin_name] = row
            parameters[row] = sum(p.numel() for p in twin.parameters())
            training[row] = twins.training_step(twin, torch_images, torch_labels)
            gradients[row] = twins.input_gradient_step(twin_class(), torch_images, torch_labels)

    train_times, gradient_times, jax_train_times = {}, {}, None
    if training:
        print("training" + (" (TensorFlow and JAX rounds interleaved)" if worker else ""))
        train_times, jax_train_times = time_rounds(training, args.rounds, args.repeats, worker)
        print("input gradient")
        gradient_times = time_interleaved(gradients, args.rounds, args.repeats)
    print("inference")
    infer_times = time_interleaved(inference, args.rounds, args.repeats)

    device = tf.config.list_logical_devices()[-1].device_type
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\nbatch {args.batch_size}, median of {args.rounds} interleaved rounds x "
          f"{args.repeats} calls; device: {device}; XLA: {args.jit_compile}; "
          f"dtype policy: {args.dtype_policy}\nmachine: {describe()}; load average {load}")
    for title, times in (("training", train_times), ("input gradient", gradient_times)):
        if not times:
            continue
        reference = args.batch_size / times[REFERENCE]
        print(f"\n{title:<56} {'images/s':>9} {'vs baseline':>12} {'vs PyTorch twin':>16} "
              f"{'params':>10}")
        for name, seconds in times.items():
            rate = args.batch_size / seconds
            twin_row = peer_rows.get(TWIN_OF.get(name))
            versus = (f"{rate / (args.batch_size / times[twin_row]):>16.2f}" if twin_row
                      else f"{'-':>16}")
            print(f"{name:<56} {rate:>9.1f} {rate / reference:>12.3f} {versus} "
                  f"{parameters[name]:>10d}")
    if jax_train_times is not None:
        print(f"\n{'training, JAX vs TensorFlow (train_on_batch)':<56} {'TF img/s':>9} "
              f"{'JAX img/s':>10} {'JAX/TF time':>12}")
        for name, seconds in jax_train_times.items():
            print(f"{name:<56} {args.batch_size / train_times[name]:>9.1f} "
                  f"{args.batch_size / seconds:>10.1f} {seconds / train_times[name]:>12.3f}")
    reference = args.batch_size / infer_times[f"{REFERENCE} inference"]
    print(f"\n{'inference':<56} {'images/s':>9} {'vs baseline':>12}")
    for name, seconds in infer_times.items():
        rate = args.batch_size / seconds
        print(f"{name:<56} {rate:>9.1f} {rate / reference:>12.3f}")
    print(f"\n{'folded vs unfolded inference':<56} {'speed-up':>9}")
    for name, _ in selected_models(args.match):
        speedup = infer_times[f"{name} inference"] / infer_times[f"{name} inference, folded"]
        print(f"{name:<56} {speedup:>9.3f}")


if __name__ == "__main__":
    main()
