"""Tests for keras_equivariant.training: protocol defaults, resume after interruption, strategies."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_equivariant import training
from tiny_cifar import write_tiny_cifar10


@pytest.fixture
def data_dir(tmp_path):
    return write_tiny_cifar10(tmp_path, num_train=48, num_test=16)


def test_learning_rate_schedules():
    assert training.learning_rate_at(120, 1e-3, "constant") == pytest.approx(1e-3)
    # PyTorch StepLR(50, 0.1), as in the official Parallel/Cascaded/Weighted scripts.
    assert training.learning_rate_at(49, 1e-3, "step") == pytest.approx(1e-3)
    assert training.learning_rate_at(50, 1e-3, "step") == pytest.approx(1e-4)
    assert training.learning_rate_at(150, 1e-3, "step") == pytest.approx(1e-6)
    assert training.learning_rate_at(0, 1e-3, "cosine", epochs=10) == pytest.approx(1e-3)
    assert training.learning_rate_at(5, 1e-3, "cosine", epochs=10) == pytest.approx(5e-4)
    with pytest.raises(ValueError, match="lr_schedule"):
        training.learning_rate_at(0, 1e-3, "linear")


@pytest.mark.parametrize("arguments, message", [
    ({"model_name": "ResNet50"}, "model_name"),
    ({"depth": 7}, "depth"),
    ({"variant": "exact"}, "variant"),
    ({"epochs": 0}, "epochs"),
    ({"save_freq": "batch"}, "save_freq"),
    ({"distribution": "tpu"}, "distribution"),
    ({"distribution": "multi_worker", "callbacks": [keras.callbacks.Callback()]}, "callbacks"),
])
def test_bad_arguments_fail_before_any_work(tmp_path, arguments, message):
    values = {"model_name": "BaselineCNN", "depth": 4, "output_dir": tmp_path,
              "data_dir": tmp_path / "missing"}
    values.update(arguments)
    with pytest.raises(ValueError, match=message):
        training.train(**values)
    assert not any(tmp_path.iterdir())


def test_default_strategy_on_one_device():
    strategy = training.select_strategy("auto")
    assert strategy.num_replicas_in_sync == 1
    with pytest.raises(ValueError, match="distribution"):
        training.select_strategy("tpu")


class _Interrupt(keras.callbacks.Callback):
    """Records the weights at the interruption point, then raises in the middle of an epoch."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch = epoch, batch

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current_epoch == self.epoch and batch == self.batch:
            self.weights = [np.array(w) for w in self.model.get_weights()]
            raise KeyboardInterrupt("simulated kill")


class _Recorder(keras.callbacks.Callback):
    """Records the weights after BackupAndRestore restored them, and the first epoch run."""

    def on_train_begin(self, logs=None):
        self.weights = [np.array(w) for w in self.model.get_weights()]
        self.first_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch


