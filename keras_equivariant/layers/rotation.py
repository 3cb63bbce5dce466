"""Rotation-equivariant group convolution (C4, D4: exact on the pixel grid; C8: approximate)."""

from __future__ import annotations

import keras
from keras import ops

from keras_equivariant.groups.rotation import ROTATION_GROUPS, RotationGroup
from keras_equivariant.layers._conv_utils import (
    expand_rotation_kernel,
    rotation_kernel_parameters,
)
from keras_equivariant.utils.validation import check_choice, check_positive_int

PADDING_MODES = ("same", "valid")


def _check_square(value, name):
    """Accepts an int or a pair of equal ints (rotations need square kernels and strides)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(
                f"`{name}` must be an integer or a pair of equal integers (rotation "
                f"equivariance needs the same value along height and width); received {value!r}."
            )
        value = value[0]
    return check_positive_int(value, name)


def equivariant_padding(size, kernel_size, strides, padding):
    """Symmetric padding ``(before, after)`` that keeps the output grid centred on the input's.

    Rotating the input about its centre must rotate the output about *its* centre, which holds
    when the total padding ``P`` is even (split equally on both sides) and
    ``(size + P - kernel_size) % strides == 0`` (the last window ends on the last padded pixel).
    ``"valid"`` takes the smallest such ``P >= 0``; ``"same"`` the smallest such ``P`` at least
    the padding of Keras' ``"same"`` (output ``ceil(size / strides)``; one pixel more for even
    kernels at stride 1, whose output grid sits on half-pixel positions).

    Args:
        size: input height or width (a Python int; ``None`` is allowed only for ``strides=1``).
        kernel_size: effective (dilated) kernel size.
        strides: stride.
        padding: ``"same"`` or ``"valid"``.

    Returns:
        ``(before, after)`` pixel counts.

    Raises:
        ValueError: if no symmetric padding aligns the grid (an even stride with
            ``size - kernel_size`` odd, e.g. stride 2, kernel 3 and an even ``size``).
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
    raise ValueError(
        f"No symmetric padding keeps 90° rotation equivariance for input size {size} with "
        f"kernel size {kernel_size} (dilated) and strides={strides}: the output grid cannot be "
        f"centred on the input grid when (size - kernel_size) is odd and strides is even. "
        f"Use an input size with (size - {kernel_size}) even (e.g. {size + 1}), or strides=1 "
        "followed by keras.layers.MaxPooling2D(2) (exact on even sizes), or an even "
        "kernel_size."
    )


