"""The base of every group convolution of the library: :class:`GroupConv2D`.

It owns what all group convolutions share: the Keras arguments (ints or pairs, as
``keras.layers.Conv2D``), the activation, the bias (one per output field, shared over the group
axis), initializers, regularizers, constraints, ``get_config``, the output shape, and ONE padding
policy (:func:`equivariant_padding`). A subclass supplies only its group, its learned kernel and
that kernel's expansion into plain convolutions (:class:`PlainConvolution`); ``call`` runs those
plain convolutions, and :func:`keras_equivariant.export.fold` turns the same description into
``keras.layers.Conv2D`` layers, so a new group layer plugs into ``call``, ``fold`` and
``check_equivariance`` (through :attr:`GroupConv2D.group_action`) without patching them.

Flat channel layouts (a free reshape of the rank-5 tensors): the input ``(B, H, W, |G_in|, C)``
is read as ``(B, H, W, |G_in| * C)`` (group-major, channel ``h * C + c``); the plain convolutions'
outputs, concatenated along channels in order, are ``(B, H', W', |G| * filters)``, reshaped to
``(B, H', W', |G|, filters)``.
"""

from __future__ import annotations

import dataclasses
import numbers

import keras
import numpy as np
from keras import ops

from keras_equivariant.layers.convolution import convolve
from keras_equivariant.utils.validation import check_choice, check_positive_int

PADDING_MODES = ("same", "valid")


