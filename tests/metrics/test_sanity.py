"""Gradient-masking sanity checks: a healthy model passes, a gradient-masked one is flagged."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from attack_toys import (
    IMAGE_SHAPE,
    NUM_CLASSES,
    Quantize,
    build_classifier,
    held_out_split,
    stripes_dataset,
    train,
    trained_classifier,
)

from keras_equivariant.metrics import sanity_checks

CHECKS = ["pgd_not_weaker_than_fgsm", "more_steps_do_not_help_the_model", "eps_zero_equals_clean",
          "accuracy_decreases_with_eps", "large_eps_breaks_model",
          "random_noise_not_stronger_than_pgd", "black_box_not_stronger_than_pgd",
          "outputs_are_logits",
          "gradients_finite_and_nonzero", "deterministic_model"]


@pytest.mark.numerics
def test_healthy_model_passes_every_check():
    images, labels = held_out_split()
    report = sanity_checks(trained_classifier(), (images[:128], labels[:128]), eps=0.1,
                           num_noise_samples=20, model_name="toy")
    assert [check.name for check in report.checks] == CHECKS
    assert report.passed, str(report)
    assert report.num_examples == 128 and 0.8 < report.clean_accuracy < 1
    assert report["eps_zero_equals_clean"].values["eps_zero_accuracy"] == report.clean_accuracy
    text = str(report)
    assert "PASSED" in text and "FGSM" in text and "toy" in text


@pytest.mark.numerics
def test_item9_gradient_masked_model_is_flagged():
    """A rounding layer zeroes every input gradient: the model looks robust to PGD but is not."""
    train_images, train_labels = stripes_dataset(900, seed=0)
    masked = train(build_classifier(extra_layers=[Quantize(8)]), train_images, train_labels,
                   epochs=8)
    images, labels = held_out_split()
    report = sanity_checks(masked, (images[:128], labels[:128]), eps=0.1, num_noise_samples=20)
    assert not report.passed
    assert report["gradients_finite_and_nonzero"].values["zero_gradient_fraction"] == 1.0
    assert not report["gradients_finite_and_nonzero"].passed
    assert not report["large_eps_breaks_model"].passed
    assert not report["random_noise_not_stronger_than_pgd"].passed
    black_box = report["black_box_not_stronger_than_pgd"]
    assert not black_box.passed and black_box.values["broken_by_black_box_only"] > 0.3
    assert report["eps_zero_equals_clean"].passed  # the bookkeeping itself is still exact
    assert "FAILED" in str(report) and "gradients_finite_and_nonzero" in str(report)


@pytest.mark.numerics
def test_saturated_softmax_is_flagged():
    """Probabilities with a huge temperature: masked gradients via saturation.

    Whether the softmax's gradient is exactly zero (oneDNN kernels) or round-off noise that
    L-inf PGD can still follow (Eigen kernels) depends on the CPU; the verdict must not.
    """
    images, labels = held_out_split()
    saturated = keras.Sequential([
        keras.Input(IMAGE_SHAPE), trained_classifier(), keras.layers.Rescaling(1e4),
        keras.layers.Softmax(),
    ])
    with pytest.warns(UserWarning, match="probabilities"):
        report = sanity_checks(saturated, (images[:64], labels[:64]), eps=0.1,
                               num_noise_samples=10)
    assert not report.passed
    check = report["outputs_are_logits"]
    assert not check.passed and check.values["probability_outputs"]
    assert check.values["saturated_fraction"] > 0.9
    assert "outputs_are_logits" in report.failed and "remove the softmax" in str(report)


@pytest.mark.numerics
def test_saturated_logits_hide_only_the_cross_entropy_gradient():
    """Logits x 1e4 (no softmax): the cross-entropy gradient underflows, the margin one does not."""
    images, labels = held_out_split()
    scaled = keras.Sequential([
        keras.Input(IMAGE_SHAPE), trained_classifier(), keras.layers.Rescaling(1e4),
    ])
    report = sanity_checks(scaled, (images[:64], labels[:64]), eps=0.1, num_noise_samples=10)
    check = report["gradients_finite_and_nonzero"]
    assert not check.passed and not report.passed
    assert check.values["zero_gradient_fraction"] > 0.5
    assert check.values["zero_margin_gradient_fraction"] == 0.0
    assert "loss='margin'" in check.detail
    assert report["outputs_are_logits"].passed


@pytest.mark.numerics
def test_argmax_one_hot_model_is_flagged():
    """A non-differentiable argmax/one-hot head: no gradient reaches the input at all."""
    images, labels = held_out_split()
    one_hot = keras.Sequential([
        keras.Input(IMAGE_SHAPE), trained_classifier(),
        keras.layers.Lambda(lambda logits: 10.0 * tf.one_hot(tf.argmax(logits, axis=-1),
                                                              NUM_CLASSES)),
    ])
    report = sanity_checks(one_hot, (images[:64], labels[:64]), eps=0.1, num_noise_samples=10)
    check = report["gradients_finite_and_nonzero"]
    assert not report.passed and not check.passed
    assert check.values["zero_gradient_fraction"] == 1.0
    assert check.values["zero_margin_gradient_fraction"] == 1.0
    assert "not differentiable" in check.detail


@pytest.mark.numerics
def test_vanishing_gradient_is_relative_to_float32_resolution():
    """A tiny but resolvable gradient is not 'vanishing'; one below the loss's resolution is."""
    from keras_equivariant.metrics.sanity import FLOAT32_RESOLUTION, _gradient_flags

    images, labels = held_out_split()
    kernel = np.random.default_rng(0).normal(size=(int(np.prod(IMAGE_SHAPE)), NUM_CLASSES))
    for scale, expected in [(1e-3, False), (1e-12, True)]:
        dense = keras.layers.Dense(NUM_CLASSES)
        model = keras.Sequential([keras.Input(IMAGE_SHAPE), keras.layers.Flatten(), dense])
        dense.set_weights([scale * kernel.astype("float32"),
                           np.array([1.0, 0.0, -1.0], "float32")])
        _, vanishing, _ = _gradient_flags(model, tf.constant(images[:16]),
                                          tf.constant(labels[:16]), eps=0.1, norm="inf")
        assert np.all(vanishing == expected), (scale, vanishing)
    assert FLOAT32_RESOLUTION == 2.0**-23


