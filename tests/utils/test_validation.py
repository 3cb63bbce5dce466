"""require_tensorflow_backend: the clear error of the TensorFlow-only features on other backends."""

import keras
import numpy as np
import pytest

from keras_equivariant.attacks import fgsm
from keras_equivariant.export import export_saved_model
from keras_equivariant.utils.validation import require_tensorflow_backend
from keras_equivariant.visualize import saliency_maps


def test_passes_on_tensorflow():
    assert keras.backend.backend() == "tensorflow"
    require_tensorflow_backend("anything")


def test_names_feature_backend_and_fix(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(RuntimeError) as raised:
        require_tensorflow_backend("keras_equivariant.attacks.pgd")
    message = str(raised.value)
    assert "keras_equivariant.attacks.pgd" in message and "'jax'" in message
    assert "KERAS_BACKEND=tensorflow" in message


@pytest.mark.parametrize("call", [
    lambda model, images, tmp_path: fgsm(model, images, np.zeros(2, int)),
    lambda model, images, tmp_path: export_saved_model(model, tmp_path / "served"),
    lambda model, images, tmp_path: saliency_maps(model, images),
], ids=["fgsm", "export_saved_model", "saliency_maps"])
def test_entry_points_refuse_before_any_work(monkeypatch, tmp_path, call):
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    images = np.zeros((2, 4, 4, 1), np.float32)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(RuntimeError, match="TensorFlow backend of Keras only"):
        call(model, images, tmp_path)
    assert not (tmp_path / "served").exists()
