"""Tests for keras_equivariant.utils.validation (the checks shared by the whole library)."""

import warnings

import numpy as np
import pytest

from keras_equivariant.utils.validation import check_eps


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
