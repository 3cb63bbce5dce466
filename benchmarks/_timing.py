"""Interleaved timing shared by the benchmark scripts (imported as a sibling module), and the
worker protocol that times the same steps on another Keras backend in a subprocess
(``--backend jax`` of ``layer_cost.py`` and ``model_throughput.py``)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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


def add_backend_arguments(parser, timed, example):
    """``--backend``, ``--match`` and the hidden ``--jax-worker`` flag of a script that can time
    its ``timed`` (e.g. "every layer") on JAX too through :class:`WorkerRounds`."""
    parser.add_argument("--backend", choices=("tensorflow", "jax"), default="tensorflow",
                        help=f"jax: also time {timed} on JAX and print the JAX/TF ratio")
    parser.add_argument("--match", default="",
                        help=f"time only the {example[0]} whose name contains this text (and "
                        f"the reference), e.g. {example[1]}")
    parser.add_argument("--jax-worker", action="store_true", help=argparse.SUPPRESS)


def serve_rounds(steps, repeats_per_round):
    """The worker side of :class:`WorkerRounds`: times one round of ``steps`` per stdin line.

    Prints ``{"ready": <backend>}`` once the steps are built, then one JSON line of
    ``{name: seconds per call}`` per line read from stdin, until stdin closes.
    """
    print(json.dumps({"ready": keras.backend.backend()}), flush=True)
    for _ in sys.stdin:
        print(json.dumps(time_interleaved(steps, 1, repeats_per_round, progress=False)),
              flush=True)


class WorkerRounds:
    """A benchmark script rerun as a worker on another Keras backend, one timing round per call.

    Keras runs one backend per process: ``WorkerRounds(script, ["--jax-worker", ...], "jax")``
    starts ``python script --jax-worker ...`` with ``KERAS_BACKEND=jax``; the worker builds its
    steps and calls :func:`serve_rounds`. :meth:`round` times one round there; interleaving these
    rounds with the local ones (:func:`time_rounds`) spreads a shared machine's load alike.
    """

    def __init__(self, script, arguments, backend):
        self.backend = backend
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(script), *arguments],
            env={**os.environ, "KERAS_BACKEND": backend}, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        ready = json.loads(self.process.stdout.readline() or "{}")
        if ready.get("ready") != backend:
            raise RuntimeError(f"the {backend} worker did not start (is {backend} installed? "
                               'pip install -e ".[jax]"); see its error above.')

    def round(self):
        """``{name: seconds per call}`` of one round in the worker."""
        self.process.stdin.write("round\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def time_rounds(steps, rounds, repeats_per_round, worker=None):
    """Median seconds per call of the local ``steps`` and, if given, of the ``worker``'s steps.

    Each round times every local step, then asks the worker for one round of its own. Returns
    ``(local medians, worker medians or None)``; the worker is closed at the end.
    """
    local, remote = [], []
    progress = keras.utils.Progbar(rounds, unit_name="round")
    for round_index in range(rounds):
        local.append(time_interleaved(steps, 1, repeats_per_round, progress=False))
        if worker is not None:
            remote.append(worker.round())
        progress.update(round_index + 1)
    if worker is None:
        return _medians(local), None
    worker.close()
    return _medians(local), _medians(remote)


def _medians(rows):
    return {name: float(np.median([row[name] for row in rows])) for name in rows[0]}
