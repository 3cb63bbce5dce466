"""FAB, the Fast Adaptive Boundary attack (Croce & Hein, ICML 2020): minimum-norm, L-inf and L2.

FAB searches for the smallest perturbation that changes the prediction. Each iteration linearizes
the decision boundary between the true class and a target class at the current point (targeted,
FAB-T) or the closest linearized boundary over all classes (untargeted), projects both the current
point and the clean image onto that hyperplane inside the [0, 1] box (exact minimum-norm
projections), and moves to a convex combination of the two projections, overshooting by ``eta``
and weighting the clean image's projection by ``alpha = min(|d1| / (|d1| + |d2|), alpha_max)``.
Whenever the point is misclassified, the smallest such perturbation is kept and the point is
pulled back towards the clean image by a factor ``beta``.

AutoAttack's settings: ``alpha_max = 0.1``, ``eta = 1.05``, ``beta = 0.9``, 100 iterations,
FAB-T over the 9 runner-up classes with one restart each (the first restart starts at the clean
image, later ones at a random point at half of ``eps``). An example counts as broken only when a
misclassifying perturbation of norm at most ``eps`` was found.

The whole loop runs in ONE compiled ``tf.function`` per (model, configuration, image shape).
"""

from __future__ import annotations

import dataclasses
import weakref

import tensorflow as tf

from keras_equivariant.attacks.apgd import check_target_rank, run_over_targets, target_ranks
from keras_equivariant.attacks.gradient import (
    DEFAULT_EPS,
    _check_scalar_eps,
    _flat_norm,
    _prepare,
    count_classes,
    image_spec,
    model_logits,
    normalize_norm,
    usable_gradient,
)
from keras_equivariant.utils.compiled import cached_for_model
from keras_equivariant.utils.validation import check_positive_int, require_backend

ALPHA_MAX = 0.1
ETA = 1.05
BETA = 0.9


@dataclasses.dataclass(frozen=True)
class FabConfig:
    """The graph-shaping options of FAB; eps, steps and the seed are tensors."""

    norm: str = "inf"
    targeted: bool = True


def project_onto_hyperplane_in_box(points, weights, offsets, norm):
    """Minimum-norm steps ``d`` onto the hyperplane ``weights . (points + d) = offsets`` in [0, 1].

    Row-wise on flat ``(n, d)`` tensors (``offsets``: ``(n,)``). The minimizer has the form
    ``d_i = clip(tau * v_i, -points_i, 1 - points_i)`` with ``v = sign(c) * sign(w)`` (L-inf) or
    ``v = sign(c) * w`` (L2), ``c = offsets - weights . points``, for the smallest ``tau`` that
    reaches the hyperplane; ``weights . d`` is piecewise linear in ``tau`` with a kink where each
    coordinate hits the box, so sorting the kinks gives ``tau`` exactly. When the box does not
    reach the hyperplane, the step goes as far towards it as the box allows.
    """
    needed = offsets - tf.reduce_sum(weights * points, axis=1)
    direction = tf.sign(needed)[:, None] * (tf.sign(weights) if norm == "inf" else weights)
    room = tf.where(direction > 0, 1.0 - points, points)
    speed = tf.abs(direction)
    moving = speed > 0
    # coordinate i adds rate_i * min(tau, kink_i) to |weights . d|
    rate = tf.where(moving, tf.abs(weights) * speed, 0.0)
    kink = tf.where(moving, room / tf.where(moving, speed, 1.0), 0.0)
    last_kink = tf.reduce_max(kink, axis=1)
    order = tf.argsort(kink, axis=1)
    kinks = tf.gather(kink, order, batch_dims=1)
    rates = tf.gather(rate, order, batch_dims=1)
    reached_before = tf.cumsum(rates * kinks, axis=1, exclusive=True)  # sum_{j<k} rate_j kink_j
    still_moving = tf.cumsum(rates, axis=1, reverse=True)             # sum_{j>=k} rate_j
    reach_at_kink = reached_before + kinks * still_moving
    target = tf.abs(needed)[:, None]
    segment = tf.argmax(tf.cast(reach_at_kink >= target, tf.int32), axis=1, output_type=tf.int32)
    before = tf.gather(reached_before, segment, batch_dims=1)
    rate_left = tf.gather(still_moving, segment, batch_dims=1)
    tau = (tf.abs(needed) - before) / tf.maximum(rate_left, 1e-30)
    feasible = reach_at_kink[:, -1] >= tf.abs(needed)
    tau = tf.where(feasible, tau, last_kink)
    step = tf.clip_by_value(tau[:, None] * direction, -points, 1.0 - points)
    return tf.where(tf.equal(needed, 0.0)[:, None], 0.0, step)


