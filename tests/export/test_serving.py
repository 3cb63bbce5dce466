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


@pytest.fixture(scope="module")
def exported_folded(exported, tmp_path_factory):
    _, _, _, model = exported
    return export_for_serving(model, "pgcnn", output_dir=tmp_path_factory.mktemp("folded"),
                              fold=True)


def test_folded_export_serves_the_same_function(exported, exported_folded):
    import tensorflow as tf

    _, images, expected, _ = exported
    served = tf.saved_model.load(str(exported_folded)).signatures["serving_default"]
    logits = served(images=tf.constant(images))["logits"].numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("folded", [False, True], ids=["unfolded", "folded"])
def test_every_export_refuses_a_wrong_image_shape_or_dtype(exported, exported_folded, folded):
    import tensorflow as tf

    path = exported_folded if folded else exported[0]
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    # A model that folds the batch into other axes used to answer a 48x48 batch of 4 with 9 rows.
    for shape in [(4, 48, 48, 3), (1, 128, 128, 3), (2, 32, 32, 1), (32, 32, 3)]:
        listed = ",".join(str(size) for size in shape)
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=rf"images \[{listed}\] is not compatible with expected shape "
                                 r"\[\?,32,32,3\]"):
            served(images=tf.constant(np.zeros(shape, np.uint8)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a uint8 tensor"):
        served(images=tf.constant(np.zeros((2, 32, 32, 3), np.float32)))
    assert served(images=tf.constant(np.zeros((2, 32, 32, 3), np.uint8)))["logits"].shape \
        == (2, 10)


@pytest.mark.slow  # two saved_model_cli processes, ~45 s: `pytest -m slow` runs it
def test_documented_saved_model_cli_commands_run(exported, tmp_path):
    """Runs docs/serving.md's `saved_model_cli` block as written, on the exported model."""
    path, _, _, _ = exported
    binary_dir = Path(sys.executable).parent
    if not (shutil.which("saved_model_cli") or (binary_dir / "saved_model_cli").exists()):
        pytest.skip("saved_model_cli is not installed")
    document = (Path(__file__).resolve().parents[2] / "docs" / "serving.md").read_text()
    block = next(block for block in document.split("```bash\n")[1:]
                 if "saved_model_cli run" in block).split("```")[0]
    saved_models = tmp_path / "saved_models" / "parallel_gcnn"
    saved_models.parent.mkdir()
    saved_models.symlink_to(path.parent, target_is_directory=True)
    completed = subprocess.run(
        ["bash", "-e", "-c", block], capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                 PATH=f"{binary_dir}{os.pathsep}{os.environ.get('PATH', '')}"))
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Result for output key logits" in completed.stdout
    assert "Result for output key probabilities" in completed.stdout
