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
    entries = {name: run["seeds"]["0"] for name, run in results["models"].items()}
    for entry in entries.values():
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
    assert entries["CascadedGCNN"]["spatial"]["consistency_90"] == 1.0
    # The end-to-end invariant model is invariant after training too; the hybrid is not.
    invariant_error = entries["CascadedGCNN"]["equivariance"]["max_relative_error"]
    assert invariant_error < 1e-4
    assert entries["BaselineCNN"]["equivariance"]["max_relative_error"] > 1e-3
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
    model_time = os.path.getmtime(entries["BaselineCNN"]["training"]["model_path"])

    # A rerun finds every stage done: nothing is retrained and the numbers are unchanged.
    capsys.readouterr()
    assert main(command) == 0
    assert "already trained" in capsys.readouterr().out
    rerun = json.loads((tmp_path / "results.json").read_text())
    rerun_entries = {name: run["seeds"]["0"] for name, run in rerun["models"].items()}
    assert os.path.getmtime(rerun_entries["BaselineCNN"]["training"]["model_path"]) == model_time
    for name, entry in entries.items():
        assert rerun_entries[name]["attacks"] == entry["attacks"]
        assert rerun_entries[name]["robust_examples"] == entry["robust_examples"]
        assert rerun_entries[name]["clever"] == entry["clever"]
        assert rerun_entries[name]["spatial"] == entry["spatial"]


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


def test_a_killed_multi_seed_study_resumes_and_reports_statistics(tiny_data_dir, tmp_path,
                                                                  monkeypatch, capsys):
    import dataclasses

    import pytest

    from keras_equivariant import evaluation

    preset = dataclasses.replace(
        reproduce.PRESETS["study"], models=("BaselineCNN",), paper_variants=("BaselineCNN",),
        seeds=(0, 1), epochs=1, max_train_examples=32, max_test_examples=12,
        eps=(0.0, 2 / 255), autoattack_eps=(), paper_protocol_eps=(4 / 255,),
        clever_images=1, clever_num_batches=2, clever_num_samples_per_batch=4,
        diagnostic_seeds=1, evaluation_batch_size=12, sanity_images=0, rotation_curve_step=90)
    calls = []
    original = evaluation.equivariance_errors

    def killed_at_the_third_run(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(evaluation, "equivariance_errors", killed_at_the_third_run)
    with pytest.raises(KeyboardInterrupt):
        reproduce.reproduce(preset, tmp_path, data_dir=str(tiny_data_dir), verbose=0)
    partial = json.loads((tmp_path / "results.json").read_text())
    assert set(partial["models"]["BaselineCNN"]["seeds"]) == {"0", "1"}  # seed 1 was training
    assert "equivariance" not in partial["models"]["BaselineCNN"]["seeds"]["1"]
    first_model = partial["models"]["BaselineCNN"]["seeds"]["0"]["training"]["model_path"]
    first_time = os.path.getmtime(first_model)

    monkeypatch.setattr(evaluation, "equivariance_errors", original)
    capsys.readouterr()
    results = reproduce.reproduce(preset, tmp_path, data_dir=str(tiny_data_dir), verbose=0)
    output = capsys.readouterr().out
    assert output.count("already trained") >= 3  # both seed-0 models and the killed seed 1
    assert os.path.getmtime(first_model) == first_time
    assert "[4/4] BaselineCNN (paper), seed 1: done" in output and "min left" in output
    for label in ("BaselineCNN", "BaselineCNN (paper)"):
        for entry in results["models"][label]["seeds"].values():
            assert set(entry["robust_examples"]) == {"pgd", "paper_fgsm", "paper_pgd"}
            assert len(entry["robust_examples"]["pgd"]["0"]) == 12
        # the diagnostics (CLEVER here) run on the first seed only
        assert "clever" in results["models"][label]["seeds"]["0"]
        assert "clever" not in results["models"][label]["seeds"]["1"]
    statistics = results["statistics"]
    assert statistics["estimates"]["BaselineCNN"]["clean"]["num_seeds"] == 2
    difference = statistics["differences"]["BaselineCNN (paper)"]["clean"]
    assert difference["num_seeds"] == 2 and difference["num_images"] == 12
    report = (tmp_path / "report.md").read_text()
    assert "## Headline: accuracy (%) on the same test images, mean [95 % CI] over 2 seeds" \
        in report
    assert "## The paper's protocol vs ours" in report and "| BaselineCNN (paper) | 2/255 |" \
        in report
    for figure in ("robust_accuracy_pgd.png", "robust_accuracy_paper_pgd.png",
                   "differences.png", "rotation_accuracy.png"):
        assert (tmp_path / figure).stat().st_size > 0
