"""Multi-worker training (``distribution="multi_worker"``): two worker processes on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from contextlib import ExitStack

import numpy as np
import pytest

from keras_equivariant import training
from tiny_cifar import write_tiny_cifar10

# One worker: the `keras-equivariant` CLI, with two test hooks. It records the trained weights
# when the final evaluation starts, and exits abruptly (a kill) when `stop_at_epoch` starts.
WORKER = textwrap.dedent("""
    import os, sys
    import numpy as np
    from keras_equivariant import training
    from keras_equivariant.cli.main import main
    index, out, stop_at_epoch = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    learning_rate_at, evaluate = training.learning_rate_at, training._evaluate_locally

    def stopping(epoch, *args, **kwargs):
        if epoch == stop_at_epoch:
            os._exit(3)
        return learning_rate_at(epoch, *args, **kwargs)

    def recording(model, test_data):
        np.savez(os.path.join(out, f"weights_{index}.npz"), *model.get_weights())
        return evaluate(model, test_data)

    training.learning_rate_at, training._evaluate_locally = stopping, recording
    sys.exit(main(sys.argv[4:]))
""")
TRAIN = dict(model_name="BaselineCNN", depth=4, epochs=2, batch_size=16, seed=0, verbose=0)


def _free_ports(count):
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _run_workers(tmp_path, data_dir, stop_at_epochs=(-1, -1), timeout=240):
    """Starts two workers of one cluster; returns their (returncode, stdout, stderr)."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    command = ["train", TRAIN["model_name"], "--depth", "4", "--epochs", str(TRAIN["epochs"]),
               "--batch-size", str(TRAIN["batch_size"]), "--data-dir", str(data_dir),
               "--output-dir", str(tmp_path / "runs"), "--run-name", "mw",
               "--distribution", "multi_worker", "--verbose", "0"]
    workers = []
    for index, stop_at_epoch in enumerate(stop_at_epochs):
        config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        environment = dict(os.environ, TF_CONFIG=json.dumps(config), TF_CPP_MIN_LOG_LEVEL="2")
        workers.append(subprocess.Popen(
            [sys.executable, str(script), str(index), str(tmp_path), str(stop_at_epoch)]
            + command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=environment))
    results = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=timeout)
            results.append((worker.returncode, stdout, stderr))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return results


def _weights(tmp_path, index):
    with np.load(tmp_path / f"weights_{index}.npz") as arrays:
        return [arrays[name] for name in arrays.files]


@pytest.fixture
def data_dir(tmp_path):
    return write_tiny_cifar10(tmp_path / "data", num_train=48, num_test=16)


@pytest.mark.slow  # about a minute on 2 quiet cores (two TensorFlow processes)
def test_two_workers_train_identical_weights_and_only_the_chief_writes(data_dir, tmp_path):
    results = _run_workers(tmp_path, data_dir)
    for returncode, stdout, stderr in results:
        assert returncode == 0, stderr[-3000:]
        assert "with 2 replica(s)" in stdout
    run_dir = tmp_path / "runs" / "mw"
    assert sorted(path.name for path in run_dir.iterdir()) == [
        "checkpoints", "config.json", "history.csv", "model.keras", "summary.json"]
    assert (run_dir / "checkpoints" / "last.keras").is_file()  # backup/ deleted at the end
    history = training.read_history(run_dir)
    assert [row["epoch"] for row in history] == [0, 1]
    header = (run_dir / "history.csv").read_text().splitlines()[0]
    assert header == "epoch,accuracy,epoch_seconds,learning_rate,loss"  # as single-machine runs
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["completed"] and summary["num_replicas"] == 2
    # Synchronous training: the same weights (moving statistics included) on both workers, and
    # the chief's saved model holds them.
    chief, other = _weights(tmp_path, 0), _weights(tmp_path, 1)
    for chief_weight, other_weight in zip(chief, other):
        np.testing.assert_array_equal(chief_weight, other_weight)
    import keras

    import keras_equivariant  # noqa: F401  (registers the layers)

    saved = keras.saving.load_model(run_dir / "model.keras").get_weights()
    for saved_weight, chief_weight in zip(saved, chief):
        np.testing.assert_array_equal(saved_weight, chief_weight)

    # One machine, same seed: the same mean-loss gradient steps over the same batches; only
    # BatchNormalization's batch statistics differ (each worker normalizes its half batch).
    single = training.train(**TRAIN, data_dir=data_dir, output_dir=tmp_path / "single",
                            distribution="none")
    single_history = training.read_history(single["run_dir"])
    assert history[0]["loss"] == pytest.approx(single_history[0]["loss"], rel=0.05)
    assert history[1]["loss"] == pytest.approx(single_history[1]["loss"], rel=0.1)


@pytest.mark.slow
def test_killed_workers_resume_from_the_same_backup(data_dir, tmp_path):
    results = _run_workers(tmp_path, data_dir, stop_at_epochs=(1, 1))
    assert [returncode for returncode, _, _ in results] == [3, 3]
    run_dir = tmp_path / "runs" / "mw"
    assert json.loads((run_dir / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    assert [row["epoch"] for row in training.read_history(run_dir)] == [0]

    results = _run_workers(tmp_path, data_dir)
    for returncode, stdout, stderr in results:
        assert returncode == 0, stderr[-3000:]
        assert f"Resuming at epoch 2 from {run_dir / 'backup'}/." in stdout
    assert [row["epoch"] for row in training.read_history(run_dir)] == [0, 1]
    assert not (run_dir / "backup").exists()
    for chief_weight, other_weight in zip(_weights(tmp_path, 0), _weights(tmp_path, 1)):
        np.testing.assert_array_equal(chief_weight, other_weight)


@pytest.mark.slow
def test_a_dead_peer_exits_1_with_one_line(data_dir, tmp_path):
    (returncode, _, stderr), (peer_returncode, _, _) = _run_workers(
        tmp_path, data_dir, stop_at_epochs=(-1, 1))
    assert peer_returncode == 3
    assert returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    message = [line for line in stderr.splitlines() if "keras-equivariant train: error:" in line]
    assert len(message) == 1
    assert "Multi-worker training stopped: UnavailableError" in message[0]
    assert "Start the same command again on every worker" in message[0]
