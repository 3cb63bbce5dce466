"""Spatial attacks: the worst rotation, translation and scaling of each image (Engstrom et al.).

Engstrom et al., *Exploring the Landscape of Spatial Robustness* (ICML 2019), show that the
worst of a small grid of rotations (±30°) and translations (±3 px) breaks standard CIFAR-10
models, and that an exhaustive grid finds the worst case where first-order attacks do not.

Conventions (shared by :func:`spatial`, :func:`spatial_transform` and the metrics of
:mod:`keras_equivariant.metrics.transformation`):

* Images are ``(batch, height, width, channels)`` pixels in [0, 1]; the model returns logits and
  is called with ``training=False``.
* A transformation is ``(rotation, translation, scale)``: the image is zoomed by ``scale`` and
  rotated by ``rotation`` degrees about its centre ``((height - 1) / 2, (width - 1) / 2)``, then
  shifted by ``translation = (down, right)`` pixels. A positive angle rotates in the direction of
  ``numpy.rot90(images, 1, axes=(1, 2))``, the convention of :func:`check_equivariance` and the
  rotation groups, so rotations by multiples of 90° are **exact pixel permutations**, identical
  to ``numpy.rot90`` (square images; non-square images have exact multiples of 180° only).
  Integer shifts with ``scale=1`` are exact too. Pixels coming from outside the image take
  ``fill_value`` (``fill_mode="constant"``) or are mirrored/wrapped/repeated from the border.
* Each angle is split into exact quarter turns (``numpy.rot90``) and a residual rotation within
  ±45° that is resampled (bilinear or nearest) together with the zoom and shift by one
  ``ImageProjectiveTransformV3`` op for all (image, transformation) pairs of a forward batch.
* The worst transformation of an example is a misclassifying one if any, else the one with the
  smallest logit margin ``z_y - max_{j != y} z_j``; ties go to the first in grid order.

Performance: one ``tf.function`` per (model, image shape, interpolation, fill mode) evaluates a
whole batch of images against the whole grid, ``batch_size`` transformed images per forward
pass; batches, grids, seeds and fill values are tensors, so nothing retraces.
"""

from __future__ import annotations

import dataclasses
import itertools
import weakref

import numpy as np
import tensorflow as tf

from keras_equivariant.attacks.gradient import image_spec, _prepare, model_logits
from keras_equivariant.attacks.losses import margin_loss
from keras_equivariant.utils.compiled import cached_for_model
from keras_equivariant.utils.validation import (
    check_choice,
    check_images,
    check_positive_int,
    check_real_values,
    require_backend,
)

DEFAULT_ROTATIONS = tuple(range(-30, 31, 3))
DEFAULT_TRANSLATIONS = tuple(range(-3, 4))
DEFAULT_NUM_SAMPLES = 10
DEFAULT_BATCH_SIZE = 1024
MODES = ("grid", "random")
INTERPOLATIONS = ("bilinear", "nearest")
FILL_MODES = ("constant", "reflect", "wrap", "nearest")


@dataclasses.dataclass(frozen=True)
class SpatialAttackResult:
    """The worst transformation of each example found by :func:`spatial`.

    Attributes:
        images: the worst transformed images, same shape and floating dtype as the input
            (NumPy in, NumPy out; tensor in, tensor out).
        rotation: ``(batch,)`` angles in degrees.
        translation: ``(batch, 2)`` shifts ``(down, right)`` in pixels.
        scale: ``(batch,)`` zoom factors.
        margin: ``(batch,)`` logit margin ``z_y - max_{j != y} z_j`` at the worst transformation
            (negative when misclassified).
        misclassified: ``(batch,)`` whether the worst transformation is misclassified.
        index: ``(batch,)`` position of the worst transformation in the grid (``mode="grid"``,
            order of :func:`spatial_grid`) or the index of the random draw (``mode="random"``).
    """

    images: object
    rotation: np.ndarray
    translation: np.ndarray
    scale: np.ndarray
    margin: np.ndarray
    misclassified: np.ndarray
    index: np.ndarray


