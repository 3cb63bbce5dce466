"""Perturbation tolerance with nested random pixel-removal masks."""

import keras
import numpy as np
import pytest

from keras_equivariant.visualize import (perturbation_tolerance, plot_tolerance_distribution,
                                         plot_tolerance_example, removal_masks,
                                         tolerance_from_correct)

FRACTIONS = np.arange(17) / 16  # 0, 1/16, ..., 1: multiples of 4 pixels on an 8x8 image


def _brightness_model(threshold=0.6):
    """Class 0 while the mean pixel value exceeds ``threshold``, class 1 otherwise."""
    inputs = keras.Input((8, 8, 1))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(2)
    outputs = dense(mean)
    dense.set_weights([np.array([[1.0, 0.0]], "float32"), np.array([0.0, threshold], "float32")])
    return keras.Model(inputs, outputs)


def test_masks_are_nested_with_the_requested_counts():
    masks = removal_masks(8, 8, FRACTIONS, seed=3, image_index=5)
    assert masks.shape == (17, 8, 8) and masks.dtype == bool
    np.testing.assert_array_equal(masks.sum(axis=(1, 2)), np.round(FRACTIONS * 64))
    assert np.all(masks[:-1] <= masks[1:])  # every removed pixel stays removed
    np.testing.assert_array_equal(masks, removal_masks(8, 8, FRACTIONS, seed=3, image_index=5))
    assert not np.array_equal(masks, removal_masks(8, 8, FRACTIONS, seed=3, image_index=6))
    assert not np.array_equal(masks, removal_masks(8, 8, FRACTIONS, seed=4, image_index=5))


def test_known_answer_on_a_brightness_threshold_model():
    model = _brightness_model(threshold=0.6)
    images = np.ones((3, 8, 8, 1), "float32")
    labels = np.array([0, 0, 1])  # the third image is misclassified when clean
    result = perturbation_tolerance(model, images, labels, fractions=FRACTIONS, batch_size=20)
    # Mean after removing f (fill 0) is 1 - f: correct while 1 - f > 0.6, i.e. f < 0.4.
    np.testing.assert_allclose(result["tolerance"][:2], [6 / 16, 6 / 16])
    np.testing.assert_allclose(result["first_flip"][:2], [7 / 16, 7 / 16])
    assert np.isnan(result["tolerance"][2]) and np.isnan(result["first_flip"][2])
    np.testing.assert_array_equal(result["clean_correct"], [True, True, False])
    np.testing.assert_array_equal(result["correct"][0], FRACTIONS < 0.4)
    assert np.all(np.diff(result["label_probability"][0]) <= 1e-6)  # p(class 0) falls with f
    # Filling with the image mean keeps a constant image unchanged: it never flips.
    by_mean = perturbation_tolerance(model, images[:2], labels[:2], fractions=FRACTIONS, fill="mean")
    np.testing.assert_allclose(by_mean["tolerance"], [1.0, 1.0])
    assert np.all(np.isnan(by_mean["first_flip"]))


def test_tolerances_lie_in_unit_interval_and_do_not_depend_on_batching():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalMaxPooling2D()(x)))
    images = np.random.default_rng(1).uniform(size=(6, 8, 8, 3)).astype("float32")
    labels = np.argmax(model.predict(images, verbose=0), axis=-1)
    small = perturbation_tolerance(model, images, labels, fractions=FRACTIONS, batch_size=7)
    large = perturbation_tolerance(model, images, labels, fractions=FRACTIONS, batch_size=500)
    np.testing.assert_array_equal(small["tolerance"], large["tolerance"])
    assert np.all((small["tolerance"] >= 0) & (small["tolerance"] <= 1))
    assert np.all(small["clean_correct"])


def test_first_flip_ends_the_tolerance_even_if_the_prediction_recovers():
    correct = np.array([[True, True, False, True, True],
                        [True, True, True, True, True],
                        [False, True, True, True, True]])
    tolerance, first_flip = tolerance_from_correct(correct, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(tolerance, [0.25, 1.0, np.nan])
    np.testing.assert_allclose(first_flip, [0.5, np.nan, np.nan])


def test_bad_arguments_raise_before_work():
    model = _brightness_model()
    images = np.ones((1, 8, 8, 1), "float32")
    with pytest.raises(ValueError, match="start at 0.0"):
        perturbation_tolerance(model, images, [0], fractions=[0.1, 0.5])
    with pytest.raises(ValueError, match="increase strictly"):
        perturbation_tolerance(model, images, [0], fractions=[0.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="Unknown fill"):
        perturbation_tolerance(model, images, [0], fill="noise")
    with pytest.raises(ValueError, match="shape \\(1,\\)"):
        perturbation_tolerance(model, images, [0, 1])


def test_figures_are_written(tmp_path):
    model = _brightness_model()
    images = np.ones((3, 8, 8, 1), "float32") * np.array([1.0, 0.9, 0.61], "float32")[:, None, None, None]
    results = {
        "zero": perturbation_tolerance(model, images, [0, 0, 0], fractions=FRACTIONS),
        "mean": perturbation_tolerance(model, images, [0, 0, 0], fractions=FRACTIONS, fill="mean"),
    }
    distribution = plot_tolerance_distribution(results, tmp_path / "distribution.png")
    example = plot_tolerance_example(images[0], 0, {"zero": results["zero"]}, 0,
                                     tmp_path / "example.png", class_names=["bright", "dark"])
    # Image 2 (mean 0.61) flips at the first removal step: its tolerance is exactly 0.
    assert results["zero"]["tolerance"][2] == 0.0
    flips_at_once = plot_tolerance_example(images[2], 0, results, 2, tmp_path / "zero.png")
    for path in (distribution, example, flips_at_once):
        assert path.exists() and path.stat().st_size > 5_000
