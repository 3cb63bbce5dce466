"""GroupPooling and GroupFlatten: values, invariance, subgroup pooling, layout, errors."""

import numpy as np
import pytest
import keras

from keras_equivariant import check_equivariance
from keras_equivariant.layers import GroupFlatten, GroupPooling, RotationConv2D


def _features(group_size, channels=3, size=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((2, size, size, group_size, channels)).astype("float32")


@pytest.mark.parametrize("mode, reduce", [("max", np.max), ("mean", np.mean)])
@pytest.mark.parametrize("group_size", [3, 4, 8])  # 3: e.g. a scale axis
def test_pools_the_group_axis_of_any_size(mode, reduce, group_size):
    features = _features(group_size)
    pooled = keras.ops.convert_to_numpy(GroupPooling(mode)(features))
    np.testing.assert_allclose(pooled, reduce(features, axis=3), rtol=1e-6, atol=1e-6)
    shuffled = features[:, :, :, np.random.default_rng(1).permutation(group_size)]
    np.testing.assert_allclose(GroupPooling(mode)(shuffled), pooled, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("group", ["D4", "C8"])
def test_subgroup_pooling_onto_c4_is_c4_equivariant(group):
    inputs = keras.Input((9, 9, 3))
    x = RotationConv2D(3, 3, group=group, bias_initializer="random_normal")(inputs)
    outputs = GroupPooling("max", group=group, subgroup="C4")(x)
    model = keras.Model(inputs, outputs)
    images = np.random.default_rng(2).random((2, 9, 9, 3)).astype("float32")
    assert tuple(model.output.shape) == (None, 9, 9, 4, 3)
    assert check_equivariance(model, images, group="C4").max_error < 1e-5


def test_d4_to_c4_pools_each_rotation_with_its_mirror():
    features = _features(8)
    pooled = keras.ops.convert_to_numpy(GroupPooling("mean", group="D4", subgroup="C4")(features))
    np.testing.assert_allclose(pooled, (features[:, :, :, :4] + features[:, :, :, 4:]) / 2,
                               rtol=1e-6, atol=1e-6)


def test_invariant_pooling_gives_rotating_spatial_maps():
    inputs = keras.Input((9, 9, 3))
    outputs = GroupPooling("mean")(RotationConv2D(3, 3, group="D4")(inputs))
    images = np.random.default_rng(3).random((2, 9, 9, 3)).astype("float32")
    result = check_equivariance(keras.Model(inputs, outputs), images, group="D4")
    assert result.output_kind == "spatial map" and result.max_error < 1e-5


def test_pooling_shapes_config_and_errors():
    layer = GroupPooling("mean", group="D4", subgroup="C4")
    assert layer.compute_output_shape((None, 5, 5, 8, 3)) == (None, 5, 5, 4, 3)
    assert GroupPooling().compute_output_shape((None, 5, 5, 8, 3)) == (None, 5, 5, 3)
    clone = GroupPooling.from_config(layer.get_config())
    assert (clone.mode, clone.group, clone.subgroup) == ("mean", "D4", "C4")
    with pytest.raises(ValueError, match="mode"):
        GroupPooling("sum")
    with pytest.raises(ValueError, match="needs the `group`"):
        GroupPooling(subgroup="C4")
    with pytest.raises(ValueError, match="pair"):
        GroupPooling(group="C4", subgroup="C4")
    with pytest.raises(ValueError, match="group"):
        GroupPooling(group="C5")
    with pytest.raises(ValueError, match="rank-5"):
        GroupPooling()(np.zeros((2, 5, 5, 3), "float32"))
    with pytest.raises(ValueError, match="must have size 8"):
        GroupPooling(group="D4")(_features(4))


def test_flatten_is_field_major():
    features = _features(4, channels=3)
    flat = keras.ops.convert_to_numpy(GroupFlatten()(features))
    assert flat.shape == (2, 5, 5, 12)
    for c in range(3):
        for g in range(4):
            np.testing.assert_array_equal(flat[..., c * 4 + g], features[..., g, c])
    assert GroupFlatten().compute_output_shape((None, 5, 5, 4, 3)) == (None, 5, 5, 12)
    assert GroupFlatten.from_config(GroupFlatten().get_config()).compute_output_shape(
        (None, 7, 7, 8, 2)) == (None, 7, 7, 16)
    with pytest.raises(ValueError, match="rank-5"):
        GroupFlatten()(np.zeros((2, 5, 5, 3), "float32"))
