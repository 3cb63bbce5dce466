"""Saliency maps (vanilla gradient, SmoothGrad) and GradCAM++ for any keras-equivariant model.

The maps are computed with tf-keras-vis (``Saliency``, ``GradcamPlusPlus``) on the model's
**logits**: every builder in this library outputs logits, so the class score is the logit itself.
A model that ends in a softmax/sigmoid is cloned and its output activation is replaced by a linear
one (tf-keras-vis ``ReplaceToLinear``) so the score does not saturate.

GradCAM++ needs a spatial feature layer. :func:`find_penultimate_layer` picks it automatically:
the last layer whose output is a spatial map, either ``(batch, height, width, channels)`` or a
group feature map ``(batch, height, width, group_size, channels)``, preferring maps larger than
1x1 (a 1x1 map gives a constant CAM). For a group feature map the CAM weights are computed per
field over space *and* the group axis (GradCAM++ treats the group axis like a third "spatial"
axis), and the resulting ``(height, width, group_size)`` map is max-pooled over the group axis
(orientation pooling) before it is resized to the image.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np

from keras_equivariant.choices import EXPLANATION_METHODS as METHODS
from keras_equivariant.utils.validation import (check_choice, check_images, check_labels,
                                                check_positive_int, require_backend)
from keras_equivariant.visualize._plotting import new_figure, save_figure, wrap_text


def _as_functional(model):
    """Returns a functional view of ``model`` (tf-keras-vis fails on Sequential models)."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`model` must be a keras.Model; received an object of type {type(model).__name__}."
        )
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise ValueError(
                "The Sequential model has no defined input; build it with `keras.Input(shape)` as "
                "its first layer (or call it once on data) before computing saliency maps."
            )
        return keras.Model(model.inputs, model.outputs, name=f"{model.name}_functional")
    try:
        has_graph = bool(model.inputs)
    except (AttributeError, ValueError):  # subclassed models have no symbolic inputs
        has_graph = False
    if not has_graph:
        raise ValueError(
            "Saliency maps need a functional (or Sequential) model with a symbolic graph; received "
            "a subclassed model. Use a model from the keras_equivariant builders or wrap yours "
            "with `keras.Model(inputs, outputs)`."
        )
    return model


def _output_rank(layer):
    """Rank of a layer's single symbolic output, or None when it has no single output."""
    try:
        output = layer.output
    except (AttributeError, ValueError):
        return None
    if isinstance(output, (list, tuple)):
        return None
    return len(output.shape)


def _spatial_size(layer):
    shape = layer.output.shape
    if shape[1] is None or shape[2] is None:
        return None
    return int(shape[1]) * int(shape[2])


def find_penultimate_layer(model):
    """Finds the layer GradCAM should explain: the last spatial feature map of ``model``.

    Scans ``model.layers`` (topologically ordered) from the output backwards and returns the last
    layer whose output is a spatial map, i.e. rank 4 ``(batch, height, width, channels)`` or rank 5
    ``(batch, height, width, group_size, channels)`` (a group feature map), which is the input of
    the head's global pooling. When that map is 1x1 (e.g. the 10-layer baseline, which pools down
    to 1x1 before its last convolutions) a CAM would be constant, so the last map with more than
    one spatial position is returned instead; if every map is 1x1 the last one is returned.

    Args:
        model: a functional or Sequential ``keras.Model`` taking images ``(batch, H, W, C)``.

    Returns:
        The ``keras.layers.Layer`` whose output is the penultimate spatial feature map.

    Raises:
        ValueError: when the model has no layer with a spatial (rank-4 or rank-5) output.

    Example:

    >>> model = keras_equivariant.BaselineCNN(num_classes=10, depth=4)
    >>> find_penultimate_layer(model).name
    'features'
    """
    model = _as_functional(model)
    input_layers = {id(tensor._keras_history[0]) for tensor in model.inputs}
    spatial = []
    for layer in model.layers:
        if id(layer) in input_layers or isinstance(layer, keras.layers.InputLayer):
            continue
        if _output_rank(layer) in (4, 5):
            spatial.append(layer)
    if not spatial:
        raise ValueError(
            f"Model {model.name!r} has no layer with a spatial output of rank 4 (batch, height, "
            "width, channels) or rank 5 (batch, height, width, group_size, channels); GradCAM++ "
            "needs a convolutional feature map. Use method='saliency' or 'smoothgrad' instead."
        )
    for layer in reversed(spatial):
        size = _spatial_size(layer)
        if size is None or size > 1:
            return layer
    return spatial[-1]


