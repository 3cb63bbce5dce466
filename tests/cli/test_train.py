"""Tests for `keras-equivariant train` (the resume logic is tested in tests/test_training.py)."""

import json

from keras_equivariant.cli.main import main


def test_train_writes_the_documented_layout(trained_model_path, tiny_data_dir, capsys):
    run_dir = trained_model_path.parent
    for name in ("config.json", "history.csv", "summary.json", "model.keras",
                 "checkpoints/last.keras"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "backup").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["completed"] and summary["epochs_completed"] == 1
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["batch_size"], config["learning_rate"], config["augment"]) == (16, 1e-3, False)

    # Rerunning the same command does not retrain.
    assert main(["train", "BaselineCNN", "--depth", "4", "--epochs", "1", "--batch-size", "16",
                 "--data-dir", str(tiny_data_dir), "--output-dir", str(run_dir.parent),
                 "--run-name", run_dir.name, "--verbose", "0"]) == 0
    assert "already trained" in capsys.readouterr().out


def test_changed_settings_are_refused(trained_model_path, tiny_data_dir, capsys):
    run_dir = trained_model_path.parent
    code = main(["train", "BaselineCNN", "--depth", "4", "--epochs", "1", "--batch-size", "32",
                 "--data-dir", str(tiny_data_dir), "--output-dir", str(run_dir.parent),
                 "--run-name", run_dir.name])
    assert code == 2
    assert "batch_size" in capsys.readouterr().err


def test_defaults_are_the_paper_protocol_and_paper_schedule_maps_per_model(monkeypatch):
    from keras_equivariant import training

    calls = []

    def fake_train(model_name, **kwargs):
        calls.append(dict(kwargs, model_name=model_name))
        return {"test_accuracy": 0.5, "epochs_completed": kwargs["epochs"], "train_seconds": 1.0,
                "model_path": "runs/x/model.keras"}

    monkeypatch.setattr(training, "train", fake_train)
    assert main(["train", "BaselineCNN"]) == 0
    assert main(["train", "ParallelGCNN", "--lr-schedule", "paper", "--save-freq", "50"]) == 0
    assert main(["train", "ParallelRotScaleGCNN", "--lr-schedule", "paper"]) == 0
    defaults = calls[0]
    assert (defaults["epochs"], defaults["batch_size"], defaults["learning_rate"]) == (200, 128, 1e-3)
    assert (defaults["depth"], defaults["augment"], defaults["lr_schedule"]) == (10, False, "constant")
    assert defaults["distribution"] == "auto" and defaults["save_freq"] == "epoch"
    assert (calls[1]["lr_schedule"], calls[1]["save_freq"]) == ("step", 50)
    assert calls[2]["lr_schedule"] == "constant"
