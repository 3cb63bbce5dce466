"""White-box gradient attacks (FGSM, PGD) and the uniform random-noise baseline, for any Keras classifier.

Conventions:

* Images are ``(batch, height, width, channels)`` pixels in **[0, 1]**; normalization lives inside the
  model. ``eps`` and ``step_size`` are in pixel units.
* The model must return **logits**; it is always called with ``training=False`` (BatchNorm in
  inference mode) and its outputs are cast to float32 before the loss (mixed-precision safe).
* Every adversarial image lies in the eps-ball around its clean image **and** in [0, 1]
  (projection onto the ball first, then clipping to [0, 1], which can only shrink the perturbation).

Backends: FGSM, PGD and the random-noise baseline run on Keras' TensorFlow and JAX backends. The
attack loop (:func:`attack_steps`: gradient step, projection, clipping, best iterate), the
restarts (:func:`run_restarts`) and the input checks are shared; only the compiled function that
runs the loop is backend-specific. On TensorFlow it is one ``tf.function`` per (model, attack
configuration, image shape) taking the gradient with ``tf.GradientTape``; on JAX it is one
``jax.jit`` function (``keras_equivariant.attacks.jax_gradient``) taking ``jax.grad`` of the
model's ``stateless_call``. The random start is drawn by TensorFlow's stateless sampler on both
(on the host for JAX), so that a seed gives the same start on both backends.

Performance: the TensorFlow function's input signature has a free batch axis and takes ``eps``,
the step size, the number of steps and the random seed as tensors, so a sweep over batches,
budgets, step counts or restarts traces it exactly once (JAX compiles once per batch size
rounded up to a power of two). Compiled functions are cached per model in ``utils.compiled``
(weakly: the cache does not keep a model alive).
"""

from __future__ import annotations

import dataclasses
import warnings
import weakref

import keras
import numpy as np
import tensorflow as tf

from keras_equivariant.attacks.losses import LOSSES, get_loss
from keras_equivariant.utils.compiled import cached_for_model
from keras_equivariant.utils.sampling import per_example, sample_uniform_ball
from keras_equivariant.utils.validation import (
    check_choice,
    check_eps,
    check_images,
    check_labels,
    check_norm,
    check_positive_int,
    require_backend,
)

ops = keras.ops

DEFAULT_EPS = 8 / 255
#: Norms the attacks support (canonical spellings; see ``utils.validation.check_norm``).
NORMS = ("inf", "2")
#: The Keras backends FGSM, PGD and random_noise run on.
ATTACK_BACKENDS = ("tensorflow", "jax")
#: PGD defaults (RobustBench style), shared by ``pgd`` and the evaluation protocols.
PGD_STEPS = 10
PGD_STEP_SIZE_FACTOR = 2.5  # step size = PGD_STEP_SIZE_FACTOR * eps / steps


@dataclasses.dataclass(frozen=True)
class AttackConfig:
    """The graph-shaping options of an attack: one compiled function exists per config and model.

    Numeric settings (eps, step size, number of steps, seed) are *not* part of it: they are passed
    as tensors so that changing them never retraces.
    """

    norm: str = "inf"
    loss: str = "cross_entropy"
    targeted: bool = False
    random_start: bool = True
    keep_best: bool = True


def normalize_norm(norm) -> str:
    """An attack norm in its canonical spelling, ``"inf"`` or ``"2"`` (the spellings every
    function of the library accepts: ``utils.validation.check_norm``)."""
    return check_norm(norm, NORMS)


def _flat_norm(tensor, norm):
    """Per-example L-inf or L2 norm over all non-batch axes (``keras.ops``: any backend)."""
    axes = tuple(range(1, len(tensor.shape)))
    if norm == "inf":
        return ops.max(ops.abs(tensor), axis=axes)
    return ops.sqrt(ops.sum(ops.square(tensor), axis=axes))


def pgd_step_size(eps, steps, step_size=None) -> float:
    """The PGD step length: ``step_size`` when given, else ``2.5 * eps / steps``."""
    return PGD_STEP_SIZE_FACTOR * eps / steps if step_size is None else step_size


