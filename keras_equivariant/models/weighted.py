"""The paper's Weighted Parallel GCNN (official ``ImprovedParallelGCNN`` in
``weightedGCNNrotscale10layer_*.py``): parallel branches fused by a learned softmax-weighted sum.
"""

from __future__ import annotations

import keras

from keras_equivariant.layers import Conv2D, GroupFlatten, GroupPooling
from keras_equivariant.models import blocks
from keras_equivariant.models.parallel import EQUIVARIANT_SCALES

# Trunks after the fused first layer. 10 layers: the official plan with its
# single max-pool (every later conv runs at half the input size). 4 layers: the first three
# distinct widths of the 10-layer trunk, each after a 2x2 max-pool.
_TRUNKS = {
    10: ["pool", 32, 32, 64, 128, 256, 256, 512, 512],
    4: ["pool", 32, "pool", 64, "pool", 128],
}
_POOLS = {depth: plan.count("pool") for depth, plan in _TRUNKS.items()}


def WeightedParallelGCNN(num_classes=10, depth=10, input_shape=(32, 32, 3),
                         variant="equivariant", name=None):
    """Builds the paper's Weighted Parallel GCNN: branches fused by learned softmax weights.

    Layer plan:

    - first layer, parallel branches of 16 channels each on the normalized input, then
      ``SoftmaxWeightedSum`` (one learned logit per branch, 0.5 at init so the weights start
      uniform), named ``"fusion"``;
    - trunk of std convs (``Conv2D 3x3 -> BatchNorm -> ReLU``):
      - ``depth=10`` (official plan): pool, 32, 32, 64, 128, 256, 256, 512, 512 -- only one
        max-pool, so the 512-channel convs run at half the input size (slow; as official);
      - ``depth=4`` (not in the official code): pool, 32, pool, 64, pool, 128;
    - head: global MAX pool -> ``Dense(num_classes)``.

    Variants:

    - ``"paper"``: the official code: **two** branches (the paper's text promises the three of
      the parallel design, the code has no scale branch). Standard: ``Conv2D(16)`` -> BatchNorm
      -> ReLU. Rotation: C4 lifting ``RotationConv2D(16 fields)`` (no norm, no ReLU), flattened
      (64 channels) -> **1x1 ``Conv2D(16)`` bottleneck** (mixes the orientation channels with
      free weights). Fusion ``relu(a * standard + b * rotation)``.
    - ``"equivariant"`` (default): the **three** branches the paper describes. Standard as above.
      Rotation: C4 lifting ``RotationConv2D(16 fields)`` -> ``GroupBatchNormalization`` -> ReLU
      -> ``GroupPooling("max")`` over the rotations (a rotation-equivariant 16-channel map,
      replacing the non-equivariant bottleneck). Scale: ``ScaleConv2D(16)`` with shared
      weights over the scales (1, 2, 4) -> ``GroupBatchNormalization`` -> ReLU ->
      ``GroupPooling("max")`` over the scales. Fusion ``a * standard + b * rotation + c * scale``
      (all branches are already non-negative).

    Equivariance: the group branches are equivariant (rotation branch exactly to C4, scale
    branch to integer rescalings up to the border); the model is a hybrid (standard branch +
    standard trunk), so **its logits are neither rotation- nor scale-invariant in either
    variant**. BatchNorm uses PyTorch's defaults (``momentum=0.9`` in Keras terms,
    ``epsilon=1e-5``).

    Args:
        num_classes: int >= 2, number of classes.
        depth: 4 or 10.
        input_shape: ``(height, width, channels)``; height and width must be multiples of 2
            (depth 10) or 8 (depth 4).
        variant: ``"equivariant"`` or ``"paper"`` (see above).
        name: model name; defaults to ``"weighted_parallel_gcnn_{depth}_{variant}"``.

    Returns:
        A functional ``keras.Model`` mapping pixels in [0, 1] ``(batch, *input_shape)`` to
        **logits** ``(batch, num_classes)``; normalization to [-1, 1] is its first layer.
        The layer named ``"features"`` outputs the last spatial conv feature map.

    Example:

    >>> model = WeightedParallelGCNN(num_classes=10, depth=4)
    >>> model.output_shape
    (None, 10)
    """
    depth, input_shape, variant = blocks.check_builder_arguments(
        "WeightedParallelGCNN", num_classes, depth, input_shape, variant, _POOLS)
    inputs, x = blocks.normalized_input(input_shape)
    standard = blocks.conv_bn_relu(x, 16, "std_conv")
    if variant == "paper":
        rotation = blocks.rotation_conv(x, 16, "rot_conv", group="C4")
        rotation = GroupFlatten(name="rot_flatten")(rotation)
        rotation = Conv2D(16, 1, name="rot_bottleneck")(rotation)
        x = blocks.SoftmaxWeightedSum(name="fusion")([standard, rotation])
        x = keras.layers.ReLU(name="fusion_relu")(x)
    else:
        rotation = blocks.rotation_conv_bn_relu(x, 16, "rot_conv", group="C4")
        rotation = GroupPooling(mode="max", name="rot_pool")(rotation)
        scale = blocks.scale_conv_bn_relu(x, 16, "scale_conv", scales=EQUIVARIANT_SCALES)
        scale = GroupPooling(mode="max", name="scale_pool")(scale)
        x = blocks.SoftmaxWeightedSum(name="fusion")([standard, rotation, scale])
    features = blocks.conv_stack(x, _TRUNKS[depth], first_index=2)
    logits = blocks.classifier_head(features, num_classes)
    return keras.Model(
        inputs, logits,
        name=blocks.model_name(name, f"weighted_parallel_gcnn_{depth}_{variant}"))
