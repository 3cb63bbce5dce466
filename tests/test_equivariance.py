"""check_equivariance, the group registry and the rotation-group machinery it relies on."""

import itertools

import numpy as np
import pytest
import keras

from keras_equivariant import check_equivariance
from keras_equivariant.equivariance import EquivarianceResult, smooth_random_images
from keras_equivariant.groups import GroupAction, RotationGroup, available_groups, get_group, register_group
from keras_equivariant.layers import GroupPooling, RotationConv2D


def _images(size=7, seed=0):
    return np.random.default_rng(seed).random((2, size, size, 3)).astype("float32")


@pytest.mark.parametrize("name", ["C4", "D4", "C8"])
def test_rotation_groups_satisfy_the_group_axioms(name):
    group = get_group(name)
    elements = range(group.order)
    for a, b, c in itertools.product(elements, repeat=3):
        assert group.compose(group.compose(a, b), c) == group.compose(a, group.compose(b, c))
    for a in elements:
        assert group.compose(a, group.inverse(a)) == 0 and group.compose(0, a) == a


@pytest.mark.parametrize("name", ["C4", "D4"])
def test_feature_action_is_a_group_action(name):
    group = get_group(name)
    features = np.random.default_rng(0).standard_normal((1, 5, 5, group.order, 2))
    for a, b in itertools.product(range(group.order), repeat=2):
        composed = group.transform_features(group.transform_features(features, b), a)
        np.testing.assert_array_equal(composed, group.transform_features(features, group.compose(a, b)))


def test_element_names_and_registry():
    assert get_group("C4").elements() == ("rot90", "rot180", "rot270")
    assert get_group("D4").elements()[3:] == ("flip", "flip+rot90", "flip+rot180", "flip+rot270")
    assert len(get_group("C8").elements()) == 7
    assert {"C4", "D4", "C8"} <= set(available_groups())
    with pytest.raises(ValueError, match="Unknown group"):
        get_group("SO3")
    with pytest.raises(ValueError, match="rotation group"):
        RotationGroup("C3")


def test_c8_basis_rotated_by_90_degrees_is_the_pixel_rotation():
    group = get_group("C8")
    basis = group.kernel_basis(5, input_order=1)  # (J, k, k, 1, 8)
    for g in range(8):
        np.testing.assert_allclose(basis[..., 0, (g + 2) % 8], np.rot90(basis[..., 0, g], 1, axes=(1, 2)),
                                   atol=1e-7)


def test_result_reports_every_element_and_output_kind():
    layer = RotationConv2D(2, 3, group="D4")
    result = check_equivariance(layer, _images(), group="D4")
    assert isinstance(result, EquivarianceResult)
    assert list(result.errors) == list(get_group("D4").elements())
    assert result.max_error == max(result.errors.values()) >= result["flip"]
    assert result.output_kind == "group features" and "D4" in str(result)


def test_detects_a_layer_that_ignores_the_group_axis_permutation():
    # A spatially symmetric kernel but an orientation-dependent bias: wrong on the group axis.
    layer = RotationConv2D(2, 1, group="C4", use_bias=False)
    layer.build((None, 7, 7, 3))
    broken = keras.layers.Lambda(lambda x: layer(x) + keras.ops.reshape(
        keras.ops.arange(4, dtype="float32"), (4, 1)))
    assert check_equivariance(layer, _images(), group="C4").max_error < 1e-5
    assert check_equivariance(broken, _images(), group="C4").max_error > 0.1


def test_vector_outputs_are_checked_for_invariance():
    inputs = keras.Input((7, 7, 3))
    x = GroupPooling()(RotationConv2D(2, 3)(inputs))
    invariant = keras.Model(inputs, keras.layers.GlobalMaxPooling2D()(x))
    flat = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    assert check_equivariance(invariant, _images(), group="C4").max_error < 1e-5
    result = check_equivariance(flat, _images(), group="C4")
    assert result.output_kind == "vector" and result.max_error > 0.01


def test_a_registered_custom_group_plugs_in():
    class MirrorGroup(GroupAction):
        name, order = "test-mirror", 1

        def elements(self):
            return ("mirror",)

        def transform_images(self, images, element):
            return np.flip(images, axis=2)

        def transform_features(self, features, element):
            return np.flip(features, axis=2)

    register_group(MirrorGroup())
    symmetric = keras.layers.AveragePooling2D(3, strides=1, padding="same")
    assert check_equivariance(symmetric, _images(), group="test-mirror")["mirror"] < 1e-6
    with pytest.raises(ValueError, match="GroupAction"):
        register_group("not a group")


def test_bad_inputs_raise_value_error():
    layer = RotationConv2D(2, 3, group="C4")
    with pytest.raises(ValueError, match="rank|shape"):
        check_equivariance(layer, np.zeros((7, 7, 3)), group="C4")
    with pytest.raises(ValueError, match="must have size 4"):
        check_equivariance(layer, np.zeros((1, 7, 7, 8, 3)), group="C4")
    with pytest.raises(ValueError, match="order 8"):
        check_equivariance(RotationConv2D(2, 3, group="C4"), _images(), group="D4")
    with pytest.raises(ValueError, match="Unknown group"):
        check_equivariance(layer, _images(), group="C5")


def test_smooth_random_images_are_band_limited_and_in_range():
    images = smooth_random_images(2, 33, 3, wavelength=6.0)
    assert images.shape == (2, 33, 33, 3) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert np.abs(np.diff(images, axis=1)).mean() < 0.25 * np.abs(np.diff(_images(33), axis=1)).mean()
