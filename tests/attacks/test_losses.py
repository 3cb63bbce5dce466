import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_equivariant.attacks.losses import cross_entropy_loss, get_loss, margin_loss


def test_cross_entropy_matches_keras():
    logits = np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32)
    labels = np.arange(16) % 5
    expected = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    np.testing.assert_allclose(cross_entropy_loss(logits, labels), expected, rtol=1e-5)


def test_margin_is_positive_exactly_when_misclassified():
    logits = np.random.default_rng(1).normal(size=(200, 4)).astype(np.float32)
    labels = np.random.default_rng(2).integers(0, 4, 200).astype(np.int32)
    margin = margin_loss(tf.constant(logits), tf.constant(labels)).numpy()
    misclassified = logits.argmax(axis=1) != labels
    np.testing.assert_array_equal(margin > 0, misclassified)
    best_other = np.where(np.eye(4, dtype=bool)[labels], -np.inf, logits).max(axis=1)
    np.testing.assert_allclose(margin, best_other - logits[np.arange(200), labels], rtol=1e-6)


def test_margin_does_not_saturate():
    logits = tf.constant([[100.0, 0.0, -3.0]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        margin = margin_loss(logits, tf.constant([0]))
        cross_entropy = cross_entropy_loss(logits, tf.constant([0]))
    np.testing.assert_allclose(tape.gradient(margin, logits), [[-1.0, 1.0, 0.0]])
    assert np.all(tape.gradient(cross_entropy, logits).numpy() == 0)  # saturated softmax


def test_unknown_loss_lists_choices():
    with pytest.raises(ValueError, match="cross_entropy"):
        get_loss("hinge")
