"""Tests for keras_equivariant.utils.validation (the checks shared by the whole library)."""

import warnings

import keras
import numpy as np
import pytest

from keras_equivariant.attacks import fgsm
from keras_equivariant.attacks.gradient import normalize_norm
from keras_equivariant.export import export_saved_model
from keras_equivariant.utils.validation import check_eps, check_norm, require_backend
from keras_equivariant.visualize import saliency_maps


@pytest.mark.parametrize("norm", ["1", "2", "inf", "INF", 1, 2, np.inf])
def test_norm_spellings_accepted(norm):  # moved from tests/metrics/test_clever.py
    assert check_norm(norm) in {"1", "2", "inf"}


@pytest.mark.parametrize("norm", ["l2", "linf", 3, None, True, -np.inf, [2]])
def test_other_spellings_are_refused_everywhere(norm):
    with pytest.raises(ValueError, match="Unknown norm"):
        check_norm(norm)
    with pytest.raises(ValueError, match="Unknown norm"):
        normalize_norm(norm)


def test_attacks_accept_the_same_spellings_restricted_to_their_norms():
    assert [normalize_norm(norm) for norm in ("inf", "INF", np.inf, "2", 2)] == \
        ["inf", "inf", "inf", "2", "2"]
    with pytest.raises(ValueError, match=r"'inf', '2'"):
        normalize_norm("1")


def test_eps_in_0_255_units_warns_did_you_mean():
    with pytest.warns(UserWarning, match=r"`eps`=8 is a huge L-inf budget .*Did you mean 8/255\?"):
        assert check_eps(8) == [8.0]
    with pytest.warns(UserWarning, match="Did you mean a budget such as 8/255"):
        check_eps([0.0, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_eps([0.0, 8 / 255, 0.49]) == pytest.approx([0.0, 8 / 255, 0.49])
        assert check_eps(0.5, norm="2") == [0.5]  # a usual L2 radius


def test_attacks_inherit_the_large_eps_warning():
    from keras_equivariant.attacks import fgsm
    from attack_toys import build_classifier

    model = build_classifier()
    images = np.full((2, 8, 8, 1), 0.5, np.float32)
    with pytest.warns(UserWarning, match="Did you mean 8/255"):
        fgsm(model, images, np.array([0, 1]), eps=8)


def test_passes_on_tensorflow():
    assert keras.backend.backend() == "tensorflow"
    require_backend("anything")
    require_backend("anything", backends=("tensorflow", "jax"))


def test_names_feature_backend_and_fix(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(RuntimeError) as raised:
        require_backend("keras_equivariant.attacks.apgd")
    message = str(raised.value)
    assert message.startswith("keras_equivariant.attacks.apgd runs on the TensorFlow backend of "
                              "Keras only; Keras is running on the 'jax' backend.")
    assert "KERAS_BACKEND=tensorflow" in message


def test_several_backends_are_named_and_accepted(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    require_backend("keras_equivariant.attacks.pgd", backends=("tensorflow", "jax"))
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    with pytest.raises(RuntimeError, match=r"runs on the TensorFlow or JAX backend of Keras only; "
                       r"Keras is running on the 'torch' backend\. Set the environment variable "
                       r"KERAS_BACKEND=tensorflow"):
        require_backend("keras_equivariant.attacks.pgd", backends=("tensorflow", "jax"))


@pytest.mark.parametrize("call", [
    lambda model, images, tmp_path: fgsm(model, images, np.zeros(2, int)),
    lambda model, images, tmp_path: export_saved_model(model, tmp_path / "served"),
    lambda model, images, tmp_path: saliency_maps(model, images),
], ids=["fgsm", "export_saved_model", "saliency_maps"])
def test_entry_points_refuse_before_any_work(monkeypatch, tmp_path, call):
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    images = np.zeros((2, 4, 4, 1), np.float32)
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")  # fgsm also runs on JAX
    with pytest.raises(RuntimeError, match=r"backend of Keras only; Keras is running on the "
                       r"'torch' backend"):
        call(model, images, tmp_path)
    assert not (tmp_path / "served").exists()
