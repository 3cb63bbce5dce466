"""Measuring how equivariant (or invariant) a layer or model is: ``check_equivariance``."""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np
import scipy.ndimage

from keras_equivariant.groups.base import GroupAction, get_group, layer_group_actions


@dataclass
class EquivarianceResult:
    """Per-transformation relative errors returned by :func:`check_equivariance`.

    Attributes:
        errors: ``{element name: relative error}``, e.g. ``{"rot90": 3e-7, ...}``.
        group: name of the group that was checked.
        output_kind: ``"group features"``, ``"spatial map"`` or ``"vector"`` (invariance).
    """

    errors: dict = field(default_factory=dict)
    group: str = ""
    output_kind: str = ""

    @property
    def max_error(self) -> float:
        return max(self.errors.values())

    def __getitem__(self, element):
        return self.errors[element]

    def __str__(self):
        lines = [f"{self.group} equivariance ({self.output_kind}): max relative error "
                 f"{self.max_error:.3g}"]
        lines += [f"  {name:>14}: {error:.3g}" for name, error in self.errors.items()]
        return "\n".join(lines)


def _transform_inputs(group: GroupAction, inputs: np.ndarray, element: str) -> np.ndarray:
    if inputs.ndim == 5:
        return group.transform_features(inputs, element)
    return group.transform_images(inputs, element)


def _transform_outputs(group: GroupAction, outputs: np.ndarray, element: str) -> np.ndarray:
    if outputs.ndim == 5:
        return group.transform_features(outputs, element)
    if outputs.ndim == 4:
        return group.transform_images(outputs, element)
    return outputs


def check_equivariance(layer_or_model, inputs, group="C4", training=False) -> EquivarianceResult:
    """Measures ``L(g·x)`` against ``g·L(x)`` for every tested element ``g`` of ``group``.

    For each element ``g`` (all non-identity elements of a finite group) the relative error is
    ``max|L(g·x) - g·L(x)| / max|L(x)|``, where ``g·`` acts on the output according to its rank:

    * ``(batch, height, width, |G|, channels)`` group features: spatial transformation plus
      the permutation of the group axis (equivariance);
    * ``(batch, height, width, channels)`` spatial maps: spatial transformation only;
    * ``(batch, ...)`` of rank 2 or 3, e.g. logits: identity (invariance).

    Exact grid transformations (90° rotations, flips) compare every pixel and should give
    float round-off (< 1e-5 in float32). Approximate ones (C8's odd multiples of 45°, rotated
    by cubic-spline interpolation) compare only a central disk (``group.comparison_mask``) and
    are meaningful only for band-limited inputs, e.g. :func:`smooth_random_images`.

    Args:
        layer_or_model: a callable Keras layer or model with one input and one output.
        inputs: a batch ``(batch, height, width, channels)`` of images, or a group feature
            map ``(batch, height, width, |G|, channels)`` (e.g. for a group convolution alone).
        group: a registered group name (``"C4"``, ``"D4"``, ``"C8"``, ``"scale"``,
            ``"C4xscale"``, ...), a :class:`keras_equivariant.groups.GroupAction`, or ``None``
            for the ``group_action`` of the first group layer in ``layer_or_model`` (every group
            convolution describes its group).
        training: passed to the call; with ``True``, batch-dependent layers (batch
            normalization) are equivariant only if the batch is closed under the group.

    Returns:
        An :class:`EquivarianceResult` with ``.errors`` (per element) and ``.max_error``.

    Example:

    >>> layer = keras_equivariant.layers.RotationConv2D(4, 3, group="C4")
    >>> result = check_equivariance(layer, np.random.rand(2, 9, 9, 3), group="C4")
    >>> result.max_error < 1e-5
    True
    """
    if group is None:
        actions = layer_group_actions(layer_or_model)
        if not actions:
            raise ValueError(
                "group=None takes the group of the first group layer, but "
                f"{getattr(layer_or_model, 'name', layer_or_model)!r} has none (no layer with "
                "a `group_action`). Pass a group name such as 'C4' or 'scale'."
            )
        group = actions[0]
    group = get_group(group).bind(layer_or_model)
    inputs = np.asarray(inputs, dtype=np.float32)
    if inputs.ndim not in (4, 5):
        raise ValueError(
            "`inputs` must be images (batch, height, width, channels) or group features "
            f"(batch, height, width, {group.order}, channels); received shape {inputs.shape}."
        )
    if inputs.ndim == 5 and inputs.shape[3] != group.order:
        raise ValueError(
            f"The group axis (axis 3) of `inputs` must have size {group.order} for group "
            f"{group.name!r}; received shape {inputs.shape}."
        )

    def run(batch):
        outputs = layer_or_model(batch, training=training)
        if isinstance(outputs, (list, tuple, dict)):
            raise ValueError("check_equivariance supports layers and models with one output.")
        return np.asarray(keras.ops.convert_to_numpy(outputs), dtype=np.float64)

    reference = run(inputs)
    if reference.ndim == 5 and reference.shape[3] != group.order:
        raise ValueError(
            f"The output group axis (axis 3) has size {reference.shape[3]}, but group "
            f"{group.name!r} has order {group.order}; received output shape {reference.shape}."
        )
    kind = {5: "group features", 4: "spatial map"}.get(reference.ndim, "vector")
    errors = {}
    for element in group.elements():
        actual = run(_transform_inputs(group, inputs, element))
        expected = _transform_outputs(group, reference, element)
        if actual.shape != expected.shape:
            raise ValueError(
                f"Output shapes differ under {element}: L(g·x) has shape {actual.shape}, "
                f"g·L(x) has shape {expected.shape}."
            )
        custom = group.relative_error(element, actual, expected, reference)
        if custom is not None:
            errors[element] = custom
            continue
        difference, scale = np.abs(actual - expected), np.abs(reference)
        if reference.ndim >= 4:
            mask = group.comparison_mask(element, actual.shape[1], actual.shape[2])
            if mask is not None:
                difference, scale = difference[:, mask], _transform_outputs(
                    group, scale, element
                )[:, mask]
        errors[element] = float(difference.max() / max(scale.max(), np.finfo(np.float32).tiny))
    return EquivarianceResult(errors=errors, group=group.name, output_kind=kind)


def smooth_random_images(num_images, size, channels=3, wavelength=4.0, seed=0):
    """Band-limited random images in [0, 1] for testing approximate (45°) equivariance.

    White noise at ``size / wavelength`` resolution is upsampled by cubic splines to
    ``size``, so the images contain no detail finer than about ``wavelength`` pixels.

    Args:
        num_images: number of images.
        size: height and width in pixels.
        channels: number of channels.
        wavelength: the smallest feature size in pixels (larger is smoother).
        seed: NumPy random seed.

    Returns:
        float32 array ``(num_images, size, size, channels)``.
    """
    low = max(int(round(size / wavelength)), 2)
    noise = np.random.default_rng(seed).random((num_images, low, low, channels))
    zoom = (1, size / low, size / low, 1)
    images = scipy.ndimage.zoom(noise, zoom, order=3, mode="nearest")[:, :size, :size]
    return np.clip(images, 0.0, 1.0).astype(np.float32)