@dataclasses.dataclass(frozen=True)
class SpatialSettings:
    """Validated transformation settings; ``rotations``/``translations``/``scales`` are float64."""

    rotations: np.ndarray
    translations: np.ndarray
    scales: np.ndarray
    mode: str = "grid"
    num_samples: int | None = None
    interpolation: str = "bilinear"
    fill_mode: str = "constant"
    fill_value: float = 0.0
    batch_size: int = DEFAULT_BATCH_SIZE

    @property
    def num_transformations(self) -> int:
        """Number of transformations tried per example."""
        if self.mode == "random":
            return self.num_samples
        return len(self.rotations) * len(self.scales) * len(self.translations) ** 2

    def check_image_size(self, height: int, width: int):
        """Raises a ``ValueError`` when a shift moves the whole image off its canvas."""
        _check_shifts(self.translations, height, width, "translations")

    def to_dict(self) -> dict:
        """Plain-Python settings (for reports and resume keys)."""
        payload = dataclasses.asdict(self)
        for name in ("rotations", "translations", "scales"):
            payload[name] = [float(value) for value in payload[name]]
        return payload


def _check_shifts(shifts, height, width, name):
    largest = float(np.max(np.abs(shifts)))
    if largest >= min(height, width):
        raise ValueError(
            f"`{name}` shift the image by up to {largest:g} pixels, but the images are only "
            f"{height}x{width}: a shift of {min(height, width)} or more moves the whole image "
            "off the canvas. Use shifts smaller than the image, e.g. range(-3, 4) for 32x32 "
            "images."
        )


def spatial_settings(rotations=DEFAULT_ROTATIONS, translations=DEFAULT_TRANSLATIONS, scales=None,
                     mode="grid", num_samples=None, interpolation="bilinear",
                     fill_mode="constant", fill_value=0.0, batch_size=DEFAULT_BATCH_SIZE):
    """Validates the options of :func:`spatial` before any work; returns :class:`SpatialSettings`."""
    check_choice(mode, MODES, "mode")
    check_choice(interpolation, INTERPOLATIONS, "interpolation")
    check_choice(fill_mode, FILL_MODES, "fill_mode")
    rotations = check_real_values(rotations, "rotations", "degrees")
    translations = check_real_values(0 if translations is None else translations,
                                     "translations", "pixels")
    scales = check_real_values(1.0 if scales is None else scales, "scales",
                               "zoom factors", positive=True)
    if mode == "grid" and num_samples is not None:
        raise ValueError(
            f"`num_samples={num_samples!r}` applies to mode='random' only; mode='grid' tries "
            "every combination of the given values. Remove `num_samples` or pass mode='random'."
        )
    if mode == "random":
        num_samples = check_positive_int(
            DEFAULT_NUM_SAMPLES if num_samples is None else num_samples, "num_samples")
    fill_value = float(check_real_values(fill_value, "fill_value", "pixel units")[0])
    if not 0.0 <= fill_value <= 1.0:
        raise ValueError(f"`fill_value` must be a pixel value in [0, 1]; received {fill_value}.")
    batch_size = check_positive_int(batch_size, "batch_size")
    return SpatialSettings(rotations, translations, scales, mode, num_samples, interpolation,
                           fill_mode, fill_value, batch_size)


def spatial_grid(rotations=DEFAULT_ROTATIONS, translations=DEFAULT_TRANSLATIONS, scales=None):
    """Every combination of the values, in the order :func:`spatial` tries them.

    The order is rotation-major: ``for rotation, for scale, for down, for right``;
    ``translations`` apply to both axes (``len(translations) ** 2`` shifts).

    Returns:
        ``(rotation, translation, scale)``: float64 arrays of shapes ``(n,)``, ``(n, 2)`` with
        ``(down, right)`` pixels, and ``(n,)``.

    Example:

    >>> rotation, translation, scale = spatial_grid()  # 21 angles x 49 shifts
    >>> rotation.shape
    (1029,)
    """
    settings = spatial_settings(rotations, translations, scales)
    return _grid(settings)


def _grid(settings):
    points = np.array(list(itertools.product(
        settings.rotations, settings.scales, settings.translations, settings.translations)),
        dtype=np.float64)
    return points[:, 0], points[:, 2:], points[:, 1]


