"""Tests of the five model builders: build, train, save/load, SavedModel, invariance, errors."""

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
    check_equivariance,
)
from keras_equivariant.layers import RotationConv2D, ScaleConv2D
from keras_equivariant.models import BilinearResize, SoftmaxWeightedSum

BUILDERS = {
    "BaselineCNN": BaselineCNN,
    "ParallelGCNN": ParallelGCNN,
    "ParallelRotScaleGCNN": ParallelRotScaleGCNN,
    "CascadedGCNN": CascadedGCNN,
    "WeightedParallelGCNN": WeightedParallelGCNN,
}
# BaselineCNN has no variants (both values build the same network, tested below), so it is
# trained and exported once per depth.
COMBINATIONS = [
    (builder, depth, variant)
    for builder in BUILDERS
    for depth in (4, 10)
    for variant in (("paper",) if builder == "BaselineCNN" else ("paper", "equivariant"))
]

# Trainable parameters for 10 classes outside the RotationConv2D layers (whose kernel size depends
# on the rotation layers' basis), and the official PyTorch totals (the parameter counts of the
# paper's official implementation, e2cnn's R2Conv included).
NON_ROTATION_PARAMETERS = {
    ("BaselineCNN", 10, "paper"): 1_771_562,
    ("BaselineCNN", 4, "paper"): 99_210,
    ("ParallelGCNN", 10, "paper"): 2_383_162,
    ("ParallelGCNN", 10, "equivariant"): 2_383_194,
    ("ParallelGCNN", 4, "paper"): 117_658,
    ("ParallelGCNN", 4, "equivariant"): 117_690,
    ("ParallelRotScaleGCNN", 10, "paper"): 2_339_962,
    ("ParallelRotScaleGCNN", 10, "equivariant"): 2_336_986,
    ("ParallelRotScaleGCNN", 4, "paper"): 111_514,
    ("ParallelRotScaleGCNN", 4, "equivariant"): 108_538,
    ("CascadedGCNN", 10, "paper"): 4_694_362,
    ("CascadedGCNN", 10, "equivariant"): 2_778,
    ("CascadedGCNN", 4, "paper"): 411_354,
    ("CascadedGCNN", 4, "equivariant"): 1_082,
    ("WeightedParallelGCNN", 10, "paper"): 4_541_708,
    ("WeightedParallelGCNN", 10, "equivariant"): 4_541_181,
    ("WeightedParallelGCNN", 4, "paper"): 100_268,
    ("WeightedParallelGCNN", 4, "equivariant"): 99_741,
}
OFFICIAL_PARAMETERS = {
    "BaselineCNN": 1_771_562,
    "ParallelGCNN": 2_383_450,
    "ParallelRotScaleGCNN": 2_340_250,
    "CascadedGCNN": 4_700_506,
    "WeightedParallelGCNN": 4_541_996,
}


def _rotation_layers(model):
    return [layer for layer in model.layers if isinstance(layer, RotationConv2D)]


def _e2cnn_coefficients(layer):
    """e2cnn's learnable basis coefficients of a 3x3 R2Conv between regular fields (or from
    trivial input fields): 6 per (input channel, output field) pair, the size of e2cnn's
    3x3 kernel basis for these fields in the official models."""
    return 6 * layer.input_order * layer.input_fields * layer.filters


# The models whose docstrings claim invariance of the logits to 90-degree rotations.
INVARIANT_MODELS = [("CascadedGCNN", 4), ("CascadedGCNN", 10)]


def _images(count, seed=0):
    return np.random.default_rng(seed).random((count, 32, 32, 3), dtype=np.float32)


def _trainable_count(model):
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


@pytest.fixture(scope="module")
def models():
    """Every builder x depth x variant, built once for the whole module."""
    return {key: BUILDERS[key[0]](depth=key[1], variant=key[2]) for key in NON_ROTATION_PARAMETERS}


# depth 10 trains and exports the same layers as depth 4, only more of them: `pytest -m slow`
@pytest.mark.parametrize("key", [pytest.param(key, marks=pytest.mark.slow) if key[1] == 10
                                 else key for key in COMBINATIONS],
                         ids=lambda key: "-".join(map(str, key)))
