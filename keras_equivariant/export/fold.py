"""Folding equivariant convolutions into plain ``keras.layers.Conv2D`` layers for serving."""

from __future__ import annotations

import collections

import keras
import numpy as np


def fold(model):
    """Returns an inference copy of ``model`` whose group convolutions are plain ``Conv2D``.

    Every group convolution (any layer with a ``plain_convolutions()`` method, i.e. every
    :class:`keras_equivariant.layers.base.GroupConv2D`: ``RotationConv2D``, ``ScaleConv2D``
    and ``RotationScaleConv2D``, lifting or group-to-group, strided, dilated or blurred) is
    replaced by the plain convolutions it describes: one ``keras.layers.Conv2D`` holding the
    expanded kernel for a rotation layer (``filters * |G|`` output channels), one per scale for
    the scale layers (integer scales as dilated convolutions of the shared kernel; a scale
    window of a rank-5 input as a channel slice; ``blur_sigma`` as two ``DepthwiseConv2D``).
    The group axis is kept between layers: a folded layer reads and writes the
    ``(batch, height, width, group_axis_size, channels)`` layout through free ``Reshape``
    layers (group-major channels, ``channel = g * C + c``), so every other layer
    (``GroupBatchNormalization``, ``GroupPooling``, ...) is reused unchanged. Other layers are
    copied with their current weights.

    Batch normalizations (``BatchNormalization``, ``GroupBatchNormalization``) that directly
    follow a plain or folded conv with a bias and no activation, and are that conv's only reader,
    are folded into its kernel(s) and bias(es) with their moving statistics (inference mode), so
    they disappear from the graph.

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
    if not isinstance(model, keras.Model) or isinstance(model, keras.Sequential) or not hasattr(
            model, "_run_through_graph"):
        raise ValueError(
            "fold() needs a functional keras.Model (built with keras.Model(inputs, outputs), as "
            f"every keras_equivariant builder returns); received {type(model).__name__}. Wrap a "
            "Sequential model: keras.Model(seq.inputs, seq.outputs)."
        )
    if not model.built:
        raise ValueError(f"fold() needs a built model; model {model.name!r} is not built.")
    graph = _Graph(model)
    originals = {}
    # Tensors of the new graph that a following batch norm may be folded into:
    # id(tensor) -> (tensor, the Conv2D layers whose outputs it concatenates).
    foldable_outputs = {}

    def clone_layer(layer):
        if _is_group_conv(layer):
            return layer
        # keras_equivariant.layers.Conv2D only changes the backward pass: serve Keras' own.
        cls = keras.layers.Conv2D if isinstance(layer, keras.layers.Conv2D) else layer.__class__
        copy = cls.from_config(layer.get_config())
        originals[id(copy)] = layer
        return copy

    def call_layer(layer, *args, **kwargs):
        if _is_group_conv(layer):
            outputs, convs = _fold_group_conv(layer, *args)
            if layer.use_bias and _is_linear(layer.activation) and graph.feeds_one_layer(layer):
                foldable_outputs[id(outputs)] = (outputs, convs)
            return outputs
        original = originals.get(id(layer))
        producer = foldable_outputs.get(id(args[0])) if args else None
        if producer is not None and graph.is_foldable_batch_norm(original):
            _fold_batch_norm(original, producer[1])
            return args[0]
        outputs = layer(*args, **kwargs)
        if original is not None:
            layer.set_weights(original.get_weights())
            if (type(layer) is keras.layers.Conv2D and layer.use_bias
                    and _is_linear(layer.activation) and graph.feeds_one_layer(original)):
                foldable_outputs[id(outputs)] = (outputs, [layer])
        return outputs

    return keras.models.clone_model(
        model, clone_function=clone_layer, call_function=call_layer, recursive=True)


def _is_group_conv(layer):
    return callable(getattr(layer, "plain_convolutions", None)) and layer.built


def _is_linear(activation):
    return keras.activations.serialize(activation) == "linear"


class _Graph:
    """Who calls and reads what in a functional model, from its public config: the number of
    calls of each layer, the number of readers of each output tensor, and the model outputs."""

    def __init__(self, model):
        config = model.get_config()
        self.calls = {}
        self.readers = collections.Counter()
        for layer in config["layers"]:
            self.calls[layer["name"]] = len(layer.get("inbound_nodes") or ())
            for node in layer.get("inbound_nodes") or ():
                self.readers.update(_tensor_references(node))
        outputs = config["output_layers"]
        if outputs and isinstance(outputs[0], str):
            outputs = [outputs]
        self.outputs = {tuple(reference) for reference in outputs}

    def feeds_one_layer(self, layer):
        """Whether ``layer`` is called once and its output is read by one layer only (not also a
        model output), so that folding the next layer into it changes nothing else."""
        output = (layer.name, 0, 0)
        return (self.calls.get(layer.name) == 1 and self.readers[output] == 1
                and output not in self.outputs)

    def is_foldable_batch_norm(self, layer):
        """A batch norm (or group batch norm) normalizing the last axis, called once."""
        return (
            isinstance(layer, keras.layers.BatchNormalization)
            and self.calls.get(layer.name) == 1
            and layer.axis in (-1, len(layer.input.shape) - 1)
        )


def _tensor_references(value):
    """The ``(layer name, node index, tensor index)`` of every tensor in a serialized node."""
    if isinstance(value, dict):
        history = value.get("config", {}).get("keras_history") if value.get(
            "class_name") == "__keras_tensor__" else None
        if history is not None:
            return [tuple(history)]
        return [ref for item in value.values() for ref in _tensor_references(item)]
    if isinstance(value, (list, tuple)):
        return [ref for item in value for ref in _tensor_references(item)]
    return []


def _fold_batch_norm(batch_norm, convs):
    """Folds an inference-mode batch norm into the kernel and bias of the ``convs`` whose
    concatenated outputs it reads: ``gamma * (conv(x) - mean) / sqrt(variance + epsilon) +
    beta``. Each conv's output channels repeat the normalized fields (group-major)."""
    mean = keras.ops.convert_to_numpy(batch_norm.moving_mean)
    variance = keras.ops.convert_to_numpy(batch_norm.moving_variance)
    gamma = 1.0 if batch_norm.gamma is None else keras.ops.convert_to_numpy(batch_norm.gamma)
    beta = 0.0 if batch_norm.beta is None else keras.ops.convert_to_numpy(batch_norm.beta)
    scale = gamma / np.sqrt(variance + batch_norm.epsilon)
    shift = beta - mean * scale
    for conv in convs:
        kernel, bias = conv.get_weights()
        repeats = kernel.shape[-1] // scale.shape[0]
        conv.set_weights([kernel * np.tile(scale, repeats),
                          bias * np.tile(scale, repeats) + np.tile(shift, repeats)])


