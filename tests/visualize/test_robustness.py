"""FGSM | PGD accuracy-vs-eps panels with seed bands (drawn by metrics.plot_robust_accuracy)."""

import pytest

from keras_equivariant.metrics import RobustAccuracyReport
from keras_equivariant.visualize import plot_robustness_panels


def _report(model_name, attack, seed, base):
    eps = [0.0, 2 / 255, 4 / 255]
    return RobustAccuracyReport(
        model_name=model_name, protocol="default", eps_unit="pixel",
        attack={"attack": attack, "norm": "inf"}, eps=eps, eps_pixel=eps,
        accuracy=[base, base - 0.2 - 0.01 * seed, base - 0.4 + 0.01 * seed], seed=seed)


def test_one_panel_per_attack_with_seed_bands(tmp_path):
    reports = [_report(name, attack, seed, base)
               for attack in ("fgsm", "pgd") for name, base in (("cnn", 0.6), ("gcnn", 0.7))
               for seed in range(3)]
    path = plot_robustness_panels(reports, tmp_path / "curves.png")
    assert path.exists() and path.stat().st_size > 20_000


def test_rejects_empty_and_bad_axis(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        plot_robustness_panels([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="Unknown x"):
        plot_robustness_panels([_report("cnn", "pgd", 0, 0.5)], tmp_path / "x.png", x="budget")
