"""Training with the paper's protocol: resumable, logged, and distributed when several devices exist.

``train(...)`` is the Python API behind ``keras-equivariant train``. One call trains one model in
``<output_dir>/<run_name>/``:

```
runs/<run_name>/
    config.json            the arguments of the run (a rerun with other arguments is refused)
    backup/                keras.callbacks.BackupAndRestore state (deleted when the run finishes)
    checkpoints/last.keras the full model + optimizer after the latest finished epoch
    logs/                  TensorBoard event files (`tensorboard --logdir runs/`; written when
                           the optional `tensorboard` package is installed)
    history.csv            one row per epoch: loss, accuracy, learning_rate, epoch_seconds
    model.keras            the final model (written when all epochs are done)
    summary.json           clean test accuracy, parameter count, training time, completion flag
```

A run that is killed resumes where it stopped when the same command is run again: weights,
optimizer state and the epoch counter come back from ``backup/`` (written every epoch, or every
``save_freq`` batches for mid-epoch backups; an interrupted epoch restarts from its beginning
with the weights of the latest mid-epoch backup). A run killed after its last epoch (during the
final save or test evaluation) is not retrained: the rerun evaluates ``checkpoints/last.keras``.
A finished run is not retrained; asked for more epochs, it continues from
``checkpoints/last.keras``. Each start prints what it reuses ("Resuming at epoch 3 from
runs/<run>/backup/.").
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import math
import re
import shutil
import time
from pathlib import Path

import keras
import tensorflow as tf

from keras_equivariant.choices import DEPTHS, DISTRIBUTIONS, LR_SCHEDULES, MODEL_NAMES, VARIANTS
from keras_equivariant.utils import io, validation

# Paper protocol (official code): Adam(1e-3), batch 128, no augmentation, 200 epochs; the
# StepLR(50, 0.1) schedule is used for these models and a constant rate for the others.
PAPER_LR_SCHEDULES = {
    "BaselineCNN": "constant",
    "ParallelGCNN": "step",
    "ParallelRotScaleGCNN": "constant",
    "CascadedGCNN": "step",
    "WeightedParallelGCNN": "step",
}

# Arguments that define a run: resuming with different values would silently mix two runs.
# (`epochs` may grow: a finished run asked for more epochs continues from its checkpoint.)
_CONFIG_KEYS = (
    "model_name", "depth", "variant", "dataset", "batch_size", "learning_rate",
    "lr_schedule", "lr_step_epochs", "lr_decay_rate", "augment", "seed", "max_train_examples",
)


def build_model(model_name, depth=10, variant="equivariant", num_classes=10,
                input_shape=(32, 32, 3)):
    """Builds one of the library's models by name (see ``MODEL_NAMES``)."""
    validation.check_choice(model_name, MODEL_NAMES, "model_name")
    import keras_equivariant

    builder = getattr(keras_equivariant, model_name)
    return builder(num_classes=num_classes, depth=depth, input_shape=input_shape, variant=variant)


def default_run_name(model_name, depth, variant, dataset, seed):
    """The run directory name used when none is given, e.g. ``ParallelGCNN-d4-equivariant-cifar10-s0``."""
    return f"{model_name}-d{depth}-{variant}-{dataset}-s{seed}"


