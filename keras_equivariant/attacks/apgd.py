"""Auto-PGD (APGD-CE, APGD-DLR, APGD-T): step-size-free PGD of Croce & Hein (ICML 2020).

APGD replaces PGD's fixed step by a budget-aware schedule. It starts with step ``2 * eps``, moves
with momentum 0.75 and, at checkpoints ``p_j * steps`` (``p_0 = 0``, ``p_1 = 0.22``,
``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``), halves the step of every example for which

1. fewer than a fraction ``rho`` of the steps since the last checkpoint increased the loss, or
2. the step was not halved at the last checkpoint and the best loss has not improved since,

restarting those examples from their best point so far. The returned image is a misclassifying
iterate when one was found, else the highest-loss iterate.

The whole iteration loop (all steps, the checkpoint logic and per-example step sizes) runs in ONE
compiled ``tf.function`` per (model, configuration, image shape); ``eps``, the number of steps,
``rho`` and the seed are tensors, so sweeps never retrace. Conventions are those of
:func:`keras_equivariant.attacks.pgd` (pixels in [0, 1], logits, ``training=False``, results in
the eps-ball and [0, 1]).
"""

from __future__ import annotations

import dataclasses
import weakref

import tensorflow as tf

from keras_equivariant.attacks.gradient import (
    DEFAULT_EPS,
    _ascent_direction,
    _check_scalar_eps,
    _flat_norm,
    _prepare,
    _project,
    compiled_logits,
    count_classes,
    image_spec,
    model_logits,
    normalize_norm,
    run_restarts,
    usable_gradient,
)
from keras_equivariant.attacks.losses import cross_entropy_loss, dlr_loss, targeted_dlr_loss
from keras_equivariant.utils.compiled import cached_for_model
from keras_equivariant.utils.sampling import per_example
from keras_equivariant.utils.validation import (
    check_choice,
    check_fraction,
    check_positive_int,
    require_backend,
)

APGD_LOSSES = ("cross_entropy", "dlr")
# APGD-T and FAB-T attack the classes ranked 2..10 by the clean logits (AutoAttack's 9 targets).
NUM_TARGET_CLASSES = 9
MOMENTUM = 0.75


@dataclasses.dataclass(frozen=True)
class ApgdConfig:
    """The graph-shaping options of APGD; eps, steps, rho and the seed are tensors, not config."""

    norm: str = "inf"
    loss: str = "cross_entropy"
    targeted: bool = False
    eot_samples: int = 1


def checkpoint_gaps(steps: int) -> list[int]:
    """The iteration counts between APGD's checkpoints for a run of ``steps`` steps.

    The integer form of ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)`` used by the reference
    implementation: the first gap is ``max(int(0.22 * steps), 1)``, each next one is shorter by
    ``max(int(0.03 * steps), 1)`` but at least ``max(int(0.06 * steps), 1)``. (The compiled loop
    computes the same numbers in-graph; this function documents and tests them.)
    """
    gap, shrink, minimum = _gap_rules(steps)
    gaps, total = [], 0
    while total + gap <= steps:
        gaps.append(gap)
        total += gap
        gap = max(gap - shrink, minimum)
    return gaps


def _gap_rules(steps):
    """``(first gap, shrink, minimum gap)``; works on Python ints and on int32 tensors alike."""
    if isinstance(steps, int):
        return max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    wide = tf.cast(steps, tf.float64)  # float64 like the reference: int(0.22 * 100) == 22

    def rule(fraction):
        return tf.maximum(tf.cast(tf.floor(fraction * wide), tf.int32), 1)

    return rule(0.22), rule(0.03), rule(0.06)


def compiled_apgd(model, config: ApgdConfig, sample_shape):
    """The cached compiled APGD loop for ``model``, ``config`` and per-image ``sample_shape``.

    Signature: ``(images, labels, target_labels, eps, steps, rho, seed) -> (adversarial, success,
    objective)``; ``success`` means misclassified (also for the targeted losses, as in APGD-T) and
    ``objective`` is the best loss reached. ``target_labels`` are ignored when untargeted.
    """
    return cached_for_model(
        model, ("apgd", config, tuple(sample_shape)),
        lambda: _build_apgd(weakref.ref(model), config, tuple(sample_shape)))


