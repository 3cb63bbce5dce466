"""Small learnable synthetic classification problems and classifiers for attack/metric tests.

Three classes of 8x8 grey images: horizontal stripes, vertical stripes and a checkerboard, with a
random contrast and additive noise, pixels in [0, 1]. A tiny CNN learns them in a few seconds on
CPU, and the random contrast spreads the margins so that accuracy falls gradually with eps.
"""

import functools

import keras
import numpy as np
import tensorflow as tf

IMAGE_SHAPE = (8, 8, 1)
NUM_CLASSES = 3


def stripes_dataset(num_examples, seed):
    """Returns ``(images, labels)``: float32 ``(n, 8, 8, 1)`` in [0, 1] and int32 ``(n,)``."""
    rng = np.random.default_rng(seed)
    rows, cols = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    patterns = np.stack([
        np.where(rows % 2 == 0, 1.0, -1.0),
        np.where(cols % 2 == 0, 1.0, -1.0),
        np.where((rows + cols) % 2 == 0, 1.0, -1.0),
    ])
    labels = rng.integers(0, NUM_CLASSES, num_examples).astype(np.int32)
    contrast = rng.uniform(0.0, 0.25, (num_examples, 1, 1))
    images = 0.5 + contrast * patterns[labels] + rng.normal(0, 0.1, (num_examples, 8, 8))
    return np.clip(images, 0, 1)[..., None].astype(np.float32), labels


def templates_dataset(num_examples, seed, side=16, num_classes=5):
    """Colour images of ``num_classes`` classes, each a fixed blocky random template.

    ``(images, labels)``: float32 ``(n, side, side, 3)`` in [0, 1] and int32 ``(n,)``. The
    template (4x4-pixel blocks, the same for every seed) is scaled by a random contrast in
    [0.005, 0.06] over grey 0.5 plus noise of std 0.05, so a trained CNN is accurate on clean
    images but loses most points between eps 1/255 and 4/255 (CIFAR-like budgets).
    """
    rng = np.random.default_rng(seed)
    templates = np.random.default_rng(123).normal(size=(num_classes, side // 4, side // 4, 3))
    templates = np.repeat(np.repeat(templates, 4, axis=1), 4, axis=2)
    labels = rng.integers(0, num_classes, num_examples).astype(np.int32)
    contrast = rng.uniform(0.005, 0.06, (num_examples, 1, 1, 1))
    noise = rng.normal(0, 0.05, (num_examples, side, side, 3))
    images = 0.5 + contrast * templates[labels] + noise
    return np.clip(images, 0, 1).astype(np.float32), labels


def build_classifier(extra_layers=()):
    """A tiny CNN returning logits; ``extra_layers`` are inserted right after the input."""
    return keras.Sequential([
        keras.Input(IMAGE_SHAPE),
        *extra_layers,
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(NUM_CLASSES),
    ])


def train(model, images, labels, epochs=25):
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images, labels, epochs=epochs, batch_size=64, verbose=0)
    return model


@keras.saving.register_keras_serializable(package="keras_equivariant_tests")
class Quantize(keras.layers.Layer):
    """Rounds pixels to ``levels`` grey levels: zero gradient almost everywhere (gradient masking)."""

    def __init__(self, levels=16, **kwargs):
        super().__init__(**kwargs)
        self.levels = levels

    def call(self, inputs):
        return tf.round(inputs * (self.levels - 1)) / (self.levels - 1)

    def get_config(self):
        return {**super().get_config(), "levels": self.levels}


def accuracy(model, images, labels):
    logits = model.predict(images, verbose=0, batch_size=256)
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def predictions(model, images):
    return np.argmax(model.predict(images, verbose=0, batch_size=256), axis=-1)


@functools.lru_cache(maxsize=None)
def trained_classifier():
    """The tiny CNN trained on 900 synthetic examples; trained once per test process."""
    images, labels = stripes_dataset(900, seed=0)
    return train(build_classifier(), images, labels)


@functools.lru_cache(maxsize=None)
def held_out_split():
    """240 held-out synthetic examples ``(images, labels)``."""
    return stripes_dataset(240, seed=1)


def linear_classifier(num_features, num_classes, seed):
    """A keras Dense classifier on flattened ``(side, side, 1)`` images with random weights.

    The bias makes all logits equal at the grey image 0.5, so decision boundaries pass near it.
    """
    side = int(round(np.sqrt(num_features)))
    rng = np.random.default_rng(seed)
    model = keras.Sequential([keras.Input((side, side, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(num_classes)])
    weights = rng.normal(size=(num_features, num_classes)).astype(np.float32)
    model.layers[-1].set_weights([weights, -0.5 * weights.sum(axis=0)])
    return model


def linear_boundary_distance(model, images, labels, norm):
    """Exact minimal L-inf or L2 distance from each image to a misclassified point.

    For a linear classifier ``z = W x + b`` class ``j`` beats the label ``y`` on the half-space
    ``(w_j - w_y) . x' + b_j - b_y >= 0``, whose distance is the margin divided by the dual norm
    of ``w_j - w_y`` (L1 for L-inf, L2 for L2); the answer is the smallest over ``j != y``. Exact
    as long as the [0, 1] box is not reached (keep images at least the distance away from 0 and
    1). Misclassified images have distance 0.
    """
    weights, bias = (np.asarray(value, np.float64) for value in model.layers[-1].get_weights())
    flat = images.reshape(len(images), -1).astype(np.float64)
    logits = flat @ weights + bias
    rows = np.arange(len(images))
    margins = logits[rows, labels][:, None] - logits                    # (n, classes)
    differences = weights.T[None] - weights.T[labels][:, None]          # (n, classes, d)
    dual = np.abs(differences).sum(-1) if norm == "inf" else np.sqrt((differences ** 2).sum(-1))
    distance = np.where(np.arange(weights.shape[1])[None] == labels[:, None], np.inf,
                        np.maximum(margins, 0.0) / np.maximum(dual, 1e-300))
    return distance.min(axis=1)


TOLERANCE = 1e-4


def perturbation_size(delta, norm):
    """Per-example L-inf or L2 norm of ``delta`` (float64)."""
    flat = delta.reshape(len(delta), -1).astype(np.float64)
    return np.abs(flat).max(1) if norm == "inf" else np.sqrt((flat ** 2).sum(1))


def linear_problem(num_classes, norm, seed=0, num_images=200, side=4):
    """A random linear classifier, images in [0.3, 0.7] and their exact boundary distances."""
    model = linear_classifier(side * side, num_classes, seed)
    images = np.random.default_rng(seed).uniform(0.3, 0.7, (num_images, side, side, 1))
    images = images.astype(np.float32)
    labels = predictions(model, images).astype(np.int32)
    return model, images, labels, linear_boundary_distance(model, images, labels, norm)


def assert_breaks_exactly_the_close_points(model, images, labels, adversarial, distance, eps,
                                           norm, tolerance=TOLERANCE):
    """Every image closer than ``eps - tolerance`` to the boundary is broken, none beyond eps."""
    broken = predictions(model, adversarial) != labels
    close, far = distance < eps - tolerance, distance > eps + TOLERANCE
    assert close.sum() >= 20 and far.sum() >= 20  # the budget splits the data
    np.testing.assert_array_equal(broken[close], True)
    np.testing.assert_array_equal(broken[far], False)
    assert perturbation_size(adversarial - images, norm).max() <= eps + 1e-6
    assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0