def _random_draws(settings, num_images, seed):
    """``num_samples`` transformations per image, each value uniform in the given values' range."""
    rng = np.random.default_rng(seed)
    shape = (settings.num_samples, num_images)

    def uniform(values, size):
        return rng.uniform(values.min(), values.max(), size)

    return (uniform(settings.rotations, shape), uniform(settings.translations, shape + (2,)),
            uniform(settings.scales, shape))


def projective_parameters(rotation, translation, scale, height, width):
    """Splits transformations into exact quarter turns and ``ImageProjectiveTransformV3`` matrices.

    Args:
        rotation, translation, scale: arrays of shapes ``S``, ``S + (2,)`` (down, right) and
            ``S`` (broadcastable).
        height, width: image size.

    Returns:
        ``(matrices, quarter_turns)``: float32 ``S + (8,)`` maps from output to input pixel
        coordinates of the residual rotation (within ±45°; ±90° for non-square images), zoom and
        shift, and int32 ``S`` numbers of exact ``numpy.rot90`` turns applied first.
    """
    rotation = np.asarray(rotation, np.float64)
    translation = np.asarray(translation, np.float64)
    scale = np.asarray(scale, np.float64)
    turn_step = 1 if height == width else 2
    quarter_turns = turn_step * np.round(rotation / (90.0 * turn_step))
    residual = np.deg2rad(rotation - 90.0 * quarter_turns)
    cos, sin = np.cos(residual) / scale, np.sin(residual) / scale
    center_x, center_y = (width - 1) / 2, (height - 1) / 2
    # input = center + R(residual) / scale @ (output - center - shift), in (x=column, y=row)
    shifted_x, shifted_y = center_x + translation[..., 1], center_y + translation[..., 0]
    zeros = np.zeros_like(cos)
    matrices = np.stack([cos, -sin, center_x - (cos * shifted_x - sin * shifted_y),
                         sin, cos, center_y - (sin * shifted_x + cos * shifted_y),
                         zeros, zeros], axis=-1)
    return matrices.astype(np.float32), (quarter_turns % 4).astype(np.int32)


def _rot90(images):
    """``numpy.rot90(images, 1, axes=(1, 2))``: flip the width axis, then swap height and width."""
    return tf.transpose(tf.reverse(images, [2]), [0, 2, 1, 3])