def _build_apgd(model_ref, config: ApgdConfig, sample_shape):
    norm = config.norm

    def loss_fn(logits, labels, target_labels):
        if config.loss == "cross_entropy":
            if config.targeted:
                return -cross_entropy_loss(logits, target_labels)
            return cross_entropy_loss(logits, labels)
        if config.targeted:
            return targeted_dlr_loss(logits, labels, target_labels)
        return dlr_loss(logits, labels)

    def evaluate(model, images, labels, target_labels):
        """Objective and gradient (averaged over ``eot_samples`` calls) and misclassification."""
        objective = gradient = 0.0
        for _ in range(config.eot_samples):
            with tf.GradientTape() as tape:
                tape.watch(images)
                logits = model_logits(model, images)
                sample_objective = loss_fn(logits, labels, target_labels)
            gradient += usable_gradient(tape, sample_objective, images)
            objective += sample_objective
        success = tf.not_equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels)
        return objective / config.eot_samples, gradient / config.eot_samples, success

    @tf.function(input_signature=[
        image_spec(sample_shape),
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((), tf.float32),
        tf.TensorSpec((), tf.int32),
        tf.TensorSpec((), tf.float32),
        tf.TensorSpec((2,), tf.int64),
    ])
    def attack(images, labels, target_labels, eps, steps, rho, seed):
        model = model_ref()
        # start: a random point of the ball's surface (L-inf: scaled so its largest coordinate
        # is eps; L2: a Gaussian direction of length eps), clipped to [0, 1]
        if norm == "inf":
            noise = tf.random.stateless_uniform(tf.shape(images), seed, -1.0, 1.0)
        else:
            noise = tf.random.stateless_normal(tf.shape(images), seed)
        noise /= per_example(tf.maximum(_flat_norm(noise, norm), 1e-12), noise)
        current = tf.clip_by_value(images + eps * noise, 0.0, 1.0)
        objective, gradient, success = evaluate(model, current, labels, target_labels)

        batch = tf.shape(images)[:1]
        best_images, best_gradient, best_objective = current, gradient, objective
        fooling_images, ever_success = current, success
        step_size = tf.fill(batch, 2.0 * eps)
        previous = current
        previous_objective = objective
        increases = tf.zeros(batch, tf.float32)
        best_at_checkpoint = objective
        halved_at_checkpoint = tf.ones(batch, tf.bool)  # no "stalled" halving at the first one
        gap, shrink, minimum_gap = _gap_rules(steps)
        since_checkpoint = tf.constant(0, tf.int32)

        for iteration in tf.range(steps):
            momentum = tf.where(tf.equal(iteration, 0), 1.0, MOMENTUM)
            plain = _project(
                current + per_example(step_size, current) * _ascent_direction(gradient, norm),
                images, eps, norm)
            moved = _project(current + momentum * (plain - current)
                             + (1.0 - momentum) * (current - previous), images, eps, norm)
            previous, current = current, moved
            objective, gradient, success = evaluate(model, current, labels, target_labels)

            fooling_images = tf.where(per_example(success, current), current, fooling_images)
            ever_success = tf.logical_or(ever_success, success)
            increases += tf.cast(objective > previous_objective, tf.float32)
            previous_objective = objective
            improved = objective > best_objective
            best_images = tf.where(per_example(improved, current), current, best_images)
            best_gradient = tf.where(per_example(improved, current), gradient, best_gradient)
            best_objective = tf.where(improved, objective, best_objective)

            since_checkpoint += 1
            at_checkpoint = tf.equal(since_checkpoint, gap)
            oscillating = increases <= tf.cast(gap, tf.float32) * rho
            stalled = tf.logical_and(tf.logical_not(halved_at_checkpoint),
                                     best_at_checkpoint >= best_objective)
            halve = tf.logical_and(at_checkpoint, tf.logical_or(oscillating, stalled))
            step_size = tf.where(halve, step_size / 2.0, step_size)
            current = tf.where(per_example(halve, current), best_images, current)
            gradient = tf.where(per_example(halve, current), best_gradient, gradient)
            halved_at_checkpoint = tf.where(at_checkpoint, halve, halved_at_checkpoint)
            best_at_checkpoint = tf.where(at_checkpoint, best_objective, best_at_checkpoint)
            increases = tf.where(at_checkpoint, tf.zeros_like(increases), increases)
            since_checkpoint = tf.where(at_checkpoint, 0, since_checkpoint)
            gap = tf.where(at_checkpoint, tf.maximum(gap - shrink, minimum_gap), gap)

        adversarial = tf.where(per_example(ever_success, images), fooling_images, best_images)
        return adversarial, ever_success, best_objective

    return attack


def target_ranks(num_classes: int, target_class_rank=None) -> list[int]:
    """The ranks (2 = the runner-up class of the clean logits) a targeted attack cycles over."""
    if target_class_rank is not None:
        rank = check_positive_int(target_class_rank, "target_class_rank", minimum=2)
        if rank > num_classes:
            raise ValueError(
                f"`target_class_rank` must be between 2 and num_classes={num_classes} (rank 1 is "
                f"the predicted class itself); received {rank}."
            )
        return [rank]
    return list(range(2, min(NUM_TARGET_CLASSES + 1, num_classes) + 1))


def ranked_targets(clean_logits, rank: int):
    """The class ranked ``rank`` (1 = largest) by each row of ``clean_logits``, as int32."""
    return tf.math.top_k(clean_logits, k=rank).indices[:, rank - 1]


