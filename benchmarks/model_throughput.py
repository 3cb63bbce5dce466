"""Training and inference throughput (images/s) of the 10-layer models, before and after ``fold``.

Measured in one process, the models interleaved round by round so that machine load affects all
of them alike; ratios are against ``BaselineCNN(depth=10)`` measured in the same process.

- training: ``model.train_on_batch`` (Adam, cross-entropy on logits; the compiled train
  function of ``model.fit``), batch 128 of 32x32x3 images;
- inference: ``model(x, training=False)`` under ``tf.function``, batch 128, for each model and
  for ``keras_equivariant.export.fold(model)``.

Reference points measured elsewhere (not in this process, so only indicative): the official
PyTorch + e2cnn code on this project's 2-core CPU trains the 10-layer rot-scale model at about
32 images/s and the 10-layer baseline at about 62 images/s.

The inference table ends with the speed-up of each folded model over the same model unfolded,
measured in the same interleaved rounds.

Usage::

    python benchmarks/model_throughput.py [--batch-size 128] [--rounds 5] [--jit-compile]
        [--dtype-policy mixed_bfloat16] [--inference-only]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from _timing import time_interleaved  # noqa: E402  (sibling module: run as a script)
from keras_equivariant import BaselineCNN, ParallelRotScaleGCNN  # noqa: E402
from keras_equivariant.export import fold  # noqa: E402

REFERENCE = "BaselineCNN(10)"
MODELS = [
    (REFERENCE, lambda: BaselineCNN(depth=10)),
    ("ParallelRotScaleGCNN(10, equivariant)",
     lambda: ParallelRotScaleGCNN(depth=10, variant="equivariant")),
    ("ParallelRotScaleGCNN(10, paper)", lambda: ParallelRotScaleGCNN(depth=10, variant="paper")),
]
# Official PyTorch + e2cnn training throughput on this CPU (images/s), for context only.
PYTORCH_TRAINING_ANCHORS = {
    REFERENCE: 62.0,
    "ParallelRotScaleGCNN(10, equivariant)": 32.0,
    "ParallelRotScaleGCNN(10, paper)": 32.0,
}


def training_step(model, images, labels, jit_compile):
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-8),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="calls per round and model")
    parser.add_argument("--jit-compile", action="store_true", help="compile with XLA")
    parser.add_argument("--dtype-policy", default="float32",
                        help='Keras dtype policy, e.g. "mixed_bfloat16" (AMX/AVX512-BF16 CPUs)')
    parser.add_argument("--inference-only", action="store_true",
                        help="skip the training measurement")
    args = parser.parse_args(argv)
    keras.config.set_dtype_policy(args.dtype_policy)

    rng = np.random.default_rng(0)
    images = rng.random((args.batch_size, 32, 32, 3), dtype=np.float32)
    labels = rng.integers(0, 10, args.batch_size)
    training, inference, parameters = {}, {}, {}
    for name, builder in MODELS:
        model = builder()
        parameters[name] = model.count_params()
        inference[f"{name} inference"] = inference_step(model, images, args.jit_compile)
        inference[f"{name} inference, folded"] = inference_step(
            fold(model), images, args.jit_compile)
        if not args.inference_only:
            training[name] = training_step(model, images, labels, args.jit_compile)

    train_times = {}
    if training:
        print("training")
        train_times = time_interleaved(training, args.rounds, args.repeats)
    print("inference")
    infer_times = time_interleaved(inference, args.rounds, args.repeats)

    device = tf.config.list_logical_devices()[-1].device_type
    print(f"\nbatch {args.batch_size}, median of {args.rounds} interleaved rounds x "
          f"{args.repeats} calls; device: {device}; XLA: {args.jit_compile}; "
          f"dtype policy: {args.dtype_policy}; CPU threads: {os.cpu_count()}")
    if train_times:
        reference = args.batch_size / train_times[REFERENCE]
        print(f"\n{'training':<40} {'images/s':>9} {'vs baseline':>12} {'vs PyTorch':>11} "
              f"{'params':>10}")
    for name, seconds in train_times.items():
        rate = args.batch_size / seconds
        print(f"{name:<40} {rate:>9.1f} {rate / reference:>12.3f} "
              f"{rate / PYTORCH_TRAINING_ANCHORS[name]:>11.2f} {parameters[name]:>10d}")
    reference = args.batch_size / infer_times[f"{REFERENCE} inference"]
    print(f"\n{'inference':<56} {'images/s':>9} {'vs baseline':>12}")
    for name, seconds in infer_times.items():
        rate = args.batch_size / seconds
        print(f"{name:<56} {rate:>9.1f} {rate / reference:>12.3f}")
    print(f"\n{'folded vs unfolded inference':<56} {'speed-up':>9}")
    for name, _ in MODELS:
        speedup = infer_times[f"{name} inference"] / infer_times[f"{name} inference, folded"]
        print(f"{name:<56} {speedup:>9.3f}")


if __name__ == "__main__":
    main()
