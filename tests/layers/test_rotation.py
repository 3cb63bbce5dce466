"""RotationConv2D: exact C4/D4 equivariance, approximate C8, export layout, serialization, errors."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from keras_equivariant import check_equivariance
from keras_equivariant.equivariance import smooth_random_images
from keras_equivariant.layers import (
    GroupBatchNormalization,
    GroupFlatten,
    GroupPooling,
    RotationConv2D,
)

TOLERANCE = 1e-5


def _images(size, channels=3, batch=2, seed=0):
    return np.random.default_rng(seed).random((batch, size, size, channels)).astype("float32")


def _features(size, order, channels=3, batch=2, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, size, size, order, channels)).astype("float32")


ORDERS = {"C4": 4, "D4": 8, "C8": 8}


@pytest.mark.parametrize("group", ["C4", "D4"])
@pytest.mark.parametrize(
    "size, strides, kernel_size, padding",
    [(9, 1, 3, "same"), (10, 1, 3, "same"), (9, 2, 3, "same"), (10, 2, 2, "same"),
     (10, 1, 2, "valid"), (11, 3, 3, "valid"), (10, 1, 4, "same")],
)
def test_lifting_and_group_conv_are_exactly_equivariant(group, size, strides, kernel_size, padding):
    kwargs = dict(group=group, strides=strides, kernel_size=kernel_size, padding=padding,
                  bias_initializer="random_normal")
    lifting = RotationConv2D(3, **kwargs)
    result = check_equivariance(lifting, _images(size), group=group)
    assert result.output_kind == "group features"
    assert result.max_error < TOLERANCE, result

    group_conv = RotationConv2D(4, **kwargs)
    result = check_equivariance(group_conv, _features(size, ORDERS[group]), group=group)
    assert result.max_error < TOLERANCE, result


def test_dilated_group_conv_is_exactly_equivariant():
    layer = RotationConv2D(3, 3, group="D4", dilation_rate=2, bias_initializer="random_normal")
    assert check_equivariance(layer, _features(10, 8), group="D4").max_error < TOLERANCE


def test_invariant_model_with_batch_normalization_in_training_and_inference():
    inputs = keras.Input((11, 11, 3))
    x = RotationConv2D(4, 3, group="C4", bias_initializer="random_normal")(inputs)
    x = RotationConv2D(4, 3, group="C4", strides=2, bias_initializer="random_normal")(x)
    x = GroupBatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = GroupPooling("max")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, outputs)
    images = _images(11)
    closed_batch = np.concatenate([np.rot90(images, turns, axes=(1, 2)) for turns in range(4)])
    training = check_equivariance(model, closed_batch, group="C4", training=True)
    assert training.output_kind == "vector"
    assert training.max_error < TOLERANCE, training
    inference = check_equivariance(model, images, group="C4", training=False)
    assert inference.max_error < TOLERANCE, inference


def test_c8_is_exact_for_90_degrees_and_approximate_for_45_degrees():
    images = smooth_random_images(2, 33, 3, wavelength=4.0, seed=3)
    inputs = keras.Input((33, 33, 3))
    lifted = RotationConv2D(6, 3, group="C8", bias_initializer="random_normal")(inputs)
    outputs = RotationConv2D(6, 3, group="C8", bias_initializer="random_normal")(
        keras.layers.ReLU()(lifted)
    )
    lifting, two_layers = keras.Model(inputs, lifted), keras.Model(inputs, outputs)
    for model, bound in ((lifting, 0.02), (two_layers, 0.04)):  # measured: 0.006 and 0.015
        result = check_equivariance(model, images, group="C8")
        for element in ("rot90", "rot180", "rot270"):
            assert result[element] < TOLERANCE, result
        for element in ("rot45", "rot135", "rot225", "rot315"):
            assert result[element] < bound, result
            assert result[element] > 1e-4  # 45° is genuinely approximate


def test_c8_group_conv_is_exact_for_90_degrees_on_white_noise():
    layer = RotationConv2D(3, 5, group="C8", bias_initializer="random_normal")
    result = check_equivariance(layer, _features(9, 8), group="C8")
    assert max(result[e] for e in ("rot90", "rot180", "rot270")) < TOLERANCE


def test_plain_conv_and_misaligned_stride_fail_the_check():
    plain = keras.layers.Conv2D(4, 3, padding="same")
    assert check_equivariance(plain, _images(9), group="C4").max_error > 0.1

    def strided_model(size):
        inputs = keras.Input((size, size, 3))
        x = RotationConv2D(4, 3, group="C4", bias_initializer="random_normal")(inputs)
        x = GroupPooling("max")(x)
        # Keras' SAME pooling pads asymmetrically on even sizes: grid no longer centred.
        outputs = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
        return keras.Model(inputs, outputs)

    assert check_equivariance(strided_model(9), _images(9), group="C4").max_error < TOLERANCE
    assert check_equivariance(strided_model(10), _images(10), group="C4").max_error > 0.1


@pytest.mark.parametrize("group", ["C4", "D4", "C8"])
def test_expanded_kernel_folds_into_plain_conv2d_field_major(group):
    order = ORDERS[group]
    layer = RotationConv2D(5, 3, group=group, strides=2, bias_initializer="random_normal")
    features = _features(9, order)
    expected = GroupFlatten()(layer(features))
    kernel, bias = layer.expanded_kernel_and_bias()
    assert tuple(kernel.shape) == (3, 3, 3 * order, 5 * order)
    assert tuple(bias.shape) == (5 * order,)
    (top, bottom), (left, right) = layer.compute_padding(9, 9)
    padded = keras.layers.ZeroPadding2D(((top, bottom), (left, right)))(GroupFlatten()(features))
    plain = keras.layers.Conv2D(5 * order, 3, strides=2, padding="valid")
    plain.build(padded.shape)
    plain.set_weights([keras.ops.convert_to_numpy(kernel), keras.ops.convert_to_numpy(bias)])
    np.testing.assert_allclose(plain(padded), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("group, num_basis_per_pixel", [("C4", 1.0), ("C8", 4 / 9)])
def test_fan_in_matches_the_expanded_kernel(group, num_basis_per_pixel):
    layer = RotationConv2D(64, 3, group=group, kernel_initializer="he_normal")
    layer.build((None, 9, 9, ORDERS[group], 32))
    kernel, _ = layer.expanded_kernel_and_bias()
    fan_in = 32 * ORDERS[group] * 9
    variance = float(np.var(keras.ops.convert_to_numpy(kernel)))
    # C4: the expanded entries are the weights; C8: unit-norm basis spreads J coefficients over
    # 9 pixels, so the variance is right on average over the disk.
    assert variance == pytest.approx(2.0 / fan_in, rel=0.25)
    assert layer.kernel.shape[0] == round(9 * ORDERS[group] * num_basis_per_pixel)


def test_parameter_count_is_group_order_times_smaller_than_conv2d():
    layer = RotationConv2D(16, 3, group="C4", use_bias=False)
    layer.build((None, 8, 8, 4, 16))
    assert layer.count_params() * 4 == 9 * 64 * 64


def test_output_shapes_and_compute_output_shape():
    layer = RotationConv2D(5, 3, group="D4", strides=2)
    outputs = layer(_images(9))
    assert tuple(outputs.shape) == (2, 5, 5, 8, 5)
    assert layer.compute_output_shape((None, 9, 9, 3)) == (None, 5, 5, 8, 5)
    assert layer.compute_output_shape((None, 9, 9, 8, 3)) == (None, 5, 5, 8, 5)
    valid = RotationConv2D(2, 3, padding="valid")
    assert valid.compute_output_shape((None, 9, 7, 3)) == (None, 7, 5, 4, 2)
    assert tuple(valid(_images(9)).shape) == (2, 7, 7, 4, 2)
    # Stride 1 works on inputs of unknown spatial size.
    dynamic = keras.Model(*(lambda i: (i, RotationConv2D(2, 3)(i)))(keras.Input((None, None, 3))))
    assert tuple(dynamic(_images(6)).shape) == (2, 6, 6, 4, 2)


def test_get_config_round_trip():
    layer = RotationConv2D(
        3, (5, 5), group="D4", strides=2, padding="valid", activation="relu",
        use_bias=False, kernel_regularizer="l2", name="rot",
    )
    clone = RotationConv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.kernel_size == 5 and clone.group == "D4" and clone.use_bias is False


def _all_layers_model():
    inputs = keras.Input((9, 9, 3))
    x = RotationConv2D(3, 3, group="D4", bias_initializer="random_normal")(inputs)
    x = GroupBatchNormalization(momentum=0.9, epsilon=1e-5)(x)
    x = RotationConv2D(3, 3, group="D4", strides=2, activation="relu")(x)
    x = GroupPooling("mean", group="D4", subgroup="C4")(x)
    pooled = GroupPooling("max")(x)
    flat = GroupFlatten()(x)
    x = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(pooled),
                                    keras.layers.GlobalAveragePooling2D()(flat)])
    return keras.Model(inputs, keras.layers.Dense(4)(x))


def test_keras_file_round_trip(tmp_path):
    model = _all_layers_model()
    images = _images(9)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_array_equal(restored.predict(images, verbose=0), model.predict(images, verbose=0))


def test_saved_model_export_round_trip(tmp_path):
    model = _all_layers_model()
    images = _images(9)
    model.export(str(tmp_path / "saved"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "saved"))  # keep a reference to its variables
    served = reloaded.serve(images)
    np.testing.assert_allclose(served.numpy(), model.predict(images, verbose=0), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(filters=0, kernel_size=3), "filters"),
        (dict(filters=2.5, kernel_size=3), "filters"),
        (dict(filters=4, kernel_size=(3, 5)), "kernel_size"),
        (dict(filters=4, kernel_size=3, group="C6"), "group"),
        (dict(filters=4, kernel_size=3, padding="causal"), "padding"),
        (dict(filters=4, kernel_size=3, strides=2, dilation_rate=2), "dilation_rate"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RotationConv2D(**kwargs)


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="rank-4 input"):
        RotationConv2D(2, 3)(np.zeros((2, 9, 3), "float32"))
    with pytest.raises(ValueError, match="must have size 8"):
        RotationConv2D(2, 3, group="D4")(np.zeros((1, 9, 9, 4, 3), "float32"))
    with pytest.raises(ValueError, match="input size 10 .* strides=2"):
        RotationConv2D(2, 3, strides=2)(_images(10))
    with pytest.raises(ValueError, match="known spatial size"):
        RotationConv2D(2, 3, strides=2)(keras.Input((None, None, 3)))


def test_stays_equivariant_after_training_steps():
    inputs = keras.Input((9, 9, 3))
    x = RotationConv2D(3, 3, group="D4", bias_initializer="random_normal")(inputs)
    x = keras.layers.ReLU()(GroupBatchNormalization()(x))
    features = GroupPooling("max")(RotationConv2D(3, 3, group="D4", strides=2)(x))
    logits = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(features))
    model = keras.Model(inputs, logits)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images = _images(9, batch=8)
    before = model.get_weights()
    model.fit(images, np.arange(8) % 2, epochs=2, verbose=0)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(before, model.get_weights()))
    assert check_equivariance(model, images[:2], group="D4").max_error < TOLERANCE