def test_fit_save_load_and_export(models, key, tmp_path):
    model = models[key]
    images, labels = _images(4, seed=1), np.array([0, 3, 5, 9])
    # Kernels that must learn (conv biases before a BatchNorm get no gradient, by design).
    learned = [layer.kernel for layer in model.layers
               if isinstance(layer, (RotationConv2D, ScaleConv2D)) or layer.name == "logits"]
    before = [kernel.numpy().copy() for kernel in learned]
    # One eager step keeps the test fast (tracing a train function costs seconds per model);
    # graph-mode training is exercised by the invariance tests and tests/export/test_fold.py.
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-8),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert all(not np.array_equal(old, new.numpy()) for old, new in zip(before, learned))

    logits = keras.ops.convert_to_numpy(model(images, training=False))
    assert logits.shape == (4, 10)

    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(images, training=False)), logits, atol=1e-5, rtol=0)

    model.export(str(tmp_path / "saved_model"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))  # keep it referenced
    served = loaded.serve(images).numpy()
    np.testing.assert_allclose(served, logits, atol=1e-5, rtol=0)


def test_parameter_counts(models):
    for key, model in models.items():
        rotation = sum(int(np.prod(layer.kernel.shape)) for layer in _rotation_layers(model))
        assert _trainable_count(model) - rotation == NON_ROTATION_PARAMETERS[key], key
        name, depth, variant = key
        if depth == 10 and variant == "paper":
            # The paper variant is the official network: with e2cnn's basis sizes in place of
            # ours, the count is exactly the official one.
            e2cnn = sum(_e2cnn_coefficients(layer) for layer in _rotation_layers(model))
            assert NON_ROTATION_PARAMETERS[key] + e2cnn == OFFICIAL_PARAMETERS[name], key


def test_baseline_variants_build_the_same_network(models):
    for depth in (4, 10):
        paper = models[("BaselineCNN", depth, "paper")]
        other = BaselineCNN(depth=depth, variant="equivariant")
        assert [layer.get_config() | {"name": ""} for layer in paper.layers] == [
            layer.get_config() | {"name": ""} for layer in other.layers]


def test_pixels_in_logits_out_and_named_features(models):
    for model in models.values():
        normalization = model.get_layer("normalization")
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(normalization(np.array([[0.0, 0.5, 1.0]]))), [[-1, 0, 1]])
        logits_layer = model.get_layer("logits")
        assert model.outputs[0] is logits_layer.output
        assert logits_layer.get_config()["activation"] == "linear"
        features = model.get_layer("features").output
        assert len(features.shape) == 4 and features.shape[1] >= 1
        assert model.get_layer("global_max_pool").input is features


def test_paper_and_equivariant_variants_differ_as_documented(models):
    def layer_types(key):
        return [type(layer) for layer in models[key].layers]

    def groups(key):
        return {layer.group for layer in models[key].layers if isinstance(layer, RotationConv2D)}

    assert groups(("ParallelRotScaleGCNN", 10, "paper")) == {"C8"}
    assert groups(("ParallelRotScaleGCNN", 10, "equivariant")) == {"C4"}
    assert ScaleConv2D not in layer_types(("ParallelRotScaleGCNN", 10, "paper"))
    assert BilinearResize in layer_types(("ParallelRotScaleGCNN", 10, "paper"))
    assert ScaleConv2D in layer_types(("ParallelRotScaleGCNN", 10, "equivariant"))
    fusion = models[("ParallelRotScaleGCNN", 10, "paper")].get_layer("fusion")
    assert fusion.output.shape[-1] == 192  # the official 16 + 128 + 3 * 16
    # Cascade: the official relabels a standard conv's channels; the equivariant one lifts.
    paper_cascade = models[("CascadedGCNN", 10, "paper")]
    assert isinstance(paper_cascade.get_layer("std_conv"), keras.layers.Conv2D)
    equivariant_cascade = models[("CascadedGCNN", 10, "equivariant")]
    assert sum(isinstance(layer, RotationConv2D) for layer in equivariant_cascade.layers) == 9
    # Weighted: two branches in the official code, three in the equivariant variant.
    for variant, branches in (("paper", 2), ("equivariant", 3)):
        fusion = models[("WeightedParallelGCNN", 10, variant)].get_layer("fusion")
        assert isinstance(fusion, SoftmaxWeightedSum) and len(fusion.input) == branches
    bn = models[("ParallelGCNN", 10, "paper")].get_layer("conv2_bn")
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)


