"""Tests of keras_equivariant.export.fold: equivariant convs -> plain Conv2D, same outputs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_equivariant import (
    BaselineCNN,
    CascadedGCNN,
    ParallelGCNN,
    ParallelRotScaleGCNN,
    WeightedParallelGCNN,
)
from keras_equivariant.export import fold
from keras_equivariant.layers import (
    GroupBatchNormalization,
    RotationConv2D,
    RotationScaleConv2D,
    ScaleConv2D,
)
from keras_equivariant.layers.base import GroupConv2D

GROUP_BUILDERS = {
    "ParallelGCNN": ParallelGCNN,
    "ParallelRotScaleGCNN": ParallelRotScaleGCNN,
    "CascadedGCNN": CascadedGCNN,
    "WeightedParallelGCNN": WeightedParallelGCNN,
}
TOLERANCE = 1e-5


def _images(count, size=32, channels=3, seed=0):
    return np.random.default_rng(seed).random((count, size, size, channels), dtype=np.float32)


def _predict(model, images):
    return keras.ops.convert_to_numpy(model(images, training=False))


def _relative_error(actual, expected):
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def _equivariant_layers(model):
    return [layer for layer in model.layers if isinstance(layer, GroupConv2D)]


def _perturb(model, seed=0):
    """Moves every bias, batch-norm parameter and moving statistic away from its initial value
    (zeros / ones), as training would, so that folding them wrongly cannot go unnoticed."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        value = variable.numpy()
        if "moving_variance" in variable.path:
            value = rng.uniform(0.5, 2.0, value.shape)
        elif "kernel" not in variable.path:
            value = value + rng.normal(0.0, 0.2, value.shape)
        variable.assign(value.astype(np.float32))
    return model


@pytest.fixture(scope="module")
def trained_models():
    """The 4-layer group models, both variants, with perturbed biases and statistics."""
    return {
        (name, variant): _perturb(builder(depth=4, variant=variant))
        for name, builder in GROUP_BUILDERS.items()
        for variant in ("paper", "equivariant")
    }


@pytest.mark.parametrize("name", list(GROUP_BUILDERS))
@pytest.mark.parametrize("variant", ["paper", "equivariant"])
def test_fold_gives_the_same_logits_with_plain_convolutions(trained_models, name, variant):
    model = trained_models[(name, variant)]
    assert _equivariant_layers(model)
    folded = fold(model)
    assert not _equivariant_layers(folded)
    plain_convs = [layer for layer in folded.layers if type(layer) is keras.layers.Conv2D]
    assert len(plain_convs) > sum(type(layer) is keras.layers.Conv2D for layer in model.layers)
    assert folded.name == model.name and folded.output_shape == model.output_shape
    images = _images(3, seed=2)
    expected = _predict(model, images)
    assert _relative_error(_predict(folded, images), expected) <= TOLERANCE
    # Every batch norm directly after a conv is folded into it, including the one after the
    # scale branch (into each of its per-scale convs).
    remaining = [layer.name for layer in folded.layers
                 if isinstance(layer, keras.layers.BatchNormalization)]
    assert remaining == []


ALL_BUILDERS = {"BaselineCNN": BaselineCNN, **GROUP_BUILDERS}


@pytest.mark.parametrize(
    "name, variant, depth",
    [(name, variant, 10) for name in ALL_BUILDERS for variant in ("paper", "equivariant")]
    + [("BaselineCNN", variant, 4) for variant in ("paper", "equivariant")],
)
def test_fold_every_builder_depth_and_variant(name, variant, depth):
    """fold equals the original to <= 1e-5 for all five builders x depths (4, 10) x variants
    (the depth-4 group models are checked above, on the module's shared models)."""
    model = _perturb(ALL_BUILDERS[name](depth=depth, variant=variant), seed=depth)
    folded = fold(model)
    assert not _equivariant_layers(folded)
    images = _images(2, seed=depth)
    assert _relative_error(_predict(folded, images), _predict(model, images)) <= TOLERANCE


def test_fold_is_a_snapshot_independent_of_the_original(trained_models):
    model = trained_models[("CascadedGCNN", "equivariant")]
    images = _images(2, seed=3)
    folded = fold(model)
    before = _predict(folded, images)
    original_kernel = model.get_layer("conv2").kernel.numpy().copy()
    model.get_layer("conv2").kernel.assign(original_kernel * 2.0)
    try:
        np.testing.assert_array_equal(_predict(folded, images), before)
    finally:
        model.get_layer("conv2").kernel.assign(original_kernel)


def test_fold_keeps_exact_invariance_and_exports(trained_models, tmp_path):
    model = trained_models[("CascadedGCNN", "equivariant")]
    folded = fold(model)
    images = _images(2, seed=4)
    logits = _predict(folded, images)
    rotated = _predict(folded, np.rot90(images, 1, axes=(1, 2)).copy())
    assert _relative_error(rotated, logits) <= TOLERANCE
    folded.export(str(tmp_path / "folded"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "folded"))
    assert _relative_error(loaded.serve(images).numpy(), _predict(model, images)) <= TOLERANCE


def _single_layer_model(layer, input_shape):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.layers.ReLU()(layer(inputs)))


