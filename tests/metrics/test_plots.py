"""Accuracy-vs-eps plots (mean and a band across seeds) and forest plots, headless."""

import matplotlib.collections
import numpy as np
import pytest

from keras_equivariant.metrics import (
    Difference,
    RobustAccuracyReport,
    mean_confidence_interval,
    plot_differences,
    plot_robust_accuracy,
)


def _report(name, accuracy, protocol="default", eps=(0.0, 0.01, 0.02), attack="pgd"):
    unit = "pixel [0, 1]" if protocol == "default" else "normalized [-1, 1] (pixel eps = eps / 2)"
    scale = 1.0 if protocol == "default" else 0.5
    return RobustAccuracyReport(
        model_name=name, protocol=protocol, eps_unit=unit,
        attack={"attack": attack, "norm": "inf"}, eps=list(eps),
        eps_pixel=[scale * e for e in eps], step_size_pixel=[0.0] * len(eps),
        accuracy=list(accuracy), num_robust=[0] * len(eps), clean_accuracy=accuracy[0],
        num_examples=100)


def test_seeds_of_one_model_share_a_curve_with_a_band(tmp_path):
    reports = [_report("parallel", [0.9, 0.6, 0.3]), _report("parallel", [0.8, 0.5, 0.1]),
               _report("baseline", [0.9, 0.2, 0.0])]
    figure = plot_robust_accuracy(reports, path=tmp_path / "curves.png", title="PGD")
    (ax,) = figure.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"parallel (n=2)", "baseline"}
    np.testing.assert_allclose(lines["parallel (n=2)"].get_ydata(), [85, 55, 20])
    bands = [c for c in ax.collections if isinstance(c, matplotlib.collections.PolyCollection)]
    assert len(bands) == 1  # only the model with several seeds gets a band
    vertices = bands[0].get_paths()[0].vertices
    spread = np.std([[90, 60, 30], [80, 50, 10]], axis=0, ddof=1)
    assert vertices[:, 1].max() == pytest.approx((np.array([85, 55, 20]) + spread).max())
    assert ax.get_ylabel() == "robust accuracy (%)" and "pixel" in ax.get_xlabel()
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_single_report_and_existing_axes():
    from matplotlib.figure import Figure

    figure = Figure()
    ax = figure.add_subplot()
    assert plot_robust_accuracy(_report("m", [1.0, 0.5, 0.2]), ax=ax) is figure
    assert len(ax.get_lines()) == 1


def test_mixed_protocol_units_need_pixel_axis():
    reports = [_report("a", [0.9, 0.5, 0.1]), _report("b", [0.9, 0.7, 0.4], protocol="paper")]
    with pytest.raises(ValueError, match="eps_pixel"):
        plot_robust_accuracy(reports)
    (ax,) = plot_robust_accuracy(reports, x="eps_pixel").axes
    np.testing.assert_allclose(ax.get_lines()[1].get_xdata(), [0.0, 0.005, 0.01])


def test_attacks_are_told_apart_in_the_legend():
    reports = [_report("a", [0.9, 0.5, 0.1]), _report("a", [0.9, 0.7, 0.4], attack="fgsm")]
    (ax,) = plot_robust_accuracy(reports).axes
    assert {line.get_label() for line in ax.get_lines()} == {"a (pgd, Linf)", "a (fgsm, Linf)"}


def test_one_model_under_two_protocols_gives_two_curves_not_seeds():
    reports = [_report("a", [0.9, 0.6, 0.3]),
               _report("a", [0.9, 0.8, 0.7], protocol="paper", eps=(0.0, 0.02, 0.04))]
    (ax,) = plot_robust_accuracy(reports, x="eps_pixel").axes
    curves = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
    assert curves == {"a (default protocol)": [90, 60, 30], "a (paper protocol)": [90, 80, 70]}


def test_seeds_with_different_attack_settings_raise():
    reports = [_report("a", [0.9, 0.6, 0.3]), _report("a", [0.9, 0.5, 0.2])]
    reports[1].attack = {"attack": "pgd", "norm": "inf", "steps": 50}
    with pytest.raises(ValueError, match="different attack settings"):
        plot_robust_accuracy(reports)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="different eps grids"):
        plot_robust_accuracy([_report("a", [0.9, 0.5, 0.1]),
                              _report("a", [0.9, 0.5], eps=(0.0, 0.05))])
    with pytest.raises(ValueError, match="at least one"):
        plot_robust_accuracy([])
    with pytest.raises(ValueError, match="Unknown x"):
        plot_robust_accuracy(_report("a", [0.9, 0.5, 0.1]), x="steps")


def _band_extent(figure):
    (band,) = [c for c in figure.axes[0].collections
               if isinstance(c, matplotlib.collections.PolyCollection)]
    vertices = band.get_paths()[0].vertices
    return vertices[:, 1].min(), vertices[:, 1].max()


def test_ci95_band_is_the_student_t_interval_and_wider_than_std():
    reports = [_report("a", [0.9, 0.6, 0.3]), _report("a", [0.8, 0.5, 0.1]),
               _report("a", [0.85, 0.4, 0.2])]
    std_low, std_high = _band_extent(plot_robust_accuracy(reports))
    ci_low, ci_high = _band_extent(plot_robust_accuracy(reports, band="ci95"))
    assert ci_low < std_low and ci_high > std_high
    interval = mean_confidence_interval([90, 80, 85])  # the widest point: eps = 0
    assert ci_high == pytest.approx(interval.high)
    with pytest.raises(ValueError, match="Unknown band"):
        plot_robust_accuracy(reports, band="sem")


def test_forest_plot_marks_zero_and_fills_significant_differences(tmp_path):
    differences = [("shifted", Difference(0.05, 0.02, 0.08, 0.95, 3, 500, 10000)),
                   ("unclear", Difference(0.01, -0.02, 0.04, 0.95, 3, 500, 10000))]
    figure = plot_differences(differences, path=tmp_path / "forest.png", title="PGD")
    (ax,) = figure.axes
    assert any(list(line.get_xdata()) == [0, 0] for line in ax.get_lines())
    bars = [line for line in ax.get_lines() if len(line.get_xdata()) == 2
            and list(line.get_xdata()) != [0, 0]]
    np.testing.assert_allclose([bar.get_xdata() for bar in bars], [[2, 8], [-2, 4]])
    markers = [line for line in ax.get_lines() if len(line.get_xdata()) == 1]
    assert [marker.get_markerfacecolor() != "white" for marker in markers] == [True, False]
    assert [tick.get_text() for tick in ax.get_yticklabels()] == ["shifted", "unclear"]
    assert "95 % CI" in ax.get_xlabel()
    assert (tmp_path / "forest.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="at least one"):
        plot_differences([])
