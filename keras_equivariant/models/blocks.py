"""Building blocks shared by the model builders: argument checks, normalization, conv stages, head.

Everything here is made of serializable Keras layers, so every builder returns a plain functional
``keras.Model`` that round-trips through ``.keras`` files and ``model.export()``.
"""

from __future__ import annotations

import keras

from keras_equivariant.choices import DEPTHS, VARIANTS
from keras_equivariant.layers import (BatchNormalization, Conv2D, GroupBatchNormalization,
                                      RotationConv2D, ScaleConv2D)
from keras_equivariant.utils.validation import check_choice, check_positive_int

# PyTorch's BatchNorm2d defaults (momentum 0.1 on the *new* batch, eps 1e-5) expressed in Keras,
# whose momentum weighs the *old* running value: 1 - 0.1 = 0.9.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

# Name of the (batch, height, width, channels) feature map that the global max pool of every
# model consumes: the "last spatial conv feature map" for GradCAM and other visualizations.
FEATURES_LAYER_NAME = "features"
LOGITS_LAYER_NAME = "logits"


def check_builder_arguments(builder_name, num_classes, depth, input_shape, variant, pools_by_depth):
    """Validates the common builder arguments; returns ``(depth, input_shape, variant)``.

    ``pools_by_depth`` maps each depth to the number of 2x2 max-pools of that plan: height and
    width must be positive multiples of ``2 ** num_pools`` so that every pooling window is full
    (and, for the equivariant models, so that pooling commutes with 90-degree rotations).
    """
    check_positive_int(num_classes, "num_classes", minimum=2)
    if isinstance(depth, bool) or depth not in DEPTHS:
        raise ValueError(
            f"`depth` of {builder_name} must be one of {list(DEPTHS)} (the paper's 4- and "
            f"10-layer plans); received {depth!r}."
        )
    check_choice(variant, VARIANTS, "variant")
    try:
        input_shape = tuple(int(size) for size in input_shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"`input_shape` must be a tuple (height, width, channels) of positive integers; "
            f"received {input_shape!r}."
        ) from None
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(
            f"`input_shape` must be (height, width, channels) with positive sizes, channels "
            f"last; received {input_shape!r}."
        )
    num_pools = pools_by_depth[depth]
    multiple = 2**num_pools
    height, width, _ = input_shape
    if height % multiple or width % multiple:
        raise ValueError(
            f"{builder_name}(depth={depth}) max-pools by 2 {num_pools} times, so the input "
            f"height and width must be positive multiples of {multiple}; received "
            f"input_shape={input_shape}. Resize or pad the images, e.g. to "
            f"({max(multiple, height - height % multiple)}, "
            f"{max(multiple, width - width % multiple)}, {input_shape[2]})."
        )
    return int(depth), input_shape, variant


def model_name(name, default):
    return default if name is None else name


def normalized_input(input_shape):
    """Returns ``(inputs, x)``: the pixel input in [0, 1] and its [-1, 1] normalization.

    The normalization is the paper's ``Normalize((0.5,) * 3, (0.5,) * 3)``, done by a layer inside
    the model so that attacks and users work in pixel space.
    """
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="normalization")(inputs)
    return inputs, x


def batch_norm(name):
    return BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def conv_bn_relu(x, filters, name, kernel_size=3, relu_name=None):
    """The official code's "std conv": ``Conv2D(k, padding=same, bias)`` -> BatchNorm -> ReLU."""
    x = Conv2D(filters, kernel_size, padding="same", name=name)(x)
    x = batch_norm(f"{name}_bn")(x)
    return keras.layers.ReLU(name=relu_name or f"{name}_relu")(x)


def max_pool(x, name):
    return keras.layers.MaxPooling2D(2, name=name)(x)


def conv_stack(x, plan, first_index, last_is_features=True):
    """Applies a plan of std convs. ``plan`` holds ints (filters) and ``"pool"`` markers.

    Convs are named ``conv{index}`` from ``first_index`` on; the last ReLU of the plan is named
    ``"features"`` when ``last_is_features``.
    """
    last_conv = max(i for i, step in enumerate(plan) if step != "pool")
    index = first_index
    for position, step in enumerate(plan):
        if step == "pool":
            x = max_pool(x, f"pool{index - 1}")
            continue
        relu_name = FEATURES_LAYER_NAME if (last_is_features and position == last_conv) else None
        x = conv_bn_relu(x, step, f"conv{index}", relu_name=relu_name)
        index += 1
    return x


def classifier_head(features, num_classes):
    """The official head: global MAX pool over space -> one ``Dense`` producing logits."""
    x = keras.layers.GlobalMaxPooling2D(name="global_max_pool")(features)
    return keras.layers.Dense(num_classes, name=LOGITS_LAYER_NAME)(x)


