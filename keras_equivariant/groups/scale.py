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
  error of one layer is given in :class:`keras_equivariant.layers.ScaleConv2D`.

``scale_kernel_basis`` returns this linear map as a constant array; layers expand their
coefficients through it once per call (never stored as weights).
"""

from __future__ import annotations

import functools
import numbers

import numpy as np

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
