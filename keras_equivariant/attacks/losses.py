"""Per-example attack objectives on logits.

Every loss takes float32 logits ``(batch, num_classes)`` and integer labels ``(batch,)`` and
returns one value per example. Attacks *ascend* the untargeted loss against the true label, and
*descend* the loss against the target label in targeted mode, so each example's objective is
independent of the others (the model is called with ``training=False``).
"""

from __future__ import annotations

import tensorflow as tf

from keras_equivariant.utils.validation import check_choice


def cross_entropy_loss(logits, labels):
    """Softmax cross-entropy of ``logits`` against integer ``labels``, one value per example."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def margin_loss(logits, labels):
    """Carlini–Wagner margin ``max_{j != y} z_j - z_y``, one value per example.

    Positive exactly when the example is misclassified. Unlike cross-entropy it does not saturate
    when the softmax does, so its gradient is the raw logit gradient.
    """
    num_classes = tf.shape(logits)[-1]
    true_mask = tf.one_hot(labels, num_classes, on_value=True, off_value=False, dtype=tf.bool)
    true_logit = tf.reduce_max(tf.where(true_mask, logits, -float("inf")), axis=-1)
    other_logit = tf.reduce_max(tf.where(true_mask, -float("inf"), logits), axis=-1)
    return other_logit - true_logit


LOSSES = {"cross_entropy": cross_entropy_loss, "margin": margin_loss}


def get_loss(name: str):
    """Returns the per-example loss function called ``name`` (``"cross_entropy"`` or ``"margin"``)."""
    return LOSSES[check_choice(name, LOSSES, "loss")]
