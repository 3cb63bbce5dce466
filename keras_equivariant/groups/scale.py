"""The scale (semi)group on the pixel grid: scale grids, kernel bases and image rescaling.

Scales are discretised on a grid ``scales = (s_0, s_1, ...)`` of real numbers ``>= 1`` (``1`` is
the pixel grid of the learnable kernel). A feature map on the scale group has the layout
``(batch, height, width, num_scales, channels)``.

**Kernel at scale ``s``.** A learnable ``k x k`` kernel ``w`` has taps at the integer offsets
``m``. At scale ``s`` the same taps are placed at ``s * m`` (the kernel is *dilated* by ``s``):

- integer ``s`` (``2``, ``4``, ...): ``w`` is dilated with ``s - 1`` zeros between taps (the DISCO
  "disco_a" / DSS construction). A dilated correlation commutes *exactly* with every
  down-scaling by ``s`` that is a shift-invariant filter followed by decimation (box/area,
  bilinear, bicubic, antialiased or not), so equivariance is exact up to the image border.
- non-integer ``s`` (e.g. ``1.41``): a tap at a sub-pixel position ``s * m`` is spread onto the
  pixel grid by a least-squares optimal (Wiener / kriging) interpolation kernel for band-limited
  signals (flat spectrum up to ``INTERPOLATION_BANDWIDTH`` cycles per pixel), supported on the
  ``2 * ceil(s * (k - 1) / 2) + 1`` square window. At integer positions it reduces to a delta,
  so the basis is continuous with the dilation above. Equivariance is approximate; the measured
  error of one layer is given in "Scale-equivariant layers" of ``docs/practical-notes.md``.

``scale_kernel_basis`` returns this linear map as a constant array; layers expand their
coefficients through it once per call (never stored as weights).
"""

from __future__ import annotations

import functools
import numbers

import numpy as np

from keras_equivariant.groups.base import GroupAction, layer_group_actions, register_group
from keras_equivariant.groups.rotation import RotationGroup
from keras_equivariant.utils.validation import check_choice

#: Bandwidth (cycles per pixel) of the signal model used to interpolate non-integer scales.
INTERPOLATION_BANDWIDTH = 0.25
#: Ridge (relative noise variance) of the least-squares interpolation.
INTERPOLATION_RIDGE = 1e-4
#: Tolerance below which a scale (or a scale ratio) counts as an integer.
INTEGER_TOLERANCE = 1e-6


def check_scales(scales, name: str = "scales") -> tuple[float, ...]:
    """Validates a scale grid: a non-empty, strictly increasing sequence of numbers ``>= 1``.

    Returns the scales as a tuple of floats. Raises a ``ValueError`` that says what is wrong.
    """
    if isinstance(scales, (str, bytes)) or not hasattr(scales, "__len__"):
        raise ValueError(
            f"`{name}` must be a sequence of numbers such as (1, 2) or (1, 2, 4); "
            f"received {scales!r}."
        )
    values = []
    for value in scales:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"`{name}` must hold numbers; received {scales!r}.")
        values.append(float(value))
    if not values:
        raise ValueError(f"`{name}` must hold at least one scale; received {scales!r}.")
    if any(not np.isfinite(value) or value <= 0 for value in values):
        raise ValueError(
            f"`{name}` must be positive (a scale is a dilation factor of the kernel); "
            f"received {tuple(values)}."
        )
    if values[0] < 1:
        raise ValueError(
            f"`{name}` must be >= 1: scale 1 is the kernel's own pixel grid and a kernel cannot "
            f"be shrunk below it; received {tuple(values)}. Rescale the grid, e.g. "
            f"{tuple(round(value / values[0], 4) for value in values)}."
        )
    if any(later <= earlier for earlier, later in zip(values, values[1:])):
        raise ValueError(
            f"`{name}` must be strictly increasing (finest scale first); received "
            f"{tuple(values)}."
        )
    return tuple(values)


