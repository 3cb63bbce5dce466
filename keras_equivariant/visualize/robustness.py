"""Accuracy-vs-eps figure with one panel per attack (FGSM | PGD), several models per panel.

Each panel is drawn by ``keras_equivariant.metrics.plot_robust_accuracy``, which averages reports
sharing a model name (seeds) and shades +- one standard deviation.
"""

from __future__ import annotations

from collections import OrderedDict

from keras_equivariant.utils.validation import check_choice
from keras_equivariant.visualize._plotting import new_figure, save_figure


def plot_robustness_panels(reports, path, x="eps_pixel", title=None):
    """Robust accuracy vs eps, one panel per (attack, norm), all models on each panel.

    Args:
        reports: list of ``keras_equivariant.metrics.RobustAccuracyReport`` (any mix of models,
            seeds and attacks; reports with the same ``model_name`` and attack are seeds).
        path: where the PNG is written.
        x: ``"eps_pixel"`` (pixel units, comparable across protocols) or ``"eps"`` (the reports'
            protocol unit).
        title: optional figure title.

    Returns:
        The ``pathlib.Path`` of the written PNG.
    """
    from keras_equivariant.metrics import plot_robust_accuracy

    check_choice(x, ("eps", "eps_pixel"), "x")
    reports = list(reports)
    if not reports:
        raise ValueError("`reports` must hold at least one RobustAccuracyReport; received none.")
    panels = OrderedDict()
    for report in reports:
        panels.setdefault((report.attack["attack"], report.attack["norm"]), []).append(report)
    figure, axes = new_figure(1, len(panels), figsize=(5.2 * len(panels), 4.0))
    for axis, ((attack, norm), members) in zip(axes[0], panels.items()):
        seeds = max(sum(m.model_name == member.model_name for m in members) for member in members)
        band = f", mean ± std over {seeds} seeds" if seeds > 1 else ""
        plot_robust_accuracy(members, x=x, ax=axis,
                             title=f"{attack.upper()} (L{norm}){band}")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return save_figure(figure, path)