def run_over_targets(model, attack, images, labels, scalars, restarts, seed, ranks=None,
                     state=None):
    """Runs a compiled (images, labels, target_labels, *scalars, seed) attack on a validated batch.

    Untargeted (``ranks=None``: the labels stand in for the targets), or targeted at the class of
    each rank in ``ranks`` in turn; images the model misclassifies are skipped and every restart
    and target attacks only the examples not broken yet. ``state`` continues an earlier
    ``(adversarial, success, objective)``. Returns the same triple.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    labels = tf.convert_to_tensor(labels, tf.int32)
    logits = compiled_logits(model, images.shape[1:])(images)
    if state is None:
        misclassified = tf.not_equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels)
        state = (images, misclassified, tf.fill(tf.shape(labels), -float("inf")))
    if ranks is None:
        return run_restarts(attack, (images, labels, labels), scalars, restarts, seed, state)
    for rank in ranks:
        state = run_restarts(attack, (images, labels, ranked_targets(logits, rank)), scalars,
                             restarts, seed, state, first_seed=rank * restarts)
    return state


def check_target_rank(targeted, target_class_rank, attack_name):
    """Refuses a target rank for an untargeted attack."""
    if target_class_rank is not None and not targeted:
        raise ValueError(
            f"`target_class_rank={target_class_rank}` was given but `targeted=False`; pass "
            f"`targeted=True` for {attack_name}."
        )


def run_apgd(model, images, labels, config: ApgdConfig, eps, steps=100, restarts=1, rho=0.75,
             seed=0, ranks=None, state=None):
    """Runs APGD on one batch of validated tensors; no input checks.

    Untargeted, or targeted at each rank in ``ranks`` in turn; every restart and every target
    attacks only the examples still classified correctly (see :func:`run_over_targets`).
    Returns ``(adversarial, success, objective)``.
    """
    attack = compiled_apgd(model, config, tuple(images.shape[1:]))
    scalars = (tf.constant(eps, tf.float32), tf.constant(steps, tf.int32),
               tf.constant(rho, tf.float32))
    return run_over_targets(model, attack, images, labels, scalars, restarts, seed,
                            ranks if config.targeted else None, state)


def apgd(model, images, labels=None, eps=DEFAULT_EPS, norm="inf", loss="cross_entropy",
         targeted=False, target_class_rank=None, steps=100, restarts=1, rho=0.75, eot_samples=1,
         seed=0):
    """Auto-PGD (Croce & Hein 2020): APGD-CE, APGD-DLR and the targeted APGD-T.

    Args:
        model: Keras classifier returning logits; called with ``training=False``.
        images: ``(batch, height, width, channels)`` pixels in [0, 1] (NumPy array or tensor).
        labels: true integer labels ``(batch,)`` (or one-hot); ``None`` uses the predictions.
        eps: radius of the perturbation ball in pixel units (default 8/255).
        norm: ``"inf"`` or ``"2"``.
        loss: ``"cross_entropy"`` or ``"dlr"`` (difference of logits ratio; 3+ classes).
        targeted: APGD-T: push each image towards a target class, taken by rank among the clean
            logits (``"dlr"`` is then the targeted DLR loss, ``"cross_entropy"`` the negative
            cross-entropy of the target). Success still means "misclassified".
        target_class_rank: the target's rank (2 = runner-up class); ``None`` with
            ``targeted=True`` cycles over ranks 2..10 (AutoAttack's 9 target classes, fewer
            for smaller models), each on the examples still classified correctly.
        steps: iterations per run (default 100).
        restarts: random restarts (per target class); each attacks only still-robust examples.
        rho: step-halving threshold of the checkpoint rule (default 0.75).
        eot_samples: gradients averaged per step (expectation over transformation, for
            randomized models; 1 for deterministic ones).
        seed: integer seed of the random starts.

    Returns:
        Adversarial images of the same shape and floating dtype as ``images``: a misclassifying
        point of the eps-ball where one was found, else the highest-loss point; images the model
        already misclassifies are returned unchanged.

    Example:

    >>> adversarial = apgd(model, images, labels, eps=8 / 255, loss="dlr", targeted=True)
    """
    require_backend("keras_equivariant.attacks.apgd")
    norm = normalize_norm(norm)
    eps = _check_scalar_eps(eps, norm=norm)
    steps = check_positive_int(steps, "steps")
    restarts = check_positive_int(restarts, "restarts")
    eot_samples = check_positive_int(eot_samples, "eot_samples")
    check_choice(loss, APGD_LOSSES, "loss")
    rho = check_fraction(rho, "rho", "the fraction of loss-increasing steps below which APGD "
                         "halves its step; 0.75 in the paper")
    check_target_rank(targeted, target_class_rank, "APGD-T")
    images, labels, restore = _prepare(model, images, labels, False, None)
    num_classes = count_classes(model, images)
    ranks = target_ranks(num_classes, target_class_rank) if targeted else None
    if loss == "dlr" and num_classes < 3:
        raise ValueError(
            f"loss='dlr' needs at least 3 classes; the model returns {num_classes} logits. "
            "Use loss='cross_entropy'."
        )
    config = ApgdConfig(norm, loss, bool(targeted), eot_samples)
    adversarial, _, _ = run_apgd(model, images, labels, config, eps, steps, restarts, rho,
                                 int(seed), ranks)
    return restore(adversarial)