def is_integer_scale(scale: float) -> bool:
    """Whether ``scale`` is an integer dilation (within ``INTEGER_TOLERANCE``)."""
    return abs(scale - round(scale)) < INTEGER_TOLERANCE


def geometric_ratio(scales) -> float | None:
    """Returns ``q`` if ``scales[i + 1] / scales[i] == q`` for all ``i`` (1 % relative), else None.

    A single scale has no ratio and returns ``None``.
    """
    scales = tuple(float(value) for value in scales)
    if len(scales) < 2:
        return None
    ratios = [later / earlier for earlier, later in zip(scales, scales[1:])]
    if max(ratios) - min(ratios) > 1e-2 * ratios[0]:
        return None
    return float(np.mean(ratios))


def dilated_size(kernel_size: int, scale: float) -> int:
    """Side of the pixel window that holds a ``kernel_size`` kernel dilated by ``scale``."""
    return 2 * int(np.ceil(scale * (kernel_size - 1) / 2 - INTEGER_TOLERANCE)) + 1


def _interpolation_weights_1d(kernel_size: int, scale: float) -> np.ndarray:
    """``(kernel_size, size)`` weights placing tap ``m`` at offset ``scale * m`` (centred)."""
    size = dilated_size(kernel_size, scale)
    grid = np.arange(size, dtype=np.float64) - (size - 1) / 2
    targets = scale * (np.arange(kernel_size, dtype=np.float64) - (kernel_size - 1) / 2)

    def covariance(delta):
        return np.sinc(2.0 * INTERPOLATION_BANDWIDTH * delta)

    gram = covariance(grid[:, None] - grid[None, :]) + INTERPOLATION_RIDGE * np.eye(size)
    weights = np.zeros((kernel_size, size))
    for tap, target in enumerate(targets):
        nearest = int(np.argmin(np.abs(grid - target)))
        if abs(grid[nearest] - target) < INTEGER_TOLERANCE:
            weights[tap, nearest] = 1.0
        else:
            weights[tap] = np.linalg.solve(gram, covariance(grid - target))
    return weights


@functools.lru_cache(maxsize=64)
def _scale_kernel_basis_cached(kernel_size: tuple, scale: float) -> np.ndarray:
    rows = _interpolation_weights_1d(kernel_size[0], scale)
    cols = _interpolation_weights_1d(kernel_size[1], scale)
    basis = np.einsum("mp,nq->pqmn", rows, cols).astype(np.float32)
    basis.setflags(write=False)
    return basis


def scale_kernel_basis(kernel_size, scale: float) -> np.ndarray:
    """Linear map from a ``(kh, kw)`` kernel to the same kernel at ``scale``.

    Returns a float32 array of shape ``(kh_s, kw_s, kh, kw)`` with
    ``kh_s = dilated_size(kh, scale)``: the kernel at ``scale`` is
    ``einsum("pqmn,mn...->pq...", basis, kernel)``. For integer ``scale`` this is an exact
    dilation (zeros between taps); otherwise see the module docstring.
    """
    if isinstance(kernel_size, numbers.Integral):
        kernel_size = (int(kernel_size), int(kernel_size))
    return _scale_kernel_basis_cached(tuple(int(k) for k in kernel_size), float(scale)).copy()


RESIZE_METHODS = ("bicubic", "bilinear", "area", "nearest")


