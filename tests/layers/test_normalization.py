"""BatchNormalization (fused training kernel) and GroupBatchNormalization (statistics over batch,
space and group axes in training and inference)."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from keras_equivariant.layers import BatchNormalization, GroupBatchNormalization


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


def _training_step(layer, features, stock):
    """Output, input/gamma/beta gradients and moving statistics after one training call."""
    features = tf.constant(features)
    weights = tf.random.stateless_normal(features.shape, (3, 4))
    call = keras.layers.BatchNormalization.call if stock else type(layer).call
    with tf.GradientTape() as tape:
        tape.watch(features)
        outputs = call(layer, features, training=True)
        objective = tf.reduce_sum(weights * outputs)
    gradients = tape.gradient(objective, [features, *layer.trainable_variables])
    return [outputs, *gradients, layer.moving_mean, layer.moving_variance]


@pytest.mark.parametrize("layer_class, shape", [
    (BatchNormalization, (6, 5, 5, 3)), (BatchNormalization, (1, 1, 1, 3)),
    (GroupBatchNormalization, (6, 5, 5, 4, 3)), (GroupBatchNormalization, (2, 1, 1, 4, 3))])
@pytest.mark.parametrize("center, scale", [(True, True), (False, False)])
def test_fused_training_step_equals_keras_batch_normalization(layer_class, shape, center, scale):
    """Outputs, gradients and moving statistics equal Keras' unfused path (batch of one pixel
    too: zero variance), and the fused kernel is what runs."""
    features = np.random.default_rng(1).normal(2.0, 3.0, shape).astype("float32")
    results = []
    for stock in (True, False):
        keras.utils.set_random_seed(0)
        layer = layer_class(momentum=0.9, epsilon=1e-5, center=center, scale=scale,
                            gamma_initializer="random_normal", beta_initializer="random_normal")
        layer.build(shape)
        results.append(_training_step(layer, features, stock))
    for index, (actual, expected) in enumerate(zip(results[1], results[0])):
        # Relative above 1, absolute below: a one-pixel batch normalizes x - mean = round-off
        # by 1 / sqrt(epsilon), which no kernel computes exactly.
        scale_of = max(float(tf.reduce_max(tf.abs(expected))), 1.0)
        assert float(tf.reduce_max(tf.abs(actual - expected))) / scale_of <= 1e-5, index

    graph = tf.function(lambda x: layer(x, training=True)).get_concrete_function(
        tf.TensorSpec(shape, "float32")).graph
    assert "FusedBatchNormV3" in {op.type for op in graph.get_operations()}


def test_fused_kernel_only_where_it_applies():
    """Inference, float64, masks and other ranks keep Keras' path; mixed precision is fused."""

    def fused(layer, shape, dtype="float32", **kwargs):
        graph = tf.function(lambda x: layer(x, **kwargs)).get_concrete_function(
            tf.TensorSpec(shape, dtype)).graph
        return "FusedBatchNormV3" in {op.type for op in graph.get_operations()}

    assert fused(BatchNormalization(), (2, 3, 3, 4), training=True)
    assert not fused(BatchNormalization(), (2, 3, 3, 4), training=False)
    assert not fused(BatchNormalization(), (2, 4), training=True)
    assert not fused(BatchNormalization(dtype="float64"), (2, 3, 3, 4), "float64", training=True)
    assert not fused(BatchNormalization(), (2, 3, 3, 4), training=True,
                     mask=tf.ones((2, 3, 3), "bool"))
    half = BatchNormalization(dtype="mixed_float16")
    assert fused(half, (2, 3, 3, 4), "float16", training=True)
    outputs = half(tf.ones((2, 3, 3, 4), "float16") * tf.range(4, dtype="float16"), training=True)
    assert outputs.dtype == "float16" and not np.any(np.isnan(outputs))


def test_batch_normalization_round_trips_as_a_keras_layer(tmp_path):
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, BatchNormalization(momentum=0.9, name="bn")(inputs))
    model.get_layer("bn").set_weights([np.full(3, value, "float32") for value in (2, 1, 0.5, 3)])
    path = tmp_path / "bn.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored.get_layer("bn")) is BatchNormalization
    x = np.random.default_rng(0).random((2, 4, 4, 3)).astype("float32")
    np.testing.assert_array_equal(restored(x), model(x))
