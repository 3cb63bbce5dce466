"""Tests for keras_equivariant.metrics.clever and keras_equivariant.metrics.weibull."""

import json

import keras
import numpy as np
import pytest
import scipy.stats

from keras_equivariant import metrics
from keras_equivariant.metrics import clever as clever_module
from keras_equivariant.metrics.weibull import fit_reverse_weibull

SHAPE = (4, 4, 2)
DIMENSION = int(np.prod(SHAPE))
NUM_CLASSES = 5
# Small budgets keep the suite fast; the statistics are not the point of these tests.
SMALL = dict(num_batches=12, num_samples_per_batch=24, verbose=0)


def _linear_model(rng):
    """logits = W x + b with logits at the test image of order 1 (well-conditioned margins)."""
    weights = rng.normal(size=(DIMENSION, NUM_CLASSES)).astype("float32")
    image = rng.uniform(0.4, 0.6, size=SHAPE).astype("float32")
    wanted_logits = np.array([2.0, 0.5, 1.0, -1.0, 0.0])
    bias = (wanted_logits - image.reshape(-1).astype(np.float64) @ weights).astype("float32")
    inputs = keras.Input(SHAPE)
    outputs = keras.layers.Dense(NUM_CLASSES)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([weights, bias])
    return model, image, weights.astype(np.float64), bias.astype(np.float64)