def normalize_pair(value, name: str, square: bool = False) -> tuple[int, int]:
    """An int or a pair of positive ints, as ``keras.layers.Conv2D`` accepts, as a pair.

    ``square=True`` (rotation layers) also requires both entries to be equal: a 90° rotation
    swaps height and width.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        pair = (value, value)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        pair = tuple(value)
    else:
        raise ValueError(f"`{name}` must be an integer or a pair of integers; received {value!r}.")
    pair = (check_positive_int(pair[0], name), check_positive_int(pair[1], name))
    if square and pair[0] != pair[1]:
        raise ValueError(
            f"`{name}` must be square, an integer or a pair of equal integers (rotation "
            f"equivariance needs the same value along height and width); received {value!r}."
        )
    return pair


def equivariant_padding(size, kernel_size, strides, padding):
    """Symmetric padding ``(before, after)`` that keeps the output grid centred on the input's.

    Every group convolution of the library pads this way. Rotating the input about its centre
    rotates the output about *its* centre, and shrinking the input by a factor ``r`` samples
    the shrunk output at the shrunk positions, exactly when the output grid is centred on the
    input grid: the total padding ``P`` is even (split equally on both sides) and
    ``(size + P - kernel_size) % strides == 0`` (the last window ends on the last padded pixel).
    ``"valid"`` takes the smallest such ``P >= 0``; ``"same"`` the smallest such ``P`` at least
    the padding of Keras' ``"same"`` (output ``ceil(size / strides)``; one pixel more for even
    kernels at stride 1, whose output grid sits on half-pixel positions). This is GroCo's
    ``same_equiv``/``valid_equiv``.

    Args:
        size: input height or width (a Python int; ``None`` is allowed only for ``strides=1``).
        kernel_size: effective (dilated) kernel size.
        strides: stride.
        padding: ``"same"`` or ``"valid"``.

    Returns:
        ``(before, after)`` pixel counts.

    Raises:
        ValueError: if no symmetric padding aligns the grid (an even stride with
            ``size - kernel_size`` odd, e.g. stride 2, kernel 3 and an even ``size``); the
            message names input sizes that work.
    """
    if size is None:
        if strides != 1:
            raise ValueError(
                f"Equivariant padding with strides={strides} needs a known spatial size; "
                "received None. Give the model input a static height and width."
            )
        size = kernel_size  # stride 1: the padding does not depend on the size
    if padding == "valid":
        minimum = 0
    else:
        output = -(-size // strides)
        minimum = max((output - 1) * strides + kernel_size - size, 0)
    for total in range(minimum, minimum + 2 * strides + 1):
        if total % 2 == 0 and (size + total - kernel_size) % strides == 0:
            return total // 2, total // 2
    working = " or ".join(str(candidate) for candidate in (size - 1, size + 1)
                          if candidate >= kernel_size)
    raise ValueError(
        f"No symmetric padding keeps exact equivariance for input size {size} with kernel "
        f"size {kernel_size} (dilated) and strides={strides}: the output grid cannot be "
        f"centred on the input grid when (size - kernel_size) is odd and strides is even. "
        f"Use an input size with (size - {kernel_size}) even (e.g. {working}), or strides=1 "
        "followed by keras.layers.MaxPooling2D(2) (exact on even sizes)."
    )


@dataclasses.dataclass
class PlainConvolution:
    """One plain 2D convolution of a group layer's plain-convolution equivalent.

    The layer's output, in the flat group-major layout, is the concatenation (along channels, in
    order) of its plain convolutions applied to its flat input (see the module docstring).

    Attributes:
        kernel: ``(kh, kw, in_channels, out_channels)`` tensor.
        bias: ``(out_channels,)`` tensor, or ``None``.
        strides: ``(sh, sw)``.
        dilation_rate: ``(dh, dw)``; never combined with ``strides > 1``.
        padding: ``((top, bottom), (left, right))`` zero padding of the input before a
            ``"valid"`` convolution; negative entries crop.
        input_channels: ``(start, stop)``: the slice of the flat input channels read.
        input_blur: ``None``, or odd-length 1-D weights of a separable Gaussian applied to the
            height then the width axis of the input with ``"same"`` zero padding first.
    """

    kernel: object
    bias: object
    strides: tuple
    dilation_rate: tuple
    padding: tuple
    input_channels: tuple
    input_blur: object = None


def apply_blur(inputs, weights):
    """The separable depthwise blur of :attr:`PlainConvolution.input_blur` ("same" padding)."""
    channels = inputs.shape[-1]
    tiled = np.tile(np.asarray(weights, np.float32)[:, None, None, None], (1, 1, channels, 1))
    vertical = ops.convert_to_tensor(tiled, dtype=inputs.dtype)
    horizontal = ops.convert_to_tensor(np.transpose(tiled, (1, 0, 2, 3)), dtype=inputs.dtype)
    blurred = ops.depthwise_conv(inputs, vertical, padding="same")
    return ops.depthwise_conv(blurred, horizontal, padding="same")


def _backend_same_padding(size, kernel_size, strides):
    """The ``(before, after)`` padding of the backends' ``padding="same"``."""
    output = -(-size // strides)
    total = max((output - 1) * strides + kernel_size - size, 0)
    return total // 2, total - total // 2


def apply_plain_convolution(inputs, convolution: PlainConvolution):
    """Runs ``convolution`` (without its bias) on the rank-4 ``inputs`` it reads."""
    if convolution.input_blur is not None:
        inputs = apply_blur(inputs, convolution.input_blur)
    kernel = convolution.kernel
    effective = [
        rate * (size - 1) + 1 for rate, size in zip(convolution.dilation_rate, kernel.shape[:2])
    ]
    padding = tuple(tuple(pair) for pair in convolution.padding)
    sizes = inputs.shape[1:3]
    if all(pair == (0, 0) for pair in padding):
        mode = "valid"
    elif None not in sizes and all(
        pair == _backend_same_padding(size, kernel_size, stride)
        for pair, size, kernel_size, stride in zip(padding, sizes, effective, convolution.strides)
    ) or (None in sizes and convolution.strides == (1, 1) and all(
        pair == _backend_same_padding(1, kernel_size, 1)
        for pair, kernel_size in zip(padding, effective)
    )):
        mode = "same"  # the backend pads symmetrically itself: saves a copy
    else:
        crops = [(max(-before, 0), max(-after, 0)) for before, after in padding]
        if any(any(pair) for pair in crops):
            (top, bottom), (left, right) = crops
            inputs = inputs[:, top : inputs.shape[1] - bottom, left : inputs.shape[2] - right]
        pads = tuple((max(before, 0), max(after, 0)) for before, after in padding)
        if any(any(pair) for pair in pads):
            inputs = ops.pad(inputs, ((0, 0), *pads, (0, 0)))
        mode = "valid"
    return convolve(inputs, kernel, convolution.strides, mode, convolution.dilation_rate)


class GroupConv2D(keras.layers.Layer):
    """Base class of the group convolutions; not a layer to use on its own.

    Subclasses implement:

    - :attr:`group_action`: the :class:`keras_equivariant.groups.GroupAction` of the output
      group axis (what :func:`keras_equivariant.check_equivariance` checks the layer with);
    - :attr:`group_axis_size`: the size of the output group axis;
    - ``_check_input_shape(input_shape)``: validates the input shape (rank 4 or 5, group axis,
      channels), raising a ``ValueError`` that names the expected layout;
    - ``_build_kernel(input_shape)``: creates ``self.kernel`` (and any constants);
    - ``_expanded_convolutions()``: the kernel expansion, the list of
      :class:`PlainConvolution` (``bias=None``, ``padding`` unset) the layer computes;
    - :attr:`effective_kernel_size`: the ``(height, width)`` of the largest expanded (dilated)
      kernel, whose output grid is centred by :func:`equivariant_padding`;
    - ``get_config`` additions for their own arguments.

    Args:
        filters: number of output fields.
        kernel_size: int or pair (subclasses may require square or odd kernels).
        strides: int or pair.
        padding: ``"same"`` or ``"valid"``, both equivariant (:func:`equivariant_padding`).
        dilation_rate: int or pair; cannot be combined with ``strides > 1``.
        activation: applied to the output. Pointwise, so it keeps exact equivariance to grid
            permutations (90° rotations, mirrors); it does not commute with an interpolating
            resize, so scale equivariance becomes approximate (``docs/practical-notes.md``).
        use_bias: one bias per output field, shared over the group axis.
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
        kernel_constraint, bias_constraint: as in ``keras.layers.Conv2D``, applied to the
            learned (unexpanded) kernel and to the bias.
        **kwargs: base ``keras.layers.Layer`` arguments.

    Input shape:
        ``(batch, height, width, channels)`` (lifting) or
        ``(batch, height, width, group_axis_size_in, channels)`` (group convolution).

    Output shape:
        ``(batch, new_height, new_width, group_axis_size, filters)``.

    Example (a subclass):

    >>> layer = keras_equivariant.layers.RotationConv2D(4, 3, group="C4")
    >>> outputs = layer(np.zeros((1, 9, 9, 3), "float32"))
    >>> layer.group_action.name, layer.group_axis_size, len(layer.plain_convolutions())
    ('C4', 4, 1)
    """

    #: Rotation layers need square kernels, strides and dilations.
    square = False
    #: Whether ``kernel_size``, ``strides`` and ``dilation_rate`` are exposed (and saved) as ints
    #: (only for square layers) rather than pairs.
    int_sizes = False

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="same",
        dilation_rate=1,
        activation=None,
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
        self.kernel_pair = normalize_pair(kernel_size, "kernel_size", self.square)
        self.strides_pair = normalize_pair(strides, "strides", self.square)
        self.dilation_pair = normalize_pair(dilation_rate, "dilation_rate", self.square)
        if max(self.strides_pair) > 1 and max(self.dilation_pair) > 1:
            raise ValueError(
                f"`strides` > 1 cannot be combined with `dilation_rate` > 1; received "
                f"strides={strides}, dilation_rate={dilation_rate}."
            )
        self.padding = check_choice(padding, PADDING_MODES, "padding")
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)

    # ------------------------------------------------------------------ public arguments
    def _public(self, pair):
        return pair[0] if self.int_sizes else pair

    @property
    def kernel_size(self):
        return self._public(self.kernel_pair)

    @property
    def strides(self):
        return self._public(self.strides_pair)

    @property
    def dilation_rate(self):
        return self._public(self.dilation_pair)

    # ------------------------------------------------------------------ the interface
    @property
    def group_action(self):
        """The :class:`~keras_equivariant.groups.GroupAction` of the output group axis."""
        raise NotImplementedError(f"{type(self).__name__} must define `group_action`.")

    @property
    def group_axis_size(self) -> int:
        """The size of the output group axis (axis 3)."""
        raise NotImplementedError(f"{type(self).__name__} must define `group_axis_size`.")

    @property
    def effective_kernel_size(self):
        """``(height, width)`` of the largest expanded, dilated kernel."""
        raise NotImplementedError(f"{type(self).__name__} must define `effective_kernel_size`.")

    @property
    def is_lifting(self) -> bool:
        """Whether the layer was built on a rank-4 input (lifting), else on group features."""
        if not self.built:
            raise ValueError(f"Layer {self.name!r} is not built yet: call it on an input first.")
        return self._lifting

    def _check_input_shape(self, input_shape) -> int:
        raise NotImplementedError

    def _build_kernel(self, input_shape):
        raise NotImplementedError

    def _expanded_convolutions(self):
        raise NotImplementedError

    def compute_padding(self, height, width):
        """Symmetric padding ``((top, bottom), (left, right))`` of an input of this size for the
        largest expanded kernel (:func:`equivariant_padding`); smaller kernels of the same layer
        (e.g. finer scales) pad less by half their size difference, so all share one grid."""
        return tuple(
            equivariant_padding(size, kernel, stride, self.padding)
            for size, kernel, stride in zip(
                (height, width), self.effective_kernel_size, self.strides_pair
            )
        )

    def plain_convolutions(self):
        """The plain-convolution equivalent of the layer, for export (``fold``).

        Returns:
            A list of :class:`PlainConvolution` with the bias tiled over the group elements of
            each. Applied to the flat group-major input (a free reshape of rank-5 inputs to
            ``(B, H, W, |G_in| * C)``) and concatenated along channels in order, they give the
            flat output ``(B, H', W', group_axis_size * filters)``, i.e. the layer's output
            before its ``activation`` (pointwise: apply it to each or to the result).

        Raises:
            ValueError: before the layer is built, or for an input size whose padding cannot
                be centred (see :func:`equivariant_padding`).
        """
        if not self.built:
            raise ValueError(f"Layer {self.name!r} must be built (called once) before export.")
        return self._convolutions(self._input_size, with_bias=True)

    def _convolutions(self, spatial_size, with_bias):
        convolutions = self._expanded_convolutions()
        largest = self.effective_kernel_size
        pads = self.compute_padding(*spatial_size)
        for convolution in convolutions:
            effective = [
                rate * (size - 1) + 1
                for rate, size in zip(convolution.dilation_rate, convolution.kernel.shape[:2])
            ]
            convolution.padding = tuple(
                (before - (big - small) // 2, after - (big - small) // 2)
                for (before, after), big, small in zip(pads, largest, effective)
            )
            if with_bias and self.bias is not None:
                repeats = convolution.kernel.shape[-1] // self.filters
                convolution.bias = ops.tile(self.bias, (repeats,))
        return convolutions

    # ------------------------------------------------------------------ Keras layer
    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_input_shape(input_shape)
        self.compute_padding(*input_shape[1:3])  # refuse an uncentrable grid before any work
        self._lifting = len(input_shape) == 4
        self._input_size = tuple(input_shape[1:3])
        self._build_kernel(input_shape)
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
        axes = {-1: input_shape[-1]}
        if len(input_shape) == 5:
            axes[3] = input_shape[3]
        self.input_spec = keras.InputSpec(ndim=len(input_shape), axes=axes)

    def call(self, inputs):
        shape = ops.shape(inputs)
        if len(inputs.shape) == 5:
            inputs = ops.reshape(
                inputs, (-1, shape[1], shape[2], inputs.shape[3] * inputs.shape[4])
            )
        convolutions = self._convolutions(inputs.shape[1:3], with_bias=False)
        pieces = _channel_slices(inputs, [conv.input_channels for conv in convolutions])
        outputs = [
            apply_plain_convolution(piece, conv) for piece, conv in zip(pieces, convolutions)
        ]
        outputs = outputs[0] if len(outputs) == 1 else ops.concatenate(outputs, axis=-1)
        out_shape = ops.shape(outputs)
        outputs = ops.reshape(
            outputs, (-1, out_shape[1], out_shape[2], self.group_axis_size, self.filters)
        )
        if self.bias is not None:
            outputs = outputs + self.bias
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_input_shape(input_shape)
        spatial = []
        for size, kernel, stride in zip(
            input_shape[1:3], self.effective_kernel_size, self.strides_pair
        ):
            if size is None:
                spatial.append(None)
                continue
            before, after = equivariant_padding(size, kernel, stride, self.padding)
            spatial.append((size + before + after - kernel) // stride + 1)
        return (input_shape[0], *spatial, self.group_axis_size, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "dilation_rate": self.dilation_rate,
                "activation": keras.activations.serialize(self.activation),
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


def _channel_slices(inputs, ranges):
    """``inputs[..., start:stop]`` for every ``(start, stop)`` in ``ranges``.

    The channel axis is cut once with ``split`` at every boundary and the pieces concatenated:
    strided slices of it are ~4x slower to differentiate on CPU.
    """
    channels = inputs.shape[-1]
    if all(tuple(bounds) == (0, channels) for bounds in ranges):
        return [inputs] * len(ranges)
    boundaries = sorted({bound for bounds in ranges for bound in bounds} | {0, channels})
    pieces = dict(zip(boundaries, ops.split(inputs, boundaries[1:-1], axis=-1)))
    slices = []
    for start, stop in ranges:
        parts = [pieces[bound] for bound in boundaries if start <= bound < stop]
        slices.append(parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1))
    return slices
