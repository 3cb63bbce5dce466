"""Input validation shared by layers, attacks, metrics and the CLI.

Every check runs eagerly, *before* any expensive work, and raises a ``ValueError`` (or
``TypeError``) that says what was received, what was expected and how to fix it.
:func:`require_backend` is the one check of the environment: the ``RuntimeError`` of a feature
called on a Keras backend it does not support (most are TensorFlow-only).
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Iterable, Sequence

import numpy as np

from keras_equivariant.choices import NORMS


def check_choice(value, choices: Iterable, name: str):
    """Returns ``value`` if it is one of ``choices``; raises a ``ValueError`` otherwise."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(
            f"Unknown {name}: received {value!r}. Expected one of {choices}."
        )
    return value


def check_norm(norm, norms: Sequence[str] = NORMS, name: str = "norm") -> str:
    """The canonical spelling (``"1"``, ``"2"`` or ``"inf"``) of a perturbation norm.

    Accepted spellings, for every function of the library: the strings ``"1"``, ``"2"``,
    ``"inf"`` (any case), the integers ``1`` and ``2``, and ``float("inf")`` / ``np.inf``.
    ``norms`` restricts the result (the attacks support ``("inf", "2")``).
    """
    if isinstance(norm, str):
        key = norm.lower()
    elif isinstance(norm, numbers.Real) and not isinstance(norm, bool) and math.isinf(norm) \
            and norm > 0:
        key = "inf"
    elif isinstance(norm, numbers.Real) and not isinstance(norm, bool) \
            and float(norm).is_integer():
        key = str(int(norm))
    else:
        key = None
    if key not in NORMS or key not in norms:
        spellings = ", ".join(repr(value) for value in norms)
        numbers_ = ", ".join("np.inf" if value == "inf" else value for value in norms)
        raise ValueError(
            f"Unknown {name}: received {norm!r}. Expected one of {spellings} (or {numbers_})."
        )
    return key


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """Returns ``value`` as ``int`` if it is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}; received {value!r} "
            f"of type {type(value).__name__}."
        )
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; received {value}.")
    return int(value)


def check_fraction(value, name: str, meaning: str) -> float:
    """Returns ``value`` as a float if it is a single number in (0, 1]; ``meaning`` explains it."""
    number = float(value) if np.ndim(value) == 0 and isinstance(
        value, (numbers.Real, np.floating, np.integer)) else float("nan")
    if not 0.0 < number <= 1.0:
        raise ValueError(f"`{name}` must be a number in (0, 1] ({meaning}); received {value!r}.")
    return number


# An L-inf ball of this radius around [0, 1] pixels reaches mid-gray from every pixel value: such
# a budget was almost surely given in 0..255 units (eps=8 meant for eps=8/255).
LARGE_LINF_EPS = 0.5


def check_eps(eps, name: str = "eps", norm: str = "inf") -> list[float]:
    """Normalizes a scalar or a sequence of perturbation budgets to a list of floats >= 0.

    An L-inf budget (``norm="inf"``) of 0.5 or more warns (``UserWarning``): budgets are in pixel
    units of [0, 1] images, and a value such as 8 was most likely meant as 8/255. Pass
    ``norm="2"`` for L2 radii, where 0.5 is a usual budget.
    """
    values = [eps] if np.ndim(eps) == 0 else list(np.asarray(eps).ravel())
    if not values:
        raise ValueError(f"`{name}` must hold at least one value; received {eps!r}.")
    out = []
    for value in values:
        value = float(value)
        if not np.isfinite(value) or value < 0:
            raise ValueError(
                f"`{name}` must be finite and >= 0; received {value}. "
                "Perturbation budgets are radii of a norm ball in pixel units ([0, 1] images), "
                "e.g. eps=8/255."
            )
        out.append(value)
    large = [value for value in out if value >= LARGE_LINF_EPS]
    if large and str(norm).lower() == "inf":
        value = large[0]
        meant = f"{value:g}/255" if value >= 1 else "a budget such as 8/255"
        warnings.warn(
            f"`{name}`={value:g} is a huge L-inf budget for [0, 1] pixels (>= {LARGE_LINF_EPS}: "
            f"every pixel may move to mid-gray). Did you mean {meant}? Budgets are in pixel "
            "units, e.g. eps=8/255 (CLI: --eps 8/255).",
            UserWarning, stacklevel=2)
    return out


def check_images(images, name: str = "images", value_range: Sequence[float] = (0.0, 1.0),
                 tolerance: float = 1e-6) -> np.ndarray:
    """Checks a batch of images ``(batch, height, width, channels)`` in ``value_range``.

    Accepts NumPy arrays and eager tensors. Returns the images as a float32 NumPy array.
    Raises ``ValueError`` for a wrong rank, NaN/inf values or values outside the range
    (the most common cause: passing uint8-range pixels in [0, 255], or images that were
    already normalized to [-1, 1]).
    """
    array = np.asarray(images)
    if array.ndim != 4:
        raise ValueError(
            f"`{name}` must be a rank-4 batch (batch, height, width, channels); received "
            f"shape {array.shape}. For a single image use `{name}[None]`."
        )
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"`{name}` must be numeric; received dtype {array.dtype}.")
    array = array.astype(np.float32, copy=False)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    low, high = value_range
    observed_min, observed_max = float(array.min()), float(array.max())
    if observed_min < low - tolerance or observed_max > high + tolerance:
        raise ValueError(
            f"`{name}` must lie in [{low}, {high}]; received values in "
            f"[{observed_min:.4g}, {observed_max:.4g}]. Pass pixels scaled to [0, 1] "
            "(divide uint8 images by 255); normalization belongs inside the model."
        )
    return array


def check_labels(labels, num_images: int, num_classes: int | None = None,
                 name: str = "labels") -> np.ndarray:
    """Checks integer class labels of shape ``(num_images,)``; returns them as int32.

    One-hot labels of shape ``(num_images, num_classes)`` are accepted and converted.
    """
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[0] == num_images and array.shape[1] > 1:
        array = array.argmax(axis=1)
    elif array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or array.shape[0] != num_images:
        raise ValueError(
            f"`{name}` must have shape ({num_images},) (one integer class per image) or "
            f"({num_images}, num_classes) one-hot; received shape {array.shape}."
        )
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.equal(np.mod(array, 1), 0)):
            raise ValueError(f"`{name}` must be integer class indices; received dtype {array.dtype}.")
    array = array.astype(np.int32)
    if array.size and array.min() < 0:
        raise ValueError(f"`{name}` must be >= 0; received minimum {array.min()}.")
    if num_classes is not None and array.size and array.max() >= num_classes:
        raise ValueError(
            f"`{name}` must be < num_classes={num_classes}; received maximum {array.max()}."
        )
    return array


def check_real_values(values, name: str, unit: str, positive: bool = False) -> np.ndarray:
    """Normalizes a real number or a non-empty sequence of distinct real numbers to float64.

    Used for transformation grids (angles in degrees, shifts in pixels, zoom factors). Rejects
    strings, booleans, complex or nested values, NaN/inf, duplicates and, with ``positive``,
    values ``<= 0``. ``unit`` completes the error messages (e.g. ``"degrees"``).
    """
    if isinstance(values, (str, bytes)) or values is None:
        raise ValueError(
            f"`{name}` must be a number or a sequence of numbers in {unit}; received {values!r}."
        )
    if np.ndim(values) > 1:
        raise ValueError(
            f"`{name}` must be a number or a flat sequence of numbers in {unit}; received an "
            f"array of shape {np.shape(values)}."
        )
    items = [values] if np.ndim(values) == 0 else list(np.asarray(values, dtype=object).ravel())
    if not items:
        raise ValueError(
            f"`{name}` must hold at least one value in {unit}; received an empty {values!r}."
        )
    bad = [item for item in items
           if isinstance(item, (bool, np.bool_)) or not isinstance(item, numbers.Real)]
    if bad:
        raise ValueError(
            f"`{name}` must hold real numbers in {unit}; received {bad[0]!r} of type "
            f"{type(bad[0]).__name__} in {values!r}."
        )
    array = np.asarray(items, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must hold finite numbers in {unit}; received {values!r}.")
    if positive and np.any(array <= 0):
        raise ValueError(
            f"`{name}` must hold numbers > 0 ({unit}); received {values!r}. A zoom factor of 1 "
            "keeps the image size, 0.8 shrinks it, 1.25 enlarges it."
        )
    unique, counts = np.unique(array, return_counts=True)
    if np.any(counts > 1):
        raise ValueError(
            f"`{name}` holds {unique[counts > 1][0]:g} more than once; received {values!r}. "
            "Each value is evaluated once: remove the duplicates."
        )
    return array


#: How the messages of :func:`require_backend` spell each Keras backend.
BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch", "numpy": "NumPy",
                 "openvino": "OpenVINO"}


def require_backend(feature: str, backends: Sequence[str] = ("tensorflow",)) -> None:
    """Raises a ``RuntimeError`` unless Keras runs on one of ``backends``.

    The layers, builders, ``fold`` and ``check_equivariance`` run on every Keras 3 backend; FGSM,
    PGD and the random-noise baseline run on TensorFlow and JAX; the other features that call
    this (``tf.data`` pipelines, SavedModel export, tf-keras-vis saliency, the compiled attack
    loops of APGD, FAB, Square and the metrics built on them) use TensorFlow APIs on the model
    and stay TensorFlow-only.

    Args:
        feature: what the user called, e.g. ``"keras_equivariant.attacks.apgd"``.
        backends: the Keras backends the feature runs on, the preferred one first (the message
            tells the user to switch to it).

    Raises:
        RuntimeError: Keras runs on another backend; the message names the feature, the
            current backend and the environment variable that selects a supported one.

    Example:

    >>> require_backend("keras_equivariant.attacks.pgd", backends=("tensorflow", "jax"))
    """
    import keras  # noqa: PLC0415 (the validators above do not need it)

    backend = keras.backend.backend()
    if backend not in backends:
        names = " or ".join(BACKEND_NAMES.get(name, name) for name in backends)
        raise RuntimeError(
            f"{feature} runs on the {names} backend of Keras only; Keras is running on the "
            f"{backend!r} backend. Set the environment variable KERAS_BACKEND={backends[0]} before "
            "Python imports keras (models saved as .keras load on either backend)."
        )
