"""Per-example attack objectives on logits.

Every loss takes float32 logits ``(batch, num_classes)`` and integer labels ``(batch,)`` and
returns one value per example. Attacks *ascend* the untargeted loss against the true label, and
*descend* the loss against the target label in targeted mode, so each example's objective is
independent of the others (the model is called with ``training=False``).

``cross_entropy_loss`` and ``margin_loss`` (the losses of FGSM and PGD) run on the TensorFlow and
JAX backends (``keras.ops``; cross-entropy uses TensorFlow's fused kernel on TensorFlow); the DLR
losses of APGD are TensorFlow-only.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_equivariant.utils.validation import check_choice


def cross_entropy_loss(logits, labels):
    """Softmax cross-entropy of ``logits`` against integer ``labels``, one value per example."""
    if keras.backend.backend() == "tensorflow":
        # TensorFlow's fused kernel on the logits as given: keras.ops would differentiate through
        # the input of a final softmax instead, hiding the saturation the sanity checks look for.
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return keras.ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)


def margin_loss(logits, labels):
    """Carlini–Wagner margin ``max_{j != y} z_j - z_y``, one value per example.

    Positive exactly when the example is misclassified. Unlike cross-entropy it does not saturate
    when the softmax does, so its gradient is the raw logit gradient.
    """
    labels = keras.ops.convert_to_tensor(labels)
    classes = keras.ops.arange(keras.ops.shape(logits)[-1], dtype=labels.dtype)
    true_mask = keras.ops.equal(keras.ops.expand_dims(labels, -1), classes)
    true_logit = keras.ops.max(keras.ops.where(true_mask, logits, -float("inf")), axis=-1)
    other_logit = keras.ops.max(keras.ops.where(true_mask, -float("inf"), logits), axis=-1)
    return other_logit - true_logit


def _sorted_logits(logits, count):
    """The ``count`` largest logits per row, in decreasing order (needs ``count`` classes)."""
    num_classes = logits.shape[-1]
    if num_classes is not None and num_classes < count:
        raise ValueError(
            f"The DLR loss needs at least 3 classes (it divides by the gap between the largest "
            f"and third-largest logit); the model returns {num_classes} logits. Use "
            "loss='cross_entropy' for a model with fewer classes."
        )
    return tf.math.top_k(logits, k=count).values


def dlr_loss(logits, labels):
    """Difference of logits ratio (Croce & Hein 2020), one value per example.

    ``(max_{j != y} z_j - z_y) / (z_pi1 - z_pi3)`` with ``z_pi1 >= z_pi2 >= ...`` the sorted logits:
    the :func:`margin_loss` divided by a logit gap, so it is invariant to shifting and rescaling
    the logits (a model cannot hide behind large logits). Needs at least 3 classes.
    """
    top = _sorted_logits(logits, 3)
    return margin_loss(logits, labels) / (top[:, 0] - top[:, 2] + 1e-12)


def targeted_dlr_loss(logits, labels, target_labels):
    """Targeted DLR loss of APGD-T, one value per example (ascended towards ``target_labels``).

    ``(z_t - z_y) / (z_pi1 - (z_pi3 + z_pi4) / 2)``. With 3 classes there is no ``z_pi4`` and the
    denominator is ``z_pi1 - z_pi3``, that of :func:`dlr_loss`.
    """
    num_classes = logits.shape[-1]
    top = _sorted_logits(logits, 3 if num_classes == 3 else 4)
    true_logit = tf.gather(logits, labels, axis=-1, batch_dims=1)
    target_logit = tf.gather(logits, target_labels, axis=-1, batch_dims=1)
    return (target_logit - true_logit) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, -1]) + 1e-12)


LOSSES = {"cross_entropy": cross_entropy_loss, "margin": margin_loss}


def get_loss(name: str):
    """Returns the per-example loss function called ``name`` (``"cross_entropy"`` or ``"margin"``)."""
    return LOSSES[check_choice(name, LOSSES, "loss")]
