"""Batch normalization of group feature maps with statistics shared over the group axis."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="keras_equivariant")
class GroupBatchNormalization(keras.layers.BatchNormalization):
    """Batch normalization with one mean, variance, gamma and beta per *field*.

    Statistics are computed over the batch, both spatial axes **and the group axis**, in
    training and in inference (moving statistics), so a permutation of the group axis or a
    rotation of the input commutes with the normalization: the layer is exactly equivariant to
    any group acting on space and on the group axis (rotations, flips, scales). In training
    mode the statistics depend on the batch; the output is equivariant when the batch is
    closed under the group (e.g. contains every rotation of each image), as in a
    rotation-augmented batch. This is a ``keras.layers.BatchNormalization`` fixed to
    ``axis=-1`` on rank-5 inputs.

    Args:
        momentum: momentum of the moving statistics, ``moving = momentum * moving + (1 -
            momentum) * batch``. PyTorch's ``BatchNorm`` default (``momentum=0.1``) is
            ``momentum=0.9`` here.
        epsilon: added to the variance (PyTorch's default is ``1e-5``).
        center: whether to learn ``beta`` (one per field).
        scale: whether to learn ``gamma`` (one per field).
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer, beta_regularizer, gamma_regularizer, beta_constraint,
        gamma_constraint: as in ``keras.layers.BatchNormalization``.
        **kwargs: other ``keras.layers.BatchNormalization`` arguments (``synchronized``, ...)
            and base layer arguments. ``axis`` is fixed and cannot be passed.

    Input shape:
        ``(batch, height, width, group_size, channels)``.

    Output shape:
        Same as the input.

    Example:

    >>> features = keras.random.normal((4, 9, 9, 4, 16))
    >>> normalized = GroupBatchNormalization(momentum=0.9, epsilon=1e-5)(features, training=True)
    >>> tuple(normalized.shape)
    (4, 9, 9, 4, 16)
    """

    def __init__(
        self,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        if "axis" in kwargs:
            raise ValueError(
                f"{type(self).__name__} normalizes per field (the last axis) with statistics "
                f"over batch, space and group axes; `axis` cannot be set (received "
                f"axis={kwargs['axis']!r})."
            )
        super().__init__(
            axis=-1,
            momentum=momentum,
            epsilon=epsilon,
            center=center,
            scale=scale,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            moving_mean_initializer=moving_mean_initializer,
            moving_variance_initializer=moving_variance_initializer,
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
            beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint,
            **kwargs,
        )

    def build(self, input_shape):
        if len(input_shape) != 5:
            raise ValueError(
                f"{type(self).__name__} expects a rank-5 group feature map (batch, height, "
                f"width, group_size, channels); received shape {tuple(input_shape)}. Use "
                "keras.layers.BatchNormalization for ordinary feature maps."
            )
        super().build(input_shape)

    def get_config(self):
        config = super().get_config()
        config.pop("axis")
        return config
