"""Square Attack (Andriushchenko et al., ECCV 2020): score-based black-box, L-inf and L2.

The attack only reads logits (no gradients), so gradient masking (rounding, saturated softmax,
non-differentiable preprocessing) cannot hide a model's weakness from it: it is AutoAttack's
check for masking. Each iteration proposes a change of one random square window per image and
keeps it if the margin ``z_y - max_{j != y} z_j`` decreased; the window covers a fraction ``p``
of the image, shrinking by the schedule of the paper (``p_init`` halved after iterations 10, 50,
200, 500, 1000, 2000, 4000, 6000 and 8000 of a 10000-query run), rescaled to the query budget
as in the reference implementation: iteration ``i`` of a ``queries`` budget uses the window of
iteration ``i * 10000 // queries``, so every budget runs through the whole schedule.

* L-inf: starts from vertical stripes of ``+-eps``; a proposal sets a window to ``x +- eps``
  (one random sign per channel).
* L2: starts from a grid of ``+-`` "meta-Gaussian" tiles scaled to norm ``eps``; a proposal moves
  the perturbation mass of a second window into the first one, reshaped as a random centred
  two-bump pattern, keeping the total norm ``eps`` (the old and new window contents are
  normalized per window and channel, as in the reference).

Two deliberate differences from the reference implementation (fra31/auto-attack): each image
draws its own window, signs and pattern orientation (the reference shares one per batch and
iteration), and a window's corner ranges over every position that keeps it inside the image (the
reference's ``randint(0, h - s)`` never places a smaller window on the last row or column).

Only examples that are still classified correctly are queried. The whole loop runs in ONE
compiled ``tf.function`` per (model, norm, image shape); ``eps``, the query budget, ``p_init`` and
the seed are tensors.
"""

from __future__ import annotations

import dataclasses

import weakref

import numpy as np
import tensorflow as tf

from keras_equivariant.attacks.gradient import (
    DEFAULT_EPS,
    _check_scalar_eps,
    _flat_norm,
    _prepare,
    image_spec,
    model_logits,
    normalize_norm,
)
from keras_equivariant.attacks.losses import margin_loss
from keras_equivariant.utils.compiled import cached_for_model
from keras_equivariant.utils.sampling import per_example
from keras_equivariant.utils.validation import (
    check_fraction,
    check_positive_int,
    require_backend,
)

# iterations of a SCHEDULE_QUERIES-query run after which the window fraction p halves (the
# paper's schedule); other budgets are mapped onto it
P_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
SCHEDULE_QUERIES = 10_000


@dataclasses.dataclass(frozen=True)
class SquareConfig:
    """The graph-shaping options of the Square Attack (only the norm)."""

    norm: str = "inf"


def window_fraction(iteration, p_init, queries):
    """The fraction ``p`` of the image a window covers at ``iteration`` (0-based) of ``queries``.

    The iteration is first mapped onto the 10000-query schedule, ``iteration * 10000 //
    queries`` (the reference's ``int(it / n_queries * 10000)``), then ``p_init`` is halved once
    per threshold of ``P_SCHEDULE`` it exceeds. Works on Python numbers and on tensors alike.
    """
    scaled = (tf.cast(iteration, tf.int64) * SCHEDULE_QUERIES) // tf.cast(queries, tf.int64)
    halvings = tf.add_n([tf.cast(scaled > threshold, tf.float32) for threshold in P_SCHEDULE])
    return p_init / tf.pow(2.0, halvings)


def _tail_sums(length):
    """``table[m] = sum_{k=m}^{length} 1 / (k + 1)^2`` (and 0 beyond), as a float32 constant."""
    terms = 1.0 / np.arange(1, length + 2, dtype=np.float64) ** 2
    return tf.constant(np.append(np.cumsum(terms[::-1])[::-1], 0.0), tf.float32)


