"""Saliency, SmoothGrad and GradCAM++ maps, and the automatic GradCAM layer choice."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_equivariant.visualize import (find_penultimate_layer, plot_saliency_comparison,
                                         saliency_maps)


def _functional(activation=None, num_classes=3):
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalMaxPooling2D(name="global_max_pool")(x)
    outputs = keras.layers.Dense(num_classes, activation=activation, name="logits")(x)
    return keras.Model(inputs, outputs)


def _group_model():
    """A model whose last spatial map is a rank-5 group feature map (B, H, W, G, C)."""
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Reshape((12, 12, 4, 2), name="group_features")(x)
    x = keras.layers.GlobalMaxPooling3D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


@pytest.fixture
def images():
    return np.random.default_rng(0).uniform(size=(2, 12, 12, 3)).astype("float32")


@pytest.mark.parametrize("method", ["saliency", "smoothgrad", "gradcam++"])
@pytest.mark.parametrize("builder", [_functional, _group_model])
def test_maps_have_image_shape_unit_range_and_are_not_constant(builder, method, images):
    maps = saliency_maps(builder(), images, labels=[0, 2], method=method, smooth_samples=4)
    assert maps.shape == (2, 12, 12)
    assert maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    for single in maps:
        assert single.max() - single.min() > 0.1


def test_vanilla_saliency_is_the_logit_gradient(images):
    model = _functional()
    labels = np.array([1, 2])
    tensor = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        logits = model(tensor, training=False)
        score = tf.gather(logits, labels, axis=1, batch_dims=1)
    expected = tf.reduce_max(tf.abs(tape.gradient(score, tensor)), axis=-1).numpy()
    low = expected.min(axis=(1, 2), keepdims=True)
    expected = (expected - low) / (expected.max(axis=(1, 2), keepdims=True) - low)
    np.testing.assert_allclose(saliency_maps(model, images, labels), expected, atol=1e-5)


def test_softmax_output_is_explained_on_the_logits(images):
    """A softmax head gives the same maps as the same weights without softmax (ReplaceToLinear)."""
    logit_model = _functional()
    softmax_model = _functional(activation="softmax")
    softmax_model.set_weights(logit_model.get_weights())
    for method in ("saliency", "gradcam++"):
        np.testing.assert_allclose(saliency_maps(softmax_model, images, [0, 1], method=method),
                                   saliency_maps(logit_model, images, [0, 1], method=method),
                                   atol=1e-5)
    # The caller's model keeps its softmax.
    assert softmax_model.get_layer("logits").activation is keras.activations.softmax


def test_default_labels_explain_the_predicted_class(images):
    model = _functional()
    predicted = np.argmax(model.predict(images, verbose=0), axis=-1)
    np.testing.assert_allclose(saliency_maps(model, images), saliency_maps(model, images, predicted))


def test_sequential_models_work(images):
    model = keras.Sequential([
        keras.Input((12, 12, 3)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
        keras.layers.GlobalMaxPooling2D(),
        keras.layers.Dense(3, activation="softmax"),
    ])
    assert find_penultimate_layer(model).name == "conv"
    assert saliency_maps(model, images, method="gradcam++").shape == (2, 12, 12)


def test_find_penultimate_layer_picks_the_last_spatial_map():
    assert find_penultimate_layer(_functional()).name == "conv2"
    assert find_penultimate_layer(_group_model()).name == "group_features"


def test_find_penultimate_layer_skips_one_by_one_maps():
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="wide")(inputs)
    x = keras.layers.MaxPooling2D(4, name="to_one_by_one")(x)
    x = keras.layers.Conv2D(4, 1, name="one_by_one")(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    assert find_penultimate_layer(model).name == "wide"


def test_find_penultimate_layer_rejects_models_without_spatial_maps():
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="no layer with a spatial output"):
        find_penultimate_layer(model)


def test_bad_arguments_raise_before_work(images):
    model = _functional()
    with pytest.raises(ValueError, match="Unknown method"):
        saliency_maps(model, images, method="gradcam")
    with pytest.raises(ValueError, match=r"must lie in \[0.0, 1.0\]"):
        saliency_maps(model, images * 255)
    with pytest.raises(ValueError, match="num_classes=3"):
        saliency_maps(model, images, labels=[0, 7])
    with pytest.raises(ValueError, match="rank-4 or rank-5"):
        saliency_maps(model, images, method="gradcam++", penultimate_layer="global_max_pool")


def test_comparison_figure_is_written(tmp_path, images):
    models = [_functional(), _group_model()]
    adversarial = [np.clip(images + 0.03, 0, 1), np.clip(images - 0.03, 0, 1)]
    path = plot_saliency_comparison(models, images, tmp_path / "maps" / "saliency.png",
                                    labels=[0, 1], model_names=["cnn", "group"],
                                    adversarial_images=adversarial, class_names=["a", "b", "c"])
    assert path.exists() and path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="one batch per model"):
        plot_saliency_comparison(models, images, tmp_path / "x.png", adversarial_images=[images])


BUILDERS = ["BaselineCNN", "ParallelGCNN", "ParallelRotScaleGCNN", "CascadedGCNN",
            "WeightedParallelGCNN"]


@pytest.mark.parametrize("variant", ["equivariant", "paper"])
@pytest.mark.parametrize("builder", BUILDERS)
def test_every_builder_explains_its_features_layer(builder, variant):
    import keras_equivariant

    model = getattr(keras_equivariant, builder)(num_classes=4, depth=4, input_shape=(16, 16, 3),
                                     variant=variant)
    layer = find_penultimate_layer(model)
    # The builders' documented last spatial map, which the head's global max pool consumes.
    assert layer is model.get_layer("features")
    assert model.get_layer("global_max_pool").input is layer.output
    images = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype("float32")
    maps = saliency_maps(model, images, labels=[0, 3], method="gradcam++")
    assert maps.shape == (2, 16, 16)
    assert np.all(maps.max(axis=(1, 2)) - maps.min(axis=(1, 2)) > 0.1)


def test_ten_layer_baseline_falls_back_from_its_one_by_one_features():
    import keras_equivariant

    model = keras_equivariant.BaselineCNN(num_classes=4, depth=10)
    assert model.get_layer("features").output.shape[1:3] == (1, 1)
    layer = find_penultimate_layer(model)
    assert layer.name == "conv8_relu" and layer.output.shape[1:3] == (2, 2)


def test_subclassed_models_are_rejected_with_a_fix(images):
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, inputs):
            return self.dense(keras.ops.mean(inputs, axis=(1, 2)))

    model = Subclassed()
    model(images)
    with pytest.raises(ValueError, match="subclassed model"):
        saliency_maps(model, images)
