"""Flattening the group axis of a group feature map into channels."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_equivariant")
class GroupFlatten(keras.layers.Layer):
    """Merges the group axis into the channels, field-major: ``channel = c * group_size + g``.

    The layout matches the output channels of
    :meth:`RotationConv2D.expanded_kernel_and_bias` (and GrouPy/e2cnn), so a flattened group
    feature map can be fed to plain Keras layers or to an exported plain ``Conv2D``. The layer
    only rearranges values; a following layer that mixes the flattened channels arbitrarily
    (e.g. ``Dense`` or ``Conv2D``) is in general *not* equivariant.

    Args:
        **kwargs: base ``keras.layers.Layer`` arguments.

    Input shape:
        ``(batch, height, width, group_size, channels)``.

    Output shape:
        ``(batch, height, width, channels * group_size)``.

    Example:

    >>> features = keras.random.uniform((2, 5, 5, 4, 16))
    >>> tuple(GroupFlatten()(features).shape)
    (2, 5, 5, 64)
    """

    def _check_input_shape(self, input_shape):
        if len(input_shape) != 5 or input_shape[3] is None or input_shape[4] is None:
            raise ValueError(
                f"{type(self).__name__} expects a rank-5 group feature map (batch, height, "
                f"width, group_size, channels) with known group_size and channels; received "
                f"shape {tuple(input_shape)}."
            )

    def build(self, input_shape):
        self._check_input_shape(input_shape)

    def call(self, inputs):
        shape = ops.shape(inputs)
        group_size, channels = inputs.shape[3], inputs.shape[4]
        field_major = ops.transpose(inputs, (0, 1, 2, 4, 3))
        return ops.reshape(field_major, (-1, shape[1], shape[2], channels * group_size))

    def compute_output_shape(self, input_shape):
        self._check_input_shape(input_shape)
        batch, height, width, group_size, channels = input_shape
        return (batch, height, width, channels * group_size)
