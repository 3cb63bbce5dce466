"""GroupConv2D, the base of every group convolution: one padding policy, dilation_rate and
activation on all three layers, the configs, and the public interface (group_action,
plain_convolutions) that check_equivariance and fold use."""

import numpy as np
import pytest
import keras

from keras_equivariant import check_equivariance
from keras_equivariant.equivariance import smooth_random_images
from keras_equivariant.groups import RotationGroup, RotationScaleGroup, ScaleGroup
from keras_equivariant.layers import (
    GroupPooling,
    RotationConv2D,
    RotationScaleConv2D,
    ScaleConv2D,
)
from keras_equivariant.layers.base import GroupConv2D, apply_plain_convolution

TOLERANCE = 1e-5

LAYERS = {
    "rotation": lambda **kw: RotationConv2D(3, 3, group="C4", **kw),
    "scale": lambda **kw: ScaleConv2D(3, 3, scales=(1, 2), **kw),
    "rotation_scale": lambda **kw: RotationScaleConv2D(3, 3, group="C4", scales=(1, 2), **kw),
}


def _images(size, channels=2, seed=0):
    return np.random.default_rng(seed).random((2, size, size, channels)).astype("float32")


def _relative_error(actual, expected):
    actual, expected = keras.ops.convert_to_numpy(actual), keras.ops.convert_to_numpy(expected)
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize("name", ["scale", "rotation_scale"])
def test_misaligned_stride_is_refused_naming_sizes_that_work(name):
    layer = LAYERS[name](strides=2)
    with pytest.raises(ValueError, match=r"input size 32 .*strides=2.*e\.g\. 31 or 33"):
        layer(_images(32))
    with pytest.raises(ValueError, match="known spatial size"):
        LAYERS[name](strides=2)(keras.Input((None, None, 2)))
    with pytest.raises(ValueError, match="input size 32"):
        LAYERS[name](strides=2).compute_output_shape((None, 32, 32, 2))


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_strided_scale_conv_samples_the_centred_grid_exactly(padding):
    """Where accepted, a strided scale conv is the stride-1 conv sampled on the centred grid."""
    images = _images(33)
    dense = ScaleConv2D(3, 3, scales=(1, 2), padding=padding, bias_initializer="random_normal")
    strided = ScaleConv2D(3, 3, scales=(1, 2), padding=padding, strides=2)
    expected = dense(images)[:, ::2, ::2]
    strided.build(images.shape)
    strided.set_weights(dense.get_weights())
    assert np.abs(keras.ops.convert_to_numpy(dense.bias)).min() > 0
    assert _relative_error(strided(images), expected) < TOLERANCE


def test_strided_rotation_scale_conv_is_exactly_rotation_equivariant_where_accepted():
    layer = RotationScaleConv2D(3, 3, group="D4", scales=(1, 2), strides=2,
                                bias_initializer="random_normal")
    images = _images(33)
    reference = keras.ops.convert_to_numpy(layer(images))
    group = layer.group_action  # the D4 x scale product; its rotation elements:
    for element in group.rotations.elements():
        actual = layer(group.transform_images(images, element))
        expected = group.transform_features(reference, element)
        assert _relative_error(actual, expected) < TOLERANCE, element


def test_rotation_scale_equivariance_is_broken_for_a_group_it_does_not_have():
    """The check detects broken equivariance: a C4 product layer, pooled, is not flip invariant."""
    pooled = keras.Sequential([
        keras.Input((17, 17, 2)),
        RotationScaleConv2D(3, 3, group="C4", scales=(1, 2), bias_initializer="random_normal"),
        GroupPooling("max"),
    ])
    errors = check_equivariance(pooled, _images(17), group="D4").errors
    assert max(errors[element] for element in ("rot90", "rot180", "rot270")) < TOLERANCE
    assert errors["flip"] > 0.05, errors


