"""keras-equivariant: equivariant Keras 3 layers and models, and honest robustness evaluation.

Subpackages (one concept each): ``groups``, ``layers``, ``models``, ``attacks``, ``metrics``,
``data``, ``export``, ``visualize``, ``cli``; pipelines: ``training``, ``evaluation``,
``reproduce``.

``import keras_equivariant`` registers the library's serializable layers with Keras (so that
``keras.saving.load_model`` reads its models) and imports TensorFlow. Only the command line
(``keras-equivariant`` / ``python -m keras_equivariant``) defers these imports until its
arguments are parsed; the names below then load on first use.
"""

import os as _os
import sys as _sys

__version__ = "0.1.0"

_LAZY = {
    "export": ("keras_equivariant.export", None),
    "layers": ("keras_equivariant.layers", None),
    "check_equivariance": ("keras_equivariant.equivariance", "check_equivariance"),
    "BaselineCNN": ("keras_equivariant.models", "BaselineCNN"),
    "CascadedGCNN": ("keras_equivariant.models", "CascadedGCNN"),
    "ParallelGCNN": ("keras_equivariant.models", "ParallelGCNN"),
    "ParallelRotScaleGCNN": ("keras_equivariant.models", "ParallelRotScaleGCNN"),
    "WeightedParallelGCNN": ("keras_equivariant.models", "WeightedParallelGCNN"),
}


def _load_all():
    """Imports the layers (registering them with Keras), models, export and the check."""
    import importlib

    for name, (module, attribute) in _LAZY.items():
        loaded = importlib.import_module(module)
        globals()[name] = loaded if attribute is None else getattr(loaded, attribute)


def __getattr__(name):
    if name in _LAZY:
        _load_all()
        return globals()[name]
    raise AttributeError(f"module 'keras_equivariant' has no attribute {name!r}")


def _started_by_command_line():
    """True while ``keras-equivariant`` or ``python -m keras_equivariant...`` starts up."""
    program = _os.path.basename(_sys.argv[0]) if _sys.argv else ""
    return program.split(".")[0] in ("keras-equivariant", "keras-equivariant-script") \
        or program == "-m"


if not _started_by_command_line():
    _load_all()