def learning_rate_at(epoch, learning_rate, lr_schedule="constant", epochs=200, lr_step_epochs=50,
                     lr_decay_rate=0.1):
    """The learning rate of (zero-based) ``epoch`` under ``lr_schedule``.

    ``"constant"``: ``learning_rate``; ``"step"``: multiplied by ``lr_decay_rate`` every
    ``lr_step_epochs`` epochs (PyTorch ``StepLR``); ``"cosine"``: cosine decay to 0 over ``epochs``.
    """
    validation.check_choice(lr_schedule, LR_SCHEDULES, "lr_schedule")
    if lr_schedule == "constant":
        return float(learning_rate)
    if lr_schedule == "step":
        return float(learning_rate * lr_decay_rate ** (epoch // lr_step_epochs))
    return float(0.5 * learning_rate * (1.0 + math.cos(math.pi * epoch / epochs)))


def select_strategy(distribution="auto"):
    """Returns the ``tf.distribute`` strategy for ``distribution``.

    ``"auto"``: ``MirroredStrategy`` over all GPUs when there are several (or over several logical
    CPU devices when they were configured), the default strategy otherwise; ``"mirrored"``:
    always ``MirroredStrategy``; ``"multi_worker"``: ``MultiWorkerMirroredStrategy`` (configure the
    cluster with the ``TF_CONFIG`` environment variable on every machine); ``"none"``: default.
    """
    validation.check_choice(distribution, DISTRIBUTIONS, "distribution")
    if distribution == "none":
        return tf.distribute.get_strategy()
    if distribution == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus if gpus else tf.config.list_logical_devices("CPU")
    if distribution == "mirrored" or len(devices) > 1:
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    return tf.distribute.get_strategy()


class _EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_seconds`` to the epoch logs, so that ``CSVLogger`` records it."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


class _HistoryLogger(keras.callbacks.CSVLogger):
    """``CSVLogger`` whose columns are the logged metrics only: Keras's logger adds empty
    ``val_*`` columns (``val_loss``, ``val_epoch_seconds``, ...) filled with ``NA`` when ``fit``
    has no validation data, which is always the case here."""

    def on_epoch_end(self, epoch, logs=None):
        if self.keys is None and logs:
            self.keys = sorted(logs)
        super().on_epoch_end(epoch, logs)


def _same_setting(key, stored, requested):
    """Whether a stored run setting matches a requested one; data folders are compared as
    resolved paths (``../data`` and ``/abs/data`` are the same folder)."""
    if key == "data_dir" and stored is not None and requested is not None:
        return Path(stored).resolve() == Path(requested).resolve()
    return stored == requested


def train(model_name, depth=10, variant="equivariant", dataset="cifar10", epochs=200,
          batch_size=128, learning_rate=1e-3, lr_schedule="constant", lr_step_epochs=50,
          lr_decay_rate=0.1, augment=False, data_dir=None, output_dir="runs", run_name=None,
          seed=0, max_train_examples=None, max_test_examples=None, save_freq="epoch",
          distribution="auto", verbose="auto", callbacks=None):
    """Trains a model by name with the paper's protocol and returns the run summary.

    Defaults follow the official code: Adam(1e-3), batch 128, cross-entropy on logits, no data
    augmentation, no validation split, last-epoch model kept. The run is resumable (see the module
    docstring for the directory layout) and runs under ``select_strategy(distribution)``.

    Args:
        model_name: one of ``MODEL_NAMES``.
        depth: number of convolutional layers, 4 or 10.
        variant: ``"equivariant"`` (layers exactly as equivariant as the group allows) or
            ``"paper"`` (the official code's architecture, quirks included).
        dataset: dataset name understood by ``keras_equivariant.data.load_dataset``.
        epochs: number of epochs.
        batch_size: global batch size (split across replicas).
        learning_rate: Adam learning rate.
        lr_schedule: ``"constant"``, ``"step"`` (``lr_decay_rate`` every ``lr_step_epochs``) or
            ``"cosine"``.
        augment: random crops and flips during training (off in the paper).
        data_dir: where the data lives (``None``: the data module's default).
        output_dir: parent of the run directory.
        run_name: run directory name; default ``default_run_name(...)``.
        seed: seeds Python, NumPy, TF (``keras.utils.set_random_seed``) and data shuffling.
        max_train_examples, max_test_examples: use only a deterministic, class-balanced
            subset of this many examples of each split (`data.stratified_indices`).
        save_freq: ``"epoch"`` or a number of batches between mid-epoch backups.
        distribution: see ``select_strategy``. With ``"multi_worker"`` the library's own
            synchronous training step runs instead of ``model.fit`` (which does not run under
            ``MultiWorkerMirroredStrategy`` in Keras 3); only the chief writes ``run_dir``, which
            must be on a file system every worker sees.
        verbose: ``model.fit`` verbosity (``"auto"``: progress bar).
        callbacks: extra Keras callbacks, run after the library's own (not with
            ``"multi_worker"``).

    Returns:
        The dict stored in ``summary.json``: ``run_dir``, ``model_path``, ``test_accuracy``,
        ``test_loss``, ``num_parameters``, ``train_seconds``, ``epochs_completed``, ``completed``.
    """
    validation.require_backend("keras_equivariant.training.train")
    from keras_equivariant import data

    validation.check_choice(model_name, MODEL_NAMES, "model_name")
    validation.check_choice(depth, DEPTHS, "depth")
    validation.check_choice(variant, VARIANTS, "variant")
    validation.check_positive_int(epochs, "epochs")
    validation.check_positive_int(batch_size, "batch_size")
    validation.check_positive_int(lr_step_epochs, "lr_step_epochs")
    if not learning_rate > 0:
        raise ValueError(f"`learning_rate` must be > 0; received {learning_rate}.")
    validation.check_choice(lr_schedule, LR_SCHEDULES, "lr_schedule")
    if save_freq != "epoch":
        validation.check_positive_int(save_freq, "save_freq")
    validation.check_choice(distribution, DISTRIBUTIONS, "distribution")
    if distribution == "multi_worker" and callbacks:
        raise ValueError(
            "`callbacks` are not supported with distribution='multi_worker' (its training loop is "
            f"not `model.fit`); received {len(callbacks)} callback(s)."
        )
    for name, value in (("max_train_examples", max_train_examples),
                        ("max_test_examples", max_test_examples)):
        if value is not None:
            validation.check_positive_int(value, name)

    config = {
        "model_name": model_name, "depth": depth, "variant": variant, "dataset": dataset,
        "epochs": epochs, "batch_size": batch_size, "learning_rate": float(learning_rate),
        "lr_schedule": lr_schedule, "lr_step_epochs": lr_step_epochs,
        "lr_decay_rate": float(lr_decay_rate), "augment": bool(augment), "seed": seed,
        "max_train_examples": max_train_examples, "max_test_examples": max_test_examples,
        "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
    }
    run_dir = Path(output_dir) / (run_name or default_run_name(model_name, depth, variant,
                                                                dataset, seed))
    previous = io.read_json(run_dir / "config.json")
    if previous is not None:
        changed = [f"{key}: stored {previous.get(key)!r}, requested {config[key]!r}"
                   for key in _CONFIG_KEYS if not _same_setting(key, previous.get(key),
                                                                config[key])]
        if changed:
            raise ValueError(
                f"Run directory {run_dir} holds a run with other settings ({'; '.join(changed)}). "
                "Resume it with the stored settings, or pick another `run_name`/`output_dir` "
                "(CLI: --run-name/--output-dir)."
            )
    summary = io.read_json(run_dir / "summary.json")
    if summary is not None and summary.get("completed") and summary["epochs_completed"] >= epochs:
        print(f"{run_dir}: already trained ({summary['epochs_completed']} epochs); skipping.")
        return summary
    checkpoint_path = run_dir / "checkpoints" / "last.keras"
    backup_dir = run_dir / "backup"
    # checkpoints/last.keras holds the model after the last epoch that history.csv records. A run
    # continues from it when it is asked for more epochs, and when it was killed after `fit`
    # returned (during the final save or test evaluation): then only the evaluation is left.
    initial_epoch = len(read_history(run_dir)) if checkpoint_path.exists() else 0

    # MultiWorkerMirroredStrategy must exist before other TensorFlow work; the data is loaded
    # next so that a missing data directory fails before any model is built.
    strategy = select_strategy(distribution)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    is_chief = is_chief_worker(strategy)
    train_data = data.load_dataset(dataset, "train", data_dir=data_dir, batch_size=batch_size,
                                   shuffle=True, augment=augment, seed=seed,
                                   max_examples=max_train_examples)
    test_data = data.load_dataset(dataset, "test", data_dir=data_dir, batch_size=batch_size,
                                  shuffle=False, max_examples=max_test_examples)
    info = data.dataset_info(dataset, "train")
    if is_chief:  # only the chief writes the run folder
        io.atomic_write_json(run_dir / "config.json", config)

    keras.utils.set_random_seed(seed)
    with strategy.scope():
        if initial_epoch:
            model = keras.saving.load_model(checkpoint_path)
        else:
            model = build_model(model_name, depth=depth, variant=variant,
                                num_classes=info.num_classes, input_shape=info.image_shape)
            model.compile(
                optimizer=keras.optimizers.Adam(learning_rate),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"],
            )

    print(f"Training {model_name} (depth {depth}, {variant}) for {epochs} epochs on {dataset} "
          f"with {strategy.num_replicas_in_sync} replica(s); run directory {run_dir}")
    print(_resume_message(backup_dir, checkpoint_path, initial_epoch, epochs))
    schedule = functools.partial(learning_rate_at, learning_rate=learning_rate,
                                 lr_schedule=lr_schedule, epochs=epochs,
                                 lr_step_epochs=lr_step_epochs, lr_decay_rate=lr_decay_rate)
    if multi_worker:
        try:
            _fit_multi_worker(model, strategy, train_data, run_dir, epochs, initial_epoch,
                              schedule, save_freq, is_chief, verbose)
        except tf.errors.OpError as error:  # a worker died, or the cluster cannot be reached
            # One line, without TensorFlow's "{{function_node ...}}" prefix.
            lines = re.sub(r"\{\{[^}]*\}\}\s*", "", error.message or "").strip().splitlines()
            raise RuntimeError(
                f"Multi-worker training stopped: {type(error).__name__}: "
                f"{lines[0] if lines else 'no message'} Start the same command again on every "
                f"worker to resume from {backup_dir}/."
            ) from None
        test_loss, test_accuracy = _evaluate_locally(model, test_data)
    else:
        _fit(model, train_data, run_dir, epochs, initial_epoch, schedule, save_freq, verbose,
             callbacks)
        test_loss, test_accuracy = None, None
    model_path = run_dir / "model.keras"
    if is_chief:
        model.save(model_path)
    if test_loss is None:
        test_loss, test_accuracy = model.evaluate(test_data, verbose=verbose)
    # A non-chief worker may read history.csv while the chief appends to it.
    history = read_history(run_dir) if is_chief else []
    summary = {
        "run_dir": str(run_dir),
        "model_path": str(model_path),
        "model_name": model_name,
        "depth": depth,
        "variant": variant,
        "dataset": dataset,
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "num_parameters": int(model.count_params()),
        "train_seconds": float(sum(row.get("epoch_seconds", 0.0) for row in history)),
        "epochs_completed": len(history) if is_chief else epochs,
        "num_replicas": int(strategy.num_replicas_in_sync),
        "completed": True,
    }
    if is_chief:
        io.atomic_write_json(run_dir / "summary.json", summary)
    return summary


def _fit(model, train_data, run_dir, epochs, initial_epoch, schedule, save_freq, verbose,
         callbacks):
    """Single-machine (and MirroredStrategy) training with ``model.fit`` and Keras callbacks."""
    backup_dir = run_dir / "backup"
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    library_callbacks = [
        keras.callbacks.BackupAndRestore(str(backup_dir), save_freq=save_freq),
        keras.callbacks.LearningRateScheduler(schedule),
        _EpochTimer(),
        keras.callbacks.ModelCheckpoint(str(run_dir / "checkpoints" / "last.keras")),
        _HistoryLogger(str(run_dir / "history.csv"), append=True),
    ]
    if importlib.util.find_spec("tensorboard") is not None:
        library_callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs"),
                                                             write_graph=False))
    else:
        print("TensorBoard logs are off: the `tensorboard` package is not installed "
              "(`pip install tensorboard` turns them on); history.csv has the same numbers.")
    if initial_epoch < epochs or backup_dir.exists():
        model.fit(train_data, epochs=epochs, initial_epoch=initial_epoch, verbose=verbose,
                  shuffle=False, callbacks=library_callbacks + list(callbacks or []))


