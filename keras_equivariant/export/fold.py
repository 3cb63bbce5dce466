"""Folding equivariant convolutions into plain ``keras.layers.Conv2D`` layers for serving."""

from __future__ import annotations

import keras
import numpy as np

from keras_equivariant.groups.scale import is_integer_scale
from keras_equivariant.layers.rotation import RotationConv2D
from keras_equivariant.layers.scale import ScaleConv2D


def fold(model):
    """Returns an inference copy of ``model`` whose equivariant convolutions are plain ``Conv2D``.

    Every :class:`~keras_equivariant.layers.RotationConv2D` is replaced by a
    ``keras.layers.Conv2D`` holding its expanded kernel (``filters * |G|`` output channels), and
    every lifting :class:`~keras_equivariant.layers.ScaleConv2D` (rank-4 input, stride 1,
    ``padding="same"``, no ``blur_sigma``) by one ``Conv2D`` per scale (integer scales as
    dilated convolutions of the shared kernel). The group axis is kept between layers: a folded
    conv reads and writes the ``(batch, height, width, |G|, channels)`` layout through free
    ``Reshape`` layers (the kernel is laid out group-major, ``channel = g * C + c``), so every
    other layer (``GroupBatchNormalization``, ``GroupPooling``, ...) is reused unchanged. Other
    layers are copied with their current weights; layers that fold does not express as plain
    convolutions (scale-group convs on rank-5 inputs, blurred or strided scale lifting,
    ``RotationScaleConv2D``) are copied as they are.

    Batch normalizations (``BatchNormalization``, ``GroupBatchNormalization``) that directly
    follow a plain or folded conv with a bias and no activation, and are that conv's only reader,
    are folded into its kernel and bias with their moving statistics (inference mode), so they
    disappear from the graph.

    The result computes the same function as ``model`` in inference mode (to float32 round-off,
    about 1e-6 relative) and is independent of it: training ``model`` further does not change
    it, so fold again after training. It is meant for serving (``model.export()``, TF Serving,
    TFLite), where the kernel expansion of the equivariant layers is no longer paid on every call
    and the graph contains standard ops only.

    Args:
        model: a functional ``keras.Model`` (every builder of this library returns one), built.

    Returns:
        A new functional ``keras.Model`` with the same inputs, outputs and name.

    Raises:
        ValueError: if ``model`` is not a built functional model.

    Example:

    >>> model = keras_equivariant.CascadedGCNN(depth=4)
    >>> served = fold(model)
    >>> any(isinstance(layer, RotationConv2D) for layer in served.layers)
    False
    """
    if not isinstance(model, keras.Model) or not hasattr(model, "_run_through_graph") or (
            isinstance(model, keras.Sequential)):
        raise ValueError(
            "fold() needs a functional keras.Model (built with keras.Model(inputs, outputs), as "
            f"every keras_equivariant builder returns); received {type(model).__name__}. Wrap a "
            "Sequential model: keras.Model(seq.inputs, seq.outputs)."
        )
    if not model.built:
        raise ValueError(f"fold() needs a built model; model {model.name!r} is not built.")
    originals = {}
    # Tensors of the new graph that a following batch norm may be folded into:
    # id(tensor) -> (tensor, Conv2D producing it, channel repeats), where ``repeats`` is |G|
    # for the (batch, h, w, |G|, filters) output of a folded group conv (group-major channels).
    foldable_outputs = {}

    def clone_layer(layer):
        if _foldable(layer):
            return layer
        copy = layer.__class__.from_config(layer.get_config())
        originals[id(copy)] = layer
        return copy

    def call_layer(layer, *args, **kwargs):
        if isinstance(layer, RotationConv2D):
            outputs, conv = _fold_rotation_conv(layer, *args)
            if layer.use_bias and _is_linear(layer.activation) and _feeds_one_layer(layer, model):
                foldable_outputs[id(outputs)] = (outputs, conv, layer.group_order)
            return outputs
        if isinstance(layer, ScaleConv2D) and _foldable(layer):
            return _fold_scale_conv(layer, *args)
        original = originals.get(id(layer))
        producer = foldable_outputs.get(id(args[0])) if args else None
        if producer is not None and _is_foldable_batch_norm(original):
            _fold_batch_norm(original, producer[1], producer[2])
            return args[0]
        outputs = layer(*args, **kwargs)
        if original is not None:
            layer.set_weights(original.get_weights())
            if (type(layer) is keras.layers.Conv2D and layer.use_bias
                    and _is_linear(layer.activation) and _feeds_one_layer(original, model)):
                foldable_outputs[id(outputs)] = (outputs, layer, 1)
        return outputs

    return keras.models.clone_model(
        model, clone_function=clone_layer, call_function=call_layer, recursive=True)


def _is_linear(activation):
    return keras.activations.serialize(activation) == "linear"


def _feeds_one_layer(layer, model):
    """Whether ``layer`` is called once and its output is read by one layer only (not also a
    model output), so that folding the next layer into it changes nothing else."""
    return (
        len(layer._inbound_nodes) == 1
        and len(layer._outbound_nodes) == 1
        and not any(output is layer.output for output in model.outputs)
    )


