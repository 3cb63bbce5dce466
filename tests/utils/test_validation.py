"""The one norm-name normalizer of the library (attacks, CLEVER, the sampler)."""

import numpy as np
import pytest

from keras_equivariant.attacks.gradient import normalize_norm
from keras_equivariant.utils.validation import check_norm


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
