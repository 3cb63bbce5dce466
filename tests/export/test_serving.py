"""Tests for keras_equivariant.export.serving: the TF Serving SavedModel."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from keras_equivariant import ParallelGCNN
from keras_equivariant.export.serving import export_for_serving, export_saved_model, next_version


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A depth-4 ParallelGCNN (equivariant layers inside) exported as saved_models/pgcnn/1."""
    import keras

    keras.utils.set_random_seed(0)
    model = ParallelGCNN(depth=4)
    root = tmp_path_factory.mktemp("saved_models")
    path = export_for_serving(model, "pgcnn", output_dir=root)
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    expected = keras.ops.convert_to_numpy(model(images.astype("float32") / 255.0,
                                                training=False))
    return path, images, expected, model


def test_layout_and_versions(exported, tmp_path):
    path, _, _, _ = exported
    assert path.name == "1" and path.parent.name == "pgcnn"
    assert (path / "saved_model.pb").is_file() and (path / "variables").is_dir()
    assert next_version(path.parent) == 2
    assert next_version(tmp_path / "absent") == 1
    with pytest.raises(ValueError, match="immutable"):
        export_saved_model(ParallelGCNN(depth=4), path)
    with pytest.raises(ValueError, match="name"):
        export_for_serving(ParallelGCNN(depth=4), "bad/name", output_dir=tmp_path)
    with pytest.raises(ValueError, match="version"):
        export_for_serving(ParallelGCNN(depth=4), "ok", output_dir=tmp_path, version=0)


def test_fresh_process_without_the_library_gets_identical_outputs(exported, tmp_path):
    path, images, expected, _ = exported
    np.save(tmp_path / "images.npy", images)
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import tensorflow as tf
        served = tf.saved_model.load({str(path)!r})
        outputs = served.signatures["serving_default"](
            images=tf.constant(np.load({str(tmp_path / "images.npy")!r})))
        np.save({str(tmp_path / "logits.npy")!r}, outputs["logits"].numpy())
        np.save({str(tmp_path / "probabilities.npy")!r}, outputs["probabilities"].numpy())
        assert not any(name.startswith("keras_equivariant") for name in sys.modules)
        print("OK")
    """)
    # Run outside the repository so that `keras_equivariant` cannot be imported from the cwd.
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               timeout=300, cwd=tmp_path,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert completed.returncode == 0, completed.stderr[-3000:]
    logits = np.load(tmp_path / "logits.npy")
    probabilities = np.load(tmp_path / "probabilities.npy")
    np.testing.assert_allclose(logits, expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), expected.argmax(axis=1))


def test_signature_seen_by_saved_model_cli(exported):
    path, _, _, _ = exported
    binary = shutil.which("saved_model_cli") or str(Path(sys.executable).parent / "saved_model_cli")
    if not Path(binary).exists():
        pytest.skip("saved_model_cli is not installed")
    completed = subprocess.run([binary, "show", "--dir", str(path), "--all"], capture_output=True,
                               text=True, timeout=300,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert completed.returncode == 0, completed.stderr[-3000:]
    text = completed.stdout
    signature = text[text.index("signature_def['serving_default']"):]
    assert "inputs['images']" in signature and "dtype: DT_UINT8" in signature
    assert "shape: (-1, 32, 32, 3)" in signature
    assert "outputs['logits']" in signature and "outputs['probabilities']" in signature
    assert "shape: (-1, 10)" in signature


def test_folded_export_serves_the_same_function(exported, tmp_path):
    import tensorflow as tf

    _, images, expected, model = exported
    folded_path = export_for_serving(model, "pgcnn", output_dir=tmp_path, fold=True)
    served = tf.saved_model.load(str(folded_path)).signatures["serving_default"]
    logits = served(images=tf.constant(images))["logits"].numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-4)