def group_max_pool(x, name):
    """2x2 spatial max-pool of a group feature map ``(B, H, W, G, C)`` -> ``(B, H/2, W/2, G, C)``.

    Pooling acts per channel, so the group axis is merged into channels, pooled and split again.
    On even sizes it commutes with 90-degree rotations (and with the group's channel shift).
    """
    height, width, group_size, channels = x.shape[1:]
    x = keras.layers.Reshape((height, width, group_size * channels), name=f"{name}_merge")(x)
    x = keras.layers.MaxPooling2D(2, name=name)(x)
    return keras.layers.Reshape(
        (height // 2, width // 2, group_size, channels), name=f"{name}_split")(x)


@keras.saving.register_keras_serializable(package="keras_equivariant")
class SoftmaxWeightedSum(keras.layers.Layer):
    """Sums same-shape inputs with learned softmax weights: ``sum_i softmax(w)_i * inputs[i]``.

    The fusion of the official Weighted Parallel GCNN: one scalar logit per branch, initialized to
    ``initial_value`` (0.5 for every branch, so the weights start uniform).

    Args:
        initial_value: float, initial logit of every branch.
        **kwargs: base layer keyword arguments (``name``, ``dtype``, ...).

    Input shape:
        A list of ``N >= 2`` tensors of identical shape.

    Output shape:
        The common input shape.

    Example:

    >>> a, b = keras.ops.ones((2, 4, 4, 8)), keras.ops.zeros((2, 4, 4, 8))
    >>> tuple(SoftmaxWeightedSum()([a, b]).shape)  # 0.5 * a + 0.5 * b
    (2, 4, 4, 8)
    """

    def __init__(self, initial_value=0.5, **kwargs):
        super().__init__(**kwargs)
        self.initial_value = float(initial_value)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 2 or not all(
                isinstance(shape, (list, tuple)) for shape in input_shape):
            raise ValueError(
                f"SoftmaxWeightedSum expects a list of at least 2 tensors; received input "
                f"shape {input_shape}."
            )
        shapes = {tuple(shape[1:]) for shape in input_shape}
        if len(shapes) != 1:
            raise ValueError(
                f"SoftmaxWeightedSum needs inputs of identical shape; received {input_shape}."
            )
        self.branch_logits = self.add_weight(
            shape=(len(input_shape),),
            initializer=keras.initializers.Constant(self.initial_value),
            name="branch_logits",
        )

    def call(self, inputs):
        weights = keras.ops.softmax(self.branch_logits)
        return sum(weights[i] * inputs[i] for i in range(len(inputs)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {**super().get_config(), "initial_value": self.initial_value}


def group_batch_norm_relu(x, name, relu_name=None):
    """``GroupBatchNormalization`` (statistics over batch, space and group) -> ReLU.

    Both are exactly equivariant for regular (rotation) and scale fields.
    """
    x = GroupBatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=relu_name or f"{name}_relu")(x)


def rotation_conv(x, filters, name, group="C4"):
    """A 3x3 ``RotationConv2D``: lifting on a rank-4 input, group conv on a rank-5 input."""
    return RotationConv2D(filters, 3, group=group, padding="same", name=name)(x)


def rotation_conv_bn_relu(x, filters, name, group="C4"):
    """:func:`rotation_conv` -> :func:`group_batch_norm_relu`, the equivariant "group conv"."""
    x = rotation_conv(x, filters, name, group=group)
    return group_batch_norm_relu(x, name)


def scale_conv_bn_relu(x, filters, name, scales):
    """A 3x3 ``ScaleConv2D`` (weights shared over ``scales``) -> :func:`group_batch_norm_relu`."""
    x = ScaleConv2D(filters, 3, scales=scales, padding="same", name=name)(x)
    return group_batch_norm_relu(x, name)


def group_conv_stack(x, plan, first_index, group="C4"):
    """Like :func:`conv_stack` on group feature maps: ``RotationConv2D`` -> group BN -> ReLU.

    ``plan`` holds numbers of fields (ints) and ``"pool"`` markers (2x2 spatial max-pools).
    """
    index = first_index
    for step in plan:
        if step == "pool":
            x = group_max_pool(x, f"pool{index - 1}")
            continue
        x = rotation_conv_bn_relu(x, step, f"conv{index}", group=group)
        index += 1
    return x


@keras.saving.register_keras_serializable(package="keras_equivariant")
class BilinearResize(keras.layers.Layer):
    """Resizes images bilinearly to a fixed size, as PyTorch's ``F.interpolate`` does.

    Half-pixel centers and no antialiasing, i.e. ``F.interpolate(mode="bilinear",
    align_corners=False)``: a 2x down-sampling averages each 2x2 block. Used by the official
    "simulated" multi-scale branch of ``ParallelRotScaleGCNN(variant="paper")``.
    (``keras.layers.Resizing`` is not used: in Keras 3.15 a model exported with
    ``model.export()`` runs the layers after it in training mode.)

    Args:
        height: int, output height.
        width: int, output width.
        **kwargs: base layer keyword arguments.

    Input shape:
        ``(batch, in_height, in_width, channels)``.

    Output shape:
        ``(batch, height, width, channels)``.

    Example:

    >>> tuple(BilinearResize(16, 16)(keras.ops.ones((2, 32, 32, 3))).shape)
    (2, 16, 16, 3)
    """

    def __init__(self, height, width, **kwargs):
        super().__init__(**kwargs)
        self.height = check_positive_int(height, "height")
        self.width = check_positive_int(width, "width")

    def call(self, inputs):
        return keras.ops.image.resize(
            inputs, (self.height, self.width), interpolation="bilinear", antialias=False)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}