@pytest.mark.parametrize("key", INVARIANT_MODELS, ids=lambda key: "-".join(map(str, key)))
def test_claimed_rotation_invariance(key):
    model = BUILDERS[key[0]](depth=key[1], variant="equivariant")
    images = _images(3, seed=2)
    # Non-trivial batch-norm statistics and weights: one training step first (in graph mode
    # for the small model, eagerly for the large one to keep the test fast).
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True),
                  run_eagerly=key[1] == 10)
    model.fit(images, np.array([1, 2, 3]), batch_size=3, epochs=1, verbose=0)
    inference = check_equivariance(model, images, group="C4")
    assert set(inference.errors) == {"rot90", "rot180", "rot270"}
    assert inference.output_kind == "vector" and inference.max_error < 1e-5, str(inference)
    training = check_equivariance(model, images, group="C4", training=True)
    assert training.max_error < 1e-5, str(training)


@pytest.mark.parametrize("name", ["ParallelGCNN", "ParallelRotScaleGCNN", "WeightedParallelGCNN"])
def test_hybrid_models_do_not_claim_invariance(models, name):
    # The negative control: the same check detects the hybrids' missing invariance.
    result = check_equivariance(models[(name, 4, "equivariant")], _images(2, seed=3), "C4")
    assert result.max_error > 1e-3


@pytest.mark.parametrize("name", ["ParallelGCNN", "ParallelRotScaleGCNN", "WeightedParallelGCNN"])
def test_rotation_branch_of_the_equivariant_hybrids_is_exactly_c4_equivariant(models, name):
    model = models[(name, 4, "equivariant")]
    branch = keras.Model(model.input, model.get_layer("rot_conv_relu").output)
    result = check_equivariance(branch, _images(2, seed=4), "C4")
    assert result.output_kind == "group features" and result.max_error < 1e-5, str(result)


@pytest.mark.parametrize("builder", list(BUILDERS))
def test_bad_arguments_raise_clear_errors(builder):
    cases = [
        ({"depth": 7}, r"`depth` of \w+ must be one of \[4, 10\].*received 7"),
        ({"depth": "10"}, "`depth`"),
        ({"num_classes": 0}, "`num_classes` must be an integer >= 2; received 0"),
        ({"variant": "fully_equivariant"}, "Unknown variant: received 'fully_equivariant'"),
        ({"input_shape": (31, 31, 3)}, "multiples of"),
        ({"input_shape": (32, 32)}, "input_shape"),
        ({"input_shape": "32x32"}, "input_shape"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            BUILDERS[builder](**kwargs)


def test_input_too_small_for_the_depth():
    BaselineCNN(depth=4, input_shape=(8, 8, 3))
    with pytest.raises(ValueError, match="max-pools by 2 5 times.*multiples of 32"):
        BaselineCNN(depth=10, input_shape=(16, 16, 3))


def test_other_shapes_and_class_counts():
    model = CascadedGCNN(num_classes=100, depth=4, input_shape=(16, 24, 1), name="small")
    assert model.name == "small"
    assert model.output_shape == (None, 100)
    assert model.predict_on_batch(np.zeros((2, 16, 24, 1), np.float32)).shape == (2, 100)


def test_bilinear_resize_matches_half_pixel_interpolation():
    images = _images(2)
    halved = keras.ops.convert_to_numpy(BilinearResize(16, 16)(images))
    blocks = images.reshape(2, 16, 2, 16, 2, 3).mean(axis=(2, 4))  # 2x2 block averages
    np.testing.assert_allclose(halved, blocks, atol=1e-6)
    assert BilinearResize.from_config(BilinearResize(8, 4).get_config()).width == 4


def test_softmax_weighted_sum():
    layer = SoftmaxWeightedSum(initial_value=0.5)
    a, b = np.full((2, 3, 3, 4), 2.0, np.float32), np.zeros((2, 3, 3, 4), np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer([a, b])), 1.0)
    layer.branch_logits.assign([np.log(3.0), 0.0])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer([a, b])), 1.5, rtol=1e-6)
    clone = SoftmaxWeightedSum.from_config(layer.get_config())
    assert clone.initial_value == 0.5
    with pytest.raises(ValueError, match="identical shape"):
        SoftmaxWeightedSum()([a, np.zeros((2, 3, 3, 5), np.float32)])
