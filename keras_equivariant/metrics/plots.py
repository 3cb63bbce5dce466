"""Accuracy-vs-budget curves for one or many robustness reports (headless-safe matplotlib)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from keras_equivariant.metrics.statistics import mean_confidence_interval
from keras_equivariant.utils.io import atomic_save_figure
from keras_equivariant.utils.validation import check_choice


def _new_axes(polar=False, height=None):
    """Axes on a plain ``Figure`` with an Agg canvas (no pyplot state: headless and thread-safe);
    ``height`` in inches overrides the default."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.6, 5.6) if polar else (6.4, height or 4.4))
    FigureCanvasAgg(figure)
    return figure.add_subplot(projection="polar" if polar else None)


def plot_robust_accuracy(reports, x="eps", ax=None, path=None, title=None, band="std"):
    """Plots robust accuracy (%) against eps for several models on one figure.

    Reports sharing a ``model_name``, protocol and attack settings are treated as seeds of one
    model (seeds with different settings raise a ``ValueError``): the curve is their mean and a
    shaded band shows their spread (see ``band``); the legend gives the number of seeds.
    Reports of several protocols are labelled with their protocol. Draws on a plain
    ``matplotlib.figure.Figure`` (no pyplot state), so it works with the Agg backend and in
    threads.

    Args:
        reports: a :class:`~keras_equivariant.metrics.RobustAccuracyReport` or a list of them.
        x: ``"eps"`` (budgets in the reports' protocol unit; all reports must share the protocol
            unit) or ``"eps_pixel"`` (pixel units, comparable across protocols).
        ax: an existing matplotlib ``Axes`` to draw on; ``None`` creates a new figure.
        path: if given, the figure is saved there (format from the extension), atomically.
        title: optional axes title.
        band: the band around a model with several seeds: ``"std"`` (± one sample standard
            deviation, ``ddof=1``: the spread of single runs) or ``"ci95"`` (the Student-t
            95 % confidence interval of the mean over seeds, from
            :func:`~keras_equivariant.metrics.mean_confidence_interval`; wider than ``"std"``
            below 7 seeds).

    Returns:
        The matplotlib ``Figure``.

    Example:

    >>> figure = plot_robust_accuracy([report_seed0, report_seed1, baseline], path="pgd.png")
    """
    check_choice(x, ("eps", "eps_pixel"), "x")
    check_choice(band, ("std", "ci95"), "band")
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
            if band == "std":
                spread = accuracy.std(axis=0, ddof=1)
                low, high = mean - spread, mean + spread
            else:
                intervals = [mean_confidence_interval(column) for column in accuracy.T]
                low, high = ([interval.low for interval in intervals],
                             [interval.high for interval in intervals])
            (line,) = ax.plot(xs[0], mean, marker="o", markersize=3,
                              label=f"{label} (n={len(members)})")
            ax.fill_between(xs[0], low, high, color=line.get_color(), alpha=0.2, linewidth=0)
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
        atomic_save_figure(figure, path)
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


def plot_differences(differences, path=None, title=None, ax=None):
    """Forest plot of differences to a reference, in points (x100), with their intervals.

    One row per difference, top to bottom in the given order: a horizontal bar spans the
    confidence interval and a marker shows the point estimate; a vertical line marks 0.
    Significant differences (interval excluding 0) are drawn dark with filled markers, the
    others light with open markers.

    Args:
        differences: a list of ``(label, Difference)`` pairs, e.g. from
            :func:`~keras_equivariant.metrics.paired_bootstrap_difference`.
        path: if given, the figure is saved there (format from the extension), atomically.
        title: optional axes title.
        ax: an existing matplotlib ``Axes`` to draw on; ``None`` creates a new figure.

    Returns:
        The matplotlib ``Figure``.

    Example:

    >>> figure = plot_differences([("Parallel", difference)], path="differences.png")
    """
    differences = list(differences)
    if not differences:
        raise ValueError("`differences` must hold at least one (label, Difference) pair; "
                         "received an empty list.")
    # one row of text per interval: 0.22 inch each keeps the labels apart
    ax = ax or _new_axes(height=max(4.4, 1.2 + 0.22 * len(differences)))
    figure = ax.figure
    ax.axvline(0.0, color="black", linewidth=1)
    for row, (label, difference) in enumerate(differences):
        color = "tab:blue" if difference.significant else "tab:gray"
        ax.plot([100 * difference.low, 100 * difference.high], [row, row], color=color,
                linewidth=2.5 if difference.significant else 1.5)
        ax.plot([100 * difference.mean], [row], marker="o", markersize=6, color=color,
                markerfacecolor=color if difference.significant else "white")
    confidences = {difference.confidence for _, difference in differences}
    ax.set_yticks(range(len(differences)), [label for label, _ in differences])
    ax.set_ylim(len(differences) - 0.5, -0.5)
    level = f"{100 * confidences.pop():g} % CI" if len(confidences) == 1 else "CI"
    ax.set_xlabel(f"difference (points, {level}; filled: significant)")
    ax.grid(True, axis="x", alpha=0.3)
    if title:
        ax.set_title(title)
    if path is not None:
        atomic_save_figure(figure, path)
    return figure
