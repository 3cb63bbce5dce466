"""FGSM / PGD / random-noise attacks: the eps-ball and [0, 1] guarantees, determinism, no
retracing, the PGD >= FGSM and best-iterate properties, the gradient-masking baseline, plus
bad input.

The toy model is a tiny CNN trained on synthetic stripes (tests/attack_toys.py): 3 classes,
8x8 grey images, ~94 % clean accuracy, accuracy falling gradually with eps.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from attack_toys import IMAGE_SHAPE, NUM_CLASSES, Quantize, accuracy, predictions
from scipy import stats

from keras_equivariant.attacks import fgsm, gradient, pgd, random_noise, sample_uniform_ball
from keras_equivariant.attacks.gradient import AttackConfig, compiled_attack


def _l2(delta):
    return np.sqrt(np.sum(np.square(delta.reshape(len(delta), -1)), axis=1))


def _linf(delta):
    return np.max(np.abs(delta.reshape(len(delta), -1)), axis=1)


def _cross_entropy(model, images, labels):
    logits = model(images, training=False)
    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True).numpy()


# --- item 1: PGD at least as strong as FGSM -------------------------------------------------

@pytest.mark.parametrize("norm, eps", [("inf", 0.05), ("inf", 0.1), ("2", 0.5)])
def test_item1_pgd_not_weaker_than_fgsm(toy_model, toy_data, norm, eps):
    images, labels = toy_data
    fgsm_correct = predictions(toy_model, fgsm(toy_model, images, labels, eps, norm=norm)) == labels
    pgd_correct = predictions(
        toy_model, pgd(toy_model, images, labels, eps, steps=20, norm=norm, seed=0)) == labels
    assert pgd_correct.mean() <= fgsm_correct.mean() + 0.005
    broken_by_fgsm = ~fgsm_correct
    assert np.mean(~pgd_correct[broken_by_fgsm]) >= 0.99


# --- item 2: more iterations never help the model ---------------------------------------------

def test_item2_more_steps_never_help(toy_model, toy_data):
    images, labels = toy_data
    by_steps = {steps: accuracy(toy_model, pgd(toy_model, images, labels, 0.1, steps=steps,
                                               seed=0), labels)
                for steps in (5, 10, 20, 40)}
    assert by_steps[10] <= by_steps[5] + 0.005
    assert by_steps[20] <= by_steps[10] + 0.005
    assert by_steps[40] - by_steps[20] >= -0.01  # converged: doubling again changes < 1 %


# --- item 3: restarts only attack still-robust points, the broken set only grows --------------

def test_item3_restarts_only_reattack_robust_points(toy_model, toy_data, monkeypatch):
    images, labels = toy_data
    batch_sizes = []
    original = gradient.compiled_attack

    def recording(model, config, sample_shape):
        attack = original(model, config, sample_shape)

        def wrapper(batch, *args):
            batch_sizes.append(int(batch.shape[0]))
            return attack(batch, *args)

        return wrapper

    once = pgd(toy_model, images, labels, 0.1, steps=3, restarts=1, seed=7)
    monkeypatch.setattr(gradient, "compiled_attack", recording)
    thrice = pgd(toy_model, images, labels, 0.1, steps=3, restarts=3, seed=7)

    once_robust = predictions(toy_model, once) == labels
    thrice_robust = predictions(toy_model, thrice) == labels
    # the first restart is the same attack; later ones see only the examples it left robust
    assert batch_sizes[0] == len(images)
    assert batch_sizes[1] == once_robust.sum() < len(images)
    assert len(batch_sizes) == 1 or all(a >= b for a, b in zip(batch_sizes, batch_sizes[1:]))
    assert not np.any(thrice_robust & ~once_robust)  # broken set only grows
    np.testing.assert_array_equal(thrice[~once_robust], once[~once_robust])


# --- item 4: monotone in eps, eps = 0 equals clean exactly ------------------------------------

def test_item4_accuracy_monotone_in_eps(toy_model, toy_data):
    images, labels = toy_data
    grid = [0.0, 0.02, 0.05, 0.1, 0.2]
    accuracies = [accuracy(toy_model, pgd(toy_model, images, labels, eps, seed=0), labels)
                  for eps in grid]
    assert all(later <= earlier + 0.005 for earlier, later in zip(accuracies, accuracies[1:]))
    assert accuracies[-1] < accuracies[0] - 0.5  # the grid really spans the interesting range


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_item4_eps_zero_equals_clean_exactly(toy_model, toy_data, norm):
    images, labels = toy_data
    adversarial = pgd(toy_model, images, labels, 0.0, norm=norm, random_start=True, restarts=2,
                      seed=0)
    np.testing.assert_array_equal(adversarial, images)
    np.testing.assert_array_equal(fgsm(toy_model, images, labels, 0.0, norm=norm), images)
    assert accuracy(toy_model, adversarial, labels) == accuracy(toy_model, images, labels)


# --- item 5: unbounded eps breaks everything; targeted attacks hit their target ---------------

def test_item5_unbounded_eps_drives_accuracy_to_zero(toy_model, toy_data):
    images, labels = toy_data
    adversarial = pgd(toy_model, images, labels, 1.0, steps=20, seed=0)
    assert accuracy(toy_model, adversarial, labels) <= 0.01


@pytest.mark.parametrize("loss", ["cross_entropy", "margin"])
def test_item5_targeted_attack_reaches_target(toy_model, toy_data, loss):
    images, labels = toy_data
    targets = (labels + 1) % NUM_CLASSES
    adversarial = pgd(toy_model, images, labels, 1.0, steps=20, loss=loss, targeted=True,
                      target_labels=targets, seed=0)
    assert np.mean(predictions(toy_model, adversarial) == targets) >= 0.99


def test_item5_targeted_attack_moves_towards_target_not_away(toy_model, toy_data):
    images, labels = toy_data
    targets = (labels + 1) % NUM_CLASSES
    targeted = predictions(toy_model, pgd(toy_model, images, labels, 0.1, targeted=True,
                                          target_labels=targets, seed=0))
    untargeted = predictions(toy_model, pgd(toy_model, images, labels, 0.1, seed=0))
    assert np.mean(targeted == targets) > np.mean(untargeted == targets)
    assert np.mean(targeted == targets) > 0.3


# --- item 6: random noise (black-box) is not stronger than PGD (white-box) --------------------

def test_item6_random_noise_not_stronger_than_pgd(toy_model, toy_data):
    images, labels = toy_data
    noise_robust = predictions(
        toy_model, random_noise(toy_model, images, labels, 0.1, num_samples=50, seed=0)) == labels
    pgd_robust = predictions(toy_model, pgd(toy_model, images, labels, 0.1, seed=0)) == labels
    assert np.mean(pgd_robust & ~noise_robust) <= 0.002
    assert noise_robust.mean() > pgd_robust.mean() + 0.1  # noise alone is a much weaker attack


# --- item 7: constraint invariants --------------------------------------------------------------

@pytest.mark.parametrize("norm, eps", [("inf", 0.03), ("inf", 0.3), ("2", 0.3), ("2", 2.0)])
@pytest.mark.parametrize("attack", ["fgsm", "pgd", "random_noise"])
def test_item7_inside_eps_ball_and_unit_box(toy_model, toy_data, attack, norm, eps):
    images, labels = toy_data
    if attack == "fgsm":
        adversarial = fgsm(toy_model, images, labels, eps, norm=norm)
    elif attack == "pgd":
        adversarial = pgd(toy_model, images, labels, eps, norm=norm, steps=5, restarts=2, seed=0)
    else:
        adversarial = random_noise(toy_model, images, labels, eps, norm=norm, num_samples=3,
                                   seed=0)
    assert adversarial.shape == images.shape and adversarial.dtype == images.dtype
    assert np.all(np.isfinite(adversarial))
    assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0
    size = (_linf if norm == "inf" else _l2)(adversarial - images)
    assert size.max() <= eps + 1e-6
    assert size.max() > 0.5 * eps  # the attack actually used its budget


def test_item7_dtype_and_container_preserved(toy_model, toy_data):
    images, labels = toy_data
    as_float64 = pgd(toy_model, images.astype(np.float64), labels, 0.05, steps=2, seed=0)
    assert isinstance(as_float64, np.ndarray) and as_float64.dtype == np.float64
    as_tensor = pgd(toy_model, tf.constant(images), tf.constant(labels), 0.05, steps=2, seed=0)
    assert tf.is_tensor(as_tensor) and as_tensor.dtype == tf.float32
    assert as_tensor.shape == images.shape
    binary = (images[:8] > 0.5).astype(np.uint8)
    from_integers = fgsm(toy_model, binary, labels[:8], 0.05)
    assert from_integers.dtype == np.float32 and not np.array_equal(from_integers, binary)


@pytest.mark.parametrize("norm, eps", [("inf", 8 / 255), ("inf", 0.03), ("2", 0.3)])
def test_item7_float16_images_stay_inside_the_eps_ball(toy_model, toy_data, norm, eps):
    """Rounding the float32 attack back to float16 must not step outside the eps-ball."""
    images, labels = toy_data
    half = images.astype(np.float16)
    adversarial = pgd(toy_model, half, labels, eps, norm=norm, seed=0)
    assert adversarial.dtype == np.float16
    delta = adversarial.astype(np.float64) - half.astype(np.float64)
    assert (_linf if norm == "inf" else _l2)(delta).max() <= eps + 1e-6
    assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0


def test_item7_targeted_success_means_target_prediction(toy_model, toy_data):
    images, labels = toy_data
    targets = (labels + 2) % NUM_CLASSES
    adversarial = pgd(toy_model, images, labels, 0.08, targeted=True, target_labels=targets,
                      seed=0)
    predicted = predictions(toy_model, adversarial)
    changed = predicted != predictions(toy_model, images)
    # every prediction the targeted attack changed went to the target, not just anywhere
    assert changed.any() and np.all(predicted[changed] == targets[changed])
    assert _linf(adversarial - images).max() <= 0.08 + 1e-6


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_item7_non_finite_gradients_do_not_poison_the_iterate(toy_data, norm):
    images, labels = toy_data
    images = images[:32].copy()
    images[:, 0, 0, 0] = 0.0  # d sqrt(x)/dx is infinite at 0
    root = keras.Sequential([keras.Input(IMAGE_SHAPE), keras.layers.Lambda(tf.sqrt),
                             keras.layers.Flatten(), keras.layers.Dense(NUM_CLASSES)])
    adversarial = pgd(root, images, labels[:32], 0.05, norm=norm, seed=0)
    assert np.all(np.isfinite(adversarial))
    assert (_linf if norm == "inf" else _l2)(adversarial - images).max() <= 0.05 + 1e-6


# --- item 13 (attack side): random start uniform in the ball ----------------------------------

def test_item13_l2_samples_uniform_in_ball():
    eps, shape = 0.7, (4000, 4, 4, 2)
    dimension = 32
    samples = sample_uniform_ball(shape, eps, "2", seed=(3, 4)).numpy()
    radius = _l2(samples)
    assert radius.max() <= eps * (1 + 1e-6)
    assert stats.kstest((radius / eps) ** dimension, "uniform").pvalue > 0.01
    directions = samples.reshape(len(samples), -1) / radius[:, None]
    assert np.abs(directions.mean(axis=0)).max() < 4 / np.sqrt(len(samples))


def test_item13_linf_samples_uniform_in_cube():
    samples = sample_uniform_ball((500, 4, 4, 1), 0.2, "inf", seed=(1, 2)).numpy()
    assert np.abs(samples).max() <= 0.2
    assert stats.kstest(samples.ravel(), "uniform", args=(-0.2, 0.4)).pvalue > 0.01


def test_item13_pgd_random_start_is_uniform_in_l2_ball():
    """Through the attack path: a constant classifier is never fooled, so the start is returned."""
    constant = keras.Sequential([
        keras.Input(IMAGE_SHAPE), keras.layers.Flatten(),
        keras.layers.Dense(NUM_CLASSES, kernel_initializer="zeros",
                           bias_initializer=keras.initializers.Constant([5.0, 0.0, 0.0])),
    ])
    images = np.full((2000,) + IMAGE_SHAPE, 0.5, np.float32)
    labels = np.zeros(2000, np.int32)
    eps = 0.4  # < 0.5: no clipping to [0, 1] can happen
    delta = random_noise(constant, images, labels, eps, norm="2", num_samples=1, seed=0) - images
    radius = _l2(delta)
    assert stats.kstest((radius / eps) ** 64, "uniform").pvalue > 0.01


# --- best iterate -----------------------------------------------------------------------------

def test_best_iterate_is_kept():
    """A periodic classifier makes PGD bounce: some examples are fooled mid-way but not at the end."""
    periodic = keras.Sequential([
        keras.Input(IMAGE_SHAPE),
        keras.layers.Lambda(lambda x: keras.ops.stack(
            [5 * keras.ops.cos(40 * keras.ops.mean(x, axis=(1, 2, 3))),
             keras.ops.zeros_like(x[:, 0, 0, 0]), keras.ops.zeros_like(x[:, 0, 0, 0])], axis=-1)),
    ])
    levels = np.linspace(0.1, 0.9, 200, dtype=np.float32)
    images = np.ones((200,) + IMAGE_SHAPE, np.float32) * levels[:, None, None, None]
    labels = np.zeros(200, np.int32)
    steps = 6

    def iterates(eps):
        return [pgd(periodic, images, labels, eps, steps=k, step_size=eps, random_start=False,
                    keep_best=False) for k in range(1, steps + 1)]

    def best(eps):
        return pgd(periodic, images, labels, eps, steps=steps, step_size=eps, random_start=False,
                   keep_best=True)

    # eps = 0.05: iterates bounce between fooled and not fooled; a fooling one must be returned
    fooled_at = np.stack([predictions(periodic, x) != labels for x in iterates(0.05)])
    ever_fooled = fooled_at.any(axis=0)
    assert np.sum(ever_fooled & ~fooled_at[-1]) >= 10  # the last iterate really loses successes
    assert np.all(predictions(periodic, best(0.05))[ever_fooled] != labels[ever_fooled])
    # eps = 0.02: many examples are never fooled; the highest-loss iterate must be returned
    path = iterates(0.02)
    never = ~np.stack([predictions(periodic, x) != labels for x in path]).any(axis=0)
    assert never.sum() >= 10
    losses = np.stack([_cross_entropy(periodic, x, labels) for x in path])
    best_loss = _cross_entropy(periodic, best(0.02), labels)
    assert np.all(best_loss[never] >= losses[:, never].max(axis=0) - 1e-4)


# --- compilation: no retracing, cached per model and config -----------------------------------

def test_no_retrace_across_batches_eps_steps_and_restarts(toy_model, toy_data):
    images, labels = toy_data
    config = AttackConfig(norm="inf", loss="margin", targeted=False, random_start=True,
                          keep_best=True)
    for batch, eps, steps, restarts in [(240, 0.01, 3, 1), (17, 0.05, 5, 2), (64, 0.2, 1, 3)]:
        pgd(toy_model, images[:batch], labels[:batch], eps, steps=steps, restarts=restarts,
            loss="margin", step_size=eps / 2, seed=batch)
    attack = compiled_attack(toy_model, config, IMAGE_SHAPE)
    assert attack.experimental_get_tracing_count() == 1
    assert compiled_attack(toy_model, config, IMAGE_SHAPE) is attack


def test_model_called_in_inference_mode():
    model = keras.Sequential([
        keras.Input(IMAGE_SHAPE), keras.layers.BatchNormalization(), keras.layers.Flatten(),
        keras.layers.Dropout(0.9), keras.layers.Dense(NUM_CLASSES),
    ])
    images = np.random.default_rng(0).uniform(0, 1, (32,) + IMAGE_SHAPE).astype(np.float32)
    labels = np.zeros(32, np.int32)
    before = [weight.numpy().copy() for weight in model.weights]
    first = pgd(model, images, labels, 0.05, seed=0)
    second = pgd(model, images, labels, 0.05, seed=0)
    for old, new in zip(before, model.weights):  # BatchNorm moving statistics untouched
        np.testing.assert_array_equal(old, new.numpy())
    np.testing.assert_array_equal(first, second)  # no dropout randomness


def test_mixed_precision_model_is_attacked_in_float32(toy_data):
    images, labels = toy_data
    model = keras.Sequential([
        keras.Input(IMAGE_SHAPE), keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu", dtype="mixed_float16"),
        keras.layers.Dense(NUM_CLASSES, dtype="mixed_float16"),
    ])
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images, labels, epochs=8, verbose=0)
    adversarial = pgd(model, images, labels, 0.1, seed=0)
    assert adversarial.dtype == np.float32 and np.all(np.isfinite(adversarial))
    assert _linf(adversarial - images).max() <= 0.1 + 1e-6
    assert accuracy(model, adversarial, labels) < accuracy(model, images, labels) - 0.2


def test_step_size_default_follows_robustbench_rule(toy_model, toy_data):
    images, labels = toy_data
    default = pgd(toy_model, images, labels, 8 / 255, steps=10, random_start=False)
    explicit = pgd(toy_model, images, labels, 8 / 255, steps=10, step_size=2 / 255,
                   random_start=False)
    np.testing.assert_allclose(default, explicit, atol=1e-6)


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"eps": -0.1}, ">= 0"),
    ({"eps": [0.1, 0.2]}, "single number"),
    ({"steps": 0}, "steps"),
    ({"norm": "l1"}, "Unknown norm"),
    ({"loss": "dlr"}, "Unknown loss"),
    ({"restarts": 3, "random_start": False}, "random_start=True"),
    ({"targeted": True}, "target_labels"),
])
def test_bad_arguments_raise_before_work(toy_model, toy_data, kwargs, message):
    images, labels = toy_data
    with pytest.raises(ValueError, match=message):
        pgd(toy_model, images[:4], labels[:4], **{"eps": 0.1, **kwargs})


@pytest.mark.parametrize("attack", [fgsm, pgd, random_noise])
def test_bad_images_raise(toy_model, toy_data, attack):
    images, labels = toy_data
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        attack(toy_model, images[:4] * 255, labels[:4], 0.1)
    with pytest.raises(ValueError, match="NaN"):
        attack(toy_model, np.where(images[:4] > 0.5, np.nan, images[:4]), labels[:4], 0.1)
    with pytest.raises(ValueError, match="rank-4"):
        attack(toy_model, images[0], labels[:1], 0.1)


@pytest.mark.parametrize("bad_labels, message", [
    (np.zeros((4, 1, 1), np.int32), "shape"),
    (np.zeros(5, np.int32), "shape"),
    (np.array([0, 1, 2, 3]), "num_classes"),
    (np.array([0, -1, 1, 1]), ">= 0"),
])
def test_bad_labels_raise(toy_model, toy_data, bad_labels, message):
    images, _ = toy_data
    with pytest.raises(ValueError, match=message):
        pgd(toy_model, images[:4], bad_labels, 0.1)


def test_bad_target_labels_raise(toy_model, toy_data):
    images, labels = toy_data
    with pytest.raises(ValueError, match="num_classes"):
        pgd(toy_model, images[:4], labels[:4], 0.1, targeted=True, target_labels=[0, 1, 2, 9])
    with pytest.raises(ValueError, match="targeted=True"):
        pgd(toy_model, images[:4], labels[:4], 0.1, target_labels=[0, 1, 2, 1])


def test_probability_outputs_warn(toy_model, toy_data):
    images, labels = toy_data
    softmax_model = keras.Sequential([toy_model, keras.layers.Softmax()])
    with pytest.warns(UserWarning, match="look like probabilities"):
        fgsm(softmax_model, images[:8], labels[:8], 0.05)


def test_labels_default_to_predictions(toy_model, toy_data):
    images, _ = toy_data
    predicted = predictions(toy_model, images)
    np.testing.assert_array_equal(pgd(toy_model, images, None, 0.05, seed=3),
                                  pgd(toy_model, images, predicted, 0.05, seed=3))


def test_masked_model_defeats_gradient_attacks(toy_data):
    """Item 9 (attack side): zero gradients leave FGSM powerless; the sanity checks flag it."""
    images, labels = toy_data
    masked = keras.Sequential([keras.Input(IMAGE_SHAPE), Quantize(4), keras.layers.Flatten(),
                               keras.layers.Dense(NUM_CLASSES)])
    np.testing.assert_array_equal(fgsm(masked, images, labels, 0.1), images)