def rescale(images, factor: float, method: str = "bicubic", antialias: bool = True) -> np.ndarray:
    """Rescales the spatial axes 1 and 2 of ``images`` by ``factor`` (``< 1`` shrinks).

    Works on image batches ``(batch, height, width, channels)`` and on scale feature maps
    ``(batch, height, width, num_scales, channels)`` (every scale is resized alike). The new
    size is ``round(size * factor)``; the pixel grids are aligned at pixel centres (half-pixel
    convention), so down-scaling by an integer ratio of a size divisible by it is a
    shift-invariant filter followed by decimation, which dilated kernels commute with exactly.

    Args:
        images: array-like of rank 4 or 5.
        factor: positive zoom factor, e.g. ``0.5`` halves height and width.
        method: ``"bicubic"`` (default), ``"bilinear"``, ``"area"`` or ``"nearest"``.
        antialias: low-pass filter when shrinking (``keras.ops.image.resize(antialias=...)``).

    Returns:
        float32 NumPy array with the resized spatial axes.
    """
    import keras  # local: the basis functions above are NumPy-only

    check_choice(method, RESIZE_METHODS, "method")
    array = np.asarray(images, dtype=np.float32)
    if array.ndim not in (4, 5):
        raise ValueError(
            "`images` must have rank 4 (batch, height, width, channels) or 5 (batch, height, "
            f"width, num_scales, channels); received shape {array.shape}."
        )
    if not (np.isfinite(factor) and factor > 0):
        raise ValueError(f"`factor` must be a positive number; received {factor!r}.")
    height, width = array.shape[1:3]
    size = (max(1, int(round(height * factor))), max(1, int(round(width * factor))))
    merged = array.reshape(array.shape[:3] + (-1,))
    resized = keras.ops.image.resize(
        merged, size, interpolation="area" if method == "area" else method,
        antialias=antialias and method != "nearest",
    )
    resized = np.asarray(keras.ops.convert_to_numpy(resized), dtype=np.float32)
    return resized.reshape(resized.shape[:3] + array.shape[3:])


