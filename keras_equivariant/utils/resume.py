"""One resume rule for every resumable result file: it records what it belongs to.

A resumable file (a robust-accuracy sweep, CLEVER scores, the CIFAR-10-C cells, the tolerance
cache, the equivariance check) is a JSON object written atomically after every finished piece
of work. Next to its results it stores an **identity**: a flat dict of everything the results
depend on -- the settings, a fingerprint of the data (:func:`array_fingerprint`) and a
fingerprint of the model weights (:func:`weights_fingerprint`). A rerun builds the identity of
what it is asked to compute and reads the file with :func:`load`:

- no file: nothing to reuse;
- the same identity: the stored results are reused;
- another identity: :class:`ResumeMismatchError` (a ``ValueError``) names every differing key
  with its stored and requested value, or, where the caller documents it (``on_mismatch=
  "recompute"``), the stored results are ignored and recomputed. Never silently reused.

```python
from keras_equivariant.utils import resume

identity = {"num_images": 16, "data": resume.array_fingerprint(images),
            "model_weights": resume.weights_fingerprint(model)}
stored = resume.load(path, identity, what="equivariance errors")
if stored is None:
    stored = compute(...)
    resume.save(path, identity, stored)
```
"""

from __future__ import annotations

import hashlib

import numpy as np

from keras_equivariant.utils.io import atomic_write_json, read_json

#: The key of the identity inside a stored JSON object.
IDENTITY_KEY = "identity"
#: Identity keys that identify the model, and the data (they name the kind of mismatch).
MODEL_KEYS = ("model_weights", "model_name")
DATA_KEYS = ("data",)
ON_MISMATCH = ("refuse", "recompute")


class ResumeMismatchError(ValueError):
    """A stored result file belongs to another model, other data or other settings.

    Attributes:
        path: the file.
        differences: ``{key: (stored, requested)}`` for every differing identity key.
    """

    def __init__(self, path, what, differences, hint):
        self.path = str(path)
        self.differences = differences
        kinds = []
        if any(key in MODEL_KEYS for key in differences):
            kinds.append("a different model")
        if any(key in DATA_KEYS for key in differences):
            kinds.append("different data")
        if any(key not in MODEL_KEYS + DATA_KEYS for key in differences):
            kinds.append("different settings")
        details = "; ".join(f"{key}: stored {stored!r}, requested {requested!r}"
                            for key, (stored, requested) in differences.items())
        super().__init__(
            f"{self.path!r} holds {what} computed with a different configuration "
            f"({', '.join(kinds)}): {details}. It was not reused. {hint}")


def array_fingerprint(*arrays) -> str:
    """A SHA-1 over the shapes, dtypes and bytes of ``arrays`` (the data behind a result)."""
    digest = hashlib.sha1()
    for array in arrays:
        array = np.ascontiguousarray(np.asarray(array))
        digest.update(f"{array.shape}{array.dtype.str}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def weights_fingerprint(model) -> str:
    """A SHA-1 of the model's weights: identifies the trained model behind stored results."""
    import keras

    return array_fingerprint(*(keras.ops.convert_to_numpy(weight) for weight in model.weights))


def differences(stored: dict | None, requested: dict) -> dict:
    """``{key: (stored value, requested value)}`` for every key whose values differ (a key
    missing on one side counts as ``None`` there)."""
    stored = stored or {}
    return {key: (stored.get(key), requested.get(key))
            for key in list(requested) + [key for key in stored if key not in requested]
            if stored.get(key) != requested.get(key)}


def load(path, identity: dict, what: str = "results", on_mismatch: str = "refuse",
         hint: str = "Use another output path, or delete the file to start over."):
    """The stored JSON object at ``path`` if it belongs to ``identity``, else ``None``.

    Args:
        path: the result file.
        identity: the JSON-serializable identity of the requested results (compared after a
            JSON round trip, so tuples and lists compare equal).
        what: what the file holds, for the error message.
        on_mismatch: ``"refuse"`` raises :class:`ResumeMismatchError`; ``"recompute"`` returns
            ``None`` so that the caller recomputes (and overwrites) the results.
        hint: how to fix a refusal (e.g. the CLI option to change).

    Returns:
        The whole stored object (identity included), or ``None`` when there is nothing to reuse.
    """
    stored = read_json(path)
    if stored is None:
        return None
    return stored if matches(stored.get(IDENTITY_KEY), identity, path, what, on_mismatch,
                             hint) else None


def matches(stored_identity, identity, path, what="results", on_mismatch="refuse",
            hint="Use another output path, or delete the file to start over.") -> bool:
    """Whether ``stored_identity`` (of one stored entry of ``path``) equals ``identity``;
    ``False`` for a mismatch with ``on_mismatch="recompute"``, :class:`ResumeMismatchError`
    with ``"refuse"``. For files that keep several entries, each with its own identity."""
    if on_mismatch not in ON_MISMATCH:
        raise ValueError(f"Unknown on_mismatch: received {on_mismatch!r}. Expected one of "
                         f"{list(ON_MISMATCH)}.")
    differing = differences(stored_identity, _as_json(identity))
    if not differing:
        return True
    if on_mismatch == "recompute":
        return False
    raise ResumeMismatchError(path, what, differing, hint)


def save(path, identity: dict, payload: dict):
    """Writes ``payload`` with ``identity`` under :data:`IDENTITY_KEY`, atomically."""
    return atomic_write_json(path, {**payload, IDENTITY_KEY: identity})


def _as_json(value):
    """``value`` as it reads back from JSON (tuples become lists, NumPy scalars Python ones)."""
    import json

    from keras_equivariant.utils.io import _to_builtin

    return json.loads(json.dumps(value, default=_to_builtin))
