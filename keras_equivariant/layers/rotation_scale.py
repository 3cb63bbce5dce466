"""Roto-scale convolution: equivariant to rotations (C4, D4, C8) and to rescaling at once."""

from __future__ import annotations

import keras
from keras import ops

from keras_equivariant.groups.rotation import ROTATION_GROUPS, RotationGroup
from keras_equivariant.groups.scale import RotationScaleGroup
from keras_equivariant.layers._conv_utils import expand_rotation_kernel, rotation_kernel_parameters
from keras_equivariant.layers.scale import BaseScaleConv
from keras_equivariant.utils.validation import check_choice


@keras.saving.register_keras_serializable(package="keras_equivariant")
class RotationScaleConv2D(BaseScaleConv):
    """Group convolution on the product of a rotation group and the scale semigroup.

    **Group.** ``group`` (``"C4"``, ``"D4"``: exact on the pixel grid; ``"C8"``: 45° rotations
    approximate, see :class:`RotationConv2D`) times the scale grid ``scales`` (integer ratios
    exact, non-integer approximate, coarse-end boundary as in :class:`ScaleConv2D`). One
    learned kernel is rotated (and flipped) into its ``|G|`` copies exactly as in
    :class:`RotationConv2D`, and each copy is dilated to every scale exactly as in
    :class:`ScaleConv2D`. Rotations by 90° and mirrors commute with dilation (and with the
    symmetric interpolation basis of non-integer scales), so rotating the input rotates the
    output and permutes its rotation axis, and shrinking it by a grid ratio shifts the scale
    axis; both at once for the product.

    **Layout.** ``(batch, height, width, num_scales * |G|, channels)``, **scale-major**: index
    ``s * |G| + g`` (a free reshape to ``(batch, height, width, num_scales, |G|, channels)``).
    Why one merged rank-5 axis: every group layer of the library (:class:`GroupPooling`,
    :class:`GroupBatchNormalization`, :class:`GroupFlatten`) works on it unchanged; pooling it
    away gives rotation- and scale-invariant fields. Why scale before rotation (RST-CNN puts R
    first): a window of neighbouring scales is then one contiguous block of channels and each
    scale's convolution output is already the ``|G| * filters`` block of that scale, so the
    layer needs no transposes. :func:`split_rotation_scale_axis` gives the 6-D view.

    **Exact vs approximate.** Exact (float round-off) for C4/D4 rotations and integer scale
    ratios; C8's 45° rotations and non-integer ratios are approximate. ``check_equivariance``
    checks it with :attr:`group_action` (``"C4xscale"``, ...). Padding is the centred policy of
    every group convolution (:func:`keras_equivariant.layers.base.equivariant_padding`): a
    stride that cannot be centred on the input (e.g. stride 2 on 32x32) is refused with a
    ``ValueError`` naming sizes that work (33x33); the spatial and scale boundary rules of
    :class:`ScaleConv2D` apply (compare central crops).

    Args:
        filters: number of output fields (the output has ``num_scales * |G| * filters``
            channels).
        kernel_size: odd int, the size of the kernel at scale 1.
        group: ``"C4"``, ``"D4"`` or ``"C8"``.
        scales, scale_size, strides, padding, dilation_rate, activation, scale_padding,
        blur_sigma, use_bias,
        kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
        kernel_constraint, bias_constraint: as in :class:`ScaleConv2D`. The learned kernel has
        shape ``(num_basis, scale_size * C_in, filters)`` (``num_basis = k * k * |G_in|`` for
        C4/D4, the harmonic basis size for C8); the default fan-in is that of the expanded
        kernel. One bias per field, shared by all rotations and scales.

    Input shape:
        ``(batch, height, width, channels)`` (lifting) or
        ``(batch, height, width, num_scales * |G|, channels)`` (product-group convolution).

    Output shape:
        ``(batch, new_height, new_width, num_scales * |G|, filters)``.

    Example:

    >>> images = np.random.rand(2, 33, 33, 3).astype("float32")
    >>> lifted = RotationScaleConv2D(8, 3, group="C4", scales=(1, 2))(images)
    >>> tuple(lifted.shape)  # 2 scales x 4 rotations
    (2, 33, 33, 8, 8)
    >>> features = RotationScaleConv2D(8, 3, group="C4", scales=(1, 2), scale_size=2)(lifted)
    >>> tuple(GroupPooling("max")(features).shape)  # rotation- and scale-invariant fields
    (2, 33, 33, 8)
    """

    square = True

    def __init__(self, filters, kernel_size, group="C4", scales=(1, 2), **kwargs):
        super().__init__(filters, kernel_size, scales=scales, **kwargs)
        self.group = check_choice(group, ROTATION_GROUPS, "group")
        self._rotations = RotationGroup(self.group)
        self._product_group = RotationScaleGroup(self.group, self.scales)

    @property
    def group_action(self) -> RotationScaleGroup:
        """The product of the rotation group and the scale grid (for ``check_equivariance``)."""
        return self._product_group

    @property
    def group_order(self) -> int:
        """``|G|``: the size of the rotation part of the group axis."""
        return self._rotations.order

    @property
    def group_axis_size(self) -> int:
        return self.num_scales * self._rotations.order

    def _check_input_shape(self, input_shape):
        """Checks ``(B, H, W, S * |G|, C)`` as the ``(B, H, W, S, |G| * C)`` scale view."""
        input_shape = tuple(input_shape)
        if len(input_shape) == 5:
            expected = self.num_scales * self.group_order
            if input_shape[3] != expected:
                raise ValueError(
                    f"The group axis (axis 3) of a rank-5 input must have num_scales * |G| = "
                    f"{self.num_scales} * {self.group_order} = {expected} entries (scale-major) "
                    f"for scales={self.scales}, group={self.group!r}; received shape "
                    f"{input_shape}."
                )
            channels = None if input_shape[4] is None else self.group_order * input_shape[4]
            input_shape = (*input_shape[:3], self.num_scales, channels)
        self._check_scale_input_shape(input_shape)

    def _build_scale_kernel(self, in_channels):
        self.input_order = 1 if self._lifting else self.group_order
        self.input_fields = in_channels // self.input_order
        self._kernel_indices, self._kernel_basis, num_basis = rotation_kernel_parameters(
            self._rotations, self.kernel_pair[0], self.input_order
        )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(num_basis, self.scale_size * self.input_fields, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    def _conv_kernel(self):
        """Rotated copies ``(k, k, scale_size * |G_in| * C_in, |G| * filters)``.

        Input channels are ordered (scale tap, input rotation, field) like the merged scale
        windows; output channels (rotation, field) like the group-axis layout.
        """
        expanded = expand_rotation_kernel(self.kernel, self._kernel_indices, self._kernel_basis)
        size, order_in, order = self.kernel_pair[0], self.input_order, self.group_order
        # (k, k, |G_in|, |G|, taps * C_in, F) -> (k, k, taps, |G_in|, C_in, |G|, F)
        expanded = ops.reshape(
            expanded,
            (size, size, order_in, order, self.scale_size, self.input_fields, self.filters),
        )
        expanded = ops.transpose(expanded, (0, 1, 4, 2, 5, 3, 6))
        return ops.reshape(
            expanded,
            (size, size, self.scale_size * order_in * self.input_fields, order * self.filters),
        )

    def get_config(self):
        return {**super().get_config(), "group": self.group}


def split_rotation_scale_axis(features, num_scales):
    """Views ``(B, H, W, num_scales * |G|, C)`` as ``(B, H, W, num_scales, |G|, C)`` (no copy)."""
    shape = ops.shape(features)
    order = features.shape[3] // num_scales
    if order * num_scales != features.shape[3]:
        raise ValueError(
            f"The group axis (axis 3) of shape {tuple(features.shape)} is not a multiple of "
            f"num_scales={num_scales}."
        )
    return ops.reshape(features, (-1, shape[1], shape[2], num_scales, order, features.shape[4]))
