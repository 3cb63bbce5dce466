"""The paper's parallel hybrids: a standard and a group branch side by side in the first layer.

- :func:`ParallelGCNN`: standard + C4 rotation branch, concatenated (official
  ``ImprovedParallelGCNN``, ``parallelGCNN10layer_*_no_aug.py``).
- :func:`ParallelRotScaleGCNN`: standard + rotation + scale branches fused by a 1x1 conv
  (official ``BaselineCNNWithParallelScaleAndRotEquivariance``).

Both are *hybrids*: only the group branch of the first layer is equivariant; the standard branch
and the standard trunk after the fusion are not, so no variant of these models is invariant to
rotations or scalings. They are what the paper evaluated (official code:
github.com/ifratmitul/Role-of-Equivariance).
"""

from __future__ import annotations

import keras

from keras_equivariant.layers import GroupFlatten
from keras_equivariant.models import blocks

# Trunks after the fused first layer. 10 layers: the official plans.
# 4 layers: the first three distinct widths of the 10-layer trunk, each after a 2x2 max-pool.
_PARALLEL_TRUNKS = {
    10: ["pool", 32, 32, 64, "pool", 64, 128, "pool", 128, 256, 256, 512],
    4: ["pool", 32, "pool", 64, "pool", 128],
}
_ROT_SCALE_TRUNKS = {
    10: ["pool", 32, 32, "pool", 64, 128, 128, 256, 256, 512],
    4: ["pool", 32, "pool", 64, "pool", 128],
}

#: Scales of the equivariant scale branch: the same 4x span as the official 0.5 / 1 / 2 resampled
#: copies, with integer ratios so that ``ScaleConv2D`` is exactly equivariant.
EQUIVARIANT_SCALES = (1, 2, 4)
#: Relative input scales of the official (unshared) multi-scale branch.
PAPER_SCALES = (0.5, 1.0, 2.0)


def _pools(trunks):
    return {depth: plan.count("pool") for depth, plan in trunks.items()}


def ParallelGCNN(num_classes=10, depth=10, input_shape=(32, 32, 3), variant="equivariant",
                 name=None):
    """Builds the paper's Parallel GCNN (rotation only): a standard and a C4 branch in parallel.

    Layer plan (both variants):

    - first layer, two branches on the normalized input:
      - standard: ``Conv2D(16, 3x3)`` -> BatchNorm -> ReLU;
      - rotation: C4 lifting ``RotationConv2D(16 fields)`` (64 channels), flattened field-major;
    - fusion: plain concatenation (80 channels) -> 2x2 max-pool;
    - trunk of std convs (``Conv2D 3x3 -> BatchNorm -> ReLU``):
      - ``depth=10`` (official plan): 32, 32, 64, pool, 64, 128, pool, 128, 256, 256, 512;
      - ``depth=4`` (not in the official code): 32, pool, 64, pool, 128;
    - head: global MAX pool -> ``Dense(num_classes)``.

    Variants:

    - ``"paper"``: the official code: the rotation branch has no normalization and no
      nonlinearity.
    - ``"equivariant"`` (default): the rotation branch is followed by
      ``GroupBatchNormalization`` and ReLU (both exactly equivariant), as the standard branch is.

    Equivariance: the rotation branch is exactly C4-equivariant; the model is a hybrid (standard
    branch + standard trunk), so **its logits are not rotation-invariant in either variant**.
    BatchNorm uses PyTorch's defaults (``momentum=0.9`` in Keras terms, ``epsilon=1e-5``).
    The official script trained this model with FGSM adversarial training;
    that is a training choice, not part of the architecture.

    Args:
        num_classes: int >= 2, number of classes.
        depth: 4 or 10.
        input_shape: ``(height, width, channels)``; height and width must be multiples of 8.
        variant: ``"equivariant"`` or ``"paper"`` (see above).
        name: model name; defaults to ``"parallel_gcnn_{depth}_{variant}"``.

    Returns:
        A functional ``keras.Model`` mapping pixels in [0, 1] ``(batch, *input_shape)`` to
        **logits** ``(batch, num_classes)``; normalization to [-1, 1] is its first layer.
        The layer named ``"features"`` outputs the last spatial conv feature map.

    Example:

    >>> model = ParallelGCNN(num_classes=10, depth=4, variant="paper")
    >>> model.output_shape
    (None, 10)
    """
    depth, input_shape, variant = blocks.check_builder_arguments(
        "ParallelGCNN", num_classes, depth, input_shape, variant, _pools(_PARALLEL_TRUNKS))
    inputs, x = blocks.normalized_input(input_shape)
    standard = blocks.conv_bn_relu(x, 16, "std_conv")
    rotation = blocks.rotation_conv(x, 16, "rot_conv", group="C4")
    if variant == "equivariant":
        rotation = blocks.group_batch_norm_relu(rotation, "rot_conv")
    rotation = GroupFlatten(name="rot_flatten")(rotation)
    x = keras.layers.Concatenate(name="fusion")([standard, rotation])
    features = blocks.conv_stack(x, _PARALLEL_TRUNKS[depth], first_index=2)
    logits = blocks.classifier_head(features, num_classes)
    return keras.Model(
        inputs, logits, name=blocks.model_name(name, f"parallel_gcnn_{depth}_{variant}"))


