"""Atomic result files: a crash never leaves a half-written CSV/JSON behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def _atomic_replace(path, write) -> Path:
    """Calls ``write(binary_file)`` on a temporary file beside ``path``, then ``os.replace``s it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file as 0600; give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` via a temporary file and ``os.replace``."""
    return _atomic_replace(path, lambda file: file.write(text.encode("utf-8")))


def atomic_write_json(path, payload) -> Path:
    """Writes ``payload`` as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=_to_builtin) + "\n")


def atomic_save_figure(figure, path, dpi: int = 150) -> Path:
    """Saves a matplotlib ``figure`` to ``path`` (format from the extension), atomically."""
    image_format = Path(path).suffix.lstrip(".").lower() or "png"
    return _atomic_replace(path, lambda file: figure.savefig(
        file, format=image_format, dpi=dpi, bbox_inches="tight"))


def read_json(path, default=None):
    """Reads a JSON file, or returns ``default`` when it does not exist."""
    path = Path(path)
    if not path.exists():
        return default
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def _to_builtin(value):
    """JSON fallback for NumPy scalars and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
