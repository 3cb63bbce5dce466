"""Scale-equivariant convolution with one set of weights shared across all scales."""

from __future__ import annotations

import numbers

import keras
import numpy as np
from keras import ops

from keras_equivariant.groups.scale import (
    ScaleGroup,
    check_scales,
    dilated_size,
    geometric_ratio,
    is_integer_scale,
    scale_kernel_basis,
)
from keras_equivariant.layers.base import GroupConv2D, PlainConvolution
from keras_equivariant.utils.validation import check_choice, check_positive_int


def _gaussian_1d(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3.0 * sigma)))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (weights / weights.sum()).astype(np.float32)


class BaseScaleConv(GroupConv2D):
    """Scale machinery shared by :class:`ScaleConv2D` and :class:`RotationScaleConv2D`: the
    scale grid, interscale windows, dilated/interpolated kernels per scale and the DSS blur.
    Subclasses define the learned kernel (``_build_kernel``, ``_conv_kernel``) and the group
    axis; this base class is not a layer to use on its own.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        scales=(1, 2),
        scale_size=1,
        scale_padding="zeros",
        blur_sigma=None,
        **kwargs,
    ):
        super().__init__(filters, kernel_size, **kwargs)
        for size in self.kernel_pair:
            if size % 2 == 0:
                raise ValueError(
                    "`kernel_size` must be odd so that the kernel stays centred when it is "
                    f"dilated to other scales; received {kernel_size!r}. Use e.g. {size + 1}."
                )
        self.scales = check_scales(scales)
        self.scale_size = check_positive_int(scale_size, "scale_size")
        if self.scale_size > len(self.scales):
            raise ValueError(
                f"`scale_size` must be <= len(scales)={len(self.scales)}; received "
                f"{scale_size}."
            )
        if self.scale_size > 1 and geometric_ratio(self.scales) is None:
            raise ValueError(
                "`scale_size > 1` mixes neighbouring scales, which is equivariant only on a "
                f"geometric grid (constant ratio scales[i+1]/scales[i]); received scales="
                f"{self.scales}. Use e.g. (1, 2, 4) or (1, 1.41, 2, 2.83)."
            )
        self.scale_padding = check_choice(scale_padding, ("zeros", "replicate"), "scale_padding")
        if blur_sigma is not None:
            if isinstance(blur_sigma, bool) or not isinstance(blur_sigma, numbers.Real) or not (
                np.isfinite(blur_sigma) and blur_sigma >= 0
            ):
                raise ValueError(
                    f"`blur_sigma` must be None or a finite float >= 0; received {blur_sigma!r}."
                )
            blur_sigma = float(blur_sigma)
        self.blur_sigma = blur_sigma
        self.dilated_sizes = tuple(
            (dilated_size(self.kernel_pair[0], scale), dilated_size(self.kernel_pair[1], scale))
            for scale in self.scales
        )
        self._scale_group = ScaleGroup(self.scales)

    @property
    def num_scales(self) -> int:
        return len(self.scales)

    @property
    def effective_kernel_size(self):
        return tuple(
            rate * (size - 1) + 1 for rate, size in zip(self.dilation_pair, self.dilated_sizes[-1])
        )

    # ------------------------------------------------------------------ shapes and checks
    def _check_scale_input_shape(self, input_shape):
        """Checks the ``(B, H, W, C)`` or ``(B, H, W, num_scales, C')`` view of the input."""
        input_shape = tuple(input_shape)
        if len(input_shape) not in (4, 5):
            raise ValueError(
                f"{type(self).__name__} expects a rank-4 image batch (batch, height, width, "
                "channels) or a rank-5 scale feature map (batch, height, width, num_scales, "
                f"channels); received shape {input_shape}."
            )
        if input_shape[-1] is None:
            raise ValueError(
                f"The channel axis of the input must be known; received shape {input_shape}."
            )
        if len(input_shape) == 5 and input_shape[3] != self.num_scales:
            raise ValueError(
                f"The scale axis (axis 3) of a rank-5 input must have len(scales)="
                f"{self.num_scales} entries for scales={self.scales}; received shape "
                f"{input_shape}. Use the same `scales` as the previous scale layer."
            )
        if len(input_shape) == 4:
            if self.scale_size != 1:
                raise ValueError(
                    "`scale_size` counts interscale taps of a rank-5 scale feature map; a rank-4 "
                    f"image has no scale axis, so use scale_size=1 (received {self.scale_size})."
                )
            if self.num_scales > 1 and self.kernel_pair == (1, 1):
                raise ValueError(
                    "kernel_size=1 is too small to be dilated: every scale of the lifting layer "
                    f"would apply the same kernel (scales={self.scales}). Use kernel_size >= 3."
                )
        largest = self.effective_kernel_size
        for axis, name in ((1, "height"), (2, "width")):
            size = input_shape[axis]
            if size is not None and size < largest[axis - 1]:
                raise ValueError(
                    f"The input {name} ({size}) is smaller than the largest dilated kernel "
                    f"({largest[0]}x{largest[1]} for kernel_size={self.kernel_size} at scale "
                    f"{self.scales[-1]:g}); received shape {input_shape}. Use fewer or smaller "
                    "scales, a smaller kernel, or a larger input."
                )

    def _check_input_shape(self, input_shape):
        self._check_scale_input_shape(input_shape)

    def _build_kernel(self, input_shape):
        channels = int(input_shape[-1]) if len(input_shape) == 4 else int(
            np.prod(input_shape[3:])) // self.num_scales
        self._scale_channels = channels  # flat input channels of one input scale
        self._build_scale_kernel(channels)
        # Constant bases (NumPy, not weights: neither trained nor saved).
        self._bases = [scale_kernel_basis(self.kernel_pair, scale) for scale in self.scales]
        self._blur_kernels = [
            _gaussian_1d(self.blur_sigma * np.sqrt(scale**2 - 1.0))
            if self._lifting and self.blur_sigma and scale > 1
            else None
            for scale in self.scales
        ]

    def _build_scale_kernel(self, in_channels):
        self.kernel = self.add_weight(
            name="kernel",
            shape=(*self.kernel_pair, self.scale_size * in_channels, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    def _conv_kernel(self):
        """The kernel at scale 1 that the convolutions use: ``(kh, kw, scale_size * C, F)``.

        Here the learned kernel itself; :class:`RotationScaleConv2D` returns its rotated copies.
        """
        return self.kernel

    # ------------------------------------------------------------------ kernel expansion
    def expanded_kernels(self):
        """Returns the dense kernel of every scale, a list of ``(kh_s, kw_s, C, filters)`` tensors.

        ``kh_s = dilated_size(kh, scale)``; integer scales give the zero-interleaved (dilated)
        copy of :attr:`kernel`. (:meth:`plain_convolutions` gives the convolutions to fold.)
        """
        kernel = self._conv_kernel()
        return [self._expand(kernel, index) for index in range(self.num_scales)]

    def _expand(self, kernel, index):
        basis = ops.convert_to_tensor(self._bases[index], dtype=kernel.dtype)
        return ops.einsum("pqmn,mncf->pqcf", basis, kernel)

    def _window_kernel(self, kernel, num_taps):
        """The kernel for a window with only ``num_taps`` of the ``scale_size`` input scales.

        ``scale_padding="zeros"`` drops the taps of the missing scales (exactly what zero
        padding computes); ``"replicate"`` adds them onto the tap of the coarsest scale, which
        the missing scales would repeat.
        """
        if num_taps == self.scale_size:
            return kernel
        channels = kernel.shape[2] // self.scale_size
        kept = kernel[:, :, : num_taps * channels, :]
        if self.scale_padding == "zeros":
            return kept
        missing = ops.reshape(
            kernel[:, :, (num_taps - 1) * channels :, :],
            (kernel.shape[0], kernel.shape[1], self.scale_size - num_taps + 1, channels, -1),
        )
        return ops.concatenate(
            [kept[:, :, : (num_taps - 1) * channels, :], ops.sum(missing, axis=2)], axis=2
        )

    def _expanded_convolutions(self):
        """One convolution per output scale, on the window of input scales
        ``i .. i + scale_size - 1`` (merged into channels; windows that run past the coarsest
        scale hold only the existing scales, the missing ones are handled by
        :meth:`_window_kernel`). Integer scales run as dilated convolutions of the scale-1 kernel
        (no expansion; dilation needs ``strides=1``, with strides the zero-interleaved kernel is
        used), non-integer scales as a dense ``dilated_size(k, s)`` kernel."""
        kernel = self._conv_kernel()
        per_scale = self._scale_channels
        convolutions = []
        for index, scale in enumerate(self.scales):
            if self._lifting:
                channels, num_taps = (0, per_scale), 1
            else:
                stop = min(index + self.scale_size, self.num_scales)
                channels, num_taps = (index * per_scale, stop * per_scale), stop - index
            if is_integer_scale(scale) and self.strides_pair == (1, 1):
                scale_kernel = self._window_kernel(kernel, num_taps)
                dilation = tuple(rate * int(round(scale)) for rate in self.dilation_pair)
            else:
                scale_kernel = kernel if scale == 1 else self._expand(kernel, index)
                scale_kernel = self._window_kernel(scale_kernel, num_taps)
                dilation = self.dilation_pair
            convolutions.append(PlainConvolution(
                scale_kernel, None, self.strides_pair, dilation, None, channels,
                self._blur_kernels[index],
            ))
        return convolutions

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "scales": self.scales,
                "scale_size": self.scale_size,
                "scale_padding": self.scale_padding,
                "blur_sigma": self.blur_sigma,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_equivariant")
class ScaleConv2D(BaseScaleConv):
    """2D convolution equivariant to rescaling, with weights shared across all scales.

    **Group.** The scale semigroup discretised on the grid ``scales`` (finest first). The same
    learnable ``kernel_size`` kernel is applied at every scale ``s``, with its taps placed ``s``
    pixels apart (see :mod:`keras_equivariant.groups.scale`):

    - rank-4 input ``(B, H, W, C)``: **lifting** to the scale group,
      ``out[..., i, :] = conv(x, kernel dilated by scales[i])``.
    - rank-5 input ``(B, H, W, S, C)`` with ``S == len(scales)``: **scale-group convolution**
      with ``scale_size`` interscale taps,
      ``out[..., i, :] = sum_t conv(x[..., i + t, :], kernel[t] dilated by scales[i])``.
      This needs a geometric grid (constant ratio ``scales[i + 1] / scales[i]``) when
      ``scale_size > 1``.

    Down-scaling the input by a grid ratio ``r = scales[j] / scales[i]`` shifts the scale axis:
    ``layer(rescale(x, 1 / r))[..., i, :] == rescale(layer(x), 1 / r)[..., j, :]``, measured
    per scale pair by ``check_equivariance(layer, x, group="scale")`` (:attr:`group_action`).

    **Exact vs approximate.** Integer ratios (``scales=(1, 2, 4)``) are exact to float
    round-off (measured ~1.5e-7) for the lifting layer and for an isolated group convolution;
    non-integer ratios (e.g. ``(1, 2 ** 0.5, 2)``) are approximate (about 1 % on smooth input).
    The zero-padded image border, non-linearities between layers, the coarse end of the scale
    axis (``scale_size > 1`` fed by real coarser features) and ``blur_sigma`` make stacks only
    approximately equivariant. Measurements and their conditions: "Scale-equivariant layers" in
    ``docs/practical-notes.md``.

    **Padding.** The padding policy of every group convolution
    (:func:`keras_equivariant.layers.base.equivariant_padding`): the output grid is centred on
    the input grid, for the largest dilated kernel, and every scale shares that grid.
    Configurations that cannot be centred (an even stride on an input whose ``size -
    kernel`` is odd, e.g. stride 2 on a 32x32 input) raise a ``ValueError`` naming sizes that
    work (e.g. 33x33).

    **Tensor layout.** ``(batch, height, width, len(scales), filters)``, finest scale first.

    **Weights.** ONE kernel of shape ``(kh, kw, scale_size * C_in, filters)`` (interscale tap
    major) and one bias per filter, shared by all scales: the parameter count does not depend on
    ``len(scales)``. Kernels for the scales are expanded once per call from constant bases; one
    convolution runs per scale (:meth:`plain_convolutions`, also used by
    :func:`keras_equivariant.export.fold`).

    Args:
        filters: number of output fields (channels per scale).
        kernel_size: odd int or pair of odd ints, the size of the kernel at scale 1.
        scales: strictly increasing scales ``>= 1``, finest first. Default ``(1, 2)``.
        scale_size: number of interscale taps (rank-5 input only), ``1 <= scale_size <=
            len(scales)``. Default 1.
        strides: int or pair; the spatial stride, the same at every scale.
        padding: ``"same"`` or ``"valid"`` (valid with respect to the largest dilated kernel,
            so all scales have the same output size), both centred as above.
        dilation_rate: int or pair, an extra dilation of the kernel at every scale (scale
            ``s`` places taps ``dilation_rate * s`` pixels apart); cannot be combined with
            ``strides > 1``.
        activation: activation applied to the output (pointwise).
        scale_padding: ``"zeros"`` or ``"replicate"``: how missing coarser scales are filled.
        blur_sigma: ``None`` or a float ``>= 0``: DSS scale-space pre-blur of the lifting input
            (scale ``s`` sees the input blurred by ``blur_sigma * sqrt(s**2 - 1)`` pixels).
        use_bias: whether to add one bias per filter (shared over scales).
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
        kernel_constraint, bias_constraint: as in ``keras.layers.Conv2D``. The fan-in of the
            default ``"glorot_uniform"`` is ``kh * kw * scale_size * C_in``.
        **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Input shape:
        ``(batch, height, width, channels)`` (lifting) or
        ``(batch, height, width, len(scales), channels)`` (group conv).

    Output shape:
        ``(batch, new_height, new_width, len(scales), filters)``.

    Example:

    >>> images = np.random.rand(2, 32, 32, 3).astype("float32")
    >>> lifted = ScaleConv2D(8, 3, scales=(1, 2, 4))(images)
    >>> tuple(lifted.shape)
    (2, 32, 32, 3, 8)
    >>> features = ScaleConv2D(16, 3, scales=(1, 2, 4), scale_size=2)(lifted)
    >>> tuple(GroupPooling("max")(features).shape)  # scale-invariant fields
    (2, 32, 32, 16)
    >>> check_equivariance(ScaleConv2D(4, 3, scales=(1, 2)), images, group="scale").errors
    {'1->2': 1.4e-07}  # doctest: +SKIP
    """

    @property
    def group_action(self) -> ScaleGroup:
        """The scale group on this layer's grid (for ``check_equivariance``)."""
        return self._scale_group

    @property
    def group_axis_size(self) -> int:
        return self.num_scales
