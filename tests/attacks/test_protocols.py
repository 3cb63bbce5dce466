import numpy as np
import pytest

from keras_equivariant.attacks import PROTOCOLS, AttackSpec, get_protocol
from keras_equivariant.attacks.protocols import default_eps


def test_paper_protocol_converts_normalized_eps_to_pixels():
    paper = get_protocol("paper")
    np.testing.assert_allclose(paper.to_pixel([0.01, 0.0627, 0.15]), [0.005, 0.03135, 0.075])
    assert default_eps(paper, "inf") == [round(0.01 * k, 2) for k in range(1, 16)]
    spec = paper.resolve("pgd")
    assert spec == AttackSpec("pgd", norm="inf", loss="cross_entropy", steps=40, step_size=0.005,
                              random_start=False, keep_best=False, restarts=1)
    assert spec.step_size_for(0.03) == 0.005  # fixed step for every eps
    assert paper.resolve("fgsm").step_size_for(0.03) == 0.03


def test_default_protocol_is_robustbench_style():
    default = get_protocol("default")
    spec = default.resolve("pgd")
    assert (spec.steps, spec.random_start, spec.keep_best, spec.restarts) == (10, True, True, 1)
    assert spec.step_size_for(8 / 255) == pytest.approx(2 / 255)
    assert default.to_pixel([8 / 255]) == [8 / 255]
    assert 8 / 255 in default_eps(default, "inf") and 0.5 in default_eps(default, "2")
    custom = default.resolve("pgd", norm="2", steps=50, step_size=0.1, restarts=5, loss="margin")
    assert (custom.norm, custom.steps, custom.step_size, custom.restarts, custom.loss) == (
        "2", 50, 0.1, 5, "margin")


def test_unknown_protocol_lists_valid_names():
    with pytest.raises(ValueError, match=r"\['default', 'paper'\]"):
        get_protocol("robustbench")
    assert set(PROTOCOLS) == {"default", "paper"}


@pytest.mark.parametrize("kwargs", [{"steps": 10}, {"norm": "2"}, {"restarts": 3},
                                    {"step_size": 0.02}, {"loss": "margin"}])
def test_paper_protocol_refuses_contradicting_settings(kwargs):
    with pytest.raises(ValueError, match="protocol='paper' fixes"):
        get_protocol("paper").resolve("pgd", **kwargs)


def test_paper_protocol_accepts_its_own_settings():
    spec = get_protocol("paper").resolve("pgd", steps=40, step_size=0.01, restarts=1)
    assert spec.step_size == pytest.approx(0.005)


def test_attack_spec_rejects_bad_settings():
    with pytest.raises(ValueError, match="Unknown attack"):
        AttackSpec("cw")
    with pytest.raises(ValueError, match="random_start=True"):
        AttackSpec("pgd", restarts=2, random_start=False)


def test_settings_an_attack_does_not_use_are_pinned():
    fgsm = get_protocol("paper").resolve("fgsm")
    assert (fgsm.steps, fgsm.step_size, fgsm.random_start, fgsm.keep_best) == (1, None, False,
                                                                               False)
    noise = AttackSpec("random_noise", restarts=7, random_start=False)
    assert (noise.steps, noise.random_start, noise.keep_best, noise.restarts) == (0, True, True, 7)