@pytest.mark.parametrize("name", list(LAYERS))
def test_dilation_rate_and_activation_exist_on_every_group_conv(name):
    layer = LAYERS[name](dilation_rate=2, activation="relu", bias_initializer="random_normal",
                         name=f"{name}_dilated")
    config = layer.get_config()
    assert config["activation"] == "relu" and config["dilation_rate"] in (2, (2, 2))
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    images = _images(17)
    outputs = keras.ops.convert_to_numpy(layer(images))
    assert outputs.min() >= 0.0 and (outputs == 0).any()  # the ReLU ran
    clone.build(images.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(clone(images)), outputs)
    # A saved config without the new keys (written before they existed) still loads.
    old = {key: value for key, value in config.items()
           if key not in ("dilation_rate", "activation")}
    assert type(layer).from_config(old).get_config()["dilation_rate"] in (1, (1, 1))


@pytest.mark.parametrize("make_layer", [
    lambda scales, **kw: ScaleConv2D(3, 3, scales=scales, **kw),
    lambda scales, **kw: RotationScaleConv2D(3, 3, group="C4", scales=scales, **kw),
], ids=["scale", "rotation_scale"])
def test_scale_dilation_multiplies_every_scale(make_layer):
    """dilation_rate=2 on scales (1, 2) places the taps 2 and 4 pixels apart: scales (2, 4)."""
    images = _images(21)
    dilated = make_layer((1, 2), dilation_rate=2, bias_initializer="random_normal")
    reference = make_layer((2, 4))
    expected_shape = dilated.compute_output_shape(images.shape)
    outputs = dilated(images)
    reference.build(images.shape)
    reference.set_weights(dilated.get_weights())
    assert tuple(outputs.shape) == expected_shape
    assert _relative_error(outputs, reference(images)) < TOLERANCE


def test_dilated_scale_conv_stays_exactly_scale_equivariant():
    """Bound 1e-5 (float round-off). An activation would make it approximate: a pointwise
    non-linearity does not commute with an interpolating resize."""
    layer = ScaleConv2D(4, 3, scales=(1, 2, 4), dilation_rate=2, bias_initializer="random_normal")
    errors = check_equivariance(layer, smooth_random_images(2, 64, wavelength=8),
                                group="scale").errors
    assert max(errors.values()) < TOLERANCE, errors


def test_scale_dilation_cannot_be_combined_with_strides():
    with pytest.raises(ValueError, match="dilation_rate"):
        ScaleConv2D(3, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="square"):
        RotationScaleConv2D(3, 3, strides=(1, 2))


@pytest.mark.parametrize("name, group_type", [
    ("rotation", RotationGroup), ("scale", ScaleGroup), ("rotation_scale", RotationScaleGroup),
])
def test_layers_describe_their_group_and_plain_convolutions(name, group_type):
    layer = LAYERS[name](bias_initializer="random_normal")
    assert isinstance(layer, GroupConv2D) and isinstance(layer.group_action, group_type)
    with pytest.raises(ValueError, match="built"):
        layer.plain_convolutions()
    images = _images(17)
    outputs = keras.ops.convert_to_numpy(layer(images))
    assert layer.is_lifting
    assert outputs.shape[3] == layer.group_axis_size == layer.group_action.order
    # check_equivariance(group=None) checks the layer with its own group.
    assert check_equivariance(layer, images, group=None).group == layer.group_action.name
    # The plain convolutions, concatenated, are the layer (before its activation).
    flat = np.concatenate([
        keras.ops.convert_to_numpy(
            apply_plain_convolution(images[..., slice(*conv.input_channels)], conv))
        + keras.ops.convert_to_numpy(conv.bias)
        for conv in layer.plain_convolutions()
    ], axis=-1)
    np.testing.assert_allclose(flat.reshape(outputs.shape), outputs, atol=1e-5)


def test_check_equivariance_without_a_group_layer_needs_a_group():
    model = keras.Sequential([keras.Input((9, 9, 2)), keras.layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="no layer with a `group_action`"):
        check_equivariance(model, _images(9), group=None)