def check_restarts(restarts, random_start) -> int:
    """``restarts`` as an int >= 1; more than one restart needs a random start."""
    restarts = check_positive_int(restarts, "restarts")
    if restarts > 1 and not random_start:
        raise ValueError(
            f"`restarts={restarts}` needs `random_start=True`: without a random start every "
            "restart repeats the same deterministic attack."
        )
    return restarts


def _project(candidate, images, eps, norm):
    """Projects onto the eps-ball around ``images`` (norm ``norm``), then clips to [0, 1]."""
    delta = candidate - images
    if norm == "inf":
        delta = ops.clip(delta, -eps, eps)
    else:
        length = _flat_norm(delta, "2")
        delta *= per_example(ops.minimum(1.0, eps / ops.maximum(length, 1e-12)), delta)
    return ops.clip(images + delta, 0.0, 1.0)


def _ascent_direction(gradient, norm):
    """Steepest-ascent direction of unit norm-``norm`` length: sign for L-inf, g/||g|| for L2."""
    if norm == "inf":
        return ops.sign(gradient)
    return gradient / per_example(ops.maximum(_flat_norm(gradient, "2"), 1e-12), gradient)


def model_logits(model, images):
    """``model(images, training=False)`` cast to float32 (safe under a mixed-precision policy)."""
    return tf.cast(model(images, training=False), tf.float32)


def image_spec(sample_shape):
    """The input signature of a batch of float32 images with a free batch axis."""
    return tf.TensorSpec((None,) + tuple(sample_shape), tf.float32)


def compiled_logits(model, sample_shape):
    """A cached compiled function computing float32 logits for batches of ``sample_shape`` images.

    A ``tf.function`` on the TensorFlow backend, a ``jax.jit`` function on JAX.
    """
    if keras.backend.backend() == "jax":
        from keras_equivariant.attacks import jax_gradient  # noqa: PLC0415 (imports jax)

        return jax_gradient.compiled_logits(model, sample_shape)
    model_ref = weakref.ref(model)

    def build():
        @tf.function(input_signature=[image_spec(sample_shape)])
        def logits(images):
            return model_logits(model_ref(), images)

        return logits

    return cached_for_model(model, ("logits", tuple(sample_shape)), build)


def count_classes(model, images) -> int:
    """The number of logits ``model`` returns for a batch shaped like ``images`` (one forward)."""
    return int(compiled_logits(model, images.shape[1:])(images[:1]).shape[-1])


def compiled_attack(model, config: AttackConfig, sample_shape):
    """The cached compiled attack loop for ``model``, ``config`` and per-image ``sample_shape``.

    Signature: ``(images, goal_labels, eps, step_size, steps, seed) -> (adversarial, success,
    objective)``. ``goal_labels`` are the true labels (untargeted) or the targets (targeted);
    ``success`` is "misclassified" (untargeted) or "predicted as the target" (targeted) at the
    returned images, and ``objective`` the per-example loss being ascended there. A
    ``tf.function`` on the TensorFlow backend; on JAX a function running a ``jax.jit`` loop
    (``jax_gradient.compiled_attack``), with the same signature.
    """
    if keras.backend.backend() == "jax":
        from keras_equivariant.attacks import jax_gradient  # noqa: PLC0415 (imports jax)

        return jax_gradient.compiled_attack(model, config, sample_shape)
    return cached_for_model(
        model, ("attack", config, tuple(sample_shape)),
        lambda: _build_attack(weakref.ref(model), config, tuple(sample_shape)))


