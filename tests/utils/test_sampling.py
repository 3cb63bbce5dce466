import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from keras_equivariant.utils.sampling import uniform_lp_ball


@pytest.mark.parametrize("norm, order", [("1", 1), ("2", 2), ("inf", np.inf)])
def test_uniform_lp_ball_in_compiled_function_with_per_call_seeds(norm, order):
    """Inside tf.function, the seed is a per-call input: same seed same draw, new seed new draw."""
    shape, radius = (3000, 2, 2, 1), 0.5
    draw = tf.function(lambda seed: uniform_lp_ball(shape, radius, norm, seed))
    first = draw(tf.constant([1, 2], tf.int64)).numpy()
    np.testing.assert_array_equal(first, draw(tf.constant([1, 2], tf.int64)).numpy())
    assert not np.array_equal(first, draw(tf.constant([1, 3], tf.int64)).numpy())
    assert first.shape == shape
    norms = np.linalg.norm(first.reshape(len(first), -1).astype(np.float64), ord=order, axis=1)
    assert norms.max() <= radius * (1 + 1e-5)
    assert scipy.stats.kstest((norms / radius) ** 4, "uniform").pvalue > 1e-3


def test_uniform_lp_ball_rejects_unnormalized_norm():
    with pytest.raises(ValueError, match="norm"):
        uniform_lp_ball((2, 3), 1.0, "l2", (0, 0))
