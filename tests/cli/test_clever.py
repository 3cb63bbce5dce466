"""Tests for `keras-equivariant clever`."""

import json
import os

from keras_equivariant.cli.main import main


def test_clever_scores_images_and_resumes(trained_model_path, tiny_data_dir, tmp_path, capsys):
    output = tmp_path / "clever.json"
    command = ["clever", str(trained_model_path), "--num-images", "2", "--num-batches", "4",
               "--num-samples-per-batch", "4", "--data-dir", str(tiny_data_dir),
               "--output", str(output)]
    assert main(command) == 0
    assert "CLEVER-L2 median" in capsys.readouterr().out
    payload = json.loads(output.read_text())
    assert payload["config"]["num_batches"] == 4 and payload["config"]["norm"] == "2"
    scores = [result["score"] for result in payload["results"]]
    assert len(scores) == 2 and all(0 < score <= payload["config"]["radius"] for score in scores)

    # Finished images are loaded, not recomputed: the file is not rewritten.
    written = os.path.getmtime(output)
    assert main(command) == 0
    assert os.path.getmtime(output) == written
    # Other settings cannot resume from this file.
    assert main(command[:-2] + ["--norm", "inf", "--output", str(output)]) == 2