def usable_gradient(tape, objective, inputs):
    """``d objective / d inputs`` with unconnected and non-finite entries set to zero.

    NaN/inf entries give no usable direction (and would poison the iterate); the sanity checks
    report them instead.
    """
    gradient = tape.gradient(objective, inputs, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return finite_or_zero(gradient)


def finite_or_zero(gradient):
    """``gradient`` with its NaN and inf entries set to zero (``keras.ops``: any backend)."""
    return ops.where(ops.isfinite(gradient), gradient, ops.zeros_like(gradient))


def objective_and_success(config: AttackConfig, logits_fn):
    """``evaluate(images, goal_labels) -> (objective, success)`` for ``config``, on any backend.

    ``logits_fn(images)`` returns the model's float32 logits. ``objective`` is the per-example
    loss the attack ascends (the negated loss towards the target when targeted); ``success`` is
    "misclassified" (untargeted) or "predicted as the target" (targeted).
    """
    loss_fn = get_loss(config.loss)
    sign = -1.0 if config.targeted else 1.0

    def evaluate(images, goal_labels):
        logits = logits_fn(images)
        objective = sign * loss_fn(logits, goal_labels)
        success = ops.equal(ops.argmax(logits, axis=-1), goal_labels)
        if not config.targeted:
            success = ops.logical_not(success)
        return objective, success

    return evaluate


def keep_better(best, candidate):
    """Per example: a successful iterate beats an unsuccessful one, then higher objective wins.

    ``best`` and ``candidate`` are ``(images, success, objective)``; returns the merged triple.
    """
    best_images, best_success, best_objective = best
    images, success, objective = candidate
    better = ops.logical_or(
        ops.logical_and(success, ops.logical_not(best_success)),
        ops.logical_and(ops.equal(success, best_success), objective > best_objective),
    )
    return (
        ops.where(per_example(better, images), images, best_images),
        ops.logical_or(best_success, success),
        ops.where(better, objective, best_objective),
    )


def random_start(images, noise):
    """The clean ``images`` moved by ``noise`` (a draw of ``sample_uniform_ball``), clipped to
    [0, 1]."""
    return ops.clip(images + noise, 0.0, 1.0)


def attack_steps(config: AttackConfig, evaluate, value_and_gradient, images, goal_labels, start,
                 eps, step_size, steps):
    """The attack loop of FGSM, PGD and random_noise, shared by the TensorFlow and JAX backends.

    From ``start``, ``steps`` times: step by ``step_size`` along the steepest-ascent direction of
    ``config.norm``, project onto the eps-ball around ``images`` and clip to [0, 1]; with
    ``config.keep_best`` every iterate (the last one included) competes for the returned one
    (:func:`keep_better`). Written with ``keras.ops`` and ``keras.ops.fori_loop``: inside a
    ``tf.function`` it is a ``tf.while_loop``, inside ``jax.jit`` a ``jax.lax.fori_loop``.

    Args:
        config: the attack configuration.
        evaluate: ``(images, goal_labels) -> (objective, success)``
            (:func:`objective_and_success`).
        value_and_gradient: ``(images, goal_labels) -> (objective, success, gradient)``, the
            gradient of the summed objective with respect to the images, non-finite entries
            zeroed (``tf.GradientTape`` or ``jax.grad``).
        images: the clean images; ``goal_labels``: true labels or targets.
        start: the first iterate (``images``, or :func:`random_start`).
        eps, step_size, steps: the budget, the step length and the number of steps (tensors).

    Returns:
        ``(adversarial, success, objective)`` at the returned images.
    """
    norm = config.norm
    batch = ops.shape(images)[:1]
    best = (start, ops.zeros(batch, "bool"), ops.full(batch, -float("inf"), "float32"))

    def step(_, state):
        adversarial, best = state
        objective, success, gradient = value_and_gradient(adversarial, goal_labels)
        if config.keep_best:
            best = keep_better(best, (adversarial, success, objective))
        adversarial = _project(
            adversarial + step_size * _ascent_direction(gradient, norm), images, eps, norm
        )
        return adversarial, best

    adversarial, best = ops.fori_loop(0, steps, step, (start, best))
    objective, success = evaluate(adversarial, goal_labels)
    if config.keep_best:
        return keep_better(best, (adversarial, success, objective))
    return adversarial, success, objective


def _build_attack(model_ref, config: AttackConfig, sample_shape):
    evaluate = objective_and_success(config, lambda images: model_logits(model_ref(), images))

    def value_and_gradient(adversarial, goal_labels):
        with tf.GradientTape() as tape:
            tape.watch(adversarial)
            objective, success = evaluate(adversarial, goal_labels)
        return objective, success, usable_gradient(tape, objective, adversarial)

    @tf.function(input_signature=[
        image_spec(sample_shape),
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((), tf.float32),
        tf.TensorSpec((), tf.float32),
        tf.TensorSpec((), tf.int32),
        tf.TensorSpec((2,), tf.int64),
    ])
    def attack(images, goal_labels, eps, step_size, steps, seed):
        start = images
        if config.random_start:
            start = random_start(images, sample_uniform_ball(tf.shape(images), eps, config.norm,
                                                             seed))
        return attack_steps(config, evaluate, value_and_gradient, images, goal_labels, start,
                            eps, step_size, steps)

    return attack


def run_restarts(attack, inputs, scalars, restarts, seed, state=None, first_seed=0):
    """Runs a compiled attack ``restarts`` times, each restart only on the not-yet-broken examples.

    ``attack(*inputs, *scalars, seed) -> (adversarial, success, objective)`` is a compiled attack
    whose ``inputs`` (images first) share the batch axis and whose ``scalars`` are tensors; restart
    ``r`` is seeded with ``(seed, first_seed + r)``. A kept adversarial is replaced only by a
    successful one or, failing that, a higher-objective one. ``state``, an earlier
    ``(adversarial, success, objective)`` for the whole batch, is continued instead of starting
    afresh (its successful examples are not attacked again). The bookkeeping runs eagerly with
    ``keras.ops`` (any backend); the seed is passed as a NumPy ``int64`` pair.

    Returns ``(adversarial, success, objective)`` for the whole batch.
    """
    for restart in range(restarts):
        seed_pair = np.array([seed, first_seed + restart], np.int64)
        if state is None:
            state = attack(*inputs, *scalars, seed_pair)
            continue
        adversarial, success, objective = state
        remaining = np.flatnonzero(~ops.convert_to_numpy(success))
        if remaining.size == 0:
            break
        new_adversarial, new_success, new_objective = attack(
            *(ops.take(tensor, remaining, axis=0) for tensor in inputs), *scalars, seed_pair)
        better = np.flatnonzero(ops.convert_to_numpy(new_success) | (
            ops.convert_to_numpy(new_objective) > ops.convert_to_numpy(objective)[remaining]))
        update = remaining[better][:, None]
        state = tuple(
            ops.scatter_update(kept, update, ops.take(new, better, axis=0))
            for kept, new in zip(state, (new_adversarial, new_success, new_objective))
        )
    return state


def run_attack(model, images, goal_labels, config: AttackConfig, eps, step_size, steps,
               restarts=1, seed=0):
    """Runs a compiled attack on one batch of already-validated tensors; no input checks.

    Restart ``r`` (seeded with ``(seed, r)``) attacks only the examples no earlier restart broke,
    and replaces a kept adversarial only by a successful one or, failing that, a higher-objective
    one. Returns ``(adversarial_images, success)`` as float32 / bool tensors.
    """
    images = ops.convert_to_tensor(images, "float32")
    goal_labels = ops.convert_to_tensor(goal_labels, "int32")
    attack = compiled_attack(model, config, tuple(images.shape[1:]))
    scalars = (np.float32(eps), np.float32(step_size), np.int32(steps))
    adversarial, success, _ = run_restarts(attack, (images, goal_labels), scalars, restarts, seed)
    return adversarial, success


def looks_like_probabilities(logits, tolerance=1e-5) -> bool:
    """True when every row is non-negative, at most 1 and sums to 1 (AutoAttack's check)."""
    logits = np.asarray(logits, dtype=np.float64)
    return bool(
        logits.size
        and logits.min() >= 0.0
        and logits.max() <= 1.0
        and np.all(np.abs(logits.sum(axis=-1) - 1.0) <= tolerance)
    )


def warn_if_probabilities(logits, model, stacklevel=3):
    """Warns when ``model`` seems to end in a softmax: attacks and CLEVER need logits."""
    if looks_like_probabilities(logits):
        warnings.warn(
            f"The outputs of model {getattr(model, 'name', model)!r} look like probabilities "
            "(non-negative rows summing to 1), but attacks and CLEVER need logits: a saturated "
            "softmax hides gradients, which makes the model look more robust than it is (and "
            "inflates CLEVER scores). Remove the final softmax (e.g. "
            "`keras.layers.Dense(num_classes)` without activation) or build an attack model "
            "from the pre-softmax layer.",
            UserWarning,
            stacklevel=stacklevel,
        )


def _check_scalar_eps(eps, name="eps", norm="inf") -> float:
    if np.ndim(eps) != 0:
        raise ValueError(
            f"`{name}` must be a single number for one attack; received {eps!r}. "
            "Use `keras_equivariant.metrics.robust_accuracy` to sweep several budgets."
        )
    return check_eps(eps, name, norm=norm)[0]


def _prepare(model, images, labels, targeted, target_labels):
    """Validates inputs before any attack work; returns (images, goal_labels, restore_fn)."""
    is_tensor = ops.is_tensor(images)
    original_dtype = (images.dtype.as_numpy_dtype if tf.is_tensor(images)
                      else np.asarray(images).dtype)
    # integer 0/1 images: perturbed pixels need a floating dtype
    output_dtype = original_dtype if np.issubdtype(original_dtype, np.floating) else np.float32
    array = check_images(images)
    if targeted and target_labels is None:
        raise ValueError("`targeted=True` needs `target_labels` (one target class per image).")
    if not targeted and target_labels is not None:
        raise ValueError(
            "`target_labels` were given but `targeted=False`; pass `targeted=True` for a "
            "targeted attack."
        )
    tensor = ops.convert_to_tensor(array)
    logits = ops.convert_to_numpy(compiled_logits(model, array.shape[1:])(tensor))
    warn_if_probabilities(logits, model)
    num_classes = int(logits.shape[-1])
    if labels is None:
        labels = np.argmax(logits, axis=-1).astype(np.int32)
    labels = check_labels(labels, array.shape[0], num_classes)
    goal = labels
    if targeted:
        goal = check_labels(target_labels, array.shape[0], num_classes, name="target_labels")

    def restore(adversarial):
        if np.finfo(output_dtype).bits < 32:
            # Rounding to a narrower float can move a pixel away from its clean value, out of
            # the eps-ball; such pixels take the neighbouring value towards the clean pixel
            # (which the narrow dtype represents exactly, so the result stays in the ball).
            wide = ops.convert_to_numpy(adversarial)
            narrow = wide.astype(output_dtype)
            clean = array.astype(output_dtype)
            away = np.abs(narrow.astype(np.float32) - array) > np.abs(wide - array)
            narrow[away] = np.nextafter(narrow[away], clean[away])
            adversarial = narrow
        adversarial = ops.cast(adversarial, output_dtype)
        return adversarial if is_tensor else ops.convert_to_numpy(adversarial)

    return tensor, ops.convert_to_tensor(goal), restore


def pgd(model, images, labels=None, eps=DEFAULT_EPS, steps=PGD_STEPS, step_size=None,
        norm="inf", random_start=True, restarts=1, loss="cross_entropy", targeted=False, target_labels=None,
        keep_best=True, seed=None):
    """Projected gradient descent (Madry et al.) in the L-inf or L2 ball, RobustBench defaults.

    Runs on the TensorFlow backend (a compiled ``tf.function`` with ``tf.GradientTape``) and on
    JAX (``jax.jit`` of a ``jax.lax.fori_loop`` with ``jax.grad``); on another Keras backend it
    raises a ``RuntimeError`` saying so. A fixed ``seed`` draws the same random start on both.

    Each step moves by ``step_size`` along the sign of the loss gradient (L-inf) or the
    L2-normalized gradient (L2), projects onto the eps-ball and clips to [0, 1]. With
    ``keep_best=True`` the returned image per example is the best iterate seen (a misclassifying
    one if any, else the highest-loss one), including the final one.

    Args:
        model: Keras classifier returning logits; called with ``training=False``.
        images: ``(batch, height, width, channels)`` pixels in [0, 1] (NumPy array or tensor).
        labels: true integer labels ``(batch,)`` (or one-hot). ``None`` uses the model's
            predictions (avoids label leaking when labels are unknown).
        eps: radius of the perturbation ball in pixel units (default 8/255).
        steps: number of gradient steps (default 10).
        step_size: step length; ``None`` means ``2.5 * eps / steps`` (2/255 for the defaults).
        norm: ``"inf"`` or ``"2"``.
        random_start: start from a uniform random point in the ball (clipped to [0, 1]).
        restarts: number of random starts; each restart attacks only the still-robust examples.
        loss: ``"cross_entropy"`` or ``"margin"`` (Carlini–Wagner logit margin).
        targeted: if True, push every image towards ``target_labels`` instead of away from
            ``labels``.
        target_labels: integer targets ``(batch,)``; required iff ``targeted``.
        keep_best: return the best iterate (True) or the last one (False, the paper's protocol).
        seed: integer seed of the random starts; ``None`` draws one from NumPy's global generator
            (seeded by ``keras.utils.set_random_seed``).

    Returns:
        Adversarial images of the same shape and floating dtype as ``images`` (NumPy in, NumPy
        out; tensor in, tensor out; integer inputs give float32), within ``eps`` of ``images`` in the chosen norm and in [0, 1].

    Example:

    >>> adversarial = pgd(model, images, labels, eps=8 / 255, steps=10)
    """
    require_backend("keras_equivariant.attacks.pgd", ATTACK_BACKENDS)
    norm = normalize_norm(norm)
    eps = _check_scalar_eps(eps, norm=norm)
    steps = check_positive_int(steps, "steps")
    restarts = check_restarts(restarts, random_start)
    step_size = pgd_step_size(eps, steps, None if step_size is None
                              else _check_scalar_eps(step_size, "step_size"))
    check_choice(loss, LOSSES, "loss")
    images, goal, restore = _prepare(model, images, labels, targeted, target_labels)
    config = AttackConfig(norm, loss, bool(targeted), bool(random_start), bool(keep_best))
    seed = np.random.randint(0, 2**31 - 1) if seed is None else int(seed)
    adversarial, _ = run_attack(model, images, goal, config, eps, step_size, steps, restarts, seed)
    return restore(adversarial)


def fgsm(model, images, labels=None, eps=DEFAULT_EPS, norm="inf", loss="cross_entropy",
         targeted=False, target_labels=None):
    """Fast gradient (sign) method: one step of length ``eps`` from the clean image, clipped to [0, 1].

    Runs on the TensorFlow and JAX backends like :func:`pgd`; on another Keras backend it raises
    a ``RuntimeError`` saying so.

    L-inf: ``x + eps * sign(grad)``; L2: ``x + eps * grad / ||grad||_2`` (FGM). Arguments as in
    :func:`pgd`. Returns adversarial images of the same shape and dtype as ``images``.

    Example:

    >>> adversarial = fgsm(model, images, labels, eps=8 / 255)
    """
    require_backend("keras_equivariant.attacks.fgsm", ATTACK_BACKENDS)
    norm = normalize_norm(norm)
    eps = _check_scalar_eps(eps, norm=norm)
    check_choice(loss, LOSSES, "loss")
    images, goal, restore = _prepare(model, images, labels, targeted, target_labels)
    config = AttackConfig(norm, loss, bool(targeted), random_start=False, keep_best=False)
    adversarial, _ = run_attack(model, images, goal, config, eps, eps, 1)
    return restore(adversarial)


def random_noise(model, images, labels=None, eps=DEFAULT_EPS, norm="inf", num_samples=100,
                 seed=None):
    """Gradient-free baseline: up to ``num_samples`` uniform draws in the eps-ball per image.

    Runs on the TensorFlow and JAX backends like :func:`pgd` (the same draws for a fixed
    ``seed``); on another Keras backend it raises a ``RuntimeError`` saying so.

    Each draw is tried only on the images earlier draws did not misclassify; the returned image is
    a misclassifying draw if one was found, else the highest-loss draw. Used by the
    gradient-masking sanity checks: it must never be stronger than PGD.

    Example:

    >>> noisy = random_noise(model, images, labels, eps=8 / 255, num_samples=100)
    """
    require_backend("keras_equivariant.attacks.random_noise", ATTACK_BACKENDS)
    norm = normalize_norm(norm)
    eps = _check_scalar_eps(eps, norm=norm)
    num_samples = check_positive_int(num_samples, "num_samples")
    images, goal, restore = _prepare(model, images, labels, False, None)
    config = AttackConfig(norm, "cross_entropy", targeted=False, random_start=True, keep_best=True)
    seed = np.random.randint(0, 2**31 - 1) if seed is None else int(seed)
    adversarial, _ = run_attack(model, images, goal, config, eps, 0.0, 0, num_samples, seed)
    return restore(adversarial)
