"""Evaluation under the active ``tf.distribute`` strategy: one batch split over its replicas.

Training distributes through ``keras_equivariant.training.select_strategy``; evaluation follows
the strategy whose scope is active (``with strategy.scope(): metrics.robust_accuracy(...)``):
:func:`split_over_replicas` cuts a batch into one contiguous part per replica, runs the
function on each part on its replica's device (``strategy.run``), and concatenates the results
in the original order. Outside any scope, with one replica, or under a strategy whose replicas
are not all in this process (``MultiWorkerMirroredStrategy``: split the data between workers
with ``shard=(worker, num_workers)`` instead), the function runs once on the whole batch.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import tensorflow as tf


def local_replicas(strategy=None) -> int:
    """How many replicas of ``strategy`` (default: the active one) run in this process, or 1
    when some run in other processes (then the batch is not split here)."""
    strategy = strategy or tf.distribute.get_strategy()
    replicas = int(strategy.num_replicas_in_sync)
    if replicas == 1 or len(strategy.extended.worker_devices) != replicas:
        return 1
    return replicas


def split_over_replicas(function, *tensors):
    """``function(*parts)`` on every local replica's contiguous part of ``tensors`` (same first
    dimension), concatenated back along axis 0; ``function(*tensors)`` with one replica or
    fewer rows than replicas. ``function`` returns one tensor whose first axis follows its
    inputs' (an attack's adversarial images)."""
    strategy = tf.distribute.get_strategy()
    replicas = local_replicas(strategy)
    num_rows = int(tensors[0].shape[0])
    if replicas == 1 or num_rows < replicas:
        return function(*tensors)
    bounds = np.linspace(0, num_rows, replicas + 1).astype(int)

    def part(context):
        begin, end = bounds[context.replica_id_in_sync_group: context.replica_id_in_sync_group + 2]
        return tuple(tensor[begin:end] for tensor in tensors)

    parts = strategy.experimental_distribute_values_from_function(part)
    with _quiet_eager_strategy_warning():
        # eager on purpose: the attacks compile their own loops and some (AutoAttack) run
        # Python between compiled stages, which a tf.function around them could not hold
        results = strategy.run(function, args=parts)
    return tf.concat([tf.identity(result) for result in
                      strategy.experimental_local_results(results)], axis=0)


class _DropEagerWarning(logging.Filter):
    def filter(self, record):
        return "Using MirroredStrategy eagerly" not in record.getMessage()


@contextlib.contextmanager
def _quiet_eager_strategy_warning():
    logger = logging.getLogger("tensorflow")
    drop = _DropEagerWarning()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)