def _plain_conv(x, kernel, bias, name, strides=(1, 1), dilation_rate=(1, 1),
                padding=((0, 0), (0, 0)), activation=None):
    """``Cropping2D``/``ZeroPadding2D`` (unless Keras' own "same" matches) + a ``Conv2D``
    holding the weights."""
    kernel_size = tuple(kernel.shape[:2])
    padding = tuple(tuple(pair) for pair in padding)
    centred = tuple(((rate * (size - 1)) // 2,) * 2 for rate, size in zip(dilation_rate, kernel_size))
    if tuple(strides) == (1, 1) and all(size % 2 for size in kernel_size) and padding == centred:
        mode = "same"
    else:
        mode = "valid"
        crops = tuple((max(-before, 0), max(-after, 0)) for before, after in padding)
        pads = tuple((max(before, 0), max(after, 0)) for before, after in padding)
        if any(any(pair) for pair in crops):
            x = keras.layers.Cropping2D(crops, name=f"{name}_crop")(x)
        if any(any(pair) for pair in pads):
            x = keras.layers.ZeroPadding2D(pads, name=f"{name}_pad")(x)
    conv = keras.layers.Conv2D(
        kernel.shape[-1], kernel_size, strides=strides, padding=mode,
        dilation_rate=dilation_rate, use_bias=bias is not None, activation=activation,
        name=name)
    outputs = conv(x)
    conv.set_weights([kernel] if bias is None else [kernel, bias])
    return outputs, conv


def _blur(x, weights, name):
    """The separable Gaussian pre-blur of a scale lifting as two ``DepthwiseConv2D``."""
    weights = np.asarray(weights, np.float32)
    channels = x.shape[-1]
    for axis, shape in (("rows", (len(weights), 1)), ("cols", (1, len(weights)))):
        blur = keras.layers.DepthwiseConv2D(
            shape, padding="same", use_bias=False, name=f"{name}_blur_{axis}")
        x = blur(x)
        blur.set_weights([np.tile(weights.reshape(shape + (1, 1)), (1, 1, channels, 1))])
    return x


def _fold_group_conv(layer, inputs):
    """The plain convolutions of ``layer`` (``layer.plain_convolutions()``) as Keras layers."""
    convolutions = layer.plain_convolutions()
    x = inputs
    height, width = x.shape[1], x.shape[2]
    if len(x.shape) == 5:
        x = keras.layers.Reshape(
            (height, width, x.shape[3] * x.shape[4]), name=f"{layer.name}_merge")(x)
    channels = x.shape[-1]
    outputs, convs = [], []
    for index, convolution in enumerate(convolutions):
        name = layer.name if len(convolutions) == 1 else f"{layer.name}_conv{index}"
        start, stop = convolution.input_channels
        piece = x if (start, stop) == (0, channels) else x[..., start:stop]
        if convolution.input_blur is not None:
            piece = _blur(piece, convolution.input_blur, name)
        bias = convolution.bias
        output, conv = _plain_conv(
            piece, keras.ops.convert_to_numpy(convolution.kernel),
            None if bias is None else keras.ops.convert_to_numpy(bias), name=name,
            strides=convolution.strides, dilation_rate=convolution.dilation_rate,
            padding=convolution.padding, activation=layer.activation)
        outputs.append(output)
        convs.append(conv)
    x = outputs[0] if len(outputs) == 1 else keras.layers.Concatenate(
        axis=-1, name=f"{layer.name}_concat")(outputs)
    outputs = keras.layers.Reshape(
        (x.shape[1], x.shape[2], layer.group_axis_size, layer.filters),
        name=f"{layer.name}_split")(x)
    return outputs, convs
