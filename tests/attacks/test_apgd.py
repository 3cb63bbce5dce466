"""APGD-CE, APGD-DLR, APGD-T: exact on linear classifiers, invariants, compilation, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from attack_toys import (
    IMAGE_SHAPE,
    NUM_CLASSES,
    Quantize,
    accuracy,
    assert_breaks_exactly_the_close_points,
    linear_classifier,
    linear_problem,
    perturbation_size,
    predictions,
)

from keras_equivariant.attacks import apgd, pgd
from keras_equivariant.attacks.apgd import ApgdConfig, checkpoint_gaps, compiled_apgd, target_ranks

@pytest.mark.parametrize("norm, eps", [("inf", 0.03), ("2", 0.1)])
def test_apgd_ce_finds_every_boundary_within_eps_of_a_binary_linear_classifier(norm, eps):
    """Binary: cross-entropy is monotone in the (linear) margin, so its maximizer is the answer."""
    model, images, labels, distance = linear_problem(2, norm)
    adversarial = apgd(model, images, labels, eps, norm=norm, seed=0)
    assert_breaks_exactly_the_close_points(model, images, labels, adversarial, distance, eps, norm)


@pytest.mark.parametrize("norm, eps", [
    ("inf", 0.015), pytest.param("2", 0.05, marks=pytest.mark.slow)])
def test_apgd_t_finds_every_boundary_within_eps_of_a_multiclass_linear_classifier(norm, eps):
    """5 classes: the targeted DLR runs against each pairwise boundary in turn."""
    model, images, labels, distance = linear_problem(5, norm, seed=1)
    adversarial = apgd(model, images, labels, eps, norm=norm, loss="dlr", targeted=True, seed=0)
    assert_breaks_exactly_the_close_points(model, images, labels, adversarial, distance, eps, norm)


def test_checkpoint_schedule_matches_the_paper():
    """p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), in iterations."""
    gaps = checkpoint_gaps(100)
    assert gaps[:6] == [22, 19, 16, 13, 10, 7]
    assert set(gaps[6:]) == {6} and sum(gaps) <= 100 < sum(gaps) + 6
    assert checkpoint_gaps(3) == [1, 1, 1]


def test_target_ranks_follow_autoattack():
    assert target_ranks(10) == list(range(2, 11))
    assert target_ranks(100) == list(range(2, 11))  # 9 target classes
    assert target_ranks(3) == [2, 3]
    assert target_ranks(10, 4) == [4]
    with pytest.raises(ValueError, match="between 2 and num_classes"):
        target_ranks(3, 4)


@pytest.mark.parametrize("norm, eps, loss, targeted", [
    ("inf", 0.05, "cross_entropy", False), ("2", 0.5, "dlr", False), ("inf", 0.05, "dlr", True)])
def test_inside_eps_ball_and_unit_box(toy_model, toy_data, norm, eps, loss, targeted):
    images, labels = toy_data
    adversarial = apgd(toy_model, images, labels, eps, norm=norm, loss=loss, targeted=targeted,
                       steps=10, seed=0)
    assert adversarial.shape == images.shape and adversarial.dtype == images.dtype
    assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0
    assert perturbation_size(adversarial - images, norm).max() <= eps + 1e-6
    assert accuracy(toy_model, adversarial, labels) < accuracy(toy_model, images, labels) - 0.1


def test_apgd_at_least_as_strong_as_pgd(toy_model, toy_data):
    images, labels = toy_data
    pgd_correct = predictions(toy_model, pgd(toy_model, images, labels, 0.05, steps=20,
                                             seed=0)) == labels
    apgd_correct = predictions(toy_model, apgd(toy_model, images, labels, 0.05, steps=20,
                                               seed=0)) == labels
    assert apgd_correct.mean() <= pgd_correct.mean()


def test_misclassified_images_are_returned_unchanged(toy_model, toy_data):
    images, labels = toy_data
    wrong = predictions(toy_model, images) != labels
    assert wrong.any()
    adversarial = apgd(toy_model, images, labels, 0.1, steps=5, seed=0)
    np.testing.assert_array_equal(adversarial[wrong], images[wrong])


def test_float16_images_stay_inside_the_eps_ball(toy_model, toy_data):
    images, labels = toy_data
    half = images.astype(np.float16)
    adversarial = apgd(toy_model, half, labels, 8 / 255, steps=5, seed=0)
    assert adversarial.dtype == np.float16
    delta = adversarial.astype(np.float64) - half.astype(np.float64)
    assert perturbation_size(delta, "inf").max() <= 8 / 255 + 1e-6


def test_gradient_masking_defeats_apgd(toy_data):
    """Rounded inputs have zero gradient: APGD (like PGD) cannot move; see test_square."""
    images, labels = toy_data
    masked = keras.Sequential([keras.Input(IMAGE_SHAPE), Quantize(4), keras.layers.Flatten(),
                               keras.layers.Dense(NUM_CLASSES)])
    labels = predictions(masked, images)
    adversarial = apgd(masked, images, labels, 0.05, steps=10, seed=0)
    assert accuracy(masked, adversarial, labels) > 0.9


def test_no_retrace_across_batches_eps_steps_seeds_and_targets(toy_model, toy_data):
    images, labels = toy_data
    for batch, eps, steps, seed in [(240, 0.01, 3, 0), (17, 0.05, 5, 1), (64, 0.2, 1, 2)]:
        apgd(toy_model, images[:batch], labels[:batch], eps, loss="dlr", targeted=True,
             steps=steps, restarts=2, seed=seed)
    attack = compiled_apgd(toy_model, ApgdConfig("inf", "dlr", True), IMAGE_SHAPE)
    assert attack.experimental_get_tracing_count() == 1


def test_same_seed_same_result_and_tensor_in_tensor_out(toy_model, toy_data):
    images, labels = toy_data
    first = apgd(toy_model, tf.constant(images), labels, 0.03, steps=5, seed=4)
    assert tf.is_tensor(first)
    np.testing.assert_array_equal(first.numpy(),
                                  apgd(toy_model, images, labels, 0.03, steps=5, seed=4))


@pytest.mark.parametrize("kwargs, message", [
    ({"eps": -0.1}, ">= 0"),
    ({"eps": [0.1, 0.2]}, "single number"),
    ({"steps": 0}, "steps"),
    ({"restarts": 0}, "restarts"),
    ({"eot_samples": 0}, "eot_samples"),
    ({"rho": 1.5}, "rho"),
    ({"norm": "l1"}, "Unknown norm"),
    ({"loss": "margin"}, "Unknown loss"),
    ({"target_class_rank": 2}, "targeted=True"),
    ({"targeted": True, "target_class_rank": 4}, "between 2 and num_classes"),
])
def test_bad_arguments_raise_before_work(toy_model, toy_data, kwargs, message):
    images, labels = toy_data
    with pytest.raises(ValueError, match=message):
        apgd(toy_model, images[:4], labels[:4], **{"eps": 0.1, **kwargs})


def test_bad_images_and_labels_raise(toy_model, toy_data):
    images, labels = toy_data
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        apgd(toy_model, images[:4] * 255, labels[:4], 0.1)
    with pytest.raises(ValueError, match="NaN"):
        apgd(toy_model, np.where(images[:4] > 0.5, np.nan, images[:4]), labels[:4], 0.1)
    with pytest.raises(ValueError, match="num_classes"):
        apgd(toy_model, images[:4], np.array([0, 1, 2, 3]), 0.1)


def test_dlr_needs_three_classes(toy_data):
    images, _ = toy_data
    binary = linear_classifier(64, 2, 0)
    with pytest.raises(ValueError, match="at least 3 classes"):
        apgd(binary, images[:4].reshape(4, 8, 8, 1), np.zeros(4, np.int32), 0.1, loss="dlr")


def test_probability_outputs_warn(toy_model, toy_data):
    images, labels = toy_data
    softmax_model = keras.Sequential([toy_model, keras.layers.Softmax()])
    with pytest.warns(UserWarning, match="look like probabilities"):
        apgd(softmax_model, images[:8], labels[:8], 0.05, steps=2)
