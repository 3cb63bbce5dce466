"""The paper's baseline: a plain CNN (official ``ExtendedCNN``)."""

from __future__ import annotations

import keras

from keras_equivariant.models import blocks

# 10 layers: the official plan (`ExtendedCNN`). 4 layers: conv1 of that plan, then the first
# three distinct widths of its trunk, each after a 2x2 max-pool (not in the official code).
_PLANS = {
    10: [16, "pool", 32, "pool", 32, 64, "pool", 64, 128, "pool", 128, 256, "pool", 256, 256],
    4: [16, "pool", 32, "pool", 64, "pool", 128],
}
_POOLS = {depth: plan.count("pool") for depth, plan in _PLANS.items()}


def BaselineCNN(num_classes=10, depth=10, input_shape=(32, 32, 3), variant="equivariant",
                name=None):
    """Builds the paper's baseline CNN, a plain (non-equivariant) convolutional network.

    Every conv is the official "std conv" ``Conv2D(3x3, same, bias) -> BatchNormalization
    (momentum=0.9, epsilon=1e-5, i.e. PyTorch's defaults) -> ReLU``; the head is a global MAX
    pool and one ``Dense``.

    - ``depth=10`` is the official 10-layer plan: widths 16, 32, 32, 64, 64, 128, 128, 256, 256,
      256 with a 2x2 max-pool after convs 1, 2, 4, 6 and 8 (so convs 9 and 10 run on 1x1 maps
      for 32x32 inputs, as in the official code). 1,771,562 parameters for 10 classes, exactly
      the official count.
    - ``depth=4`` (not in the official code): widths 16, 32, 64, 128, with a 2x2 max-pool after
      each of the first three convs (32 -> 4).

    The model has no equivariance; ``variant`` is accepted for a uniform signature with the other
    builders and both values build the same network.

    Args:
        num_classes: int >= 2, number of classes (size of the logits).
        depth: 4 or 10, number of conv layers.
        input_shape: ``(height, width, channels)``; height and width must be multiples of
            ``2 ** num_pools`` (32 for depth 10, 8 for depth 4).
        variant: ``"equivariant"`` or ``"paper"``; no effect for this model.
        name: model name; defaults to ``"baseline_cnn_{depth}"``.

    Returns:
        A functional ``keras.Model`` mapping pixels in [0, 1] of shape
        ``(batch, *input_shape)`` to **logits** ``(batch, num_classes)`` (no softmax; use
        ``SparseCategoricalCrossentropy(from_logits=True)``). The input is normalized to
        [-1, 1] by the model's first layer (``"normalization"``). The layer named
        ``"features"`` outputs the last spatial conv feature map (for GradCAM).

    Example:

    >>> model = BaselineCNN(num_classes=10, depth=4)
    >>> model.output_shape
    (None, 10)
    """
    depth, input_shape, variant = blocks.check_builder_arguments(
        "BaselineCNN", num_classes, depth, input_shape, variant, _POOLS)
    inputs, x = blocks.normalized_input(input_shape)
    features = blocks.conv_stack(x, _PLANS[depth], first_index=1)
    logits = blocks.classifier_head(features, num_classes)
    return keras.Model(inputs, logits, name=blocks.model_name(name, f"baseline_cnn_{depth}"))