def is_chief_worker(strategy):
    """Whether this process writes the run folder: always, except on the non-chief workers of
    a ``MultiWorkerMirroredStrategy`` (the chief is task ``chief``, else ``worker`` 0)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return (resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict())


def _fit_multi_worker(model, strategy, train_data, run_dir, epochs, initial_epoch, schedule,
                      save_freq, is_chief, verbose):
    """Synchronous data-parallel training under ``MultiWorkerMirroredStrategy``.

    Keras 3's ``model.fit`` does not run under this strategy (keras-team/keras#20585,
    tensorflow/tensorflow#72388), so this is a custom step: ``strategy.run`` computes each
    replica's gradients of its share of the global batch's mean loss, and the Keras optimizer
    sums them across all replicas of all workers before updating (every worker keeps identical
    weights). It keeps ``fit``'s files and resume semantics: ``backup/`` in
    ``BackupAndRestore``'s format (weights + optimizer state, ``training_metadata.json``; every
    epoch or every ``save_freq`` batches; deleted at the end), ``checkpoints/last.keras`` and a
    ``history.csv`` row per epoch. Only the chief writes; every worker restores the chief's
    ``backup/``, so ``output_dir`` must be a folder that all workers see (a shared file system).
    """
    backup_dir = run_dir / "backup"
    weights_path = backup_dir / "latest.weights.h5"
    metadata_path = backup_dir / "training_metadata.json"
    optimizer = model.optimizer
    with strategy.scope():
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
    if weights_path.exists():
        model.load_weights(weights_path)
        initial_epoch = io.read_json(metadata_path, default={"epoch": initial_epoch})["epoch"]
    _check_same_epoch_on_every_worker(strategy, initial_epoch, backup_dir)
    if initial_epoch >= epochs and not backup_dir.exists():
        return

    def replica_step(images, labels):
        context = tf.distribute.get_replica_context()
        # The mean over the GLOBAL batch: the optimizer sums the replicas' gradients.
        global_count = context.all_reduce("sum", tf.cast(tf.shape(labels)[0], tf.float32))
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            per_example = keras.losses.sparse_categorical_crossentropy(labels, logits,
                                                                       from_logits=True)
            loss = tf.reduce_sum(per_example) / global_count
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        correct = tf.equal(tf.argmax(logits, axis=-1, output_type=labels.dtype), labels)
        return (tf.reduce_sum(per_example), tf.reduce_sum(tf.cast(correct, tf.float32)),
                tf.cast(tf.shape(labels)[0], tf.float32))

    @tf.function
    def train_step(images, labels):
        totals = strategy.run(replica_step, args=(images, labels))
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, total, axis=None)
                for total in totals]

    # BatchNormalization's moving statistics are updated by each worker from its own share of
    # the batch: averaging them every epoch keeps them identical everywhere (their updates are
    # linear, so this equals averaging after every step).
    statistics = [variable for variable in model.non_trainable_variables
                  if variable.dtype.startswith("float")]

    def replica_statistics():
        return tf.distribute.get_replica_context().all_reduce(
            "mean", [tf.identity(variable.value) for variable in statistics])

    def synchronize_statistics():
        if statistics:
            averages = strategy.run(tf.function(replica_statistics))
            for variable, average in zip(statistics, averages):
                variable.assign(strategy.experimental_local_results(average)[0])

    def save_backup(epoch, batch):
        if not is_chief:
            return
        backup_dir.mkdir(parents=True, exist_ok=True)
        model.save_weights(weights_path, overwrite=True)
        io.atomic_write_json(metadata_path, {"epoch": epoch, "batch": batch})

    distributed_data = strategy.experimental_distribute_dataset(train_data)
    if is_chief:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    for epoch in range(initial_epoch, epochs):
        optimizer.learning_rate.assign(schedule(epoch))
        start = time.perf_counter()
        loss_sum = correct_sum = count = 0.0
        for batch, (images, labels) in enumerate(distributed_data):
            batch_loss, batch_correct, batch_count = train_step(images, labels)
            loss_sum += float(batch_loss)
            correct_sum += float(batch_correct)
            count += float(batch_count)
            if save_freq != "epoch" and (batch + 1) % save_freq == 0:
                save_backup(epoch, batch)
        synchronize_statistics()
        row = {"epoch": epoch, "accuracy": correct_sum / count,
               "epoch_seconds": time.perf_counter() - start,
               "learning_rate": float(schedule(epoch)), "loss": loss_sum / count}
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs}: loss {row['loss']:.4f}, accuracy "
                  f"{row['accuracy']:.4f} ({row['epoch_seconds']:.1f} s)")
        if is_chief:
            # The same order as fit's callbacks: backup, checkpoint, then the history row.
            save_backup(epoch + 1, 0)
            model.save(run_dir / "checkpoints" / "last.keras")
            _append_history_row(run_dir / "history.csv", row)
    if is_chief and backup_dir.exists():
        shutil.rmtree(backup_dir)


def _check_same_epoch_on_every_worker(strategy, epoch, backup_dir):
    """Refuses to train when the workers would resume from different epochs (``backup_dir`` is
    not on a file system that every worker sees)."""
    def replica_epochs():
        value = tf.constant(float(epoch))
        # Only sums are all-reduced: the epochs agree when their variance is 0.
        return tf.distribute.get_replica_context().all_reduce(
            "sum", tf.stack([value, value * value, 1.0]))

    total, squares, count = strategy.experimental_local_results(
        strategy.run(tf.function(replica_epochs)))[0].numpy()
    if count * squares != total * total:
        raise RuntimeError(
            f"The workers would resume from different epochs (this one from epoch {epoch + 1}): "
            f"{backup_dir} must be on a file system that every worker sees (--output-dir)."
        )


def _append_history_row(path, row):
    """Appends one epoch to ``history.csv`` in ``_HistoryLogger``'s format (sorted columns)."""
    keys = sorted(key for key in row if key != "epoch")
    write_header = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        if write_header:
            writer.writerow(["epoch"] + keys)
        writer.writerow([row["epoch"]] + [row[key] for key in keys])


