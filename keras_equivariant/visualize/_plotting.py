"""Headless figure helpers shared by the visualize modules.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot state, no GUI backend), so
they render the same on a headless CI machine, a GPU server or inside a notebook.
"""

from __future__ import annotations

from pathlib import Path


def new_figure(num_rows=1, num_columns=1, figsize=(6.0, 4.0), layout=None, **subplot_kwargs):
    """Returns ``(figure, axes)`` with ``axes`` a 2-D array of shape ``(num_rows, num_columns)``."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, layout=layout)
    axes = figure.subplots(num_rows, num_columns, squeeze=False, **subplot_kwargs)
    return figure, axes


def save_figure(figure, path, dpi=150):
    """Writes ``figure`` as an image at ``path`` (format from the suffix, e.g. ``.png``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path
