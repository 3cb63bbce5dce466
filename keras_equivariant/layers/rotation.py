"""Rotation-equivariant group convolution (C4, D4: exact on the pixel grid; C8: approximate)."""

from __future__ import annotations

import keras
from keras import ops

from keras_equivariant.groups.rotation import ROTATION_GROUPS, RotationGroup
from keras_equivariant.layers._conv_utils import (
    expand_rotation_kernel,
    rotation_kernel_parameters,
)
from keras_equivariant.layers.base import GroupConv2D, PlainConvolution
from keras_equivariant.utils.validation import check_choice


@keras.saving.register_keras_serializable(package="keras_equivariant")
class RotationConv2D(GroupConv2D):
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
    (the padding policy of every group convolution,
    :func:`keras_equivariant.layers.base.equivariant_padding`: GroCo's
    ``same_equiv``/``valid_equiv``) and raises a ``ValueError`` for the configurations that
    cannot be centred (an even stride with ``height - kernel_size`` odd, e.g. stride 2,
    kernel 3 on 32×32: use 33×33).

    Tensor layout: the group axis is explicit, before the channels. Internally the conv runs on
    the group-major flat layout ``channel = g * filters + c`` (a free reshape);
    :meth:`expanded_kernel_and_bias` returns the interoperable *field-major* layout
    ``channel = c * |G| + g`` (GrouPy, e2cnn, :class:`GroupFlatten`) for export to a plain
    ``keras.layers.Conv2D``; :meth:`plain_convolutions` the group-major one used by
    :func:`keras_equivariant.export.fold`.

    Args:
        filters: number of output fields (the output has ``filters * |G|`` channels).
        kernel_size: odd or even integer (or a pair of equal integers).
        group: ``"C4"``, ``"D4"`` or ``"C8"``.
        strides: integer stride (or pair of equal integers).
        padding: ``"same"`` or ``"valid"``, both symmetric (see above).
        dilation_rate: integer dilation (or pair of equal integers; cannot be combined with
            ``strides > 1``).
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

    square = True
    int_sizes = True

    def __init__(self, filters, kernel_size, group="C4", **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        self.group = check_choice(group, ROTATION_GROUPS, "group")
        self._group = RotationGroup(self.group)

    @property
    def group_action(self) -> RotationGroup:
        """The rotation group of the output group axis (for ``check_equivariance``)."""
        return self._group

    @property
    def group_order(self) -> int:
        """``|G|``: the size of the output group axis."""
        return self._group.order

    @property
    def group_axis_size(self) -> int:
        return self._group.order

    @property
    def effective_kernel_size(self):
        size = self.dilation_rate * (self.kernel_size - 1) + 1
        return size, size

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

    def _build_kernel(self, input_shape):
        self.input_order = 1 if len(input_shape) == 4 else self.group_order
        self.input_fields = int(input_shape[-1])
        self._kernel_indices, self._kernel_basis, num_basis = rotation_kernel_parameters(
            self._group, self.kernel_size, self.input_order
        )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(num_basis, self.input_fields, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    def _expanded_kernel(self):
        """The kernel of every (output element, input element): ``(k, k, |G_in|, |G|, C_in, filters)``."""
        return expand_rotation_kernel(self.kernel, self._kernel_indices, self._kernel_basis)

    def _expanded_convolutions(self):
        kernel = ops.transpose(self._expanded_kernel(), (0, 1, 2, 4, 3, 5))
        size, channels = self.kernel_size, self.input_order * self.input_fields
        kernel = ops.reshape(kernel, (size, size, channels, self.group_order * self.filters))
        return [PlainConvolution(kernel, None, self.strides_pair, self.dilation_pair, None,
                                 (0, channels))]

    def expanded_kernel_and_bias(self):
        """The equivalent plain-convolution kernel and bias, in the field-major flat layout.

        Returns:
            ``(kernel, bias)``: ``kernel`` of shape ``(k, k, C_in * |G_in|, filters * |G|)``
            with input channel ``c * |G_in| + h`` and output channel ``f * |G| + g``, and
            ``bias`` of shape ``(filters * |G|,)`` (``None`` if ``use_bias=False``). A
            ``keras.layers.Conv2D(filters * |G|, kernel_size, strides, padding="valid",
            dilation_rate)`` holding them, after ``keras.layers.ZeroPadding2D`` with
            :meth:`compute_padding`, computes this layer on :class:`GroupFlatten`-ed tensors.
            (:meth:`plain_convolutions` gives the same in the group-major layout.)
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

    def get_config(self):
        return {**super().get_config(), "group": self.group}
