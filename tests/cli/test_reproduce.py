"""Tests for `keras-equivariant reproduce` on tiny data: report, results, plots, resume."""

import json
import os

from keras_equivariant.cli import reproduce
from keras_equivariant.cli.main import main


def test_presets_are_consistent():
    quick, paper = reproduce.PRESETS["quick"], reproduce.PRESETS["paper"]
    assert quick.depth == 4 and quick.protocol == "default" and quick.pgd_steps == 10
    assert quick.eps == (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255)
    # The paper's grid in normalized units (pixel eps = eps / 2), plus 0 for clean accuracy.
    assert paper.eps[0] == 0.0 and paper.eps[1] == 0.01 and paper.eps[-1] == 0.15
    assert len(paper.eps) == 16 and paper.epochs == 200 and paper.protocol == "paper"
    assert set(paper.models) == set(reproduce._common.MODEL_NAMES)


def test_reproduce_writes_report_and_resumes(tiny_data_dir, tmp_path, capsys):
    command = ["reproduce", "--data-dir", str(tiny_data_dir), "--output-dir", str(tmp_path),
               "--models", "BaselineCNN", "ParallelGCNN", "--epochs", "1",
               "--max-train-examples", "32", "--max-test-examples", "10",
               "--clever-images", "1", "--clever-num-batches", "4",
               "--clever-num-samples-per-batch", "4", "--verbose", "0"]
    assert main(command) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["models"]) == ["BaselineCNN", "ParallelGCNN"]
    for entry in results["models"].values():
        assert entry["training"]["epochs_completed"] == 1
        assert entry["training"]["num_parameters"] > 0
        assert set(entry["attacks"]) == {"fgsm", "pgd"}
        assert len(entry["attacks"]["pgd"]) == 5
        assert entry["clever"]["num_images"] == 1 and entry["clever"]["median"] > 0
        assert set(entry["equivariance"]["relative_errors"]) == {"rot90", "rot180", "rot270"}
    report = (tmp_path / "report.md").read_text()
    assert "| BaselineCNN |" in report and "## PGD accuracy" in report
    for attack in ("fgsm", "pgd"):
        assert (tmp_path / f"robust_accuracy_{attack}.png").stat().st_size > 0
    model_time = os.path.getmtime(results["models"]["BaselineCNN"]["training"]["model_path"])

    # A rerun finds every stage done: nothing is retrained and the numbers are unchanged.
    capsys.readouterr()
    assert main(command) == 0
    assert "already trained" in capsys.readouterr().out
    rerun = json.loads((tmp_path / "results.json").read_text())
    assert os.path.getmtime(rerun["models"]["BaselineCNN"]["training"]["model_path"]) == model_time
    for name, entry in results["models"].items():
        assert rerun["models"][name]["attacks"] == entry["attacks"]
        assert rerun["models"][name]["clever"] == entry["clever"]