def _evaluate_locally(model, test_data):
    """Test loss and accuracy computed by this process alone (identical on every worker)."""
    loss_sum = correct_sum = count = 0.0
    for images, labels in test_data:
        logits = model(images, training=False)
        loss_sum += float(tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True)))
        correct_sum += float(tf.reduce_sum(tf.cast(tf.equal(
            tf.argmax(logits, axis=-1, output_type=labels.dtype), labels), tf.float32)))
        count += float(tf.shape(labels)[0])
    return loss_sum / count, correct_sum / count


def _resume_message(backup_dir, checkpoint_path, initial_epoch, epochs):
    """Says what a (re)started run reuses: a ``backup/``, the last checkpoint, or nothing."""
    backup = io.read_json(backup_dir / "training_metadata.json")
    if backup is not None:
        # BackupAndRestore records the zero-based epoch that `fit` restarts at.
        return f"Resuming at epoch {backup['epoch'] + 1} from {backup_dir}/."
    if initial_epoch >= epochs:
        return (f"All {initial_epoch} epochs are trained ({checkpoint_path}); finishing the "
                "run's test evaluation and summary.")
    if initial_epoch:
        return f"Resuming at epoch {initial_epoch + 1} from {checkpoint_path}."
    return "Starting at epoch 1."


def read_history(run_dir):
    """Returns ``run_dir/history.csv`` as a list of dicts, one per epoch (later rows win)."""
    path = Path(run_dir) / "history.csv"
    if not path.exists():
        return []
    rows = {}
    with open(path, newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            # CSVLogger pads missing validation columns with "NA".
            values = {key: float(value) for key, value in row.items()
                      if key is not None and value not in (None, "", "NA")}
            rows[int(values["epoch"])] = values
    return [rows[epoch] for epoch in sorted(rows)]


__all__ = [
    "MODEL_NAMES", "VARIANTS", "LR_SCHEDULES", "DISTRIBUTIONS", "PAPER_LR_SCHEDULES",
    "build_model", "default_run_name", "learning_rate_at", "select_strategy", "is_chief_worker",
    "train", "read_history",
]