def _needs_linear_output(model):
    activations = [getattr(model.get_layer(name=name), "activation", None)
                   for name in getattr(model, "output_names", [])]
    linear = (None, keras.activations.linear)
    return any(activation not in linear for activation in activations)


def _resize_maps(maps, height, width):
    """Bilinearly resizes ``(batch, h, w)`` maps to ``(batch, height, width)``."""
    from scipy.ndimage import zoom

    if maps.shape[1:] == (height, width):
        return maps
    factors = (1.0, height / maps.shape[1], width / maps.shape[2])
    return zoom(maps, factors, order=1)


def _normalize(maps):
    """Scales each map to [0, 1]; a constant map becomes all zeros."""
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    span = np.where(high - low > 0, high - low, 1.0)
    return ((maps - low) / span).astype(np.float32)


def saliency_maps(model, images, labels=None, method="saliency", penultimate_layer=None,
                  smooth_samples=20, smooth_noise=0.2):
    """Computes one explanation map per image, normalized to [0, 1].

    TensorFlow backend only (tf-keras-vis differentiates with tf.GradientTape): on another Keras
    backend it raises a ``RuntimeError`` saying so.

    Args:
        model: a functional or Sequential ``keras.Model`` mapping [0, 1] images to class scores
            (logits, or probabilities: a softmax output is replaced by a linear one on a clone).
        images: float array ``(batch, height, width, channels)`` in [0, 1].
        labels: integer class per image whose score is explained; ``None`` explains the
            predicted class.
        method: ``"saliency"`` (|d logit / d pixel|, max over channels), ``"smoothgrad"``
            (the same averaged over ``smooth_samples`` noisy copies) or ``"gradcam++"``.
        penultimate_layer: for ``"gradcam++"``: the layer (object or name) to explain;
            ``None`` uses :func:`find_penultimate_layer`.
        smooth_samples: number of noisy samples for SmoothGrad.
        smooth_noise: SmoothGrad noise standard deviation, relative to each image's value range.

    Returns:
        float32 array ``(batch, height, width)`` with values in [0, 1].
    """
    require_backend("keras_equivariant.visualize.saliency_maps")
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    check_choice(method, METHODS, "method")
    model = _as_functional(model)
    images = check_images(images)
    if method == "smoothgrad":
        check_positive_int(smooth_samples, "smooth_samples")
        if not np.isfinite(smooth_noise) or smooth_noise <= 0:
            raise ValueError(f"`smooth_noise` must be a positive float; received {smooth_noise!r}.")
    num_images = images.shape[0]
    if labels is None:
        labels = np.argmax(keras.ops.convert_to_numpy(model(images, training=False)), axis=-1)
    num_classes = int(model.outputs[0].shape[-1])
    labels = check_labels(labels, num_images, num_classes)
    score = CategoricalScore(labels.tolist())

    modifier = ReplaceToLinear() if _needs_linear_output(model) else None
    with warnings.catch_warnings():
        # tf-keras-vis calls the model with a list of inputs; Keras 3 warns about the structure.
        warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
        return _explain(model, images, method, modifier, score, penultimate_layer,
                        smooth_samples, smooth_noise)


def _explain(model, images, method, modifier, score, penultimate_layer, smooth_samples,
             smooth_noise):
    """Runs tf-keras-vis; returns ``(batch, height, width)`` maps in [0, 1]."""
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.saliency import Saliency

    height, width = images.shape[1:3]
    if method in ("saliency", "smoothgrad"):
        visualizer = Saliency(model, model_modifier=modifier, clone=modifier is not None)
        maps = visualizer(score, images,
                          smooth_samples=smooth_samples if method == "smoothgrad" else 0,
                          smooth_noise=smooth_noise, normalize_map=False)
        return _normalize(np.asarray(maps, dtype=np.float32))

    if penultimate_layer is None:
        penultimate_layer = find_penultimate_layer(model)
    elif isinstance(penultimate_layer, str):
        penultimate_layer = model.get_layer(name=penultimate_layer)
    rank = _output_rank(penultimate_layer)
    if rank not in (4, 5):
        raise ValueError(
            f"`penultimate_layer` {penultimate_layer.name!r} must output a rank-4 or rank-5 spatial "
            f"feature map; its output has rank {rank}. Pass None to choose it automatically."
        )
    visualizer = GradcamPlusPlus(model, model_modifier=modifier, clone=modifier is not None)
    if modifier is not None:
        # The clone has fresh layer objects: look the layer up by name.
        penultimate_layer = visualizer.model.get_layer(name=penultimate_layer.name)
    cams = visualizer(score, images, penultimate_layer=penultimate_layer,
                      seek_penultimate_conv_layer=False, expand_cam=False, normalize_cam=False)
    cams = keras.ops.convert_to_numpy(cams).astype(np.float32)
    if cams.ndim == 4:  # (batch, h, w, group_size): orientation pooling
        cams = cams.max(axis=-1)
    return _normalize(_resize_maps(cams, height, width))


