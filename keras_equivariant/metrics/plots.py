"""Accuracy-vs-budget curves for one or many robustness reports (headless-safe matplotlib)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from keras_equivariant.utils.io import atomic_save_figure
from keras_equivariant.utils.validation import check_choice


def _new_axes(polar=False):
    """Axes on a plain ``Figure`` with an Agg canvas (no pyplot state: headless and thread-safe)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.6, 5.6) if polar else (6.4, 4.4))
    FigureCanvasAgg(figure)
    return figure.add_subplot(projection="polar" if polar else None)


def plot_robust_accuracy(reports, x="eps", ax=None, path=None, title=None):
    """Plots robust accuracy (%) against eps for several models on one figure.

    Reports sharing a ``model_name``, protocol and attack settings are treated as seeds of one
    model (seeds with different settings raise a ``ValueError``): the curve is their mean and a
    shaded band shows ± one sample standard deviation (``ddof=1``); the legend gives the number
    of seeds. Reports of several protocols are labelled with their protocol. Draws on a plain
    ``matplotlib.figure.Figure`` (no pyplot state), so it works with the Agg backend and in
    threads.

    Args:
        reports: a :class:`~keras_equivariant.metrics.RobustAccuracyReport` or a list of them.
        x: ``"eps"`` (budgets in the reports' protocol unit; all reports must share the protocol
            unit) or ``"eps_pixel"`` (pixel units, comparable across protocols).
        ax: an existing matplotlib ``Axes`` to draw on; ``None`` creates a new figure.
        path: if given, the figure is saved there (format from the extension).
        title: optional axes title.

    Returns:
        The matplotlib ``Figure``.

    Example:

    >>> figure = plot_robust_accuracy([report_seed0, report_seed1, baseline], path="pgd.png")
    """
    check_choice(x, ("eps", "eps_pixel"), "x")
    reports = list(reports) if isinstance(reports, (list, tuple)) else [reports]
    if not reports:
        raise ValueError("`reports` must hold at least one report; received an empty list.")
    units = {report.eps_unit for report in reports}
    if x == "eps" and len(units) > 1:
        raise ValueError(
            f"The reports use different eps units {sorted(units)}; pass x='eps_pixel' to plot "
            "them on a common pixel axis."
        )
    several_attacks = len({(r.attack["attack"], r.attack["norm"]) for r in reports}) > 1
    several_protocols = len({r.protocol for r in reports}) > 1
    groups = OrderedDict()
    for report in reports:
        details = []
        if several_attacks:
            details.append(f"{report.attack['attack']}, L{report.attack['norm']}")
        if several_protocols:
            details.append(f"{report.protocol} protocol")
        label = report.model_name + (f" ({', '.join(details)})" if details else "")
        groups.setdefault(label, []).append(report)

    ax = ax or _new_axes()
    figure = ax.figure
    for label, members in groups.items():
        settings = {(member.protocol, tuple(sorted(member.attack.items()))) for member in members}
        if len(settings) > 1:
            raise ValueError(
                f"Reports of {label!r} were run with different attack settings "
                f"{[dict(attack, protocol=protocol) for protocol, attack in settings]}; seeds "
                "of one model must share them. Give the runs different `model_name`s to plot "
                "them as separate curves."
            )
        xs = [np.asarray(getattr(member, x), dtype=float) for member in members]
        if any(values.shape != xs[0].shape or not np.allclose(values, xs[0]) for values in xs):
            raise ValueError(
                f"Reports of {label!r} were evaluated on different eps grids "
                f"{[list(values) for values in xs]}; seeds must share one grid."
            )
        accuracy = 100 * np.array([member.accuracy for member in members], dtype=float)
        mean = accuracy.mean(axis=0)
        if len(members) > 1:
            spread = accuracy.std(axis=0, ddof=1)
            (line,) = ax.plot(xs[0], mean, marker="o", markersize=3,
                              label=f"{label} (n={len(members)})")
            ax.fill_between(xs[0], mean - spread, mean + spread, color=line.get_color(),
                            alpha=0.2, linewidth=0)
        else:
            ax.plot(xs[0], mean, marker="o", markersize=3, label=label)
    unit = "pixel [0, 1]" if x == "eps_pixel" else units.pop()
    ax.set_xlabel(f"eps ({unit})")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    if path is not None:
        figure.savefig(path, dpi=150, bbox_inches="tight")
    return figure


def plot_transformation_accuracy(reports, transformation="rotation", metric="accuracy",
                                 polar=False, ax=None, path=None, title=None):
    """Plots accuracy (or consistency, %) against the angle or zoom factor, one line per model.

    Args:
        reports: a :class:`~keras_equivariant.metrics.TransformationAccuracyReport` or a list.
        transformation: ``"rotation"`` (x axis: degrees) or ``"scale"`` (zoom factor).
        metric: ``"accuracy"`` or ``"consistency"`` (agreement with the untransformed
            prediction).
        polar: draw rotations on a polar axis (angle around the circle, the metric as radius);
            a curve covering the whole circle is closed.
        ax: an existing matplotlib ``Axes`` (polar for ``polar=True``); ``None`` creates one.
        path: if given, the figure is saved there (format from the extension), atomically.
        title: optional axes title.

    Returns:
        The matplotlib ``Figure``.

    Example:

    >>> figure = plot_transformation_accuracy([baseline, cascaded], polar=True, path="rot.png")
    """
    check_choice(transformation, ("rotation", "scale"), "transformation")
    check_choice(metric, ("accuracy", "consistency"), "metric")
    if polar and transformation != "rotation":
        raise ValueError("`polar=True` plots rotations only; received transformation='scale'.")
    reports = list(reports) if isinstance(reports, (list, tuple)) else [reports]
    if not reports:
        raise ValueError("`reports` must hold at least one report; received an empty list.")
    ax = ax or _new_axes(polar)
    figure = ax.figure
    for report in reports:
        values, fractions = report.curve(transformation, metric)
        values, fractions = np.asarray(values, float), 100 * np.asarray(fractions, float)
        if polar:
            order = np.argsort(np.mod(values, 360))
            values, fractions = np.deg2rad(np.mod(values, 360)[order]), fractions[order]
            if len(values) > 1 and values[-1] - values[0] > np.pi:  # whole circle: close it
                values, fractions = np.append(values, values[0]), np.append(fractions, fractions[0])
        ax.plot(values, fractions, marker="o", markersize=2, label=report.model_name)
    if polar:
        ax.set_rlim(0, 100)
        ax.set_theta_zero_location("E")
        ax.set_title(title or f"{metric} (%, radius) against the rotation angle")
    else:
        ax.set_xlabel("rotation (degrees)" if transformation == "rotation" else "zoom factor")
        ax.set_ylabel(f"{metric} (%)")
        ax.set_ylim(0, 100)
        ax.grid(True, alpha=0.3)
        if title:
            ax.set_title(title)
    ax.legend(fontsize="small")
    if path is not None:
        atomic_save_figure(figure, path)
    return figure
