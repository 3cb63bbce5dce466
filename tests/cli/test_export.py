"""Tests for `keras-equivariant export` (the SavedModel itself: tests/export/test_serving.py)."""

import numpy as np
import tensorflow as tf

from keras_equivariant.cli.main import main


def test_export_writes_numbered_versions(trained_model_path, tmp_path, capsys):
    command = ["export", str(trained_model_path), "--output-dir", str(tmp_path)]
    assert main(command) == 0
    # The served name defaults to the run directory's name.
    first = tmp_path / trained_model_path.parent.name / "1"
    assert (first / "saved_model.pb").is_file()
    assert "docker run" in capsys.readouterr().out
    assert main(command + ["--name", "folded", "--fold", "--version", "7"]) == 0
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    outputs = [tf.saved_model.load(str(path)).signatures["serving_default"](
        images=tf.constant(images))["probabilities"].numpy()
        for path in (first, tmp_path / "folded" / "7")]
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5)
    assert main(command + ["--name", "folded", "--version", "7"]) == 2
    assert "immutable" in capsys.readouterr().err


def test_default_name_is_the_file_name_outside_a_run_directory(trained_model_path, tmp_path):
    import shutil

    model_path = tmp_path / "models" / "my_classifier.keras"
    model_path.parent.mkdir()
    shutil.copy(trained_model_path, model_path)
    assert main(["export", str(model_path), "--output-dir", str(tmp_path / "saved")]) == 0
    assert (tmp_path / "saved" / "my_classifier" / "1" / "saved_model.pb").is_file()