def compiled_fab(model, config: FabConfig, sample_shape):
    """The cached compiled FAB loop for ``model``, ``config`` and per-image ``sample_shape``.

    Signature: ``(images, labels, target_labels, eps, steps, random_start, seed) ->
    (adversarial, success, objective)``: ``success`` = misclassified at L-norm <= eps,
    ``adversarial`` the smallest such point (else the clean image), ``objective`` minus its norm
    (``-inf`` without success). ``random_start`` is 0.0 or 1.0.
    """
    return cached_for_model(
        model, ("fab", config, tuple(sample_shape)),
        lambda: _build_fab(weakref.ref(model), config, tuple(sample_shape)))


def _build_fab(model_ref, config: FabConfig, sample_shape):
    norm = config.norm
    dual = "1" if norm == "inf" else "2"

    def boundary(model, current, labels, target_labels):
        """Logit difference to the chosen class and its gradient, flat ``(batch, d)``."""
        if config.targeted:
            with tf.GradientTape() as tape:
                tape.watch(current)
                logits = model_logits(model, current)
                difference = (tf.gather(logits, target_labels, batch_dims=1)
                              - tf.gather(logits, labels, batch_dims=1))
            gradient = usable_gradient(tape, difference, current)
            return difference, tf.reshape(gradient, [tf.shape(current)[0], -1])
        with tf.GradientTape() as tape:
            tape.watch(current)
            logits = model_logits(model, current)
        jacobian = tape.batch_jacobian(logits, current)
        jacobian = tf.where(tf.math.is_finite(jacobian), jacobian, 0.0)
        jacobian = tf.reshape(jacobian, [tf.shape(current)[0], tf.shape(logits)[1], -1])
        differences = logits - tf.gather(logits, labels, batch_dims=1)[:, None]
        gradients = jacobian - tf.gather(jacobian, labels, batch_dims=1)[:, None]
        if dual == "1":
            lengths = tf.reduce_sum(tf.abs(gradients), axis=-1)
        else:
            lengths = tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=-1))
        distance = tf.abs(differences) / (lengths + 1e-12)
        is_label = tf.one_hot(labels, tf.shape(logits)[1], on_value=True, off_value=False)
        closest = tf.argmin(tf.where(is_label, float("inf"), distance), axis=1,
                            output_type=tf.int32)
        return (tf.gather(differences, closest, batch_dims=1),
                tf.gather(gradients, closest, batch_dims=1))

    def flat_norm(flat):
        return _flat_norm(flat, norm)

    @tf.function(input_signature=[
        image_spec(sample_shape),
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((), tf.float32),
        tf.TensorSpec((), tf.int32),
        tf.TensorSpec((), tf.float32),
        tf.TensorSpec((2,), tf.int64),
    ])
    def attack(images, labels, target_labels, eps, steps, random_start, seed):
        model = model_ref()
        batch = tf.shape(images)[0]
        shape = tf.shape(images)
        clean = tf.reshape(images, [batch, -1])
        if norm == "inf":
            noise = tf.random.stateless_uniform(tf.shape(clean), seed, -1.0, 1.0)
        else:
            noise = tf.random.stateless_normal(tf.shape(clean), seed)
        noise /= tf.maximum(flat_norm(noise), 1e-12)[:, None]
        current = tf.clip_by_value(clean + random_start * 0.5 * eps * noise, 0.0, 1.0)
        best = clean
        best_norm = tf.fill([batch], float("inf"))
        for _ in tf.range(steps):
            difference, gradient = boundary(model, tf.reshape(current, shape), labels,
                                            target_labels)
            offset = tf.reduce_sum(gradient * current, axis=1) - difference
            steps_both = project_onto_hyperplane_in_box(
                tf.concat([current, clean], 0), tf.concat([gradient, gradient], 0),
                tf.concat([offset, offset], 0), norm)
            from_current, from_clean = steps_both[:batch], steps_both[batch:]
            length_current = tf.maximum(flat_norm(from_current), 1e-8)
            length_clean = tf.maximum(flat_norm(from_clean), 1e-8)
            alpha = tf.clip_by_value(length_current / (length_current + length_clean), 0.0,
                                     ALPHA_MAX)[:, None]
            current = tf.clip_by_value(
                (current + ETA * from_current) * (1.0 - alpha)
                + (clean + ETA * from_clean) * alpha, 0.0, 1.0)
            logits = model_logits(model, tf.reshape(current, shape))
            fooled = tf.not_equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels)
            size = flat_norm(current - clean)
            improved = tf.logical_and(fooled, size < best_norm)
            best = tf.where(improved[:, None], current, best)
            best_norm = tf.where(improved, size, best_norm)
            current = tf.where(fooled[:, None], clean + BETA * (current - clean), current)
        success = best_norm <= eps
        adversarial = tf.where(success[:, None], best, clean)
        return (tf.reshape(adversarial, shape), success,
                tf.where(success, -best_norm, -float("inf")))

    return attack