def plot_saliency_comparison(models, images, path, labels=None, model_names=None,
                             methods=METHODS, adversarial_images=None, class_names=None,
                             title=None):
    """Side-by-side explanation maps of several models on the same images; saved as a PNG.

    Layout: one row per image (and, when ``adversarial_images`` is given, a second row per image
    with each model's own adversarial version), and for each model a column group
    ``[input, method_1, method_2, ...]``. Each input panel is titled with the model's prediction.

    Args:
        models: list of ``keras.Model`` (functional or Sequential).
        images: float array ``(num_images, H, W, C)`` in [0, 1].
        path: where the PNG is written (parent folders are created).
        labels: true classes ``(num_images,)``; the maps explain these classes (``None``: each
            model's predicted class).
        model_names: one display name per model (default: ``model.name``).
        methods: subset of ``("saliency", "smoothgrad", "gradcam++")``.
        adversarial_images: optional list (one per model) of adversarial versions of ``images``
            (e.g. from ``keras_equivariant.attacks.pgd``), each ``(num_images, H, W, C)``.
        class_names: optional list of class names for the panel titles.
        title: optional figure title.

    Returns:
        The ``pathlib.Path`` of the written PNG.
    """
    models = list(models)
    if not models:
        raise ValueError("`models` must hold at least one keras.Model; received an empty list.")
    methods = [check_choice(method, METHODS, "method") for method in methods]
    images = check_images(images)
    num_images = images.shape[0]
    if labels is not None:
        labels = check_labels(labels, num_images)
    if model_names is None:
        model_names = [model.name for model in models]
    if len(model_names) != len(models):
        raise ValueError(
            f"`model_names` must have one name per model ({len(models)}); received {len(model_names)}."
        )
    conditions = [("clean", [images] * len(models))]
    if adversarial_images is not None:
        if len(adversarial_images) != len(models):
            raise ValueError(
                "`adversarial_images` must be a list with one batch per model "
                f"({len(models)}); received {len(adversarial_images)}."
            )
        batches = [check_images(batch, name="adversarial_images") for batch in adversarial_images]
        for batch in batches:
            if batch.shape != images.shape:
                raise ValueError(
                    f"Each adversarial batch must have the shape of `images` {images.shape}; "
                    f"received {batch.shape}."
                )
        conditions.append(("adversarial", batches))

    def describe(class_index):
        return class_names[class_index] if class_names is not None else str(class_index)

    columns_per_model = 1 + len(methods)
    num_rows = num_images * len(conditions)
    num_columns = columns_per_model * len(models)
    figure, axes = new_figure(num_rows, num_columns,
                              figsize=(1.6 * num_columns, 1.95 * num_rows + 0.6))
    for model_index, (model, name) in enumerate(zip(models, model_names)):
        model = _as_functional(model)
        for condition_index, (condition, batches) in enumerate(conditions):
            batch = batches[model_index]
            logits = keras.ops.convert_to_numpy(model(batch, training=False))
            predictions = np.argmax(logits, axis=-1)
            maps = {method: saliency_maps(model, batch, labels=labels, method=method)
                    for method in methods}
            for image_index in range(num_images):
                row = image_index * len(conditions) + condition_index
                column = model_index * columns_per_model
                axis = axes[row, column]
                axis.imshow(np.clip(batch[image_index], 0, 1).squeeze())
                verdict = ""
                if labels is not None:
                    verdict = (" (ok)" if predictions[image_index] == labels[image_index] else
                               f" (true: {describe(labels[image_index])})")
                axis.set_title(wrap_text(f"{name}\n{condition}\npredicted "
                                         f"{describe(predictions[image_index])}{verdict}", 1.45,
                                         6), fontsize=6)
                for method_index, method in enumerate(methods):
                    axis = axes[row, column + 1 + method_index]
                    axis.imshow(maps[method][image_index], cmap="inferno", vmin=0, vmax=1)
                    axis.set_title(method, fontsize=6)
    for axis in axes.ravel():
        axis.set_xticks([])
        axis.set_yticks([])
    if title:
        figure.suptitle(wrap_text(title, 1.6 * num_columns - 0.3, 9), fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path)

