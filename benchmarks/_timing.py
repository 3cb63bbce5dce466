"""Timing helpers shared by the benchmark scripts (imported as a sibling module)."""

from __future__ import annotations

import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf


def time_interleaved(steps, rounds, repeats_per_round, wait=None, progress=True):
    """Median seconds per call of each zero-argument ``steps[name]``, interleaved round by round.

    Interleaving spreads a shared machine's varying load over all steps alike. ``wait``, if
    given, is called on the result of each round's last call and must block until the device has
    finished (steps that already block need none). ``progress=False`` hides the progress bar.
    """
    samples = {name: [] for name in steps}
    bar = keras.utils.Progbar(rounds, unit_name="round") if progress else None
    for round_index in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(repeats_per_round):
                result = step()
            if wait is not None:
                wait(result)
            samples[name].append((time.perf_counter() - start) / repeats_per_round)
        if bar is not None:
            bar.update(round_index + 1)
    return {name: float(np.median(values)) for name, values in samples.items()}


def input_gradient_step(model, images, labels, jit_compile=False):
    """A zero-argument callable: one forward + backward pass to the input in inference mode
    (cross-entropy on logits, under ``tf.function``; what FGSM/PGD/CLEVER repeat), warmed up."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=jit_compile)
    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = loss(labels, model(x, training=False))
        return tape.gradient(value, x)

    gradient(images)  # trace and warm up

    def step():
        return gradient(images).numpy()

    return step


def intra_op_threads():
    """The threads TensorFlow's ops use: its intra-op setting, else every core it may run on."""
    configured = tf.config.threading.get_intra_op_parallelism_threads()
    if configured:
        return configured
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def load_torch_twins(peers_path):
    """The ``_torch_twins`` module (torch seeded, as many threads as TensorFlow), or None.

    ``peers_path``: folders (``os.pathsep``-separated) holding a throwaway torch install,
    appended to ``sys.path`` so that they never shadow the project's own dependencies.
    """
    if peers_path:
        sys.path.extend(peers_path.split(os.pathsep))
    try:
        import _torch_twins  # noqa: PLC0415 (optional peer)
    except ImportError as error:
        print(f"PyTorch peers skipped: {error}")
        return None
    _torch_twins.torch.manual_seed(0)
    _torch_twins.torch.set_num_threads(intra_op_threads())
    return _torch_twins
