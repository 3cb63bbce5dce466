"""The models compared across Keras backends by tests/test_backends.py.

Imported by the parent test process (TensorFlow) and by tests/backend_worker.py, which runs in a
subprocess with ``KERAS_BACKEND=jax``. Each case is a small functional model: one layer of the
library on a fixed input shape, or a model builder. The parent builds every case, gives it random
weights, saves it as ``<name>.keras`` and records its outputs; the worker loads the file on the
other backend and recomputes them. ``ATTACK_CASES`` are FGSM and PGD runs that both backends
compute on the same model, images and seed (:func:`run_attack_case`).
"""

import keras
import numpy as np

from keras_equivariant import attacks, models
from keras_equivariant.layers import (
    Conv2D,
    GroupBatchNormalization,
    GroupFlatten,
    GroupPooling,
    RotationConv2D,
    RotationScaleConv2D,
    ScaleConv2D,
)


def _wrap(layer, input_shape):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, layer(inputs))


#: name -> (build(), input shape without batch). Layers on tiny maps; every lifting and
#: group-to-group form; every group of the rotation layers.
LAYER_CASES = {
    "rotation_c4_lifting": (lambda: _wrap(RotationConv2D(4, 3, group="C4"), (9, 9, 3)), (9, 9, 3)),
    "rotation_d4_group_strided": (
        lambda: _wrap(RotationConv2D(3, 3, group="D4", strides=2), (9, 9, 8, 2)), (9, 9, 8, 2)),
    "rotation_c8_lifting": (
        lambda: _wrap(RotationConv2D(2, 5, group="C8", activation="relu"), (9, 9, 2)), (9, 9, 2)),
    "scale_lifting_blur": (
        lambda: _wrap(ScaleConv2D(3, 3, scales=(1, 2), blur_sigma=0.8), (12, 12, 2)), (12, 12, 2)),
    "scale_group": (
        lambda: _wrap(ScaleConv2D(3, 3, scales=(1, 2, 4), scale_size=2),
                      (12, 12, 3, 2)), (12, 12, 3, 2)),
    "rotation_scale_group": (
        lambda: _wrap(RotationScaleConv2D(2, 3, group="C4", scales=(1, 2), scale_size=2),
                      (9, 9, 8, 2)), (9, 9, 8, 2)),
    "group_pooling_subgroup": (
        lambda: _wrap(GroupPooling("mean", group="D4", subgroup="C4"), (5, 5, 8, 3)), (5, 5, 8, 3)),
    "group_batch_normalization": (
        lambda: _wrap(GroupBatchNormalization(), (5, 5, 4, 3)), (5, 5, 4, 3)),
    "group_flatten": (lambda: _wrap(GroupFlatten(), (5, 5, 4, 3)), (5, 5, 4, 3)),
    "conv2d": (lambda: _wrap(Conv2D(4, 3, padding="same"), (7, 7, 3)), (7, 7, 3)),
    "conv2d_strided": (lambda: _wrap(Conv2D(4, 3, strides=2), (7, 7, 3)), (7, 7, 3)),
}

BUILDERS = ("BaselineCNN", "CascadedGCNN", "ParallelGCNN", "ParallelRotScaleGCNN",
            "WeightedParallelGCNN")
VARIANTS = ("equivariant", "paper")


def _builder_case(builder, depth, variant):
    def build():
        return getattr(models, builder)(num_classes=3, depth=depth, variant=variant)
    return build, (32, 32, 3)


#: Every builder and variant at depth 4.
MODEL_CASES = {
    f"{builder}_{variant}_depth4": _builder_case(builder, 4, variant)
    for builder in BUILDERS for variant in VARIANTS
}
#: The builders compared by the default tests (the equivariant variants: every group layer kind
#: of the builders); the paper variants are compared by the slow tests.
DEFAULT_MODEL_CASES = {name: case for name, case in MODEL_CASES.items()
                       if name.endswith("_equivariant_depth4")}
PAPER_MODEL_CASES = {name: case for name, case in MODEL_CASES.items()
                     if name not in DEFAULT_MODEL_CASES}