def _small_cnn(seed=0, logit_scale=None, logit_offset=0.0):
    """A tiny ReLU CNN; optionally ``logits * logit_scale + logit_offset`` with the same weights."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(NUM_CLASSES)(x)
    if logit_scale is not None:
        outputs = keras.layers.Rescaling(logit_scale, offset=logit_offset)(outputs)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(7).uniform(0.2, 0.8, size=SHAPE).astype("float32")


# ----------------------------------------------------------------------------- exactness


@pytest.mark.numerics
@pytest.mark.parametrize("norm, dual_order", [("1", np.inf), ("2", 2), ("inf", 1)])
def test_linear_model_gives_exact_boundary_distance(norm, dual_order):
    model, image, weights, bias = _linear_model(np.random.default_rng(3))
    logits = image.reshape(-1).astype(np.float64) @ weights + bias
    predicted = int(np.argmax(logits))
    expected = {
        j: (logits[predicted] - logits[j])
        / np.linalg.norm(weights[:, predicted] - weights[:, j], ord=dual_order)
        for j in range(NUM_CLASSES) if j != predicted
    }
    result = metrics.clever_u(model, image, norm=norm, radius=50.0, **SMALL)

    assert result.predicted_class == predicted
    assert {t.target_class for t in result.targets} == set(expected)
    for target in result.targets:
        # Constant gradient -> zero-variance maxima -> exact fallback to the (constant) max.
        assert target.fit.status == "constant" and target.fallback
        assert np.isnan(target.fit.ks_pvalue)
        assert not target.capped
        np.testing.assert_allclose(target.score, expected[target.target_class], rtol=1e-5)
    exact_distance = min(expected.values())
    np.testing.assert_allclose(result.score, exact_distance, rtol=1e-5)
    assert result.target_class == min(expected, key=expected.get)


def test_linear_model_score_is_capped_at_radius():
    model, image, _, _ = _linear_model(np.random.default_rng(3))
    radius = 1e-3
    result = metrics.clever_u(model, image, norm="2", radius=radius, **SMALL)
    assert result.score == radius and result.capped


# ----------------------------------------------------------------------------- invariances


@pytest.mark.parametrize("scale, offset", [(3.7, 0.0), (1.0, 5.3), (0.3, -2.0)])
def test_score_invariant_to_logit_scale_and_shift(image, scale, offset):
    reference = metrics.clever_u(_small_cnn(), image, norm="2", radius=0.5, seed=11, **SMALL)
    transformed = metrics.clever_u(_small_cnn(logit_scale=scale, logit_offset=offset), image,
                                   norm="2", radius=0.5, seed=11, **SMALL)
    assert transformed.predicted_class == reference.predicted_class
    assert transformed.target_class == reference.target_class
    np.testing.assert_allclose(transformed.score, reference.score, rtol=1e-4)
    np.testing.assert_allclose(transformed.lipschitz, scale * reference.lipschitz, rtol=1e-4)
    assert not reference.capped  # otherwise the check would be vacuous


def test_untargeted_equals_min_over_targeted(image):
    model = _small_cnn()
    untargeted = metrics.clever_u(model, image, norm="inf", radius=0.1, seed=5, **SMALL)
    targeted = {
        j: metrics.clever_t(model, image, j, norm="inf", radius=0.1, seed=5, **SMALL)
        for j in range(NUM_CLASSES) if j != untargeted.predicted_class
    }
    for target in untargeted.targets:
        np.testing.assert_allclose(target.score, targeted[target.target_class].score, rtol=1e-5)
    np.testing.assert_allclose(untargeted.score, min(r.score for r in targeted.values()),
                               rtol=1e-5)
    assert untargeted.target_class == min(targeted, key=lambda j: targeted[j].score)
    assert all(len(r.targets) == 1 for r in targeted.values())


def test_same_seed_reproduces_and_scores_stay_below_radius(image):
    model = _small_cnn()
    first = metrics.clever_u(model, image, norm="2", radius=0.5, seed=3, **SMALL)
    second = metrics.clever_u(model, image, norm="2", radius=0.5, seed=3, **SMALL)
    assert first == second
    assert all(0.0 <= t.score <= 0.5 for t in first.targets)
    assert all(t.lipschitz >= t.fit.max_sample > 0 for t in first.targets)
    unseeded = metrics.clever_u(model, image, norm="2", radius=0.5, seed=None, **SMALL)
    assert unseeded.seed is None and 0.0 < unseeded.score <= 0.5


@pytest.mark.parametrize("norm, dual_order", [("1", np.inf), ("2", 2), ("inf", 1)])
def test_device_gradient_norms_match_per_sample_tape(norm, dual_order):
    import tensorflow as tf

    model = _small_cnn()
    samples = tf.constant(np.random.default_rng(4).uniform(size=(6, *SHAPE)), tf.float32)
    targets = [0, 2, 4]
    sampler = clever_module._GradientNormSampler(model, norm, chunk_size=4, clip=True,
                                                 num_targets=len(targets))
    norms = sampler._margin_gradient_norms(samples, tf.constant(1), tf.constant(targets))
    for row in range(samples.shape[0]):
        for column, target in enumerate(targets):
            x = samples[row:row + 1]
            with tf.GradientTape() as tape:
                tape.watch(x)
                logits = model(x, training=False)
                margin = logits[0, 1] - logits[0, target]
            gradient = tape.gradient(margin, x).numpy().ravel()
            expected = np.linalg.norm(gradient, ord=dual_order)
            np.testing.assert_allclose(norms[row, column], expected, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- sampling


# ----------------------------------------------------------------------------- diagnostics


def test_zero_gradients_are_counted_flagged_and_warned(image):
    inputs = keras.Input(SHAPE)
    quantized = keras.layers.Lambda(lambda x: keras.ops.round(x * 4.0) / 4.0)(inputs)
    outputs = keras.layers.Dense(NUM_CLASSES)(keras.layers.Flatten()(quantized))
    model = keras.Model(inputs, outputs)
    with pytest.warns(UserWarning, match="exactly zero"):
        # chunk_size 7 does not divide the 24 samples per batch: every sample counts once.
        result = metrics.clever_u(model, image, norm="2", radius=0.5, chunk_size=7, **SMALL)
    total = SMALL["num_batches"] * SMALL["num_samples_per_batch"]
    assert result.score == 0.5 and result.capped
    assert all(t.fit.status == "zero" and t.num_zero_gradients == total for t in result.targets)
    assert result.num_zero_gradients == total * (NUM_CLASSES - 1)


def test_probability_outputs_warn(image):
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                              keras.layers.Dense(NUM_CLASSES, activation="softmax")])
    with pytest.warns(UserWarning, match="probabilities"):
        metrics.clever_u(model, image, **SMALL)


def test_presets_and_overrides(image):
    model, linear_image, _, _ = _linear_model(np.random.default_rng(3))
    fast = metrics.clever_u(model, linear_image, preset="fast", verbose=0)
    assert (fast.num_batches, fast.num_samples_per_batch) == (100, 256)
    assert fast.radius == 2.0 and fast.norm == "2"
    override = metrics.clever_u(model, linear_image, preset="fast", num_batches=3, verbose=0,
                                norm=np.inf)
    assert (override.num_batches, override.num_samples_per_batch) == (3, 256)
    assert override.norm == "inf" and override.radius == 0.1
    assert clever_module.PRESETS["paper"] == (500, 1024)


def test_progress_bar_over_batches(image, capsys):
    model, linear_image, _, _ = _linear_model(np.random.default_rng(3))
    metrics.clever_u(model, linear_image, num_batches=3, num_samples_per_batch=4, verbose=1)
    assert "3/3" in capsys.readouterr().out


def test_result_round_trips_through_json(image):
    result = metrics.clever_u(_small_cnn(), image, **SMALL)
    restored = metrics.CleverResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert restored.score == result.score and restored.targets[0].fit == result.targets[0].fit
    assert restored.to_dict() == result.to_dict()


# ----------------------------------------------------------------------------- clever_scores


def test_clever_scores_matches_clever_u_and_resumes(tmp_path, monkeypatch):
    model = _small_cnn()
    images = np.random.default_rng(2).uniform(0.2, 0.8, size=(2, *SHAPE)).astype("float32")
    path = tmp_path / "clever.json"
    results = metrics.clever_scores(model, images, output_path=path, seed=9, **SMALL)
    for image, result in zip(images, results):
        assert result == metrics.clever_u(model, image, seed=9, **SMALL)

    # Simulate an interrupted run: only the first image was written.
    payload = json.loads(path.read_text())
    payload["results"][1] = None
    path.write_text(json.dumps(payload))
    calls = []
    original = clever_module._clever
    monkeypatch.setattr(clever_module, "_clever",
                        lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    resumed = metrics.clever_scores(model, images, output_path=path, seed=9, **SMALL)
    assert len(calls) == 1
    assert resumed == results
    assert json.loads(path.read_text())["results"][1] is not None

    with pytest.raises(ValueError, match="different configuration"):
        metrics.clever_scores(model, images, output_path=path, seed=10, **SMALL)


def test_clever_scores_refuses_to_resume_with_another_model(tmp_path):
    images = np.random.default_rng(2).uniform(0.2, 0.8, size=(2, *SHAPE)).astype("float32")
    path = tmp_path / "clever.json"
    metrics.clever_scores(_small_cnn(seed=0), images, output_path=path, seed=9, **SMALL)
    with pytest.raises(ValueError, match="different model"):
        metrics.clever_scores(_small_cnn(seed=1), images, output_path=path, seed=9, **SMALL)


def test_clever_scores_targeted(image):
    model = _small_cnn()
    predicted = int(np.argmax(model(image[None])))
    target = (predicted + 1) % NUM_CLASSES
    (result,) = metrics.clever_scores(model, image[None], target_classes=[target], **SMALL)
    assert result.target_class == target and len(result.targets) == 1


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("kwargs, message", [
    (dict(norm="3"), "Unknown norm"),
    (dict(norm="l2"), "Unknown norm"),
    (dict(norm=3), "Unknown norm"),
    (dict(norm=None), "Unknown norm"),
    (dict(radius=0.0), "radius"),
    (dict(radius=-1.0), "radius"),
    (dict(radius=float("nan")), "radius"),
    (dict(preset="slow"), r"preset.*'paper', 'fast'"),
    (dict(num_batches=1), "num_batches"),
    (dict(num_samples_per_batch=0), "num_samples_per_batch"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(seed=1.5), "seed"),
])
def test_bad_arguments_raise(image, kwargs, message):
    model = _small_cnn()
    arguments = dict(SMALL, **kwargs)
    with pytest.raises(ValueError, match=message):
        metrics.clever_u(model, image, **arguments)


@pytest.mark.parametrize("bad_image, message", [
    (np.full(SHAPE, 1.5, "float32"), r"\[0.0, 1.0\]"),
    (np.full(SHAPE, -0.2, "float32"), r"\[0.0, 1.0\]"),
    (np.full(SHAPE, np.nan, "float32"), "NaN"),
    (np.full((2, *SHAPE), 0.5, "float32"), "clever_scores"),
    (np.full((4, 4), 0.5, "float32"), "one image"),
])
def test_bad_images_raise(bad_image, message):
    with pytest.raises(ValueError, match=message):
        metrics.clever_u(_small_cnn(), bad_image, **SMALL)


def test_bad_target_classes_raise(image):
    model = _small_cnn()
    predicted = int(np.argmax(model(image[None])))
    with pytest.raises(ValueError, match="predicts"):
        metrics.clever_t(model, image, predicted, **SMALL)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        metrics.clever_t(model, image, NUM_CLASSES, **SMALL)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        metrics.clever_t(model, image, -1, **SMALL)
    with pytest.raises(ValueError, match="integer"):
        metrics.clever_t(model, image, 1.0, **SMALL)
    with pytest.raises(ValueError, match="target_classes"):
        metrics.clever_scores(model, image[None], target_classes=[1, 2], **SMALL)


# ----------------------------------------------------------------------------- Weibull fit


def test_weibull_fit_recovers_location():
    location, shape, scale = 0.45, 3.0, 0.05
    samples = scipy.stats.weibull_max.rvs(shape, loc=location, scale=scale, size=500,
                                          random_state=np.random.default_rng(0))
    fit = fit_reverse_weibull(samples)
    assert fit.status == "fit" and not fit.fallback
    assert fit.estimate == fit.location >= samples.max()
    np.testing.assert_allclose(fit.location, location, rtol=0.02)
    np.testing.assert_allclose(fit.shape, shape, rtol=0.3)
    np.testing.assert_allclose(fit.scale, scale, rtol=0.3)
    assert fit.ks_pvalue > 0.01


def test_weibull_fit_is_scale_equivariant():
    samples = scipy.stats.weibull_max.rvs(2.0, loc=1.0, scale=0.2, size=100,
                                          random_state=np.random.default_rng(1))
    fit, scaled = fit_reverse_weibull(samples), fit_reverse_weibull(8.0 * samples)
    np.testing.assert_allclose(scaled.location, 8.0 * fit.location, rtol=1e-12)
    np.testing.assert_allclose(scaled.shape, fit.shape, rtol=1e-12)


def test_weibull_fit_fallbacks():
    samples = scipy.stats.weibull_max.rvs(2.0, loc=1.0, scale=0.2, size=100,
                                          random_state=np.random.default_rng(1))
    constant = fit_reverse_weibull(np.full(50, 0.3))
    assert (constant.status, constant.estimate, constant.fallback) == ("constant", 0.3, True)
    zero = fit_reverse_weibull(np.zeros(50))
    assert (zero.status, zero.estimate) == ("zero", 0.0)
    diverged = fit_reverse_weibull(samples, max_location_ratio=1.0)
    assert diverged.status == "diverged" and diverged.estimate == samples.max()
    assert diverged.location > samples.max()  # the rejected fit stays visible
    rejected = fit_reverse_weibull(samples, min_pvalue=1.1)
    assert rejected.status == "ill_conditioned" and rejected.estimate == samples.max()


@pytest.mark.parametrize("samples", [[1.0], [[1.0, 2.0]], [1.0, np.nan], [1.0, -0.5]])
def test_weibull_fit_rejects_bad_samples(samples):
    with pytest.raises(ValueError, match="samples"):
        fit_reverse_weibull(samples)