def _turn_stack(images, turn_step):
    """The batch turned by 0, 1, 2, 3 quarter turns (0, 2 for non-square images), concatenated."""
    turned = [images]
    for _ in range(4 // turn_step - 1):
        rotated = turned[-1]
        for _ in range(turn_step):
            rotated = _rot90(rotated)
        turned.append(rotated)
    return tf.concat(turned, axis=0)


def _transform_pairs(stack, num_images, matrices, quarter_turns, sample_shape, interpolation,
                     fill_mode, fill_value):
    """All (transformation, image) pairs of a chunk, ``(g * num_images, h, w, c)``, in one op.

    ``matrices`` ``(g, num_images or 1, 8)`` and ``quarter_turns`` ``(g, num_images or 1)``.
    """
    height, width, _ = sample_shape
    turn_step = 1 if height == width else 2
    num_points = tf.shape(matrices)[0]
    matrices = tf.broadcast_to(matrices, tf.stack([num_points, num_images, 8]))
    quarter_turns = tf.broadcast_to(quarter_turns, tf.stack([num_points, num_images]))
    sources = (quarter_turns // turn_step) * num_images + tf.range(num_images)[None, :]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.gather(stack, tf.reshape(sources, [-1])),
        transforms=tf.reshape(matrices, [-1, 8]),
        output_shape=tf.constant([height, width], tf.int32),
        fill_value=fill_value,
        interpolation=interpolation.upper(),
        fill_mode=fill_mode.upper(),
    )


_PARAMETER_SPECS = [
    tf.TensorSpec((None, None, 8), tf.float32),
    tf.TensorSpec((None, None), tf.int32),
    tf.TensorSpec((), tf.int32),
    tf.TensorSpec((), tf.float32),
]


def _build_worst(model_ref, sample_shape, interpolation, fill_mode):
    turn_step = 1 if sample_shape[0] == sample_shape[1] else 2

    @tf.function(input_signature=[image_spec(sample_shape), tf.TensorSpec((None,), tf.int32),
                                  *_PARAMETER_SPECS])
    def worst(images, labels, matrices, quarter_turns, points_per_pass, fill_value):
        model = model_ref()
        num_images = tf.shape(images)[0]
        stack = _turn_stack(images, turn_step)
        best_images = images
        best_index = tf.fill([num_images], -1)
        best_misclassified = tf.zeros([num_images], tf.bool)
        best_margin = tf.fill([num_images], float("inf"))
        for start in tf.range(0, tf.shape(matrices)[0], points_per_pass):
            chunk = matrices[start:start + points_per_pass]
            num_points = tf.shape(chunk)[0]
            transformed = _transform_pairs(
                stack, num_images, chunk, quarter_turns[start:start + points_per_pass],
                sample_shape, interpolation, fill_mode, fill_value)
            logits = model_logits(model, transformed)
            repeated_labels = tf.tile(labels, [num_points])
            shape = tf.stack([num_points, num_images])
            margin = tf.reshape(-margin_loss(logits, repeated_labels), shape)
            misclassified = tf.reshape(
                tf.argmax(logits, axis=-1, output_type=tf.int32) != repeated_labels, shape)
            # the worst of the chunk: misclassified first, then the smallest margin, then the first
            any_misclassified = tf.reduce_any(misclassified, axis=0)
            eligible = tf.logical_or(misclassified, tf.logical_not(any_misclassified)[None])
            candidate_margin = tf.where(eligible, margin, float("inf"))
            lowest = tf.reduce_min(candidate_margin, axis=0)
            positions = tf.broadcast_to(tf.range(num_points)[:, None], shape)
            chosen = tf.reduce_min(tf.where(
                tf.logical_and(eligible, candidate_margin == lowest[None]), positions, num_points),
                axis=0)
            found = chosen < num_points  # False only for NaN margins
            picked = tf.gather_nd(
                tf.reshape(transformed, tf.concat([shape, tf.shape(images)[1:]], 0)),
                tf.stack([tf.minimum(chosen, num_points - 1), tf.range(num_images)], axis=1))
            better = tf.logical_and(found, tf.logical_or(
                tf.logical_and(any_misclassified, tf.logical_not(best_misclassified)),
                tf.logical_and(any_misclassified == best_misclassified, lowest < best_margin)))
            best_images = tf.where(better[:, None, None, None], picked, best_images)
            best_index = tf.where(better, start + chosen, best_index)
            best_misclassified = tf.where(better, any_misclassified, best_misclassified)
            best_margin = tf.where(better, lowest, best_margin)
        return best_images, best_index, best_margin, best_misclassified

    return worst


def _build_predictions(model_ref, sample_shape, interpolation, fill_mode):
    turn_step = 1 if sample_shape[0] == sample_shape[1] else 2

    @tf.function(input_signature=[image_spec(sample_shape), *_PARAMETER_SPECS])
    def predictions(images, matrices, quarter_turns, points_per_pass, fill_value):
        model = model_ref()
        num_images = tf.shape(images)[0]
        stack = _turn_stack(images, turn_step)
        outputs = tf.TensorArray(tf.int32, size=0, dynamic_size=True, infer_shape=False)
        for start in tf.range(0, tf.shape(matrices)[0], points_per_pass):
            transformed = _transform_pairs(
                stack, num_images, matrices[start:start + points_per_pass],
                quarter_turns[start:start + points_per_pass], sample_shape, interpolation,
                fill_mode, fill_value)
            predicted = tf.argmax(model_logits(model, transformed), axis=-1, output_type=tf.int32)
            outputs = outputs.write(outputs.size(), tf.reshape(predicted, [-1, num_images]))
        return outputs.concat()

    return predictions


def _compiled(model, kind, build, sample_shape, settings):
    sample_shape = tuple(int(size) for size in sample_shape)
    key = (kind, sample_shape, settings.interpolation, settings.fill_mode)
    return cached_for_model(model, key, lambda: build(
        weakref.ref(model), sample_shape, settings.interpolation, settings.fill_mode))


def _pass_arguments(parameters, images, settings):
    """Tensors ``(matrices, quarter_turns, points_per_pass, fill_value)`` for a compiled call."""
    height, width = int(images.shape[1]), int(images.shape[2])
    matrices, quarter_turns = projective_parameters(*parameters, height, width)
    if matrices.ndim == 2:  # one grid shared by every image
        matrices, quarter_turns = matrices[:, None], quarter_turns[:, None]
    points_per_pass = max(1, settings.batch_size // max(1, int(images.shape[0])))
    return (tf.constant(matrices), tf.constant(quarter_turns), tf.constant(points_per_pass),
            tf.constant(settings.fill_value, tf.float32))


def transformed_predictions(model, images, parameters, settings: SpatialSettings) -> np.ndarray:
    """Predicted classes of every (transformation, image) pair of a validated float32 batch.

    ``parameters`` is ``(rotation, translation, scale)`` for ``g`` transformations (shapes
    ``(g,)``, ``(g, 2)``, ``(g,)``), shared by all images. Returns int32 ``(g, batch)``.
    """
    predictions = _compiled(model, "predictions", _build_predictions, images.shape[1:], settings)
    return predictions(images, *_pass_arguments(parameters, images, settings)).numpy()


def worst_transformations(model, images, labels, settings: SpatialSettings, seed=0):
    """The worst transformation of each example of a validated batch (no input checks).

    ``images`` is a float32 tensor in [0, 1], ``labels`` int32. Returns a
    :class:`SpatialAttackResult` whose ``images`` is a float32 tensor.
    """
    num_images = int(images.shape[0])
    if settings.mode == "grid":
        rotation, translation, scale = parameters = _grid(settings)
    else:
        rotation, translation, scale = parameters = _random_draws(settings, num_images, seed)
    worst = _compiled(model, "worst", _build_worst, images.shape[1:], settings)
    best_images, index, margin, misclassified = worst(
        images, labels, *_pass_arguments(parameters, images, settings))
    index = index.numpy()
    if np.any(index < 0):
        raise ValueError(
            f"The model returned NaN logits for every transformation of {np.sum(index < 0)} "
            "example(s); no worst transformation exists. Check the model's weights and inputs."
        )
    if settings.mode == "grid":
        chosen = (index,)
    else:
        chosen = (index, np.arange(num_images))
    return SpatialAttackResult(
        images=best_images, rotation=rotation[chosen], translation=translation[chosen],
        scale=scale[chosen], margin=margin.numpy(), misclassified=misclassified.numpy(),
        index=index)


def spatial(model, images, labels=None, rotations=DEFAULT_ROTATIONS,
            translations=DEFAULT_TRANSLATIONS, scales=None, mode="grid", num_samples=None,
            interpolation="bilinear", fill_mode="constant", fill_value=0.0,
            batch_size=DEFAULT_BATCH_SIZE, seed=None) -> SpatialAttackResult:
    """The worst rotation / translation / scaling of each image (Engstrom et al., ICML 2019).

    TensorFlow backend only (TensorFlow image warping in a tf.function): on another Keras
    backend it raises a ``RuntimeError`` saying so.

    ``mode="grid"`` tries every combination of the given values (the default grid: 21 angles
    from -30° to 30° in steps of 3° times 7 x 7 shifts of -3..3 pixels = 1029 transformations);
    ``mode="random"`` draws ``num_samples`` transformations per image, each value uniform in the
    range of the given ones (Engstrom et al.'s worst-of-k). The worst one is a misclassifying
    transformation if any, else the one with the smallest logit margin.

    Args:
        model: Keras classifier returning logits; called with ``training=False``.
        images: ``(batch, height, width, channels)`` pixels in [0, 1] (NumPy array or tensor).
        labels: true integer labels ``(batch,)`` (or one-hot); ``None`` uses the model's
            predictions on the untransformed images.
        rotations: angles in degrees (a number or a sequence). Multiples of 90° are exact
            ``numpy.rot90`` turns for square images.
        translations: shifts in pixels, applied to both axes (``None`` or ``0``: no shift).
        scales: zoom factors about the centre (> 0); ``None`` keeps the size (``1``).
        mode: ``"grid"`` or ``"random"``.
        num_samples: draws per image for ``mode="random"`` (default 10).
        interpolation: ``"bilinear"`` or ``"nearest"``.
        fill_mode: how pixels from outside the image are filled: ``"constant"``
            (``fill_value``), ``"reflect"``, ``"wrap"`` or ``"nearest"``.
        fill_value: the constant fill in [0, 1] (default black).
        batch_size: transformed images per forward pass (memory vs. speed).
        seed: seed of the random draws (``mode="random"``); ``None`` draws one from NumPy's
            global generator.

    Returns:
        A :class:`SpatialAttackResult`: the worst transformed ``images`` and, per example, the
        ``rotation``, ``translation`` (down, right), ``scale``, ``margin``, ``misclassified``.

    Example:

    >>> result = spatial(model, images, labels)  # rotations ±30°, shifts ±3 px
    >>> robust_accuracy = 1 - result.misclassified.mean()
    >>> result.rotation[:3], result.translation[:3]
    """
    require_backend("keras_equivariant.attacks.spatial")
    settings = spatial_settings(rotations, translations, scales, mode, num_samples,
                                interpolation, fill_mode, fill_value, batch_size)
    if np.ndim(images) == 4:
        settings.check_image_size(*np.shape(images)[1:3])
    is_tensor = tf.is_tensor(images)
    dtype = images.dtype.as_numpy_dtype if is_tensor else np.asarray(images).dtype
    tensor, goal, _ = _prepare(model, images, labels, False, None)
    seed = np.random.randint(0, 2**31 - 1) if seed is None else int(seed)
    result = worst_transformations(model, tensor, goal, settings, seed)
    floating = np.issubdtype(dtype, np.floating)
    worst_images = tf.cast(result.images, dtype if floating else tf.float32)
    return dataclasses.replace(result, images=worst_images if is_tensor else worst_images.numpy())


def spatial_transform(images, rotation=0.0, translation=(0.0, 0.0), scale=1.0,
                      interpolation="bilinear", fill_mode="constant", fill_value=0.0):
    """Applies one rotation / translation / scaling to a batch, as :func:`spatial` does.

    Args:
        images: ``(batch, height, width, channels)`` pixels in [0, 1].
        rotation: degrees; positive turns like ``numpy.rot90(images, 1, axes=(1, 2))``, and
            multiples of 90° are exactly ``numpy.rot90`` (square images).
        translation: ``(down, right)`` shift in pixels.
        scale: zoom factor about the centre (> 0).
        interpolation, fill_mode, fill_value: as in :func:`spatial`.

    Returns:
        A float32 NumPy array of the same shape.

    Example:

    >>> rotated = spatial_transform(images, rotation=90.0)
    >>> np.array_equal(rotated, np.rot90(images, 1, axes=(1, 2)))
    True
    """
    array = check_images(images)
    if np.shape(translation) != (2,):
        raise ValueError(
            "`translation` must be one (down, right) pair of pixel shifts; received "
            f"{translation!r}.")
    translation = np.array([check_real_values(shift, "translation", "pixels")[0]
                            for shift in translation])
    settings = spatial_settings(rotation, 0, scale, interpolation=interpolation,
                                fill_mode=fill_mode, fill_value=fill_value)
    _check_shifts(translation, *array.shape[1:3], "translation")
    tensor = tf.convert_to_tensor(array)
    matrices, quarter_turns, _, fill = _pass_arguments(
        (settings.rotations, translation[None], settings.scales), tensor, settings)
    turn_step = 1 if array.shape[1] == array.shape[2] else 2
    return _transform_pairs(_turn_stack(tensor, turn_step), tf.shape(tensor)[0], matrices,
                            quarter_turns, array.shape[1:], interpolation, fill_mode,
                            fill).numpy()
