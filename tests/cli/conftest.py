"""Fixtures for the CLI tests: a tiny CIFAR-10-format data folder and a model trained on it."""

import pytest
from tiny_cifar import write_tiny_cifar10


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