def _paper_scale_branches(x, input_shape):
    """The official "simulated" multi-scale branch: three independent std convs (unshared
    weights) on bilinearly resampled copies of the input, resampled back to the input size."""
    height, width, _ = input_shape
    outputs = []
    for scale, label in zip(PAPER_SCALES, ("half", "one", "double")):
        branch = x
        if scale != 1.0:
            branch = blocks.BilinearResize(
                int(height * scale), int(width * scale), name=f"scale_{label}_resize")(branch)
        branch = blocks.conv_bn_relu(branch, 16, f"scale_{label}_conv")
        if scale != 1.0:
            branch = blocks.BilinearResize(
                height, width, name=f"scale_{label}_restore")(branch)
        outputs.append(branch)
    return outputs


def ParallelRotScaleGCNN(num_classes=10, depth=10, input_shape=(32, 32, 3),
                         variant="equivariant", name=None):
    """Builds the paper's Parallel GCNN with rotation and scale branches (its best model).

    Layer plan:

    - first layer, parallel branches on the normalized input:
      - standard: ``Conv2D(16, 3x3)`` -> BatchNorm -> ReLU (16 channels);
      - rotation: lifting ``RotationConv2D(16 fields)`` -> [norm] -> ReLU, flattened;
      - scale: 16 channels per scale, flattened;
    - fusion: concatenation -> ``Conv2D(32, 1x1)`` -> BatchNorm -> ReLU;
    - trunk of std convs (``Conv2D 3x3 -> BatchNorm -> ReLU``):
      - ``depth=10`` (official plan): pool, 32, 32, pool, 64, 128, 128, 256, 256, 512;
      - ``depth=4`` (not in the official code): pool, 32, pool, 64, pool, 128;
    - head: global MAX pool -> ``Dense(num_classes)``.

    Variants:

    - ``"paper"``: the official code as evaluated. The rotation branch is **C8** (128 channels,
      no normalization, ReLU; C8 is approximate on the pixel grid). The "scale" branch is three
      *independent* std convs on the input bilinearly resized by 0.5, 1 and 2 (no
      antialiasing, half-pixel centers, as ``F.interpolate(align_corners=False)``), resized back
      -- unshared weights, so **not** scale-equivariant. Concatenation: 16 + 128 + 3 * 16 = 192.
    - ``"equivariant"`` (default): the rotation branch is **C4** (exact; the paper text says P4)
      with ``GroupBatchNormalization`` and ReLU; the scale branch is one ``ScaleConv2D(16)``
      with **shared weights** over the scales (1, 2, 4) (integer dilations: exactly
      scale-equivariant up to the image border) -> ``GroupBatchNormalization`` -> ReLU.
      Concatenation: 16 + 64 + 48 = 128.

    Equivariance: each group branch is equivariant to its group; the model is a hybrid
    (standard branch + standard trunk), so **its logits are neither rotation- nor
    scale-invariant in either variant**. BatchNorm uses PyTorch's defaults
    (``momentum=0.9`` in Keras terms, ``epsilon=1e-5``).

    Args:
        num_classes: int >= 2, number of classes.
        depth: 4 or 10.
        input_shape: ``(height, width, channels)``; height and width must be multiples of 4
            (depth 10) or 8 (depth 4).
        variant: ``"equivariant"`` or ``"paper"`` (see above).
        name: model name; defaults to ``"parallel_rot_scale_gcnn_{depth}_{variant}"``.

    Returns:
        A functional ``keras.Model`` mapping pixels in [0, 1] ``(batch, *input_shape)`` to
        **logits** ``(batch, num_classes)``; normalization to [-1, 1] is its first layer.
        The layer named ``"features"`` outputs the last spatial conv feature map.

    Example:

    >>> model = ParallelRotScaleGCNN(num_classes=10, depth=4)
    >>> model.output_shape
    (None, 10)
    """
    depth, input_shape, variant = blocks.check_builder_arguments(
        "ParallelRotScaleGCNN", num_classes, depth, input_shape, variant,
        _pools(_ROT_SCALE_TRUNKS))
    inputs, x = blocks.normalized_input(input_shape)
    standard = blocks.conv_bn_relu(x, 16, "std_conv")
    if variant == "paper":
        rotation = blocks.rotation_conv(x, 16, "rot_conv", group="C8")
        rotation = keras.layers.ReLU(name="rot_conv_relu")(rotation)
        scales = _paper_scale_branches(x, input_shape)
    else:
        rotation = blocks.rotation_conv_bn_relu(x, 16, "rot_conv", group="C4")
        scale = blocks.scale_conv_bn_relu(x, 16, "scale_conv", scales=EQUIVARIANT_SCALES)
        scales = [GroupFlatten(name="scale_flatten")(scale)]
    rotation = GroupFlatten(name="rot_flatten")(rotation)
    x = keras.layers.Concatenate(name="fusion")([standard, rotation, *scales])
    x = blocks.conv_bn_relu(x, 32, "fusion_conv", kernel_size=1)
    features = blocks.conv_stack(x, _ROT_SCALE_TRUNKS[depth], first_index=2)
    logits = blocks.classifier_head(features, num_classes)
    return keras.Model(
        inputs, logits,
        name=blocks.model_name(name, f"parallel_rot_scale_gcnn_{depth}_{variant}"))
