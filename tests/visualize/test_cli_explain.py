"""``keras-equivariant explain`` end to end on tiny data and an untrained depth-4 model."""

import numpy as np
import pytest

from keras_equivariant.cli import explain
from keras_equivariant.cli.main import main
from keras_equivariant.visualize.saliency import METHODS


@pytest.fixture
def setup(tmp_path):
    from keras_equivariant import models

    rng = np.random.default_rng(0)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    np.savez(data_dir / "cifar10_tiny.npz",
             x_train=rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8),
             y_train=(np.arange(10) % 10).astype(np.uint8),
             x_test=rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8),
             y_test=(np.arange(8) % 10).astype(np.uint8))
    run_dir = tmp_path / "runs" / "ParallelGCNN"
    run_dir.mkdir(parents=True)
    models.ParallelGCNN(num_classes=10, depth=4).save(run_dir / "model.keras")
    return data_dir, str(run_dir / "model.keras"), tmp_path / "explain"


def test_explain_writes_every_figure_and_reuses_tolerances(setup, capsys):
    data_dir, path, output_dir = setup
    arguments = ["explain", "--models", path, "--data-dir", str(data_dir), "--num-images", "2",
                 "--tolerance-images", "6", "--pgd-steps", "1", "--output-dir", str(output_dir),
                 "--methods", "saliency", "gradcam++", "--verbose", "0"]
    assert main(arguments) == 0
    for name in ("saliency.png", "tolerance_distribution.png", "tolerance.json",
                 "equivariance_ParallelGCNN.png"):
        assert (output_dir / name).stat().st_size > 1_000, name
    assert len(list(output_dir.glob("tolerance_example_*.png"))) >= 1
    modified = (output_dir / "tolerance.json").stat().st_mtime_ns
    # A rerun with other saliency settings (cheaper: no PGD, one method) keeps the tolerances.
    rerun = arguments[:arguments.index("--methods")] + ["--methods", "saliency", "--eps", "0",
                                                         "--verbose", "0"]
    assert main(rerun) == 0
    assert (output_dir / "tolerance.json").stat().st_mtime_ns == modified  # reused, not rewritten


def test_explain_argument_errors(setup, capsys):
    data_dir, path, output_dir = setup
    assert main(["explain", "--models", path, "--names", "a", "b", "--data-dir",
                 str(data_dir), "--output-dir", str(output_dir)]) == 2
    assert "one name per model" in capsys.readouterr().err
    assert main(["explain", "--models", "missing.keras", "--data-dir", str(data_dir)]) == 1


def test_cli_method_names_match_the_library():
    assert explain.METHODS == METHODS
