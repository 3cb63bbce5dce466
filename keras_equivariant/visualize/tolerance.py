"""Perturbation tolerance: how many randomly removed pixels a correct prediction survives.

This is the idea of the paper's App. F ("maximum invariant perturbation") done soundly:

* **Only images classified correctly when clean** get a tolerance; the others get ``NaN`` (the
  paper's script recorded 0.05 for them).
* **Nested masks.** Each image gets one random permutation of its ``height * width`` pixel
  positions, drawn from ``numpy.random.default_rng([seed, image_index])``. At fraction ``f`` the
  first ``round(f * height * width)`` positions of that permutation are removed, so the removed
  set at a larger fraction always contains the removed set at a smaller one (the paper drew a fresh
  random mask at every rate). The masks depend only on ``(seed, image_index, image size)``, not on
  the model, so every model sees exactly the same perturbations.
* **Whole pixels** (all channels of a position) are removed, not single scalar values. A removed
  pixel is set to 0 (``fill="zero"``, black, as in the paper) or to the image's own per-channel
  mean (``fill="mean"``, which changes the image's average colour less).
* **Survival** at fraction ``f`` means the model's top-1 prediction on the masked image still
  equals the true label. The model is evaluated on the whole ``fractions`` grid (batched); the
  **tolerance** of an image is the largest grid fraction ``f`` such that the prediction survives
  at *every* grid fraction ``<= f`` (i.e. the grid point just before the first flip), and
  ``first_flip`` is the first grid fraction where it does not (``NaN`` if it never flips). A
  prediction that flips and later flips back does not raise the tolerance.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_equivariant.choices import TOLERANCE_FILLS as FILLS
from keras_equivariant.utils.validation import (check_choice, check_images, check_labels,
                                                check_positive_int)
from keras_equivariant.visualize._plotting import new_figure, save_figure, wrap_text
DEFAULT_FRACTIONS = tuple(np.round(np.linspace(0.0, 1.0, 51), 4).tolist())


def _check_fractions(fractions):
    fractions = np.asarray(fractions, dtype=np.float64).ravel()
    if fractions.size == 0 or not np.all(np.isfinite(fractions)):
        raise ValueError(f"`fractions` must be a non-empty list of finite numbers; received {fractions}.")
    if fractions[0] != 0.0 or np.any(np.diff(fractions) <= 0) or fractions[-1] > 1.0:
        raise ValueError(
            "`fractions` must start at 0.0 (the clean image), increase strictly and end at most at "
            f"1.0; received {fractions.tolist()}. Example: numpy.linspace(0, 1, 51)."
        )
    return fractions


def removal_order(height, width, seed, image_index):
    """The random order in which the pixels of image ``image_index`` are removed.

    Returns an int array ``(height * width,)``: a permutation of the flat pixel positions drawn
    from ``numpy.random.default_rng([seed, image_index])``.
    """
    return np.random.default_rng([int(seed), int(image_index)]).permutation(height * width)


def removal_masks(height, width, fractions, seed, image_index):
    """Nested boolean masks ``(len(fractions), height, width)``; ``True`` marks a removed pixel.

    Mask ``j`` removes the first ``round(fractions[j] * height * width)`` positions of
    :func:`removal_order`, so ``masks[j]`` is a subset of ``masks[j + 1]``.
    """
    fractions = _check_fractions(fractions)
    num_pixels = height * width
    rank = np.empty(num_pixels, dtype=np.int64)
    rank[removal_order(height, width, seed, image_index)] = np.arange(num_pixels)
    counts = np.round(fractions * num_pixels).astype(np.int64)
    return (rank[None, :] < counts[:, None]).reshape(len(fractions), height, width)


def apply_removal(image, masks, fill="zero"):
    """Returns ``(len(masks), H, W, C)`` copies of ``image`` with the masked pixels removed."""
    check_choice(fill, FILLS, "fill")
    value = np.zeros(image.shape[-1], np.float32) if fill == "zero" else image.mean(axis=(0, 1))
    return np.where(masks[..., None], value.astype(np.float32), image[None]).astype(np.float32)


def perturbation_tolerance(model, images, labels, fractions=DEFAULT_FRACTIONS, fill="zero", seed=0,
                           batch_size=256, image_indices=None, verbose=0):
    """Measures each image's tolerance to random pixel removal (see the module docstring).

    Args:
        model: a ``keras.Model`` mapping [0, 1] images to class scores.
        images: float array ``(num_images, H, W, C)`` in [0, 1].
        labels: true classes ``(num_images,)``.
        fractions: increasing grid of removed fractions, starting at 0.0 (default: 0, 0.02, ..., 1).
        fill: ``"zero"`` (removed pixels set to 0) or ``"mean"`` (set to the image's per-channel
            mean).
        seed: seed of the per-image pixel permutations.
        batch_size: number of masked images per forward pass.
        image_indices: the index of each image in its data set, used to seed its permutation
            (default ``0 .. num_images - 1``); pass the data-set indices so a subset gets the same
            masks as the full run.
        verbose: 1 shows a ``keras.utils.Progbar``.

    Returns:
        A dict of plain NumPy arrays / values:
        ``fractions`` ``(F,)``; ``tolerance`` ``(N,)`` in [0, 1] (``NaN`` where the clean
        prediction is wrong); ``first_flip`` ``(N,)`` (``NaN`` if never flipped or clean-wrong);
        ``clean_correct`` bool ``(N,)``; ``correct`` bool ``(N, F)``: prediction == label at each
        fraction; ``label_probability`` ``(N, F)``: softmax probability of the true class;
        ``predictions`` ``(N, F)``; ``image_indices`` ``(N,)``; ``fill``; ``seed``.
    """
    check_choice(fill, FILLS, "fill")
    fractions = _check_fractions(fractions)
    images = check_images(images)
    num_images, height, width = images.shape[:3]
    labels = check_labels(labels, num_images, int(model.outputs[0].shape[-1]))
    check_positive_int(batch_size, "batch_size")
    if image_indices is None:
        image_indices = np.arange(num_images)
    image_indices = np.asarray(image_indices, dtype=np.int64)
    if image_indices.shape != (num_images,):
        raise ValueError(
            f"`image_indices` must have shape ({num_images},); received {image_indices.shape}."
        )
    num_fractions = len(fractions)
    images_per_chunk = max(1, batch_size // num_fractions)
    predictions = np.zeros((num_images, num_fractions), np.int64)
    probabilities = np.zeros((num_images, num_fractions), np.float32)
    progress = keras.utils.Progbar(num_images, unit_name="image") if verbose else None
    for start in range(0, num_images, images_per_chunk):
        stop = min(start + images_per_chunk, num_images)
        batch = np.concatenate([
            apply_removal(images[index],
                          removal_masks(height, width, fractions, seed, image_indices[index]), fill)
            for index in range(start, stop)
        ])
        logits = []
        for offset in range(0, len(batch), batch_size):
            logits.append(keras.ops.convert_to_numpy(
                model(batch[offset:offset + batch_size], training=False)))
        logits = np.concatenate(logits).astype(np.float64).reshape(stop - start, num_fractions, -1)
        predictions[start:stop] = logits.argmax(axis=-1)
        logits -= logits.max(axis=-1, keepdims=True)
        softmax = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
        probabilities[start:stop] = np.take_along_axis(
            softmax, labels[start:stop, None, None].repeat(num_fractions, axis=1), axis=-1)[..., 0]
        if progress is not None:
            progress.update(stop)
    correct = predictions == labels[:, None]
    tolerance, first_flip = tolerance_from_correct(correct, fractions)
    return {
        "fractions": fractions,
        "tolerance": tolerance,
        "first_flip": first_flip,
        "clean_correct": correct[:, 0],
        "correct": correct,
        "label_probability": probabilities,
        "predictions": predictions,
        "image_indices": image_indices,
        "fill": fill,
        "seed": int(seed),
    }


def tolerance_from_correct(correct, fractions):
    """Tolerance and first flip from a boolean ``(N, F)`` survival table on a fraction grid.

    Returns ``(tolerance, first_flip)``, float arrays ``(N,)``: the largest grid fraction up to
    which every prediction is correct (``NaN`` when wrong at fraction 0) and the first fraction
    where it is not (``NaN`` when it never flips or is wrong at fraction 0).
    """
    correct = np.asarray(correct, dtype=bool)
    fractions = _check_fractions(fractions)
    if correct.ndim != 2 or correct.shape[1] != len(fractions):
        raise ValueError(
            f"`correct` must have shape (num_images, {len(fractions)}); received {correct.shape}."
        )
    survived = np.cumprod(correct, axis=1).astype(bool)  # correct at every fraction so far
    num_survived = survived.sum(axis=1)
    tolerance = np.full(len(correct), np.nan)
    first_flip = np.full(len(correct), np.nan)
    valid = num_survived > 0
    tolerance[valid] = fractions[num_survived[valid] - 1]
    flipped = valid & (num_survived < len(fractions))
    first_flip[flipped] = fractions[num_survived[flipped]]
    return tolerance, first_flip


def plot_tolerance_distribution(results, path, title=None):
    """Per-model distribution of tolerances (violin + box + points); saved as a PNG.

    Args:
        results: dict ``{model_name: perturbation_tolerance(...) result}``.
        path: where the PNG is written.
        title: optional title (default describes the fill and the number of images).

    Returns:
        The ``pathlib.Path`` of the written PNG.
    """
    if not results:
        raise ValueError("`results` must map at least one model name to a tolerance result.")
    names = list(results)
    values = [np.asarray(results[name]["tolerance"], dtype=np.float64) for name in names]
    values = [value[np.isfinite(value)] for value in values]
    width = 1.6 + 1.5 * len(names)
    figure, axes = new_figure(1, 1, figsize=(width, 3.6))
    axis = axes[0, 0]
    positions = np.arange(1, len(names) + 1)
    drawable = [(position, value) for position, value in zip(positions, values) if value.size > 1]
    if drawable:
        parts = axis.violinplot([value for _, value in drawable],
                                positions=[position for position, _ in drawable],
                                showextrema=False, widths=0.8)
        for body in parts["bodies"]:
            body.set_alpha(0.3)
    axis.boxplot([value if value.size else [np.nan] for value in values], positions=positions,
                 widths=0.25, showfliers=False)
    rng = np.random.default_rng(0)
    for position, value in zip(positions, values):
        axis.scatter(position + rng.uniform(-0.12, 0.12, value.size), value, s=6, alpha=0.5,
                     color="black")
    labels = []
    for name, value in zip(names, values):
        median = f"{np.median(value):.2f}" if value.size else "n/a"
        labels.append(wrap_text(f"{name}\n(n={value.size}, median {median})", 1.35, 7))
    axis.set_xticks(positions)
    axis.set_xticklabels(labels, fontsize=7)
    axis.set_ylim(-0.02, 1.02)
    axis.set_ylabel("tolerance (removed fraction survived)")
    first = results[names[0]]
    axis.set_title(wrap_text(title or f"Perturbation tolerance (pixels set to {first['fill']}; "
                                      "correctly classified clean images only)", width - 1.2, 8),
                   fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_tolerance_example(image, label, results, position, path, class_names=None, title=None):
    """The per-image figure: original, masked at each model's tolerance, survival curves.

    With one model this is the paper's three-panel figure (original / masked at the tolerance /
    true-class probability vs removed fraction); with several models there is one masked panel per
    model and all curves share the last panel.

    Args:
        image: the clean image ``(H, W, C)`` in [0, 1].
        label: its true class.
        results: dict ``{model_name: perturbation_tolerance(...) result}``; all computed with the
            same ``seed``, ``fill`` and ``fractions``.
        position: the row of this image in each result (``results[name]["tolerance"][position]``).
        path: where the PNG is written.
        class_names: optional list of class names.
        title: optional figure title.

    Returns:
        The ``pathlib.Path`` of the written PNG.
    """
    image = check_images(np.asarray(image)[None], name="image")[0]
    if not results:
        raise ValueError("`results` must map at least one model name to a tolerance result.")
    names = list(results)
    height, width = image.shape[:2]
    describe = (lambda index: class_names[index]) if class_names is not None else str
    # Constrained layout leaves room for the wrapped titles and the suptitle (tight_layout
    # let the suptitle overlap the panel titles).
    figure, axes = new_figure(1, len(names) + 2, figsize=(2.6 * (len(names) + 2), 2.9),
                              layout="constrained")
    panel = 2.3  # inches of text per panel
    axes = axes[0]
    axes[0].imshow(image.squeeze(), interpolation="nearest")
    axes[0].set_title(f"original\n(label: {describe(int(label))})", fontsize=8)
    curve_axis = axes[-1]
    for model_index, name in enumerate(names):
        result = results[name]
        fractions = np.asarray(result["fractions"])
        tolerance = float(result["tolerance"][position])
        axis = axes[1 + model_index]
        if np.isfinite(tolerance):
            image_index = int(result["image_indices"][position])
            masks = removal_masks(height, width, fractions, result["seed"], image_index)
            mask = masks[int(np.argmin(np.abs(fractions - tolerance)))]
            axis.imshow(apply_removal(image, mask[None], result["fill"])[0].squeeze(),
                        interpolation="nearest")
            axis.set_title(wrap_text(f"{name}\nsurvives {tolerance:.2f} removed", panel, 8),
                           fontsize=8)
        else:
            axis.imshow(image.squeeze(), interpolation="nearest")
            axis.set_title(wrap_text(f"{name}\nwrong on the clean image", panel, 8), fontsize=8)
        curve = np.asarray(result["label_probability"][position])
        line, = curve_axis.plot(fractions, curve, label=wrap_text(name, panel - 0.6, 6))
        if np.isfinite(tolerance):
            curve_axis.axvline(tolerance, color=line.get_color(), linestyle="--", linewidth=0.8)
        wrong = ~np.asarray(result["correct"][position], dtype=bool)
        curve_axis.scatter(fractions[wrong], curve[wrong], marker="x", s=12, color=line.get_color())
    for axis in axes[:-1]:
        axis.set_xticks([])
        axis.set_yticks([])
    curve_axis.set_xlabel("fraction of pixels removed", fontsize=8)
    curve_axis.set_ylabel("p(true class)", fontsize=8)
    curve_axis.set_ylim(-0.02, 1.02)
    curve_axis.set_title("x = misclassified, -- = tolerance", fontsize=8)
    curve_axis.legend(fontsize=6)
    if title:
        figure.suptitle(wrap_text(title, 2.6 * (len(names) + 2) - 0.4, 9), fontsize=9)
    return save_figure(figure, path)
