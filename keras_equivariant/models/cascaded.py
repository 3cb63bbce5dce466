"""The paper's Cascaded GCNN (official ``CascadedGCNN``, ``cascadedGCNN10layer_*.py``)."""

from __future__ import annotations

import keras

from keras_equivariant.layers import GroupFlatten, GroupPooling
from keras_equivariant.models import blocks

# Trunks after the first stage, in channels. 10 layers: the official plan (`CascadedGCNN`).
# 4 layers: the first three distinct widths of the 10-layer trunk, each after a 2x2 max-pool.
# The equivariant variant uses the same plans in C4 *fields* (channels / 4), so every feature
# map has the official number of channels and every conv the official cost.
_TRUNKS = {
    10: ["pool", 64, 128, "pool", 128, 256, "pool", 256, 512, 512],
    4: ["pool", 64, "pool", 128, "pool", 256],
}
_POOLS = {depth: plan.count("pool") for depth, plan in _TRUNKS.items()}
_GROUP_SIZE = 4


def CascadedGCNN(num_classes=10, depth=10, input_shape=(32, 32, 3), variant="equivariant",
                 name=None):
    """Builds the paper's Cascaded GCNN: group convolutions cascaded in series.

    Variants:

    - ``"paper"``: the official code. ``Conv2D(64, 3x3)`` -> BatchNorm -> ReLU; its 64 channels
      are **relabelled** as 16 regular C4 fields (channel = field * 4 + rotation) and fed to a C4
      ``RotationConv2D(16 fields)`` -> ReLU (no norm); flattened back to 64 channels; then a
      trunk of std convs (``Conv2D 3x3 -> BatchNorm -> ReLU``):
      - ``depth=10`` (official plan): pool, 64, 128, pool, 128, 256, pool, 256, 512, 512;
      - ``depth=4`` (not in the official code): pool, 64, pool, 128, pool, 256.
      The standard conv output is not a regular-representation feature, so the group conv
      gives **no equivariance at all**.
    - ``"equivariant"`` (default): the cascade in the order the paper describes, equivariant
      end to end: a C4 **lifting** ``RotationConv2D(16 fields)``, a C4 group conv (16 fields),
      then the same trunk plan with every conv a C4 group conv on ``width / 4`` fields (so every
      feature map has the official number of channels); each conv is followed by
      ``GroupBatchNormalization`` and ReLU; 2x2 max-pools act on space only. A
      ``GroupPooling("max")`` over the rotation axis precedes the global max pool.

    Invariance: **the ``"equivariant"`` variant's logits are exactly invariant to rotations by
    multiples of 90 degrees** (C4) of square inputs, in inference mode and, since the batch norm
    statistics are rotation-invariant too, in training mode. The ``"paper"`` variant claims no
    invariance. BatchNorm uses PyTorch's defaults (``momentum=0.9`` in Keras terms,
    ``epsilon=1e-5``).

    Args:
        num_classes: int >= 2, number of classes.
        depth: 4 or 10.
        input_shape: ``(height, width, channels)``; height and width must be multiples of 8.
        variant: ``"equivariant"`` or ``"paper"`` (see above).
        name: model name; defaults to ``"cascaded_gcnn_{depth}_{variant}"``.

    Returns:
        A functional ``keras.Model`` mapping pixels in [0, 1] ``(batch, *input_shape)`` to
        **logits** ``(batch, num_classes)``; normalization to [-1, 1] is its first layer.
        The layer named ``"features"`` outputs the last spatial feature map
        ``(batch, height, width, channels)`` (for the equivariant variant: the group-pooled,
        rotation-equivariant map).

    Example:

    >>> model = CascadedGCNN(num_classes=10, depth=4)
    >>> model.output_shape
    (None, 10)
    """
    depth, input_shape, variant = blocks.check_builder_arguments(
        "CascadedGCNN", num_classes, depth, input_shape, variant, _POOLS)
    inputs, x = blocks.normalized_input(input_shape)
    height, width, _ = input_shape
    if variant == "paper":
        x = blocks.conv_bn_relu(x, 16 * _GROUP_SIZE, "std_conv")
        x = keras.layers.Reshape((height, width, 16, _GROUP_SIZE), name="relabel_fields")(x)
        x = keras.layers.Permute((1, 2, 4, 3), name="relabel_group_axis")(x)
        x = blocks.rotation_conv(x, 16, "rot_conv", group="C4")
        x = keras.layers.ReLU(name="rot_conv_relu")(x)
        x = GroupFlatten(name="rot_flatten")(x)
        features = blocks.conv_stack(x, _TRUNKS[depth], first_index=2)
    else:
        x = blocks.rotation_conv_bn_relu(x, 16, "lift_conv", group="C4")
        x = blocks.rotation_conv_bn_relu(x, 16, "rot_conv", group="C4")
        plan = [step if step == "pool" else step // _GROUP_SIZE for step in _TRUNKS[depth]]
        x = blocks.group_conv_stack(x, plan, first_index=2, group="C4")
        features = GroupPooling(mode="max", name=blocks.FEATURES_LAYER_NAME)(x)
    logits = blocks.classifier_head(features, num_classes)
    return keras.Model(
        inputs, logits, name=blocks.model_name(name, f"cascaded_gcnn_{depth}_{variant}"))