class ScaleGroup(GroupAction):
    """The scale semigroup on a grid ``scales``, as used by :func:`check_equivariance`.

    The tested elements are the ordered pairs of grid scales ``s_i < s_j``, named
    ``"{s_i}->{s_j}"`` (e.g. ``"1->2"``). Element ``"s_i->s_j"`` shrinks images by
    ``r = s_j / s_i`` (:func:`rescale`) and, on a scale feature map, also shifts the scale axis
    by ``j - i`` (entries shifted in past the coarsest scale are zero). The DISCO definition of
    the equivariance error is then measured for that pair only:

        ``|| L(rescale(x, 1/r))[..., i, :] - rescale(L(x), 1/r)[..., j, :] ||_2 / || ... ||_2``

    (relative L2) over a central crop that leaves out ``crop`` of the height and width on each
    side (the zero-padded image border is not scale-equivariant). Outputs without a scale axis
    are compared whole (spatial maps: rescaled; vectors, e.g. logits: invariance).

    Scale feature-map *inputs* (checking a group convolution alone) need a geometric grid, so
    that a shift of the scale axis is a rescaling. Exactness: integer ratios are exact for
    dilation-based layers (float round-off), up to the scale boundary (a group convolution with
    ``scale_size > 1`` feeding on real coarser scales); non-integer ratios are approximate and
    meaningful only on band-limited inputs such as
    :func:`keras_equivariant.equivariance.smooth_random_images`. Heights and widths divisible
    by every integer ratio keep the resampled pixel grids aligned.

    ``check_equivariance(..., group="scale")`` binds the grid of the first scale layer (e.g.
    :class:`keras_equivariant.layers.ScaleConv2D`) found in the layer or model; pass a
    ``ScaleGroup(...)`` to choose the grid, resize method or crop yourself.

    Args:
        scales: the scale grid (see :func:`check_scales`). Default ``(1, 2)``.
        method: resize method of :func:`rescale`. Default ``"bicubic"``.
        antialias: whether shrinking low-pass filters first. Default ``True``.
        crop: fraction of the height and width left out on each side, in ``[0, 0.5)``.
            Default ``0.25`` (the central half is compared).

    Example:

    >>> layer = keras_equivariant.layers.ScaleConv2D(4, 3, scales=(1, 2, 4))
    >>> images = smooth_random_images(2, 64)
    >>> check_equivariance(layer, images, group="scale").errors  # doctest: +SKIP
    {'1->2': 1.2e-07, '1->4': 1.1e-07, '2->4': 1.2e-07}
    """

    def __init__(self, scales=(1, 2), method="bicubic", antialias=True, crop=0.25):
        self.scales = check_scales(scales)
        self.method = check_choice(method, RESIZE_METHODS, "method")
        self.antialias = bool(antialias)
        if isinstance(crop, bool) or not isinstance(crop, numbers.Real) or not 0 <= crop < 0.5:
            raise ValueError(f"`crop` must be a fraction in [0, 0.5); received {crop!r}.")
        self.crop = float(crop)
        self.name = "scale"
        self.order = len(self.scales)
        self._pairs = {
            f"{self.scales[i]:.3g}->{self.scales[j]:.3g}": (i, j)
            for i in range(self.order)
            for j in range(i + 1, self.order)
        }

    def elements(self) -> tuple[str, ...]:
        return tuple(self._pairs)

    def pair(self, element: str) -> tuple[int, int]:
        """The grid indices ``(i, j)`` of element ``"s_i->s_j"``."""
        check_choice(element, self.elements(), "scale pair")
        return self._pairs[element]

    def ratio(self, element: str) -> float:
        i, j = self.pair(element)
        return self.scales[j] / self.scales[i]

    def transform_images(self, images, element):
        return rescale(images, 1.0 / self.ratio(element), self.method, self.antialias)

    def transform_features(self, features, element):
        features = np.asarray(features, dtype=np.float32)
        if features.shape[3] != self.order:
            raise ValueError(
                f"The scale axis (axis 3) must have {self.order} entries for scales="
                f"{self.scales}; received shape {features.shape}."
            )
        i, j = self.pair(element)
        shift = j - i
        if shift and self.order > 2:
            ratios = [
                self.scales[k + shift] / self.scales[k] for k in range(self.order - shift)
            ]
            if max(ratios) - min(ratios) > 1e-2 * ratios[0]:
                raise ValueError(
                    f"Shifting the scale axis by {shift} is a rescaling only on a geometric "
                    f"grid; scales={self.scales} give ratios {ratios}. Check a layer on images "
                    "(rank-4 inputs) or use a geometric grid such as (1, 2, 4)."
                )
        rescaled = rescale(features, 1.0 / self.ratio(element), self.method, self.antialias)
        shifted = np.zeros_like(rescaled)
        shifted[:, :, :, : self.order - shift] = rescaled[:, :, :, shift:]
        return shifted

    def comparison_mask(self, element, height, width):
        """Central crop leaving out ``crop`` of the height and width on each side."""
        mask = np.zeros((height, width), dtype=bool)
        top, left = int(round(self.crop * height)), int(round(self.crop * width))
        mask[top : height - top, left : width - left] = True
        return mask

    def relative_error(self, element, actual, expected, reference=None) -> float:
        """Relative L2 error of ``actual`` against ``expected`` for one scale pair.

        Spatial outputs are compared on :meth:`comparison_mask`; scale feature maps only at the
        finer scale ``i`` of the pair (where ``expected`` holds the rescaled scale ``j``).
        """
        if actual.ndim >= 4:
            mask = self.comparison_mask(element, actual.shape[1], actual.shape[2])
            actual, expected = actual[:, mask], expected[:, mask]
            if actual.ndim == 4:  # (batch, pixels, num_scales, channels)
                index = self.pair(element)[0]
                actual, expected = actual[:, :, index], expected[:, :, index]
        norm = float(np.linalg.norm(expected))
        return float(np.linalg.norm(actual - expected)) / max(norm, np.finfo(np.float32).tiny)

    def bind(self, layer_or_model):
        """The group on the scale grid of the first scale layer in ``layer_or_model`` (the first
        ``group_action`` that is a ``ScaleGroup``, e.g. of a ``ScaleConv2D``).

        Keeps ``self`` if there is none or if it has the same grid.
        """
        for action in layer_group_actions(layer_or_model):
            if type(action) is ScaleGroup:
                if action.scales == self.scales:
                    return self
                return ScaleGroup(action.scales, self.method, self.antialias, self.crop)
        return self


