"""Tests for `keras-equivariant reproduce` on tiny data: report, results, plots, resume."""

import json
import os

from keras_equivariant import reproduce
from keras_equivariant.cli.main import main


def test_reproduce_writes_report_and_resumes(tiny_data_dir, tmp_path, capsys):
    command = ["reproduce", "--data-dir", str(tiny_data_dir), "--output-dir", str(tmp_path),
               "--models", "BaselineCNN", "CascadedGCNN", "--epochs", "1",
               "--max-train-examples", "32", "--max-test-examples", "10",
               "--clever-images", "1", "--clever-num-batches", "4",
               "--clever-num-samples-per-batch", "4", "--verbose", "0"]
    assert main(command) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["models"]) == ["BaselineCNN", "CascadedGCNN"]
    for entry in results["models"].values():
        assert entry["training"]["epochs_completed"] == 1
        assert entry["training"]["num_parameters"] > 0
        assert set(entry["attacks"]) == {"fgsm", "pgd"}
        assert len(entry["attacks"]["pgd"]) == 5
        assert entry["clever"]["num_images"] == 1 and entry["clever"]["median"] > 0
        assert set(entry["equivariance"]["relative_errors"]) == {"rot90", "rot180", "rot270"}
        spatial = entry["spatial"]
        assert spatial["num_transformations"] == 10  # the quick preset's worst of 10 draws
        assert 0 <= spatial["worst_case_accuracy"] <= entry["training"]["test_accuracy"] + 1e-9
        assert list(spatial["rotation_curve"])[:3] == ["0", "5", "10"]
    # Exactly C4-invariant: every prediction survives 90/180/270-degree rotations.
    assert results["models"]["CascadedGCNN"]["spatial"]["consistency_90"] == 1.0
    # The end-to-end invariant model is invariant after training too; the hybrid is not.
    invariant_error = results["models"]["CascadedGCNN"]["equivariance"]["max_relative_error"]
    assert invariant_error < 1e-4
    assert results["models"]["BaselineCNN"]["equivariance"]["max_relative_error"] > 1e-3
    assert results["load_average"]["cpu_cores"] >= 1
    report = (tmp_path / "report.md").read_text()
    assert "| BaselineCNN |" in report and "## PGD accuracy" in report
    assert ("Overridden on the command line: --models, --epochs, --max-train-examples, "
            "--max-test-examples, --clever-images, --clever-num-batches, "
            "--clever-num-samples-per-batch;") in report
    assert "| claims C4 invariance | C4 equivariance error |" in report
    cascaded_row = next(line for line in report.splitlines() if line.startswith("| CascadedGCNN |"))
    assert f"| yes | {reproduce._format_error(invariant_error)} |" in cascaded_row
    assert cascaded_row.endswith("| 100.0 |")  # 90° consistency
    assert "e-0" in cascaded_row
    baseline_row = next(line for line in report.splitlines() if line.startswith("| BaselineCNN |"))
    assert "| no |" in baseline_row
    for attack in ("fgsm", "pgd"):
        assert (tmp_path / f"robust_accuracy_{attack}.png").stat().st_size > 0
    assert (tmp_path / "rotation_accuracy.png").stat().st_size > 0
    assert "worst rot./transl. acc. (%) | 90° consistency (%) |" in report
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
        assert rerun["models"][name]["spatial"] == entry["spatial"]


def test_quick_preset_defaults_to_the_shipped_cifar10_subset(monkeypatch, tmp_path):
    from pathlib import Path

    from keras_equivariant import data

    used = {}
    monkeypatch.setattr(reproduce, "reproduce",
                        lambda preset, output_dir, **kwargs: used.update(kwargs, preset=preset))
    assert main(["reproduce", "--output-dir", str(tmp_path)]) == 0
    repository_data = Path(__file__).resolve().parents[2] / "data"
    assert used["data_dir"] == data.sample_data_dir() == repository_data
    assert main(["reproduce", "--data-dir", str(tmp_path), "--output-dir", str(tmp_path)]) == 0
    assert used["data_dir"] == str(tmp_path)
    # Presets that need full CIFAR-10 keep tensorflow-datasets (or --data-dir).
    assert main(["reproduce", "--preset", "paper", "--output-dir", str(tmp_path)]) == 0
    assert used["data_dir"] is None


def test_paper_preset_says_it_needs_full_cifar10(capsys, tmp_path):
    assert main(["reproduce", "--preset", "paper", "--data-dir", str(tmp_path / "nowhere"),
                 "--output-dir", str(tmp_path / "out")]) == 1
    message = capsys.readouterr().err
    assert "The 'paper' preset needs full cifar10" in message and "nowhere" in message
    assert not (tmp_path / "out").exists()
