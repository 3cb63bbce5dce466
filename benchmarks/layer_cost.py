"""Forward+backward cost of equivariant layers relative to a plain ``keras.layers.Conv2D``.

Every layer in ``LAYERS`` is timed in the same process under ``tf.function`` (gradients with
respect to its input and its weights), the layers interleaved round by round so that machine
load affects all of them alike; the table shows the median time per step and the ratio to the
reference row (``Conv2D`` 64→64 channels, 3×3, batch 32, 32×32). Add a layer by appending a
``(name, layer factory, input shape without batch)`` row to ``LAYERS``.

Usage::

    python benchmarks/layer_cost.py [--batch-size 32] [--rounds 30]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from _timing import time_interleaved  # noqa: E402  (sibling module: run as a script)
from keras_equivariant.layers import RotationConv2D, ScaleConv2D  # noqa: E402

REFERENCE = "Conv2D 64->64"

# (name, factory returning a fresh layer, input shape without the batch axis). Equal channel
# counts: 16 C4 fields = 8 D4/C8 fields = 64 channels.
LAYERS = [
    (REFERENCE, lambda: keras.layers.Conv2D(64, 3, padding="same"), (32, 32, 64)),
    ("RotationConv2D C4 16->16 fields", lambda: RotationConv2D(16, 3, group="C4"), (32, 32, 4, 16)),
    ("RotationConv2D D4 8->8 fields", lambda: RotationConv2D(8, 3, group="D4"), (32, 32, 8, 8)),
    ("RotationConv2D C8 8->8 fields", lambda: RotationConv2D(8, 3, group="C8"), (32, 32, 8, 8)),
    ("RotationConv2D C4 lift 3->16", lambda: RotationConv2D(16, 3, group="C4"), (32, 32, 3)),
    # Scale: 2 scales x 32 fields = 64 channels; 3 scales x 21 fields = 63 channels.
    ("ScaleConv2D (1,2) 32->32 fields", lambda: ScaleConv2D(32, 3, scales=(1, 2)), (32, 32, 2, 32)),
    ("ScaleConv2D (1,2) ss=2 32->32",
     lambda: ScaleConv2D(32, 3, scales=(1, 2), scale_size=2), (32, 32, 2, 32)),
    ("ScaleConv2D (1,2,4) 21->21 fields",
     lambda: ScaleConv2D(21, 3, scales=(1, 2, 4)), (32, 32, 3, 21)),
    ("ScaleConv2D (1,2,4) ss=2 21->21",
     lambda: ScaleConv2D(21, 3, scales=(1, 2, 4), scale_size=2), (32, 32, 3, 21)),
    ("ScaleConv2D (1,1.41,2) 21->21",
     lambda: ScaleConv2D(21, 3, scales=(1, 2**0.5, 2)), (32, 32, 3, 21)),
    ("ScaleConv2D (1,2) lift 64->32", lambda: ScaleConv2D(32, 3, scales=(1, 2)), (32, 32, 64)),
    # Per-branch view (the SESN/DISCO "x a plain CNN" anchor): one scale's fields, 32->32.
    ("Conv2D 32->32 (one scale)", lambda: keras.layers.Conv2D(32, 3, padding="same"), (32, 32, 32)),
]


def measure(layer, input_shape, batch_size=32):
    """Builds ``layer`` and returns a zero-argument compiled forward+backward step on a batch."""
    inputs = tf.random.uniform((batch_size, *input_shape))
    layer(inputs)  # build

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_mean(tf.square(layer(x)))
        return tape.gradient(loss, [x, *layer.trainable_variables])

    step(inputs)  # trace and warm up
    return lambda: step(inputs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)

    steps, parameters = {}, {}
    for name, factory, input_shape in LAYERS:
        layer = factory()
        steps[name] = measure(layer, input_shape, args.batch_size)
        parameters[name] = layer.count_params()
    # One device sync per round (after its 3 calls): results[0].numpy() waits for the device.
    medians = time_interleaved(steps, args.rounds, repeats_per_round=3,
                               wait=lambda results: results[0].numpy())
    reference = medians[REFERENCE]
    print(f"\nforward+backward, tf.function, batch {args.batch_size}, median of {args.rounds} "
          f"interleaved rounds; device: {tf.config.list_logical_devices()[-1].device_type}")
    print(f"{'layer':<34} {'ms/step':>9} {'ratio':>7} {'params':>9}")
    for name in steps:
        print(f"{name:<34} {medians[name] * 1e3:>9.2f} {medians[name] / reference:>7.3f} "
              f"{parameters[name]:>9d}")


if __name__ == "__main__":
    main()
