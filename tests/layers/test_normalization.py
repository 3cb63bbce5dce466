"""GroupBatchNormalization: statistics over batch, space and group axes in training and inference."""

import numpy as np
import pytest
import keras

from keras_equivariant.layers import GroupBatchNormalization


def _features(seed=0):
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 3.0, 0.5], "float32")
    # Very different group-axis means: per-(group, channel) statistics would remove them.
    offset = np.arange(4, dtype="float32")[:, None] * np.array([1.0, -2.0, 5.0], "float32")
    return (rng.standard_normal((6, 5, 5, 4, 3)) * scale + offset).astype("float32")


def test_training_statistics_pool_batch_space_and_group_axes():
    features = _features()
    layer = GroupBatchNormalization(epsilon=1e-6)
    outputs = keras.ops.convert_to_numpy(layer(features, training=True))
    np.testing.assert_allclose(outputs.mean(axis=(0, 1, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(outputs.var(axis=(0, 1, 2, 3)), 1.0, rtol=1e-3)
    expected = (features - features.mean(axis=(0, 1, 2, 3))) / np.sqrt(
        features.var(axis=(0, 1, 2, 3)) + 1e-6)
    np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-4)
    # The group axis keeps its relative offsets (one mean per field, not per orientation).
    assert np.ptp(outputs.mean(axis=(0, 1, 2))[:, 2]) > 1.0
    assert [tuple(w.shape) for w in layer.weights] == [(3,)] * 4


def test_inference_uses_moving_statistics_with_torch_like_momentum():
    features = _features()
    layer = GroupBatchNormalization(momentum=0.9, epsilon=1e-5, gamma_initializer="random_normal",
                                    beta_initializer="random_normal")
    layer(features, training=True)
    mean, variance = features.mean(axis=(0, 1, 2, 3)), features.var(axis=(0, 1, 2, 3))
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 + 0.1 * variance, rtol=1e-4)
    gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
    expected = (features - layer.moving_mean.numpy()) / np.sqrt(
        layer.moving_variance.numpy() + 1e-5) * gamma + beta
    np.testing.assert_allclose(layer(features, training=False), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("training", [True, False])
def test_commutes_with_group_axis_permutations(training):
    features = _features()
    layer = GroupBatchNormalization()
    outputs = keras.ops.convert_to_numpy(layer(features, training=training))
    permutation = [2, 3, 0, 1]
    permuted = keras.ops.convert_to_numpy(layer(features[:, :, :, permutation], training=training))
    np.testing.assert_allclose(permuted, outputs[:, :, :, permutation], rtol=1e-5, atol=1e-5)


def test_config_round_trip_and_errors():
    layer = GroupBatchNormalization(momentum=0.9, epsilon=1e-5, center=False)
    config = layer.get_config()
    assert "axis" not in config
    clone = GroupBatchNormalization.from_config(config)
    assert (clone.momentum, clone.epsilon, clone.center) == (0.9, 1e-5, False)
    with pytest.raises(ValueError, match="axis"):
        GroupBatchNormalization(axis=1)
    with pytest.raises(ValueError, match="rank-5"):
        GroupBatchNormalization()(np.zeros((2, 5, 5, 3), "float32"))
