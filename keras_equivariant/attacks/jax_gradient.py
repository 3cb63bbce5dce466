"""The JAX backend of FGSM, PGD and random_noise: the compiled functions of ``attacks.gradient``.

``attacks.gradient.compiled_attack`` and ``compiled_logits`` return these on Keras' JAX backend;
the attack loop itself (``gradient.attack_steps``), the restarts, the losses and the input checks
are those of the TensorFlow backend. Here the model is called as
``model.stateless_call(trainable, non_trainable, images, training=False)`` with its current
variable values passed as arguments (never baked into the compiled function), the gradient with
respect to the images is ``jax.grad`` of the summed objective, and the whole loop runs under one
``jax.jit`` (``keras.ops.fori_loop`` is ``jax.lax.fori_loop`` there).

The random start is drawn on the host by the TensorFlow sampler of the TensorFlow backend
(``utils.sampling.sample_uniform_ball`` with the same ``(seed, restart)`` pair) and passed to the
compiled loop, so that a seed starts both backends from the same point. Batches are padded to the
next power of two before the compiled loop (every example is attacked independently), so that
the shrinking batches of successive restarts compile a handful of times, not once per size.
"""

from __future__ import annotations

import weakref

import jax
import keras
import numpy as np

from keras_equivariant.utils.compiled import cached_for_model
from keras_equivariant.utils.sampling import sample_uniform_ball


def _variables(model):
    """The current values of ``model``'s trainable and non-trainable variables."""
    return ([variable.value for variable in model.trainable_variables],
            [variable.value for variable in model.non_trainable_variables])


def _stateless_logits(model_ref):
    """``logits(trainable, non_trainable, images)``: the model's float32 logits, inference mode."""

    def logits(trainable, non_trainable, images):
        outputs, _ = model_ref().stateless_call(trainable, non_trainable, images, training=False)
        return keras.ops.cast(outputs, "float32")

    return logits


def compiled_logits(model, sample_shape):
    """A cached ``jax.jit`` function computing float32 logits for batches of ``sample_shape``
    images with the model's current weights (``images -> logits``)."""
    model_ref = weakref.ref(model)

    def build():
        jitted = jax.jit(_stateless_logits(model_ref))

        def logits(images):
            return jitted(*_variables(model_ref()), images)

        return logits

    return cached_for_model(model, ("jax_logits", tuple(sample_shape)), build)


def _padded_size(count):
    """The smallest power of two >= ``count`` (the compiled batch sizes)."""
    return 1 << max(count - 1, 0).bit_length()


def _pad(array, size):
    """``array`` with zero rows appended along the batch axis up to ``size`` rows."""
    array = np.asarray(array)
    return np.concatenate([array, np.zeros((size - len(array), *array.shape[1:]), array.dtype)])


def _build_attack(model_ref, config, sample_shape):
    from keras_equivariant.attacks import gradient  # noqa: PLC0415 (gradient imports this module)

    logits = _stateless_logits(model_ref)

    @jax.jit
    def loop(trainable, non_trainable, images, goal_labels, noise, eps, step_size, steps):
        evaluate = gradient.objective_and_success(
            config, lambda inputs: logits(trainable, non_trainable, inputs))

        def summed(inputs, labels):
            objective, success = evaluate(inputs, labels)
            return keras.ops.sum(objective), (objective, success)

        def value_and_gradient(adversarial, labels):
            (_, (objective, success)), input_gradient = jax.value_and_grad(
                summed, has_aux=True)(adversarial, labels)
            return objective, success, gradient.finite_or_zero(input_gradient)

        start = images if noise is None else gradient.random_start(images, noise)
        return gradient.attack_steps(config, evaluate, value_and_gradient, images, goal_labels,
                                     start, eps, step_size, steps)

    def attack(images, goal_labels, eps, step_size, steps, seed):
        count = int(images.shape[0])
        noise = None
        if config.random_start:
            noise = sample_uniform_ball((count, *sample_shape), eps, config.norm, seed).numpy()
        size = _padded_size(count)
        padded = [None if array is None else _pad(array, size)
                  for array in (images, goal_labels, noise)]
        results = loop(*_variables(model_ref()), *padded, np.float32(eps),
                       np.float32(step_size), np.int32(steps))
        return tuple(result[:count] for result in results)

    return attack


def compiled_attack(model, config, sample_shape):
    """The cached JAX attack loop for ``model``, ``config`` and per-image ``sample_shape``.

    Same signature and results as the TensorFlow function of ``gradient.compiled_attack``:
    ``(images, goal_labels, eps, step_size, steps, seed) -> (adversarial, success, objective)``
    (JAX arrays), ``seed`` an ``int64`` pair.
    """
    return cached_for_model(
        model, ("jax_attack", config, tuple(sample_shape)),
        lambda: _build_attack(weakref.ref(model), config, tuple(sample_shape)))
