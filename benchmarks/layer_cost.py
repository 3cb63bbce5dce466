"""Forward+backward cost of equivariant layers relative to a plain ``keras.layers.Conv2D``.

Every layer in ``LAYERS`` is timed in the same process under ``tf.function`` (gradients with
respect to its input and its weights), the layers interleaved round by round so that machine
load affects all of them alike; the table shows the median time per step and the ratio to the
reference row (``Conv2D`` 64→64 channels, 3×3, batch 32, 32×32). Add a layer by appending a
``(name, layer factory, input shape without batch)`` row to ``LAYERS``.

``--backend jax`` also times every layer on Keras' JAX backend (``jax.jit`` of ``jax.grad`` of
the layer's ``stateless_call``) in a worker process started with ``KERAS_BACKEND=jax`` (one backend
per process), interleaved with the TensorFlow rounds: each round times all layers on TensorFlow,
then all layers on JAX, and the table adds the JAX time and the JAX/TF ratio of each layer.

Usage::

    python benchmarks/layer_cost.py [--batch-size 32] [--rounds 30] [--backend tensorflow|jax]
        [--match RotationConv2D]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # unless set: docs/performance.md

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from _timing import (  # noqa: E402  (sibling module)
    WorkerRounds,
    add_backend_arguments,
    serve_rounds,
    time_rounds,
)
from keras_equivariant.layers import RotationConv2D, ScaleConv2D  # noqa: E402
from keras_equivariant.utils.platform import describe  # noqa: E402

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
    """Builds ``layer`` and returns a zero-argument compiled forward+backward step on a batch.

    The step blocks until its result is computed.
    """
    if keras.backend.backend() == "jax":
        return _measure_jax(layer, input_shape, batch_size)
    inputs = tf.random.uniform((batch_size, *input_shape))
    layer(inputs)  # build

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_mean(tf.square(layer(x)))
        return tape.gradient(loss, [x, *layer.trainable_variables])

    step(inputs)  # trace and warm up
    return lambda: step(inputs)[0].numpy()


def _measure_jax(layer, input_shape, batch_size):
    import jax  # noqa: PLC0415 (only in the JAX worker)

    inputs = keras.random.uniform((batch_size, *input_shape))
    layer(inputs)  # build
    trainable = [variable.value for variable in layer.trainable_variables]
    non_trainable = [variable.value for variable in layer.non_trainable_variables]

    def loss(weights, x):
        outputs, _ = layer.stateless_call(weights, non_trainable, x)
        return keras.ops.mean(keras.ops.square(outputs))

    step = jax.jit(jax.grad(loss, argnums=(0, 1)))
    jax.block_until_ready(step(trainable, inputs))  # compile and warm up
    return lambda: jax.block_until_ready(step(trainable, inputs))


def _build_steps(batch_size, match=""):
    steps, parameters = {}, {}
    for name, factory, input_shape in LAYERS:
        if match not in name and name != REFERENCE:
            continue
        layer = factory()
        steps[name] = measure(layer, input_shape, batch_size)
        parameters[name] = layer.count_params()
    return steps, parameters


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="calls per layer and round")
    add_backend_arguments(parser, "every layer", ("layers", "RotationConv2D"))
    args = parser.parse_args(argv)
    if args.jax_worker:
        return serve_rounds(_build_steps(args.batch_size, args.match)[0], args.repeats)
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("Run layer_cost.py on the TensorFlow backend (KERAS_BACKEND=tensorflow);"
                         " --backend jax starts its own JAX worker.")

    worker = None
    if args.backend == "jax":
        worker = WorkerRounds(__file__, ["--jax-worker", "--batch-size", str(args.batch_size),
                                         "--repeats", str(args.repeats), "--match", args.match],
                              "jax")
    steps, parameters = _build_steps(args.batch_size, args.match)
    medians, jax_medians = time_rounds(steps, args.rounds, args.repeats, worker)
    reference = medians[REFERENCE]
    print(f"\nforward+backward (input and weight gradients), batch {args.batch_size}, median of "
          f"{args.rounds} interleaved rounds; TensorFlow: tf.function, device "
          f"{tf.config.list_logical_devices()[-1].device_type}"
          + ("; JAX: jax.jit(jax.grad(stateless_call)) in a worker process" if worker else ""))
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"machine: {describe()}; load average {load}")
    header = f"{'layer':<34} {'ms/step':>9} {'ratio':>7} {'params':>9}"
    print(header + (f" {'JAX ms':>9} {'JAX/TF':>7}" if worker else ""))
    for name in steps:
        row = (f"{name:<34} {medians[name] * 1e3:>9.2f} {medians[name] / reference:>7.3f} "
               f"{parameters[name]:>9d}")
        if worker is not None:
            row += f" {jax_medians[name] * 1e3:>9.2f} {jax_medians[name] / medians[name]:>7.3f}"
        print(row)


if __name__ == "__main__":
    main()
