"""Uniform sampling in Lp balls: the one sampler of the attacks' random start and of CLEVER
(public as ``keras_equivariant.attacks.sample_uniform_ball``).

The sampler is TensorFlow's stateless random generator on every Keras backend: the JAX attacks
draw their random start with it on the host, so that a seed gives the same start on both.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_equivariant.utils.validation import check_norm


def per_example(values, like):
    """Reshapes a ``(batch,)`` tensor so it broadcasts against ``like`` (a tensor of known rank,
    on any Keras backend)."""
    return keras.ops.reshape(values, (-1,) + (1,) * (len(like.shape) - 1))


def sample_uniform_ball(shape, radius, norm="inf", seed=(0, 0)):
    """Draws ``shape[0]`` points uniformly in the ``norm`` ball of radius ``radius``.

    Each point spans the non-batch axes of ``shape`` (``d`` coordinates in all).

    - ``"inf"``: every coordinate ~ ``U(-radius, radius)``.
    - ``"2"``: ``radius * u**(1/d) * n / ||n||_2`` with ``n ~ N(0, I)``, ``u ~ U(0, 1)``.
    - ``"1"``: ``radius * u**(1/d) * s * e / ||e||_1`` with ``e ~ Exp(1)^d`` and random signs
      ``s`` (``e / ||e||_1`` is uniform on the simplex).

    The ``u**(1/d)`` radius makes ``(||x|| / radius)**d ~ U(0, 1)``: uniform in the ball, unlike
    the ``radius * u`` some libraries use. Stateless, so usable inside ``tf.function``: the same
    ``seed`` gives the same draw (pass it as a tensor input to vary it without retracing).

    Args:
        shape: ``(batch, ...)``, a list or 1-D int tensor.
        radius: ball radius (float or scalar tensor).
        norm: ``"1"``, ``"2"`` or ``"inf"`` (also ``1``, ``2``, ``np.inf``).
        seed: two integers (or an int tensor of shape ``(2,)``).

    Returns:
        A float32 tensor of ``shape``.
    """
    norm = check_norm(norm)
    shape = tf.convert_to_tensor(shape, tf.int32)
    radius = tf.cast(radius, tf.float32)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if norm == "inf":
        return radius * tf.random.stateless_uniform(shape, seed, minval=-1.0, maxval=1.0)
    direction_seed, radius_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    axes = tf.range(1, tf.size(shape))
    if norm == "2":
        direction = tf.random.stateless_normal(shape, direction_seed)
        length = tf.sqrt(tf.reduce_sum(tf.square(direction), axis=axes))
        direction /= per_example(tf.maximum(length, 1e-12), direction)
    else:
        magnitude_seed, sign_seed = tf.unstack(
            tf.random.experimental.stateless_split(direction_seed, 2)
        )
        magnitudes = -tf.math.log(tf.random.stateless_uniform(
            shape, magnitude_seed, minval=np.finfo(np.float32).tiny, maxval=1.0
        ))
        signs = tf.where(tf.random.stateless_uniform(shape, sign_seed) < 0.5, -1.0, 1.0)
        direction = signs * magnitudes / per_example(
            tf.reduce_sum(magnitudes, axis=axes), magnitudes
        )
    dimension = tf.cast(tf.reduce_prod(shape[1:]), tf.float32)
    radii = radius * tf.random.stateless_uniform(shape[:1], radius_seed) ** (1.0 / dimension)
    return direction * per_example(radii, direction)