def test_item8_non_finite_gradients_are_flagged_and_do_not_poison_attacks():
    """sqrt has an infinite derivative at 0: every image with a black pixel has inf gradients."""
    images, labels = held_out_split()
    images = images[:32].copy()
    images[:, 0, 0, 0] = 0.0
    root = keras.Sequential([
        keras.Input(IMAGE_SHAPE), keras.layers.Lambda(tf.sqrt), keras.layers.Flatten(),
        keras.layers.Dense(NUM_CLASSES),
    ])
    report = sanity_checks(root, (images, labels[:32]), eps=0.05, num_noise_samples=2)
    assert report["gradients_finite_and_nonzero"].values["non_finite_fraction"] == 1.0
    assert not report.passed


class _NoisyInference(keras.layers.Layer):
    """Adds fresh noise on every call, also in inference: a randomized model."""

    def call(self, inputs):
        return inputs + 0.5 * tf.random.normal(tf.shape(inputs))


def test_item8_randomized_model_is_flagged():
    images, labels = held_out_split()
    noisy = keras.Sequential([keras.Input(IMAGE_SHAPE), _NoisyInference(), trained_classifier()])
    report = sanity_checks(noisy, (images[:32], labels[:32]), eps=0.05, num_noise_samples=2)
    assert report["deterministic_model"].values["nondeterministic_fraction"] == 1.0
    assert not report["deterministic_model"].passed


def test_report_serializes(tmp_path):
    images, labels = held_out_split()
    report = sanity_checks(trained_classifier(), (images[:32], labels[:32]), eps=0.05, steps=2,
                           num_noise_samples=2)
    payload = report.to_dict()
    assert payload["passed"] == report.passed and len(payload["checks"]) == len(CHECKS)
    assert report.to_json(tmp_path / "sanity.json").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"eps": [0.1, 0.2]}, "single budget"),
    ({"eps": 0.0}, "> 0"),
    ({"eps": -1.0}, ">= 0"),
    ({"tolerance": 1.5}, "tolerance"),
    ({"steps": 0}, "steps"),
])
def test_bad_arguments_raise(kwargs, message):
    images, labels = held_out_split()
    with pytest.raises(ValueError, match=message):
        sanity_checks(trained_classifier(), (images[:8], labels[:8]), **{"eps": 0.1, **kwargs})


def test_unknown_class_labels_raise():
    images, _ = held_out_split()
    with pytest.raises(ValueError, match="num_classes"):
        sanity_checks(trained_classifier(), (images[:8], np.full(8, NUM_CLASSES)), eps=0.1)