def _rectangle_bumps(rows, columns, height, width, tails):
    """The paper's nested-rectangles bump of a ``height x width`` box at (``rows``, ``columns``).

    Value ``sum_{k=m}^{K-1} 1/(k+1)^2`` with ``m`` how far out the pixel's ring is and
    ``K = max(height // 2 + 1, width // 2 + 1)``; zero outside the box. Not normalized.
    """
    centre_row, centre_column = height // 2 + 1, width // 2 + 1
    rings = tf.maximum(centre_row, centre_column)
    ring = tf.reduce_max(tf.stack([centre_row - 1 - rows, rows - centre_row + 1,
                                   centre_column - 1 - columns, columns - centre_column + 1,
                                   tf.zeros_like(rows)]), axis=0)
    inside = (rows >= 0) & (rows < height) & (columns >= 0) & (columns < width) & (ring < rings)
    value = tf.gather(tails, tf.minimum(ring, rings)) - tf.gather(tails, rings)
    return tf.where(inside, value, 0.0)


def _two_bumps(rows, columns, size, tails):
    """The paper's L2 window pattern on a ``size x size`` window at local (``rows``, ``columns``).

    A positive bump over the top half and a negative one over the bottom half, each of unit L2
    norm, together scaled to unit norm. ``rows``/``columns`` may have any (matching) shape; the
    norms are computed on the full window.
    """
    top = size // 2
    grid = tf.range(size)
    grid_rows, grid_columns = grid[:, None] + 0 * grid[None], 0 * grid[:, None] + grid[None]

    def halves(local_rows, local_columns):
        return (_rectangle_bumps(local_rows, local_columns, top, size, tails),
                _rectangle_bumps(local_rows - top, local_columns, size - top, size, tails))

    full_top, full_bottom = halves(grid_rows, grid_columns)
    top_norm = tf.maximum(tf.norm(full_top), 1e-12)
    bottom_norm = tf.maximum(tf.norm(full_bottom), 1e-12)
    pattern_norm = tf.norm(tf.stack([full_top / top_norm, -full_bottom / bottom_norm]))
    upper, lower = halves(rows, columns)
    return (upper / top_norm - lower / bottom_norm) / pattern_norm


def compiled_square(model, config: SquareConfig, sample_shape):
    """The cached compiled Square Attack for ``model``, ``config`` and per-image ``sample_shape``.

    Signature: ``(images, labels, eps, queries, p_init, seed) -> (adversarial, success,
    objective)`` with ``objective = -margin`` at the returned images.
    """
    return cached_for_model(
        model, ("square", config, tuple(sample_shape)),
        lambda: _build_square(weakref.ref(model), config, tuple(sample_shape)))


