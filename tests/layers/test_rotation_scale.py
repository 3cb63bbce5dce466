"""Roto-scale equivariance: parallel rotation/scale branches and the product-group layer."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from keras_equivariant import check_equivariance
from keras_equivariant.equivariance import smooth_random_images
from keras_equivariant.groups import RotationScaleGroup
from keras_equivariant.layers import (
    GroupBatchNormalization,
    GroupPooling,
    RotationConv2D,
    RotationScaleConv2D,
    ScaleConv2D,
    split_rotation_scale_axis,
)


def test_parallel_rotation_and_scale_branches_compose():
    """The paper's parallel design made equivariant: each branch is equivariant to its own
    group (exactly), pooled over its own group axis, then fused by ordinary layers."""
    inputs = keras.Input((None, None, 3))
    rotation_features = RotationConv2D(4, 3, group="C4", bias_initializer="random_normal")(inputs)
    scale_features = ScaleConv2D(4, 3, scales=(1, 2, 4), bias_initializer="random_normal")(inputs)
    rotation_branch = keras.Model(inputs, rotation_features)
    scale_branch = keras.Model(inputs, scale_features)
    fused = keras.layers.Concatenate()(
        [GroupPooling("max")(rotation_features), GroupPooling("max")(scale_features)]
    )
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(
        keras.layers.Conv2D(8, 1, activation="relu")(fused)
    ))
    model = keras.Model(inputs, outputs)

    images = smooth_random_images(2, 32, wavelength=6)
    assert check_equivariance(rotation_branch, images, group="C4").max_error < 1e-5
    assert check_equivariance(scale_branch, images, group="scale")["1->2"] < 1e-5
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(images, np.array([0, 1]), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert check_equivariance(rotation_branch, images, group="C4").max_error < 1e-5


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_product_layer_is_exactly_rotation_and_scale_equivariant(group):
    order = 4 if group == "C4" else 8
    scales = (1, 2, 4)
    lifting = RotationScaleConv2D(3, 3, group=group, scales=scales,
                                  bias_initializer="random_normal")
    mixing = RotationScaleConv2D(3, 3, group=group, scales=scales, scale_size=2,
                                 bias_initializer="random_normal")
    model = keras.Sequential([keras.Input((None, None, 2)), lifting, GroupBatchNormalization(),
                              keras.layers.ReLU(), mixing])
    assert model.output_shape == (None, None, None, 3 * order, 3)
    images = smooth_random_images(2, 64, channels=2, wavelength=6)
    errors = check_equivariance(lifting, images, group=f"{group}xscale").errors
    assert max(errors.values()) < 1e-5, errors
    errors = check_equivariance(model, images, group=f"{group}xscale").errors
    rotation_errors = [error for name, error in errors.items() if "->" not in name]
    assert len(rotation_errors) == order - 1 and max(rotation_errors) < 1e-5, errors
    # The ReLU does not commute with resizing, so two layers are approximately scale
    # equivariant (measured ~0.5 %), and exactly so for the group convolution alone. The pairs
    # ending at the coarsest scale (x->4) see the scale boundary of `scale_size=2`.
    assert errors["1->2"] < 0.03, errors
    features = np.random.default_rng(0).random((2, 64, 64, 3 * order, 3)).astype("float32")
    assert check_equivariance(mixing, features, group=f"{group}xscale").max_error < 1e-5


def test_product_layer_pooled_is_rotation_invariant_and_c8_is_approximate():
    layer = RotationScaleConv2D(4, 5, group="C8", scales=(1, 2), bias_initializer="random_normal")
    pooled = keras.Sequential([keras.Input((None, None, 3)), layer, GroupPooling("max")])
    images = smooth_random_images(2, 33, wavelength=6)
    errors = check_equivariance(pooled, images, group="C4").errors
    assert max(errors.values()) < 1e-5, errors  # 90° rotations stay exact for C8
    errors = check_equivariance(layer, images, group="C8xscale").errors
    assert errors["rot45"] < 0.05, errors


def test_product_layer_matches_rotated_scale_convolutions():
    """Each scale of the product layer is a RotationConv2D with the same weights, dilated."""
    images = np.random.default_rng(1).random((2, 17, 17, 3)).astype("float32")
    product = RotationScaleConv2D(4, 3, group="C4", scales=(1, 2), bias_initializer="random_normal")
    outputs = split_rotation_scale_axis(product(images), 2).numpy()
    rotation = RotationConv2D(4, 3, group="C4", dilation_rate=2, bias_initializer="zeros")
    rotation.build(images.shape)
    rotation.set_weights([product.kernel.numpy(), product.bias.numpy()])
    np.testing.assert_allclose(outputs[:, :, :, 1], rotation(images).numpy(), atol=1e-5)
    rotation_1 = RotationConv2D(4, 3, group="C4")
    rotation_1.build(images.shape)
    rotation_1.set_weights([product.kernel.numpy(), product.bias.numpy()])
    np.testing.assert_allclose(outputs[:, :, :, 0], rotation_1(images).numpy(), atol=1e-5)


def test_product_layer_parameters_do_not_grow_with_scales_and_round_trip(tmp_path):
    counts = []
    for scales in [(1,), (1, 2), (1, 2, 4)]:
        layer = RotationScaleConv2D(8, 3, group="C4", scales=scales)
        layer.build((None, 40, 40, 4 * len(scales), 8))
        counts.append(layer.count_params())
    assert counts == [3 * 3 * 4 * 8 * 8 + 8] * 3

    layer = RotationScaleConv2D(4, 3, group="D4", scales=(1, 2), scale_size=2, name="rs")
    assert RotationScaleConv2D.from_config(layer.get_config()).get_config() == layer.get_config()
    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        RotationScaleConv2D(4, 3, group="D4", scales=(1, 2), bias_initializer="random_normal"),
        layer,
        GroupPooling("mean"),
    ])
    images = np.random.default_rng(2).random((2, 16, 16, 3)).astype("float32")
    path = tmp_path / "rotation_scale.keras"
    model.save(path)
    np.testing.assert_allclose(keras.models.load_model(path)(images), model(images), atol=1e-6)
    model.export(str(tmp_path / "saved"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(reloaded.serve(images).numpy(), model(images), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, shape, message",
    [
        (dict(group="C6"), (2, 16, 16, 3), "group"),
        (dict(kernel_size=(3, 5)), (2, 16, 16, 3), "square"),
        (dict(), (2, 16, 16, 4, 3), "num_scales \\* \\|G\\|"),
        (dict(), (2, 16, 16, 3), None),
    ],
)
def test_product_layer_bad_inputs(kwargs, shape, message):
    arguments = dict(filters=2, kernel_size=3)
    arguments.update(kwargs)
    if message is None:
        assert RotationScaleConv2D(**arguments)(np.zeros(shape, "float32")).shape[3] == 8
        return
    with pytest.raises(ValueError, match=message):
        RotationScaleConv2D(**arguments)(np.zeros(shape, "float32"))


def test_rotation_scale_group_checks_the_layout():
    group = RotationScaleGroup("C4", (1, 2))
    assert group.order == 8 and group.elements()[-1] == "1->2"
    with pytest.raises(ValueError, match="num_scales"):
        group.transform_features(np.zeros((1, 8, 8, 4, 1)), "rot90")
