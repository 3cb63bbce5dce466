"""Headless figure helpers shared by the visualize modules.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot state, no GUI backend), so
they render the same on a headless CI machine, a GPU server or inside a notebook.
"""

from __future__ import annotations

import re
from pathlib import Path

# Average glyph width of matplotlib's default font (DejaVu Sans) in ems, rounded up.
_GLYPH_WIDTH_EM = 0.62


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


def wrap_text(text, width_inches, fontsize):
    """Breaks every line of ``text`` so that it fits ``width_inches`` at ``fontsize`` points.

    Lines break after spaces, ``-``, ``_`` and ``/`` (run names such as
    ``ParallelRotScaleGCNN-d4-equivariant-cifar10-s0`` have no spaces); a longer unbroken piece
    is cut. Titles and tick labels then stay inside their panel instead of running into the
    next one or off the canvas.
    """
    max_chars = max(6, int(width_inches * 72 / (_GLYPH_WIDTH_EM * fontsize)))
    wrapped = []
    for line in str(text).split("\n"):
        current = ""
        for piece in re.findall(r"[^\s\-_/]*(?:[\-_/]|\s+|$)", line):
            while len(piece) > max_chars:
                if current.strip():
                    wrapped.append(current.rstrip())
                    current = ""
                wrapped.append(piece[:max_chars])
                piece = piece[max_chars:]
            if current.strip() and len((current + piece).rstrip()) > max_chars:
                wrapped.append(current.rstrip())
                current = piece.lstrip()
            else:
                current += piece
        wrapped.append(current.rstrip())
    return "\n".join(wrapped)
