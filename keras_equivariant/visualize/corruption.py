"""CIFAR-10-C heatmaps: accuracy per (corruption, severity), one panel per model."""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np

from keras_equivariant.data.catalog import CORRUPTIONS
from keras_equivariant.utils.io import read_json
from keras_equivariant.visualize._plotting import new_figure, save_figure, wrap_text


def _is_table(value):
    """True for ``{corruption: {severity: accuracy}}`` or ``{corruption: [accuracy, ...]}``."""
    return isinstance(value, dict) and bool(value) and all(
        isinstance(row, (dict, list, tuple)) and all(
            isinstance(cell, numbers.Real) for cell in (row.values() if isinstance(row, dict) else row))
        for row in value.values())


def _read(path):
    results = read_json(Path(path))
    if results is None:
        raise FileNotFoundError(f"No CIFAR-10-C results file at {path}.")
    return results


def _records(records):
    """Groups ``[{"model"?, "corruption", "severity", "accuracy"}, ...]`` by model."""
    nested = {}
    for record in records:
        if not isinstance(record, dict) or not {"corruption", "severity", "accuracy"} <= set(record):
            raise ValueError(
                "Each CIFAR-10-C record must be a dict with keys 'corruption', 'severity' and "
                f"'accuracy' (and optionally 'model'); received {record!r}."
            )
        model = str(record.get("model", "model"))
        nested.setdefault(model, {}).setdefault(record["corruption"], {})[record["severity"]] = (
            record["accuracy"])
    return nested


def _unwrap(results):
    """A path is read; ``{"cells": records}`` (``keras-equivariant evaluate``'s
    ``corruptions.json``) becomes its records."""
    if isinstance(results, (str, Path)):
        results = _read(results)
    if isinstance(results, dict) and set(results) == {"cells"}:
        results = results["cells"]
    return results


def corruption_tables(results):
    """Normalizes CIFAR-10-C results into ``{model_name: (corruptions, severities, matrix)}``.

    Accepted ``results`` (or the path of a JSON file holding one of them):

    * one model: ``{corruption: {severity: accuracy}}`` or ``{corruption: [accuracy at severity
      1, 2, ...]}`` (the model is named ``"model"``);
    * records: ``[{"model": ..., "corruption": ..., "severity": ..., "accuracy": ...}, ...]``
      (``"model"`` optional), or ``{"cells": records}`` as in the ``corruptions.json`` that
      ``keras-equivariant evaluate --corruptions`` writes;
    * several models: ``{model_name: <any single-model form above, or its JSON path>}``.

    Accuracies are fractions in [0, 1]. Corruptions are ordered as in the CIFAR-10-C release
    (noise, blur, weather, digital, then the extra four), unknown names last; ``matrix`` is float
    ``(num_corruptions, num_severities)`` with ``NaN`` for missing cells.
    """
    results = _unwrap(results)
    if isinstance(results, (list, tuple)):
        results = _records(results)
    if not isinstance(results, dict) or not results:
        raise ValueError(
            "CIFAR-10-C results must be a non-empty dict {corruption: {severity: accuracy}}, "
            f"{{model: {{corruption: ...}}}} or a list of records; received {results!r:.200}."
        )
    if _is_table(results):
        results = {"model": results}
    tables = {}
    for model, table in results.items():
        table = _unwrap(table)
        if isinstance(table, (list, tuple)):
            grouped = _records(table)
            if len(grouped) != 1:
                raise ValueError(
                    f"The records of {model!r} name several models {sorted(grouped)}; pass them "
                    "at the top level instead."
                )
            table = next(iter(grouped.values()))
        if not _is_table(table):
            raise ValueError(
                f"Results for {model!r} must map each corruption to {{severity: accuracy}} or to a "
                f"list of accuracies per severity; received {table!r:.200}."
            )
        rows = {}
        for corruption, row in table.items():
            if not isinstance(row, dict):
                row = {severity: value for severity, value in enumerate(row, start=1)}
            rows[corruption] = {int(severity): float(value) for severity, value in row.items()}
        order = {name: index for index, name in enumerate(CORRUPTIONS)}
        corruptions = sorted(rows, key=lambda name: (order.get(name, len(order)), name))
        severities = sorted({severity for row in rows.values() for severity in row})
        matrix = np.array([[rows[name].get(severity, np.nan) for severity in severities]
                           for name in corruptions], dtype=np.float64)
        finite = matrix[np.isfinite(matrix)]
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            raise ValueError(
                f"Accuracies for {model!r} must be fractions in [0, 1]; received values in "
                f"[{finite.min():.4g}, {finite.max():.4g}]. Divide percentages by 100."
            )
        tables[str(model)] = (corruptions, severities, matrix)
    return tables


def plot_corruption_heatmap(results, path, title=None):
    """Heatmap of accuracy (corruption x severity) per model, with a per-corruption mean column.

    Args:
        results: CIFAR-10-C accuracies in any form :func:`corruption_tables` accepts (dict, list of
            records, or a JSON file path).
        path: where the PNG is written.
        title: optional figure title (default states the mean corruption accuracy per model).

    Returns:
        The ``pathlib.Path`` of the written PNG.
    """
    tables = corruption_tables(results)
    num_models = len(tables)
    largest = max(len(corruptions) for corruptions, _, _ in tables.values())
    figure, axes = new_figure(1, num_models,
                              # at least 2.6 inches: one corruption left no room for the titles
                              # and squashed the colour bar
                              figsize=(1.2 + 3.4 * num_models, max(2.6, 1.2 + 0.32 * largest)),
                              layout="constrained")
    image = None
    for axis, (model, (corruptions, severities, matrix)) in zip(axes[0], tables.items()):
        with np.errstate(invalid="ignore"):
            row_means = np.nanmean(matrix, axis=1, keepdims=True) if matrix.size else matrix
        shown = np.concatenate([matrix, row_means], axis=1)
        image = axis.imshow(shown, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
        for row in range(shown.shape[0]):
            for column in range(shown.shape[1]):
                value = shown[row, column]
                if np.isfinite(value):
                    axis.text(column, row, f"{100 * value:.0f}", ha="center", va="center",
                              fontsize=6)
        axis.set_xticks(range(len(severities) + 1))
        axis.set_xticklabels([str(severity) for severity in severities] + ["mean"], fontsize=7)
        axis.set_yticks(range(len(corruptions)))
        axis.set_yticklabels(corruptions, fontsize=7)
        axis.set_xlabel("severity", fontsize=8)
        mean = float(np.nanmean(matrix)) if np.isfinite(matrix).any() else float("nan")
        axis.set_title(wrap_text(f"{model}\nmean accuracy {100 * mean:.1f}%", 3.0, 8), fontsize=8)
    colorbar = figure.colorbar(image, ax=list(axes[0]), shrink=0.8)
    colorbar.set_label("accuracy", fontsize=8)
    figure.suptitle(wrap_text(title or "CIFAR-10-C accuracy (%) by corruption and severity",
                              3.4 * num_models, 9), fontsize=9)
    return save_figure(figure, path)