def test_interrupted_run_resumes_then_finished_run_is_skipped_or_extended(data_dir, tmp_path,
                                                                        capsys):
    arguments = dict(model_name="BaselineCNN", depth=4, epochs=3, batch_size=16,
                     data_dir=data_dir, output_dir=tmp_path / "runs", run_name="run",
                     save_freq=1, verbose=0)
    interrupt = _Interrupt(epoch=1, batch=1)
    with pytest.raises(KeyboardInterrupt):
        training.train(**arguments, callbacks=[interrupt])
    run_dir = tmp_path / "runs" / "run"
    assert (run_dir / "backup").is_dir()
    assert not (run_dir / "summary.json").exists()
    assert [row["epoch"] for row in training.read_history(run_dir)] == [0]

    recorder = _Recorder()
    capsys.readouterr()
    summary = training.train(**arguments, callbacks=[recorder])
    assert f"Resuming at epoch 2 from {run_dir / 'backup'}/." in capsys.readouterr().out
    # The rerun restarts the interrupted epoch 1 (not epoch 0) from the mid-epoch weights.
    assert recorder.first_epoch == 1
    for restored, saved in zip(recorder.weights, interrupt.weights):
        np.testing.assert_array_equal(restored, saved)
    assert [row["epoch"] for row in training.read_history(run_dir)] == [0, 1, 2]
    header = (run_dir / "history.csv").read_text().splitlines()[0]
    assert header == "epoch,accuracy,epoch_seconds,learning_rate,loss"  # no empty val_* columns
    assert summary["completed"] and summary["epochs_completed"] == 3
    assert not (run_dir / "backup").exists()
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert summary["train_seconds"] > 0

    # A finished run is not retrained; asked for more epochs it continues from its checkpoint;
    # other settings are refused before any work.
    model_time = os.path.getmtime(summary["model_path"])
    assert training.train(**arguments) == summary
    assert os.path.getmtime(summary["model_path"]) == model_time
    extended = training.train(**dict(arguments, epochs=4))
    assert (f"Resuming at epoch 4 from {run_dir / 'checkpoints' / 'last.keras'}."
            in capsys.readouterr().out)
    assert extended["epochs_completed"] == 4
    assert [row["epoch"] for row in training.read_history(run_dir)] == [0, 1, 2, 3]
    # The same data folder spelled differently is the same run.
    assert training.train(**dict(arguments, epochs=4, data_dir=os.path.relpath(data_dir))) \
        == extended
    with pytest.raises(ValueError, match="learning_rate: stored 0.001, requested 0.1"):
        training.train(**dict(arguments, epochs=4, learning_rate=0.1))


class _FinalWeights(keras.callbacks.Callback):
    """Records the weights when `fit` returns, and every epoch that starts."""

    def __init__(self):
        super().__init__()
        self.epochs, self.weights = [], None

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)

    def on_train_end(self, logs=None):
        self.weights = [np.array(w) for w in self.model.get_weights()]


def test_a_kill_after_the_last_epoch_only_finishes_the_evaluation(data_dir, tmp_path,
                                                                   monkeypatch, capsys):
    arguments = dict(model_name="BaselineCNN", depth=4, epochs=2, batch_size=16,
                     data_dir=data_dir, output_dir=tmp_path / "runs", run_name="run", verbose=0)
    run_dir = tmp_path / "runs" / "run"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("simulated kill during the test evaluation")

    trained = _FinalWeights()
    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "evaluate", killed)
        with pytest.raises(KeyboardInterrupt):
            training.train(**arguments, callbacks=[trained])
    assert trained.epochs == [0, 1] and not (run_dir / "summary.json").exists()
    checkpoint_time = os.path.getmtime(run_dir / "checkpoints" / "last.keras")
    capsys.readouterr()

    rerun = _FinalWeights()
    summary = training.train(**arguments, callbacks=[rerun])
    assert rerun.epochs == []  # nothing retrained
    assert "All 2 epochs are trained" in capsys.readouterr().out
    assert summary["completed"] and summary["epochs_completed"] == 2
    rows = (run_dir / "history.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["0", "1"]  # no duplicate rows
    assert os.path.getmtime(run_dir / "checkpoints" / "last.keras") == checkpoint_time
    saved = keras.saving.load_model(summary["model_path"]).get_weights()
    for final, trained_weight in zip(saved, trained.weights):
        np.testing.assert_array_equal(final, trained_weight)


def test_mirrored_strategy_on_two_logical_cpus(data_dir, tmp_path):
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from keras_equivariant import training
        summary = training.train("BaselineCNN", depth=4, epochs=1, batch_size=16,
                                 data_dir={str(data_dir)!r}, output_dir={str(tmp_path)!r},
                                 verbose=0)
        print("REPLICAS", summary["num_replicas"], "ACCURACY", summary["test_accuracy"])
    """)
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               timeout=300, env=environment)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "REPLICAS 2" in completed.stdout