def _build_square(model_ref, config: SquareConfig, sample_shape):
    height, width, channels = sample_shape
    side = min(height, width)
    num_features = height * width * channels
    norm = config.norm
    tails = _tail_sums(max(height, width) + 2)

    def margins(model, images, labels):
        """``z_y - max_{j != y} z_j``: positive while the example is classified correctly."""
        return -margin_loss(model_logits(model, images), labels)

    def random_signs(shape, seed):
        return tf.where(tf.random.stateless_uniform(shape, seed) < 0.5, -1.0, 1.0)

    def window_masks(size, batch, seed):
        """Per-example random ``size x size`` windows: masks ``(batch, H, W, 1)`` and corners."""
        corners = tf.random.stateless_uniform((batch, 2), seed, 0, side - size + 1, tf.int32)
        local_rows = tf.range(height)[None, :, None] - corners[:, :1, None]
        local_columns = tf.range(width)[None, None, :] - corners[:, 1:, None]
        inside = ((local_rows >= 0) & (local_rows < size)
                  & (local_columns >= 0) & (local_columns < size))
        return tf.cast(inside, tf.float32)[..., None], local_rows, local_columns

    def window_size(iteration, queries, p_init, minimum):
        fraction = window_fraction(iteration, p_init, queries)
        size = tf.cast(tf.round(tf.sqrt(fraction * num_features / channels)), tf.int32)
        return tf.minimum(tf.maximum(size, minimum), side)

    def l2_start(images, eps, seed):
        """Tiles of the two-bump pattern with random signs, scaled to L2 norm eps."""
        tile = max(height // 5, 1)
        offset = (height - tile * 5) // 2 if height >= 5 else 0
        tile_rows = (np.arange(height) - offset) // tile
        tile_columns = (np.arange(width) - offset) // tile
        num_rows, num_columns = height // tile, width // tile
        valid = ((np.arange(height) >= offset)[:, None] & (np.arange(width) >= offset)[None]
                 & (tile_rows < num_rows)[:, None] & (tile_columns < num_columns)[None])
        tile_index = np.where(valid, tile_rows[:, None] * num_columns + tile_columns[None], 0)
        local_rows = np.arange(height) - offset - tile_rows * tile
        local_columns = np.arange(width) - offset - tile_columns * tile
        local_rows, local_columns = (tf.constant(value, tf.int32) for value in np.broadcast_arrays(
            local_rows[:, None], local_columns[None]))
        pattern = tf.where(valid, _two_bumps(local_rows, local_columns, tile, tails), 0.0)
        batch = tf.shape(images)[0]
        signs = random_signs((batch, num_rows * num_columns, channels), seed)
        delta = pattern[None, :, :, None] * tf.gather(signs, tf.constant(tile_index), axis=1)
        return delta

    def to_ball(images, delta, eps):
        """``x + eps * delta / ||delta||_2``, clipped to [0, 1]."""
        length = tf.maximum(_flat_norm(delta, "2"), 1e-12)
        return tf.clip_by_value(images + eps * delta / per_example(length, delta), 0.0, 1.0)

    def linf_proposal(images, best, eps, iteration, queries, p_init, seed):
        size = window_size(iteration, queries, p_init, 1)
        window_seed, sign_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        batch = tf.shape(images)[0]
        mask, _, _ = window_masks(size, batch, window_seed)
        signs = random_signs((batch, 1, 1, channels), sign_seed)
        proposal = tf.clip_by_value(best + mask * 2.0 * eps * signs, images - eps, images + eps)
        return tf.clip_by_value(proposal, 0.0, 1.0)

    def l2_proposal(images, best, eps, iteration, queries, p_init, seed):
        size = window_size(iteration, queries, p_init, 3)
        size = tf.where(tf.equal(size % 2, 0), tf.minimum(size + 1, side), size)
        seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
        batch = tf.shape(images)[0]
        mask, rows, columns = window_masks(size, batch, seeds[0])
        other_mask, _, _ = window_masks(size, batch, seeds[1])
        transpose = tf.random.stateless_uniform((batch, 1, 1), seeds[2]) < 0.5
        rows, columns = tf.where(transpose, columns, rows), tf.where(transpose, rows, columns)
        delta = best - images
        image_norm = per_example(_flat_norm(delta, "2"), delta)
        windows_norm = per_example(_flat_norm(delta * tf.maximum(mask, other_mask), "2"), delta)
        old_window = delta * mask
        old_norm = tf.sqrt(tf.reduce_sum(tf.square(old_window), axis=(1, 2), keepdims=True))
        bumps = _two_bumps(rows, columns, size, tails)[..., None] * mask
        new_window = bumps * random_signs((batch, 1, 1, channels), seeds[3])
        new_window += old_window / (old_norm + 1e-12)
        new_norm = tf.sqrt(tf.reduce_sum(tf.square(new_window), axis=(1, 2), keepdims=True))
        scale = tf.sqrt(tf.maximum(tf.square(eps) - tf.square(image_norm), 0.0) / channels
                        + tf.square(windows_norm))
        delta = delta * (1.0 - other_mask) * (1.0 - mask) + new_window / (new_norm + 1e-12) * scale
        return to_ball(images, delta, eps)

    propose = linf_proposal if norm == "inf" else l2_proposal

    @tf.function(input_signature=[
        image_spec(sample_shape),
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((), tf.float32),
        tf.TensorSpec((), tf.int32),
        tf.TensorSpec((), tf.float32),
        tf.TensorSpec((2,), tf.int64),
    ])
    def attack(images, labels, eps, queries, p_init, seed):
        model = model_ref()
        batch = tf.shape(images)[0]
        if norm == "inf":
            stripes = random_signs((batch, 1, width, channels), seed)
            best = tf.clip_by_value(images + eps * stripes, 0.0, 1.0)
        else:
            best = to_ball(images, l2_start(images, eps, seed), eps)
        # images misclassified already are left as they are (and never queried again)
        clean_margin = margins(model, images, labels)
        misclassified = clean_margin <= 0.0
        best = tf.where(per_example(misclassified, images), images, best)
        best_margin = tf.where(misclassified, clean_margin, margins(model, best, labels))
        for iteration in tf.range(queries - 1):
            remaining = tf.where(best_margin > 0.0)
            if tf.equal(tf.shape(remaining)[0], 0):
                break
            clean = tf.gather_nd(images, remaining)
            current = tf.gather_nd(best, remaining)
            current_labels = tf.gather_nd(labels, remaining)
            proposal = propose(clean, current, eps, iteration, queries, p_init,
                               tf.random.experimental.stateless_fold_in(seed, iteration))
            margin = margins(model, proposal, current_labels)
            better = margin < tf.gather_nd(best_margin, remaining)
            best = tf.tensor_scatter_nd_update(
                best, remaining, tf.where(per_example(better, proposal), proposal, current))
            best_margin = tf.tensor_scatter_nd_min(best_margin, remaining, margin)
        return best, best_margin <= 0.0, -best_margin

    return attack


def run_square(model, images, labels, norm, eps, queries=5000, p_init=0.8, seed=0):
    """Runs the Square Attack on one batch of validated tensors; no input checks.

    Returns ``(adversarial, success, objective)``.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    attack = compiled_square(model, SquareConfig(norm), images.shape[1:])
    return attack(images, tf.convert_to_tensor(labels, tf.int32), tf.constant(eps, tf.float32),
                  tf.constant(queries, tf.int32), tf.constant(p_init, tf.float32),
                  tf.constant([seed, 0], tf.int64))


def square(model, images, labels=None, eps=DEFAULT_EPS, norm="inf", queries=5000, p_init=0.8,
           seed=0):
    """Square Attack: random-search black-box attack that only reads the model's logits.

    Args:
        model: Keras classifier returning logits; called with ``training=False``.
        images: ``(batch, height, width, channels)`` pixels in [0, 1] (NumPy array or tensor).
        labels: true integer labels ``(batch,)`` (or one-hot); ``None`` uses the predictions.
        eps: radius of the perturbation ball in pixel units (default 8/255).
        norm: ``"inf"`` or ``"2"``.
        queries: model evaluations per image, the random start included (default 5000); an
            example stops being queried once it is misclassified, and images the model already
            misclassifies are returned unchanged.
        p_init: initial fraction of the image a square window covers (default 0.8).
        seed: integer seed.

    Returns:
        Adversarial images of the same shape and floating dtype as ``images``: the lowest-margin
        point found (a misclassifying one where found), within ``eps`` and in [0, 1].

    Example:

    >>> adversarial = square(model, images, labels, eps=8 / 255, queries=5000)
    """
    require_backend("keras_equivariant.attacks.square")
    norm = normalize_norm(norm)
    eps = _check_scalar_eps(eps, norm=norm)
    queries = check_positive_int(queries, "queries")
    p_init = check_fraction(p_init, "p_init", "the initial fraction of the image a square "
                            "covers; 0.8 in AutoAttack")
    images, labels, restore = _prepare(model, images, labels, False, None)
    adversarial, _, _ = run_square(model, images, labels, norm, eps, queries, p_init, int(seed))
    return restore(adversarial)
