import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from keras_equivariant.utils.sampling import sample_uniform_ball


@pytest.mark.parametrize("norm, order", [("1", 1), ("2", 2), ("inf", np.inf)])
def test_sample_uniform_ball_in_compiled_function_with_per_call_seeds(norm, order):
    """Inside tf.function, the seed is a per-call input: same seed same draw, new seed new draw."""
    shape, radius = (3000, 2, 2, 1), 0.5
    draw = tf.function(lambda seed: sample_uniform_ball(shape, radius, norm, seed))
    first = draw(tf.constant([1, 2], tf.int64)).numpy()
    np.testing.assert_array_equal(first, draw(tf.constant([1, 2], tf.int64)).numpy())
    assert not np.array_equal(first, draw(tf.constant([1, 3], tf.int64)).numpy())
    assert first.shape == shape
    norms = np.linalg.norm(first.reshape(len(first), -1).astype(np.float64), ord=order, axis=1)
    assert norms.max() <= radius * (1 + 1e-5)
    assert scipy.stats.kstest((norms / radius) ** 4, "uniform").pvalue > 1e-3


def test_sample_uniform_ball_rejects_unknown_norm_spellings():
    with pytest.raises(ValueError, match="norm"):
        sample_uniform_ball((2, 3), 1.0, "l2", (0, 0))


# Moved from tests/metrics/test_clever.py with the sampler CLEVER used to expose as
# `metrics.clever.sample_lp_ball` (now the one sampler, `attacks.sample_uniform_ball`).
@pytest.mark.parametrize("norm, order", [("1", 1), ("2", 2), ("inf", np.inf)])
def test_samples_uniform_in_lp_ball(norm, order):
    dimension, radius, num_samples = 6, 2.5, 4000
    samples = sample_uniform_ball((num_samples, dimension), radius, norm, seed=(1, 0)).numpy()
    assert samples.shape == (num_samples, dimension)
    norms = np.linalg.norm(samples.astype(np.float64), ord=order, axis=1)
    assert norms.max() <= radius * (1 + 1e-5)
    # Uniform in a d-dimensional ball: P(||x|| <= t R) = t^d for every norm.
    assert scipy.stats.kstest((norms / radius) ** dimension, "uniform").pvalue > 1e-3
    # Sign symmetry, coordinate by coordinate, and zero mean.
    positive = (samples > 0).mean(axis=0)
    assert np.all(np.abs(positive - 0.5) < 4 * 0.5 / np.sqrt(num_samples))
    # Exact one-coordinate marginals of the uniform distribution in the ball.
    first = np.abs(samples[:, 0].astype(np.float64)) / radius
    if norm == "inf":
        marginal = scipy.stats.kstest(first, "uniform")
    elif norm == "2":
        marginal = scipy.stats.kstest(first ** 2, "beta", args=(0.5, (dimension + 1) / 2))
    else:
        marginal = scipy.stats.kstest(first, "beta", args=(1, dimension))
    assert marginal.pvalue > 1e-3


def test_sampling_seed_is_reproducible():
    first = sample_uniform_ball((10, 3), 1.0, 2, seed=(4, 0)).numpy()
    np.testing.assert_array_equal(first, sample_uniform_ball((10, 3), 1.0, "2", seed=(4, 0)).numpy())
    assert not np.array_equal(first, sample_uniform_ball((10, 3), 1.0, "2", seed=(5, 0)).numpy())