def run_fab(model, images, labels, config: FabConfig, eps, steps=100, restarts=1, seed=0,
            ranks=None, state=None):
    """Runs FAB on one batch of validated tensors; no input checks.

    Targeted at each rank in ``ranks`` in turn (FAB-T) or untargeted; every restart and target
    attacks only the examples not yet broken; restart 0 starts at the clean image. Returns
    ``(adversarial, success, objective)``.
    """
    attack = compiled_fab(model, config, tuple(images.shape[1:]))

    def restart_attack(*args):
        *inputs, seed_tensor = args
        random_start = tf.cast(seed_tensor[1] % restarts > 0, tf.float32)
        return attack(*inputs, random_start, seed_tensor)

    scalars = (tf.constant(eps, tf.float32), tf.constant(steps, tf.int32))
    return run_over_targets(model, restart_attack, images, labels, scalars, restarts, seed,
                            ranks if config.targeted else None, state)


def fab(model, images, labels=None, eps=DEFAULT_EPS, norm="inf", targeted=True,
        target_class_rank=None, steps=100, restarts=1, seed=0):
    """FAB (Croce & Hein 2020), minimum-norm boundary attack; FAB-T (targeted) by default.

    Args:
        model: Keras classifier returning logits; called with ``training=False``.
        images: ``(batch, height, width, channels)`` pixels in [0, 1] (NumPy array or tensor).
        labels: true integer labels ``(batch,)`` (or one-hot); ``None`` uses the predictions.
        eps: the budget: a minimum-norm perturbation counts (and is returned) only if its norm
            is at most ``eps`` (pixel units; also the scale of the random restarts).
        norm: ``"inf"`` or ``"2"``.
        targeted: FAB-T, towards the class ranked ``target_class_rank`` by the clean logits or,
            with ``None``, each of the ranks 2..10 in turn (AutoAttack's 9 target classes); if
            False, the closest linearized boundary over all classes (needs a Jacobian per step).
        target_class_rank: the target's rank (2 = runner-up class), only with ``targeted``.
        steps: iterations per run (default 100).
        restarts: runs per target; the first starts at the clean image, the others at a random
            point at distance ``eps / 2``; each attacks only the examples not yet broken.
        seed: integer seed of the random restarts.

    Returns:
        Images of the same shape and floating dtype as ``images``: the smallest misclassifying
        perturbation found where its norm is at most ``eps``, else the clean image.

    Example:

    >>> adversarial = fab(model, images, labels, eps=8 / 255)
    """
    require_backend("keras_equivariant.attacks.fab")
    norm = normalize_norm(norm)
    eps = _check_scalar_eps(eps, norm=norm)
    steps = check_positive_int(steps, "steps")
    restarts = check_positive_int(restarts, "restarts")
    check_target_rank(targeted, target_class_rank, "FAB-T")
    images, labels, restore = _prepare(model, images, labels, False, None)
    num_classes = count_classes(model, images)
    ranks = target_ranks(num_classes, target_class_rank) if targeted else None
    config = FabConfig(norm, bool(targeted))
    adversarial, _, _ = run_fab(model, images, labels, config, eps, steps, restarts, int(seed),
                                ranks)
    return restore(adversarial)