#: Depth 10 (one model per kind of trunk), compared by the slow tests only.
DEEP_MODEL_CASES = {
    "CascadedGCNN_equivariant_depth10": _builder_case("CascadedGCNN", 10, "equivariant"),
    "ParallelRotScaleGCNN_paper_depth10": _builder_case("ParallelRotScaleGCNN", 10, "paper"),
}

#: A tiny plain classifier attacked alongside a depth-4 builder by ``ATTACK_CASES``.
ATTACKED_MODEL_CASES = {
    "tiny_classifier": (
        lambda: keras.Sequential([keras.Input((8, 8, 1)),
                                  keras.layers.Conv2D(4, 3, activation="relu"),
                                  keras.layers.Flatten(), keras.layers.Dense(3)]), (8, 8, 1)),
}

CASES = {**LAYER_CASES, **MODEL_CASES, **DEEP_MODEL_CASES, **ATTACKED_MODEL_CASES}

#: name -> (model case, attack of ``keras_equivariant.attacks``, its keyword arguments): computed
#: on both backends from the same weights, images, labels and seed (PGD's random start is drawn
#: alike on both), which must agree on every robust flag and on the adversarial images.
ATTACK_CASES = {
    f"{attack}_{model}": (model, attack, arguments)
    for model in ("CascadedGCNN_equivariant_depth4", "tiny_classifier")
    for attack, arguments in (("fgsm", {"eps": 8 / 255}),
                              ("pgd", {"eps": 8 / 255, "steps": 10, "seed": 7}))
}

#: The cases trained for one step on both backends (same weights, same batch, plain SGD) by the
#: default tests (a group convolution, a scale convolution, the batch normalization), and by the
#: slow tests (every builder: a JAX train step compiles for seconds each).
FIT_CASES = ("rotation_d4_group_strided", "scale_group", "group_batch_normalization")
SLOW_FIT_CASES = tuple(MODEL_CASES)


def randomize_weights(model, seed=0):
    """Random weights, so that the comparison is not of zero biases or unit BN statistics."""
    rng = np.random.default_rng(seed)
    values = []
    for weight in model.weights:
        shape = tuple(weight.shape)
        if "variance" in weight.path:
            values.append(rng.uniform(0.5, 1.5, shape))
        else:
            values.append(rng.uniform(-0.5, 0.5, shape))
    model.set_weights([value.astype(np.float32) for value in values])


def inputs_for(name, batch=2, seed=1):
    shape = CASES[name][1]
    return np.random.default_rng(seed).random((batch, *shape), dtype=np.float32)


def fit_targets(model, inputs):
    """Integer labels for a classifier (rank-2 logits), else zeros shaped like the output."""
    if len(model.output_shape) == 2:
        return np.arange(len(inputs)) % model.output_shape[-1]
    return np.zeros((len(inputs), *model.output_shape[1:]), np.float32)


def fit_one_step(model, inputs):
    """One SGD step (no momentum: the update is deterministic) on one batch; returns the loss."""
    classifier = len(model.output_shape) == 2
    loss = (keras.losses.SparseCategoricalCrossentropy(from_logits=True) if classifier
            else keras.losses.MeanSquaredError())
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=loss)
    history = model.fit(inputs, fit_targets(model, inputs), batch_size=len(inputs), epochs=1,
                        shuffle=False, verbose=0)
    return float(history.history["loss"][0])


def outputs(model, inputs):
    return np.asarray(keras.ops.convert_to_numpy(model(inputs, training=False)), np.float32)


def attack_batch(name, batch=4, seed=2):
    """The images and labels ``(labels cycling over the classes)`` of attack case ``name``."""
    model_case = ATTACK_CASES[name][0]
    return inputs_for(model_case, batch, seed), np.arange(batch, dtype=np.int32) % 3


def run_attack_case(model, name):
    """Attack case ``name`` on ``model`` (this process' backend): the adversarial images and the
    robust flags (the model still predicts the true label there)."""
    _, attack, arguments = ATTACK_CASES[name]
    images, labels = attack_batch(name)
    adversarial = getattr(attacks, attack)(model, images, labels, **arguments)
    robust = np.argmax(outputs(model, adversarial), axis=-1) == labels
    return np.asarray(adversarial, np.float32), robust