@keras.saving.register_keras_serializable(package="keras_equivariant")
class RotationConv2D(keras.layers.Layer):
    """2D group convolution equivariant to rotations (C4, C8) or rotations and flips (D4).

    A rank-4 input ``(batch, height, width, channels)`` is *lifted* to the group
    (Z² → G); a rank-5 input ``(batch, height, width, |G|, channels)`` is convolved
    group-to-group (G → G). One learned kernel per (input field, output field) pair is
    expanded into its ``|G|`` rotated (and flipped) copies once per call, from constant
    indices (C4, D4) or a constant sampled basis (C8) made in ``build()``, and applied with a
    single ``keras.ops.conv``. One bias per output field is shared over the group axis.

    Equivariance: rotating (flipping) the input by ``s`` rotates (flips) the output spatially
    and permutes its group axis, ``L(s·x)(p, g) = L(x)(s⁻¹p, s⁻¹g)`` (element layout in
    :mod:`keras_equivariant.groups.rotation`). Exact (to float round-off) for ``"C4"`` and
    ``"D4"`` and for C8's 90° rotations; C8's 45° rotations are approximate: kernels are
    circular-harmonic combinations evaluated at 45°-rotated coordinates, so the error depends on
    how smooth the input is (≈1e-2 relative on band-limited input, see ``docs/practical-notes.md``).
    Exactness needs the output grid centred on the input grid; the layer pads symmetrically
    (``padding="same"``/``"valid"`` follow GroCo's ``same_equiv``/``valid_equiv``) and raises a
    ``ValueError`` for the configurations that cannot be centred (an even stride with
    ``height - kernel_size`` odd, e.g. stride 2, kernel 3 on 32×32: use 33×33).

    Tensor layout: the group axis is explicit, before the channels. Internally the conv runs on
    the group-major flat layout ``channel = g * filters + c`` (a free reshape);
    :meth:`expanded_kernel_and_bias` returns the interoperable *field-major* layout
    ``channel = c * |G| + g`` (GrouPy, e2cnn, :class:`GroupFlatten`) for export to a plain
    ``keras.layers.Conv2D``.

    Args:
        filters: number of output fields (the output has ``filters * |G|`` channels).
        kernel_size: odd or even integer (or a pair of equal integers).
        group: ``"C4"``, ``"D4"`` or ``"C8"``.
        strides: integer stride (or pair of equal integers).
        padding: ``"same"`` or ``"valid"``, both symmetric (see above).
        dilation_rate: integer dilation (cannot be combined with ``strides > 1``).
        activation: activation applied to the output (pointwise, so equivariance is kept).
        use_bias: whether to add one bias per output field.
        kernel_initializer: initializer of the learned kernel, whose shape
            ``(num_basis, in_fields, filters)`` makes the Keras fan-in equal to the expanded
            kernel's ``in_fields * |G_in| * kernel_size²`` (C4/D4: ``num_basis =
            kernel_size² * |G_in|``; C8: ``|G_in|`` times the number of basis functions, each
            of unit norm).
        bias_initializer: initializer of the bias, shape ``(filters,)``.
        kernel_regularizer, bias_regularizer, kernel_constraint, bias_constraint: as in
            ``keras.layers.Conv2D``, applied to the learned (unexpanded) kernel and bias.
        **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Input shape:
        ``(batch, height, width, channels)`` (lifting) or
        ``(batch, height, width, |G|, channels)`` (group convolution).

    Output shape:
        ``(batch, new_height, new_width, |G|, filters)`` with ``|G|`` = 4 (C4), 8 (D4, C8).

    Example:

    >>> x = keras.random.uniform((2, 33, 33, 3))
    >>> y = RotationConv2D(8, 3, group="C4")(x)          # lifting
    >>> tuple(y.shape)
    (2, 33, 33, 4, 8)
    >>> tuple(RotationConv2D(8, 3, group="C4", strides=2)(y).shape)  # group conv
    (2, 17, 17, 4, 8)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        group="C4",
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
        self.kernel_size = _check_square(kernel_size, "kernel_size")
        self.group = check_choice(group, ROTATION_GROUPS, "group")
        self.strides = _check_square(strides, "strides")
        self.padding = check_choice(padding, PADDING_MODES, "padding")
        self.dilation_rate = _check_square(dilation_rate, "dilation_rate")
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(
                f"`strides` > 1 cannot be combined with `dilation_rate` > 1; received "
                f"strides={self.strides}, dilation_rate={self.dilation_rate}."
            )
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self._group = RotationGroup(self.group)

    @property
    def group_order(self) -> int:
        """``|G|``: the size of the output group axis."""
        return self._group.order

    @property
    def effective_kernel_size(self) -> int:
        return self.dilation_rate * (self.kernel_size - 1) + 1

    def _check_input_shape(self, input_shape):
        rank = len(input_shape)
        if rank not in (4, 5):
            raise ValueError(
                f"{type(self).__name__} expects a rank-4 input (batch, height, width, channels) "
                f"or a rank-5 group feature map (batch, height, width, {self.group_order}, "
                f"channels); received shape {tuple(input_shape)} (rank {rank})."
            )
        if rank == 5 and input_shape[3] != self.group_order:
            raise ValueError(
                f"The group axis (axis 3) of the input must have size {self.group_order} for "
                f"group={self.group!r}; received shape {tuple(input_shape)}. Was the previous "
                "layer built for another group?"
            )
        if input_shape[-1] is None:
            raise ValueError(
                f"The channel axis of the input must be known; received shape {tuple(input_shape)}."
            )
        return (1 if rank == 4 else self.group_order), int(input_shape[-1])

    def build(self, input_shape):
        input_order, input_fields = self._check_input_shape(input_shape)
        for size in input_shape[1:3]:
            equivariant_padding(size, self.effective_kernel_size, self.strides, self.padding)
        self.input_order = input_order
        self.input_fields = input_fields
        self._kernel_indices, self._kernel_basis, num_basis = rotation_kernel_parameters(
            self._group, self.kernel_size, input_order
        )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(num_basis, input_fields, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
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
        axes = {-1: input_fields}
        if len(input_shape) == 5:
            axes[3] = self.group_order
        self.input_spec = keras.InputSpec(ndim=len(input_shape), axes=axes)

    def _expanded_kernel(self):
        """The kernel of every (output element, input element): ``(k, k, |G_in|, |G|, C_in, filters)``."""
        return expand_rotation_kernel(self.kernel, self._kernel_indices, self._kernel_basis)

    def expanded_kernel_and_bias(self):
        """The equivalent plain-convolution kernel and bias, in the field-major flat layout.

        Returns:
            ``(kernel, bias)``: ``kernel`` of shape ``(k, k, C_in * |G_in|, filters * |G|)``
            with input channel ``c * |G_in| + h`` and output channel ``f * |G| + g``, and
            ``bias`` of shape ``(filters * |G|,)`` (``None`` if ``use_bias=False``). A
            ``keras.layers.Conv2D(filters * |G|, kernel_size, strides, padding="valid",
            dilation_rate)`` holding them, after ``keras.layers.ZeroPadding2D`` with
            :meth:`compute_padding`, computes this layer on :class:`GroupFlatten`-ed tensors.
        """
        if not self.built:
            raise ValueError(f"Layer {self.name!r} must be built (called once) before export.")
        kernel = ops.transpose(self._expanded_kernel(), (0, 1, 4, 2, 5, 3))
        size = self.kernel_size
        kernel = ops.reshape(
            kernel, (size, size, self.input_fields * self.input_order, self.filters * self.group_order)
        )
        bias = None if self.bias is None else ops.repeat(self.bias, self.group_order)
        return kernel, bias

    def compute_padding(self, height, width):
        """Symmetric padding ``((top, bottom), (left, right))`` applied to an input of this size."""
        kernel, strides = self.effective_kernel_size, self.strides
        return (
            equivariant_padding(height, kernel, strides, self.padding),
            equivariant_padding(width, kernel, strides, self.padding),
        )

    def _keras_same_padding(self, size):
        """The ``(before, after)`` padding of the backends' ``padding="same"`` for ``size``."""
        if size is None:
            return (None, None) if self.strides > 1 else self._keras_same_padding(1)
        output = -(-size // self.strides)
        total = max((output - 1) * self.strides + self.effective_kernel_size - size, 0)
        return total // 2, total - total // 2

    def call(self, inputs):
        rank = len(inputs.shape)
        kernel = ops.transpose(self._expanded_kernel(), (0, 1, 2, 4, 3, 5))
        size = self.kernel_size
        kernel = ops.reshape(
            kernel, (size, size, self.input_order * self.input_fields, self.group_order * self.filters)
        )
        shape = ops.shape(inputs)
        if rank == 5:
            inputs = ops.reshape(
                inputs, (-1, shape[1], shape[2], self.input_order * self.input_fields)
            )
        padding = self.compute_padding(inputs.shape[1], inputs.shape[2])
        sizes = inputs.shape[1:3]
        if all(pads == (0, 0) for pads in padding):
            conv_padding = "valid"
        elif all(pads == self._keras_same_padding(size) for pads, size in zip(padding, sizes)):
            conv_padding = "same"  # the backend pads symmetrically itself: saves a copy
        else:
            inputs = ops.pad(inputs, ((0, 0), *padding, (0, 0)))
            conv_padding = "valid"
        outputs = ops.conv(
            inputs,
            kernel,
            strides=self.strides,
            padding=conv_padding,
            dilation_rate=self.dilation_rate,
        )
        out_shape = ops.shape(outputs)
        outputs = ops.reshape(
            outputs, (-1, out_shape[1], out_shape[2], self.group_order, self.filters)
        )
        if self.bias is not None:
            outputs = outputs + self.bias
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        self._check_input_shape(input_shape)
        spatial = []
        for size in input_shape[1:3]:
            if size is None:
                spatial.append(None)
                continue
            before, after = equivariant_padding(
                size, self.effective_kernel_size, self.strides, self.padding
            )
            spatial.append((size + before + after - self.effective_kernel_size) // self.strides + 1)
        return (input_shape[0], *spatial, self.group_order, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "group": self.group,
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