def _is_foldable_batch_norm(layer):
    """A batch norm (or group batch norm) normalizing the last axis, called once."""
    return (
        isinstance(layer, keras.layers.BatchNormalization)
        and len(layer._inbound_nodes) == 1
        and layer.axis in (-1, len(layer.input.shape) - 1)
    )


def _fold_batch_norm(batch_norm, conv, repeats):
    """Folds an inference-mode batch norm into the kernel and bias of the ``conv`` before it:
    ``gamma * (conv(x) - mean) / sqrt(variance + epsilon) + beta``."""
    mean = keras.ops.convert_to_numpy(batch_norm.moving_mean)
    variance = keras.ops.convert_to_numpy(batch_norm.moving_variance)
    gamma = 1.0 if batch_norm.gamma is None else keras.ops.convert_to_numpy(batch_norm.gamma)
    beta = 0.0 if batch_norm.beta is None else keras.ops.convert_to_numpy(batch_norm.beta)
    scale = gamma / np.sqrt(variance + batch_norm.epsilon)
    shift = beta - mean * scale
    kernel, bias = conv.get_weights()
    conv.set_weights([kernel * np.tile(scale, repeats),
                      bias * np.tile(scale, repeats) + np.tile(shift, repeats)])


def _foldable(layer):
    if isinstance(layer, RotationConv2D):
        return True
    return (
        isinstance(layer, ScaleConv2D)
        and layer.built
        and layer._lifting
        and layer.strides == (1, 1)
        and layer.padding == "same"
        and layer.blur_sigma is None
    )


def _plain_conv(x, kernel, bias, name, strides=1, dilation_rate=1, padding=((0, 0), (0, 0)),
                activation=None):
    """``ZeroPadding2D`` (unless Keras' own "same" matches) + a ``Conv2D`` holding the weights."""
    kernel_size = tuple(kernel.shape[:2])
    centred = tuple(((dilation_rate * (size - 1)) // 2,) * 2 for size in kernel_size)
    if strides == 1 and all(size % 2 for size in kernel_size) and tuple(padding) == centred:
        mode = "same"
    else:
        mode = "valid"
        if any(any(pair) for pair in padding):
            x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    conv = keras.layers.Conv2D(
        kernel.shape[-1], kernel_size, strides=strides, padding=mode,
        dilation_rate=dilation_rate, use_bias=bias is not None, activation=activation,
        name=name)
    outputs = conv(x)
    conv.set_weights([kernel] if bias is None else [kernel, bias])
    return outputs, conv


def _fold_rotation_conv(layer, inputs):
    kernel = keras.ops.convert_to_numpy(layer.expanded_kernel_and_bias()[0])
    size, in_order, in_fields = layer.kernel_size, layer.input_order, layer.input_fields
    order, filters = layer.group_order, layer.filters
    # Field-major (c * |G| + g) -> group-major (g * C + c) on both channel axes, so that the
    # rank-5 group feature maps enter and leave the conv through free reshapes.
    kernel = kernel.reshape(size, size, in_fields, in_order, filters, order)
    kernel = kernel.transpose(0, 1, 3, 2, 5, 4).reshape(
        size, size, in_order * in_fields, order * filters)
    bias = None if layer.bias is None else np.tile(keras.ops.convert_to_numpy(layer.bias), order)
    x = inputs
    height, width = x.shape[1], x.shape[2]
    if len(x.shape) == 5:
        x = keras.layers.Reshape(
            (height, width, in_order * in_fields), name=f"{layer.name}_merge")(x)
    x, conv = _plain_conv(
        x, kernel, bias, name=layer.name, strides=layer.strides,
        dilation_rate=layer.dilation_rate, padding=layer.compute_padding(height, width),
        activation=layer.activation)
    outputs = keras.layers.Reshape(
        (x.shape[1], x.shape[2], order, filters), name=f"{layer.name}_split")(x)
    return outputs, conv


def _fold_scale_conv(layer, inputs):
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    bias = None if layer.bias is None else keras.ops.convert_to_numpy(layer.bias)
    expanded = None
    height, width = inputs.shape[1], inputs.shape[2]
    outputs = []
    for index, scale in enumerate(layer.scales):
        name = f"{layer.name}_scale{index}"
        if is_integer_scale(scale):
            dilation = int(round(scale))
            scale_kernel = kernel
        else:
            if expanded is None:
                expanded = [keras.ops.convert_to_numpy(k) for k in layer.expanded_kernels()]
            dilation = 1
            scale_kernel = expanded[index]
        # Centred ("same") padding of the dilated or interpolated kernel at this scale.
        pads = tuple(((size - 1) // 2,) * 2 for size in layer.dilated_sizes[index])
        x, _ = _plain_conv(inputs, scale_kernel, bias, name=name, dilation_rate=dilation,
                           padding=pads)
        outputs.append(keras.layers.Reshape(
            (height, width, 1, layer.filters), name=f"{name}_expand")(x))
    if len(outputs) == 1:
        return outputs[0]
    return keras.layers.Concatenate(axis=3, name=layer.name)(outputs)
