"""Interleaved timing shared by the benchmark scripts (imported as a sibling module)."""

from __future__ import annotations

import time

import keras
import numpy as np


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