@pytest.mark.parametrize(
    "layer, input_shape",
    [
        (RotationConv2D(5, 3, group="D4", strides=2, bias_initializer="random_normal"),
         (17, 17, 2)),
        (RotationConv2D(4, 5, group="C8", padding="valid", bias_initializer="random_normal"),
         (15, 15, 3)),
        (RotationConv2D(3, 3, group="C4", dilation_rate=2, activation="relu"), (13, 13, 2)),
        (ScaleConv2D(4, 3, scales=(1, 1.5, 3), bias_initializer="random_normal"), (20, 20, 2)),
        (ScaleConv2D(4, 5, scales=(1, 2), use_bias=False), (20, 20, 2)),
        (ScaleConv2D(3, 3, scales=(1, 2), strides=2, bias_initializer="random_normal"),
         (17, 17, 2)),
        (ScaleConv2D(3, 3, scales=(1, 1.5, 3), padding="valid", dilation_rate=2,
                     activation="relu", bias_initializer="random_normal"), (21, 21, 2)),
        (ScaleConv2D(3, 3, scales=(1, 2, 4), blur_sigma=0.5, bias_initializer="random_normal"),
         (20, 20, 2)),
        (RotationScaleConv2D(3, 3, group="D4", scales=(1, 2), bias_initializer="random_normal"),
         (13, 13, 2)),
        (RotationScaleConv2D(2, 3, group="C8", scales=(1, 1.5), strides=2, padding="valid",
                             bias_initializer="random_normal"), (15, 15, 2)),
    ],
    ids=["d4-stride2", "c8-valid", "c4-dilated", "scale-non-integer", "scale-5x5-no-bias",
         "scale-stride2", "scale-valid-dilated", "scale-blur", "rotscale-d4", "rotscale-c8"],
)
def test_fold_single_layers(layer, input_shape):
    model = _single_layer_model(layer, input_shape)
    folded = fold(model)
    assert not _equivariant_layers(folded)
    images = _images(2, input_shape[0], input_shape[2], seed=6)
    assert _relative_error(_predict(folded, images), _predict(model, images)) <= TOLERANCE


def test_fold_group_conv_on_group_features():
    inputs = keras.Input((9, 9, 8, 3))  # a rank-5 D4 feature map
    outputs = RotationConv2D(2, 3, group="D4", bias_initializer="random_normal")(inputs)
    model = keras.Model(inputs, outputs)
    folded = fold(model)
    assert not _equivariant_layers(folded)
    features = np.random.default_rng(7).normal(size=(2, 9, 9, 8, 3)).astype(np.float32)
    assert _relative_error(_predict(folded, features), _predict(model, features)) <= TOLERANCE


@pytest.mark.parametrize(
    "make_layer, shape",
    [
        (lambda: ScaleConv2D(3, 3, scales=(1, 2, 4), scale_size=2, scale_padding="replicate",
                             bias_initializer="random_normal"), (16, 16, 3, 2)),
        (lambda: ScaleConv2D(3, 3, scales=(1, 2), scale_size=2, strides=2), (17, 17, 2, 3)),
        (lambda: RotationScaleConv2D(2, 3, group="C4", scales=(1, 2, 4), scale_size=2,
                                     bias_initializer="random_normal"), (16, 16, 12, 2)),
    ],
    ids=["scale-replicate", "scale-stride2", "rotscale-c4"],
)
def test_fold_scale_group_convs_on_rank5_features(make_layer, shape):
    """Rank-5 scale and roto-scale convs fold into one Conv2D per scale window."""
    inputs = keras.Input(shape)
    model = _perturb(keras.Model(inputs, make_layer()(inputs)))
    folded = fold(model)
    assert not _equivariant_layers(folded)
    features = np.random.default_rng(8).normal(size=(2, *shape)).astype(np.float32)
    assert _relative_error(_predict(folded, features), _predict(model, features)) <= TOLERANCE


def test_fold_scale_stack_round_trips_through_keras_files(tmp_path):
    """A folded scale stack (channel slices of the scale windows) saves and exports."""
    inputs = keras.Input((16, 16, 2))
    lifted = ScaleConv2D(3, 3, scales=(1, 2))(inputs)
    outputs = ScaleConv2D(3, 3, scales=(1, 2), scale_size=2)(lifted)
    model = _perturb(keras.Model(inputs, outputs))
    folded = fold(model)
    images = _images(2, 16, 2, seed=8)
    expected = _predict(model, images)
    folded.save(tmp_path / "folded.keras")
    restored = keras.models.load_model(tmp_path / "folded.keras")
    assert _relative_error(_predict(restored, images), expected) <= TOLERANCE
    folded.export(str(tmp_path / "saved"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    assert _relative_error(loaded.serve(images).numpy(), expected) <= TOLERANCE


def test_batch_norm_is_kept_when_the_conv_output_has_other_readers():
    inputs = keras.Input((9, 9, 3))
    lifted = RotationConv2D(4, 3, group="C4", bias_initializer="random_normal")(inputs)
    normalized = GroupBatchNormalization()(lifted)
    features = keras.layers.Conv2D(6, 3, padding="same")(inputs)
    model = _perturb(keras.Model(
        inputs, [normalized, lifted, keras.layers.BatchNormalization()(features), features]))
    folded = fold(model)
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers) == 2
    images = _images(2, 9, seed=9)
    for actual, expected in zip(folded(images, training=False), model(images, training=False)):
        assert _relative_error(keras.ops.convert_to_numpy(actual),
                               keras.ops.convert_to_numpy(expected)) <= TOLERANCE


def test_fold_rejects_what_it_cannot_fold():
    with pytest.raises(ValueError, match="functional keras.Model"):
        fold(keras.Sequential([keras.Input((8, 8, 3)), RotationConv2D(2, 3)]))
    with pytest.raises(ValueError, match="functional keras.Model"):
        fold(RotationConv2D(2, 3))
