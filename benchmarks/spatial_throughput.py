"""Throughput of the worst-of-grid spatial attack against the same number of plain forward passes.

For each model, one step evaluates ``--num-images`` images against the default grid of
``attacks.spatial`` (21 angles in ±30° x 7 x 7 shifts in ±3 px = 1029 transformations), i.e.
``num_images * 1029`` transformed images, ``--batch-size`` per forward pass; the reference step
runs the same number of forward passes of the model on untransformed images of the same forward
batch size, in one compiled loop. Both are interleaved round by round (see ``_timing.py``), and
the ratio ``attack time / forward time`` (the same ``num_images * 1029`` forward images
each) is the cost of transforming and selecting (goal: <= 1.2).

Usage::

    python benchmarks/spatial_throughput.py [--num-images 128] [--batch-size 1024] [--rounds 3]

On a small CPU use e.g. ``--num-images 2``: the ratio does not depend on it.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # unless set: docs/performance.md

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from _timing import time_interleaved  # noqa: E402  (sibling module: run as a script)
from keras_equivariant import BaselineCNN, ParallelRotScaleGCNN  # noqa: E402
from keras_equivariant.attacks.gradient import model_logits  # noqa: E402
from keras_equivariant.attacks.spatial import spatial_settings, worst_transformations  # noqa: E402
from keras_equivariant.utils.platform import describe  # noqa: E402

MODELS = [
    ("BaselineCNN(10)", lambda: BaselineCNN(10, depth=10)),
    ("ParallelRotScaleGCNN(10)", lambda: ParallelRotScaleGCNN(10, depth=10)),
]


def attack_step(model, images, labels, settings):
    worst_transformations(model, images, labels, settings)  # trace and warm up

    def step():
        return worst_transformations(model, images, labels, settings).index

    return step


def forward_step(model, batch, num_forwards):
    """``num_forwards`` forward passes: full batches, then one shorter batch, like the attack."""
    num_full, remainder = divmod(num_forwards, int(batch.shape[0]))

    @tf.function
    def forwards(batch, num_full, remainder):
        total = tf.reduce_sum(tf.argmax(model_logits(model, batch[:remainder]), axis=-1))
        for _ in tf.range(num_full):
            total += tf.reduce_sum(tf.argmax(model_logits(model, batch), axis=-1))
        return total

    arguments = (batch, tf.constant(num_full), tf.constant(remainder))
    forwards(*arguments)  # trace and warm up

    def step():
        return forwards(*arguments).numpy()

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=1024,
                        help="transformed images per forward pass")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    settings = spatial_settings(batch_size=args.batch_size)
    grid_size = settings.num_transformations
    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((args.num_images, 32, 32, 3), dtype=np.float32))
    labels = tf.constant(rng.integers(0, 10, args.num_images), tf.int32)
    points_per_pass = max(1, args.batch_size // args.num_images)
    forward_batch = points_per_pass * args.num_images
    num_forwards = grid_size * args.num_images
    batch = tf.constant(rng.random((forward_batch, 32, 32, 3), dtype=np.float32))
    steps = {}
    for name, builder in MODELS:
        model = builder()
        steps[f"{name} spatial"] = attack_step(model, images, labels, settings)
        steps[f"{name} forward"] = forward_step(model, batch, num_forwards)
    times = time_interleaved(steps, args.rounds, 1)

    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    print(f"\n{describe()}; GPUs: {gpus or 'none'}; TensorFlow {tf.__version__}")
    print(f"{args.num_images} images x {grid_size} transformations, {forward_batch} images per "
          f"forward pass, median of {args.rounds} interleaved rounds")
    print(f"{'model':<26} {'attack images/s':>16} {'transforms/s':>13} {'forward-only /s':>16} "
          f"{'ratio':>6}")
    for name, _ in MODELS:
        attack, forward = times[f"{name} spatial"], times[f"{name} forward"]
        print(f"{name:<26} {args.num_images / attack:>16.2f} "
              f"{args.num_images * grid_size / attack:>13.0f} "
              f"{num_forwards / forward:>16.0f} {attack / forward:>6.3f}")


if __name__ == "__main__":
    main()