register_group(ScaleGroup())


class RotationScaleGroup(GroupAction):
    """The product of a rotation group and the scale grid, as used by ``check_equivariance``.

    Acts on the scale-major layout of :class:`keras_equivariant.layers.RotationScaleConv2D`,
    ``(batch, height, width, num_scales * |G|, channels)`` with index ``s * |G| + g``. Elements
    are those of the rotation group (``"rot90"``, ``"flip"``, ...: every scale is rotated and
    its rotation axis permuted, errors measured as for :class:`RotationGroup`) followed by the
    scale pairs of :class:`ScaleGroup` (``"1->2"``, ...: relative L2 at the finer scale of the
    pair, over a central crop).

    ``check_equivariance(..., group="C4xscale")`` (also ``"D4xscale"``, ``"C8xscale"``) binds
    the grid of the first ``RotationScaleConv2D`` in the layer or model.

    Args:
        rotation: ``"C4"``, ``"D4"`` or ``"C8"``.
        scales: the scale grid. Default ``(1, 2)``.
        **kwargs: ``method``, ``antialias``, ``crop`` of :class:`ScaleGroup`.
    """

    def __init__(self, rotation="C4", scales=(1, 2), **kwargs):
        self.rotations = RotationGroup(rotation)
        self.scale_group = ScaleGroup(scales, **kwargs)
        self.name = f"{rotation}xscale"
        self.order = self.rotations.order * self.scale_group.order

    def elements(self):
        return self.rotations.elements() + self.scale_group.elements()

    def _is_scale(self, element):
        return element in self.scale_group.elements()

    def transform_images(self, images, element):
        if self._is_scale(element):
            return self.scale_group.transform_images(images, element)
        return self.rotations.transform_images(images, element)

    def transform_features(self, features, element):
        features = np.asarray(features, dtype=np.float32)
        batch, height, width, order, channels = features.shape
        if order != self.order:
            raise ValueError(
                f"The group axis (axis 3) must have num_scales * |G| = {self.order} entries "
                f"for {self.name} on scales={self.scale_group.scales}; received shape "
                f"{features.shape}."
            )
        num_scales, num_rotations = self.scale_group.order, self.rotations.order
        if self._is_scale(element):
            view = features.reshape(batch, height, width, num_scales, num_rotations * channels)
            moved = self.scale_group.transform_features(view, element)
            return moved.reshape(moved.shape[:3] + (order, channels))
        view = features.reshape(batch, height, width, num_scales, num_rotations, channels)
        rotated = [
            self.rotations.transform_features(view[:, :, :, index], element)
            for index in range(num_scales)
        ]
        return np.stack(rotated, axis=3).reshape(batch, height, width, order, channels)

    def comparison_mask(self, element, height, width):
        if self._is_scale(element):
            return self.scale_group.comparison_mask(element, height, width)
        return self.rotations.comparison_mask(element, height, width)

    def relative_error(self, element, actual, expected, reference=None):
        if not self._is_scale(element):
            return None
        if actual.ndim == 5:
            view = actual.shape[:3] + (self.scale_group.order, -1)
            actual, expected = actual.reshape(view), expected.reshape(view)
        return self.scale_group.relative_error(element, actual, expected)

    def bind(self, layer_or_model):
        """The product group on the grid of the first layer in ``layer_or_model`` whose
        ``group_action`` is a ``RotationScaleGroup`` of the same rotation group (e.g. a
        ``RotationScaleConv2D``)."""
        for action in layer_group_actions(layer_or_model):
            if isinstance(action, RotationScaleGroup) and (
                    action.rotations.name == self.rotations.name):
                if action.scale_group.scales == self.scale_group.scales:
                    return self
                group = self.scale_group
                return RotationScaleGroup(
                    self.rotations.name, action.scale_group.scales, method=group.method,
                    antialias=group.antialias, crop=group.crop,
                )
        return self


for _rotation in ("C4", "D4", "C8"):
    register_group(RotationScaleGroup(_rotation))
