"""Fixtures for the CLI tests: a tiny CIFAR-10-format data folder and a model trained on it."""

import numpy as np
import pytest


def write_tiny_cifar10(folder, num_train=48, num_test=24, seed=0):
    """Writes ``folder/cifar10_tiny.npz`` (uint8 images, 10 classes) and returns ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / "cifar10_tiny.npz",
        x_train=rng.integers(0, 256, (num_train, 32, 32, 3), dtype=np.uint8),
        y_train=(np.arange(num_train) % 10).astype(np.uint8),
        x_test=rng.integers(0, 256, (num_test, 32, 32, 3), dtype=np.uint8),
        y_test=(np.arange(num_test) % 10).astype(np.uint8),
    )
    return folder


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    return write_tiny_cifar10(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def trained_model_path(tiny_data_dir, tmp_path_factory):
    """A depth-4 BaselineCNN trained for one epoch on the tiny data via the CLI."""
    from keras_equivariant.cli.main import main

    runs = tmp_path_factory.mktemp("runs")
    exit_code = main(["train", "BaselineCNN", "--depth", "4", "--epochs", "1",
                      "--batch-size", "16", "--data-dir", str(tiny_data_dir),
                      "--output-dir", str(runs), "--run-name", "tiny", "--verbose", "0"])
    assert exit_code == 0
    return runs / "tiny" / "model.keras"
