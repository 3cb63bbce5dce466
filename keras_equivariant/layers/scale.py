"""Scale-equivariant convolution with one set of weights shared across all scales."""

from __future__ import annotations

import numbers

import keras
import numpy as np
from keras import ops

from keras_equivariant.groups.scale import (
    check_scales,
    dilated_size,
    geometric_ratio,
    is_integer_scale,
    scale_kernel_basis,
)
from keras_equivariant.utils.validation import check_choice, check_positive_int


def _odd_pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, numbers.Integral) else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"`{name}` must be an int or a pair of ints; received {value!r}.")
    for item in pair:
        check_positive_int(item, name)
        if item % 2 == 0:
            raise ValueError(
                f"`{name}` must be odd so that the kernel stays centred when it is dilated to "
                f"other scales; received {value!r}. Use e.g. {item + 1}."
            )
    return int(pair[0]), int(pair[1])


def _positive_pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, numbers.Integral) else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"`{name}` must be an int or a pair of ints; received {value!r}.")
    return check_positive_int(pair[0], name), check_positive_int(pair[1], name)


def _gaussian_1d(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3.0 * sigma)))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (weights / weights.sum()).astype(np.float32)


class BaseScaleConv(keras.layers.Layer):
    """Shared machinery of the scale convolutions (:class:`ScaleConv2D`,
    :class:`RotationScaleConv2D`): arguments, checks, scale windows, dilated/interpolated
    convolutions per scale. Subclasses define the kernel (``_build_kernel``, ``_conv_kernel``)
    and the group-axis layout; this base class is not a layer to use on its own.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        scales=(1, 2),
        scale_size=1,
        strides=1,
        padding="same",
        scale_padding="zeros",
        blur_sigma=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int(filters, "filters")
        self.kernel_size = _odd_pair(kernel_size, "kernel_size")
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
        self.strides = _positive_pair(strides, "strides")
        self.padding = check_choice(padding, ("same", "valid"), "padding")
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
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dilated_sizes = tuple(
            (dilated_size(self.kernel_size[0], scale), dilated_size(self.kernel_size[1], scale))
            for scale in self.scales
        )

    @property
    def num_scales(self) -> int:
        return len(self.scales)

    # ------------------------------------------------------------------ shapes and checks
    def _check_input_shape(self, input_shape):
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
            if self.num_scales > 1 and self.kernel_size == (1, 1):
                raise ValueError(
                    "kernel_size=1 is too small to be dilated: every scale of the lifting layer "
                    f"would apply the same kernel (scales={self.scales}). Use kernel_size >= 3."
                )
        largest = self.dilated_sizes[-1]
        for axis, name in ((1, "height"), (2, "width")):
            size = input_shape[axis]
            if size is not None and size < largest[axis - 1]:
                raise ValueError(
                    f"The input {name} ({size}) is smaller than the largest dilated kernel "
                    f"({largest[0]}x{largest[1]} for kernel_size={self.kernel_size} at scale "
                    f"{self.scales[-1]:g}); received shape {input_shape}. Use fewer or smaller "
                    "scales, a smaller kernel, or a larger input."
                )
        return input_shape

    def build(self, input_shape):
        axes = {-1: input_shape[-1]}
        if len(input_shape) == 5:
            axes[3] = input_shape[3]
        input_shape = self._check_input_shape(input_shape)
        self.input_spec = keras.InputSpec(ndim=len(input_shape), axes=axes)
        self._lifting = len(input_shape) == 4
        self._build_kernel(int(input_shape[-1]))
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.filters,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        # Constant bases (NumPy, not weights: neither trained nor saved).
        self._bases = [scale_kernel_basis(self.kernel_size, scale) for scale in self.scales]
        self._blur_kernels = [
            _gaussian_1d(self.blur_sigma * np.sqrt(scale**2 - 1.0))
            if self._lifting and self.blur_sigma and scale > 1
            else None
            for scale in self.scales
        ]

    def _build_kernel(self, in_channels):
        self.kernel = self.add_weight(
            name="kernel",
            shape=(*self.kernel_size, self.scale_size * in_channels, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    def _conv_kernel(self):
        """The kernel at scale 1 that the convolutions use: ``(kh, kw, scale_size * C, F)``.

        Here the learned kernel itself; :class:`RotationScaleConv2D` returns its rotated copies.
        """
        return self.kernel

    def _output_size(self, input_shape):
        sizes = []
        for axis in (1, 2):
            size = input_shape[axis]
            stride = self.strides[axis - 1]
            if size is None:
                sizes.append(None)
            elif self.padding == "same":
                sizes.append(-(-size // stride))
            else:
                sizes.append((size - self.dilated_sizes[-1][axis - 1]) // stride + 1)
        return sizes

    def compute_output_shape(self, input_shape):
        input_shape = self._check_input_shape(input_shape)
        return (input_shape[0], *self._output_size(input_shape), self.num_scales, self.filters)

    # ------------------------------------------------------------------ computation
    def expanded_kernels(self):
        """Returns the dense kernel of every scale, a list of ``(kh_s, kw_s, C, filters)`` tensors.

        ``kh_s = dilated_size(kh, scale)``; integer scales give the zero-interleaved (dilated)
        copy of :attr:`kernel`. Useful to fold the layer into plain convolutions.
        """
        kernel = self._conv_kernel()
        return [self._expand(kernel, index) for index in range(self.num_scales)]

    def _expand(self, kernel, index):
        basis = ops.convert_to_tensor(self._bases[index], dtype=kernel.dtype)
        return ops.einsum("pqmn,mncf->pqcf", basis, kernel)

    def _spatial_input(self, inputs, index):
        """Pads or crops the spatial axes so a 'valid' conv at scale ``index`` gives the output."""
        height, width = self.dilated_sizes[index]
        if self.padding == "same":
            pads = ((height - 1) // 2, (width - 1) // 2)
            if pads == (0, 0):
                return inputs
            return ops.pad(inputs, ((0, 0), (pads[0], pads[0]), (pads[1], pads[1]), (0, 0)))
        largest = self.dilated_sizes[-1]
        crops = ((largest[0] - height) // 2, (largest[1] - width) // 2)
        if crops == (0, 0):
            return inputs
        return inputs[:, crops[0] : -crops[0] or None, crops[1] : -crops[1] or None, :]

    def _blur(self, inputs, weights):
        channels = inputs.shape[-1]
        tiled = np.tile(weights[:, None, None, None], (1, 1, channels, 1))
        vertical = ops.convert_to_tensor(tiled, dtype=inputs.dtype)
        horizontal = ops.convert_to_tensor(
            np.transpose(tiled, (1, 0, 2, 3)), dtype=inputs.dtype
        )
        blurred = ops.depthwise_conv(inputs, vertical, padding="same")
        return ops.depthwise_conv(blurred, horizontal, padding="same")

    def _scale_windows(self, inputs):
        """Input scales ``i .. i + scale_size - 1`` of every output scale, merged into channels.

        Returns ``(window, num_taps)`` pairs; windows that run past the coarsest scale hold only
        the ``num_taps`` existing scales (the missing ones are handled by the kernel, see
        :meth:`_window_kernel`). The scale axis is merged into channels with a free reshape and
        cut with ``split``: a strided slice of it would be ~4x slower to differentiate on CPU.
        """
        shape = ops.shape(inputs)
        channels = inputs.shape[-1]
        merged = ops.reshape(inputs, (-1, shape[1], shape[2], self.num_scales * channels))
        pieces = None if self.num_scales == 1 else ops.split(merged, self.num_scales, axis=-1)
        windows = []
        for index in range(self.num_scales):
            stop = min(index + self.scale_size, self.num_scales)
            if index == 0 and stop == self.num_scales:
                window = merged
            elif stop - index == 1:
                window = pieces[index]
            else:
                window = ops.concatenate(pieces[index:stop], axis=-1)
            windows.append((window, stop - index))
        return windows

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

    def _conv_at_scale(self, inputs, kernel, index, num_taps):
        scale = self.scales[index]
        if is_integer_scale(scale) and self.strides == (1, 1):
            kernel = self._window_kernel(kernel, num_taps)
            if self.padding == "valid":
                inputs = self._spatial_input(inputs, index)
            return ops.conv(
                inputs, kernel, strides=1, padding=self.padding, dilation_rate=int(round(scale))
            )
        if scale != 1:
            kernel = self._expand(kernel, index)
        kernel = self._window_kernel(kernel, num_taps)
        return ops.conv(
            self._spatial_input(inputs, index), kernel, strides=self.strides, padding="valid"
        )

    def _convolve_scales(self, inputs):
        """All scales without bias: ``(B, H', W', num_scales, kernel output channels)``."""
        kernel = self._conv_kernel()
        if self._lifting:
            windows = [
                (inputs if blur is None else self._blur(inputs, blur), 1)
                for blur in self._blur_kernels
            ]
        else:
            windows = self._scale_windows(inputs)
        outputs = [
            self._conv_at_scale(window, kernel, index, num_taps)
            for index, (window, num_taps) in enumerate(windows)
        ]
        return ops.stack(outputs, axis=3)

    def call(self, inputs):
        outputs = self._convolve_scales(inputs)
        if self.use_bias:
            outputs = outputs + self.bias
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "scales": self.scales,
                "scale_size": self.scale_size,
                "strides": self.strides,
                "padding": self.padding,
                "scale_padding": self.scale_padding,
                "blur_sigma": self.blur_sigma,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
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
    per scale pair by ``check_equivariance(layer, x, group="scale")`` (DISCO's definition:
    relative L2 over a central crop; :class:`keras_equivariant.groups.ScaleGroup`).

    **Exact vs approximate** (measured, float32, random weights and biases):

    - Integer ratios (``scales=(1, 2)``, ``(1, 2, 4)``): the kernels are dilated copies of
      the same weights, and a dilated correlation commutes exactly with every down-scaling that
      is a shift-invariant filter plus decimation (area, bilinear, bicubic; antialiased or not).
      Lifting and group convolutions: **~1.5e-7** for ``1->2``, ``2->4`` and ``1->4`` (64x64
      input, heights divisible by the ratio). The paper's unshared three-branch layer gives
      1.2-2.1 on the same measure, and one shared kernel applied to resized inputs
      (SI-ConvNet style) 0.011-0.03.
    - Non-integer ratios (e.g. ``scales=(1, 2 ** 0.5, 2)``): sub-pixel taps are spread by a
      band-limited least-squares interpolation
      (:func:`keras_equivariant.groups.scale_kernel_basis`),
      which is approximate: **0.6-0.8 %** (3x3) and **1.1-1.6 %** (5x5) for ``1->1.41`` and
      ``1.41->2`` on smooth input (96x96, 8x upsampled noise, bicubic antialiased resize);
      ``1->2`` in the same grid stays exact. (For comparison, equivariance-notes §5c: SESN's
      Hermite basis 15-35 %, DISCO's fitted basis 4-5 %, 5x5 kernels on smooth input.)
    - **Non-linearities.** A pointwise non-linearity commutes with decimation but not with an
      interpolating resize, so stacks ``ScaleConv2D -> ReLU -> ScaleConv2D`` are approximately
      equivariant under :func:`rescale`: ``1->2`` about 0.5 % on smooth input, 4.5 % on CIFAR
      images. :class:`GroupBatchNormalization` (inference) is affine and keeps exactness;
      :class:`GroupPooling` over the scale axis gives scale-invariant fields (up to the scale
      boundary below).
    - **Scale boundary.** The scale axis is finite: output scale ``i`` needs input scales
      ``i .. i + scale_size - 1``; beyond the coarsest scale they are zeros
      (``scale_padding="zeros"``, Dirichlet: exact for the zero-filling scale shift of
      :class:`ScaleGroup`, i.e. for an isolated layer) or copies of the coarsest scale
      (``"replicate"``, Neumann). Fed by real coarser features (a network), the top
      ``scale_size - 1`` output scales are therefore **only approximate** (errors of order 1
      at the pairs that end there). The lifting layer has no such boundary.
    - **Space.** The zero-padded image border is not equivariant (compare central crops). With
      ``strides > 1`` all scales sample the same grid (pixel ``n * stride``), which aligns
      with the rescaled grid when sizes are divisible by ``stride * r``.
    - ``blur_sigma`` (DSS Gaussian scale-space, lifting only): the input of scale ``s`` is
      blurred by a Gaussian of ``blur_sigma * sqrt(s**2 - 1)`` pixels, so a dilated kernel sees
      a signal smoothed to its own scale, as if down-scaling blurred the image first (DSS,
      Worrall & Welling 2019). It trades the exact linear ``1->2`` relation (1.4 % on smooth
      input, 8 % on CIFAR with ``blur_sigma=0.5``) for features that survive non-linearities
      and resizing better: a 2-layer, scale- and globally max-pooled net on (1, 2, 4, 8) is
      invariant to 2x shrinking of smooth objects to 1-6 % with ``blur_sigma=0.5`` against
      10-20 % without (a plain CNN: 170-200 %). ``None`` (default) keeps the exact relation.

    **Weights.** ONE kernel of shape ``(kh, kw, scale_size * C_in, filters)`` (interscale tap
    major) and one bias per filter, shared by all scales: the parameter count does not depend on
    ``len(scales)``. Kernels for the scales are expanded once per call from constant bases.

    **Cost.** One convolution per scale, on the scale windows cut from a free reshape (no
    transposes): integer scales run as dilated convolutions (no expansion, dilation needs
    ``strides=1``; with strides the zero-interleaved kernel is used), non-integer scales a dense
    ``dilated_size(k, s)`` kernel. See ``benchmarks/layer_cost.py``.

    **Export.** :meth:`expanded_kernels` gives each scale's dense kernel (for folding into plain
    ``Conv2D``); ``model.save()`` and ``model.export()`` (SavedModel) reproduce the outputs.

    Args:
        filters: number of output fields (channels per scale).
        kernel_size: odd int or pair of odd ints, the size of the kernel at scale 1.
        scales: strictly increasing scales ``>= 1``, finest first. Default ``(1, 2)``.
        scale_size: number of interscale taps (rank-5 input only), ``1 <= scale_size <=
            len(scales)``. Default 1.
        strides: int or pair; the spatial stride, the same at every scale.
        padding: ``"same"`` or ``"valid"`` (valid with respect to the largest dilated kernel,
            so all scales have the same output size).
        scale_padding: ``"zeros"`` or ``"replicate"``: how missing coarser scales are filled.
        blur_sigma: ``None`` or a float ``>= 0``: DSS scale-space pre-blur of the lifting input.
        use_bias: whether to add one bias per filter (shared over scales).
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
        kernel_constraint, bias_constraint: as in ``keras.layers.Conv2D``. The fan-in of the
        default ``"glorot_uniform"`` is ``kh * kw * scale_size * C_in``.

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
