"""CLEVER robustness score (Weng et al., ICLR 2018): an *estimate* of a lower bound on the
minimal adversarial perturbation, from extreme-value theory.

For an image ``x0`` with predicted class ``c`` and a target ``j``, ``g(x) = z_c(x) - z_j(x)``
is the logit margin. CLEVER draws ``num_batches`` batches of ``num_samples_per_batch`` points
uniformly in the Lp ball ``B_p(x0, radius)``, keeps the largest dual-norm gradient
``||grad g||_q`` (``1/p + 1/q = 1``) of each batch, fits a reverse Weibull distribution to
these maxima (``keras_equivariant.metrics.weibull``) and uses its location ``L`` as the local
Lipschitz constant. The targeted score is ``min(g(x0) / L, radius)``; the untargeted score is
the minimum over all ``j != c``.

CLEVER is an estimate, not a certificate: gradient masking (zero or tiny sampled gradients)
makes it *over*estimate robustness (Goodfellow 2018, arXiv 1804.07870). The results therefore
carry the number of exactly-zero sampled gradients and warn about them; never report CLEVER
as the sole robustness evidence.

Implementation: sampling, the forward/backward passes and the dual norms run on the device
inside one ``tf.function`` per batch (chunked to bound memory); only the ``num_batches``
maxima per target reach the host. For the untargeted score every chunk of samples gets ONE
forward pass and one backward pass per target ``j`` (gradients of ``z_c - z_j`` from a
persistent tape), so the same samples serve all ``K - 1`` targets.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
import weakref

import keras
import numpy as np
import tensorflow as tf

from keras_equivariant.attacks.gradient import warn_if_probabilities
from keras_equivariant.metrics.weibull import ReverseWeibullFit, fit_reverse_weibull
from keras_equivariant.utils import resume
from keras_equivariant.utils.compiled import cached_for_model
from keras_equivariant.utils.sampling import sample_uniform_ball
from keras_equivariant.utils.validation import require_backend
from keras_equivariant.utils.validation import (check_choice, check_images, check_norm,
                                                check_positive_int)

#: Named sampling budgets: ``(num_batches, num_samples_per_batch)``.
PRESETS = {
    # Official CLEVER code defaults (Nb = 500 batches of Ns = 1024 samples).
    "paper": (500, 1024),
    # For tests/CI and quick looks; below ~100 batches the Weibull fit gets unstable.
    "fast": (100, 256),
}

#: Default ball radius per norm for [0, 1] images (ART test radii; the same order as the
#: official code's L2 <= 3, Linf 0.1, L1 <= 30 on range-1 data).
DEFAULT_RADII = {"1": 40.0, "2": 2.0, "inf": 0.1}

_FORMAT = "keras_equivariant.clever_scores/1"


@dataclasses.dataclass(frozen=True)
class CleverTargetScore:
    """CLEVER score and diagnostics for one target class.

    Attributes:
        target_class: the target class ``j``.
        score: ``min(margin / lipschitz, radius)`` (``radius`` when ``lipschitz`` is 0).
        margin: ``g(x0) = z_c(x0) - z_j(x0)`` from the logits at the clean image.
        fit: the reverse-Weibull fit of the batch maxima (shape, location, scale, K-S p-value,
            status); ``fit.estimate`` is the Lipschitz estimate.
        capped: whether the score was capped at the radius.
        num_zero_gradients: how many of the ``num_batches * num_samples_per_batch`` sampled
            gradients of ``g`` were exactly zero (a gradient-masking symptom).
    """

    target_class: int
    score: float
    margin: float
    fit: ReverseWeibullFit
    capped: bool
    num_zero_gradients: int

    @property
    def lipschitz(self) -> float:
        """The local Lipschitz estimate ``L`` (the fitted location, or the fallback maximum)."""
        return self.fit.estimate

    @property
    def fallback(self) -> bool:
        """Whether the Weibull fit was rejected and the largest sampled norm used instead."""
        return self.fit.fallback

    def to_dict(self) -> dict:
        """Plain-Python dict for JSON."""
        return {
            "target_class": self.target_class,
            "score": self.score,
            "margin": self.margin,
            "lipschitz": self.lipschitz,
            "fallback": self.fallback,
            "capped": self.capped,
            "num_zero_gradients": self.num_zero_gradients,
            "fit": self.fit.to_dict(),
        }

    @classmethod
    def from_dict(cls, payload: dict) -> "CleverTargetScore":
        """Inverse of ``to_dict``."""
        return cls(
            target_class=int(payload["target_class"]),
            score=float(payload["score"]),
            margin=float(payload["margin"]),
            fit=ReverseWeibullFit.from_dict(payload["fit"]),
            capped=bool(payload["capped"]),
            num_zero_gradients=int(payload["num_zero_gradients"]),
        )


@dataclasses.dataclass(frozen=True)
class CleverResult:
    """Result of ``clever_u`` / ``clever_t``.

    The scalar properties (``lipschitz``, ``margin``, ``fallback``, ...) describe the
    *critical* target, the one that gives ``score``; ``targets`` holds every target scored.

    Attributes:
        score: the CLEVER score (minimum over ``targets``).
        predicted_class: the class ``c`` the model predicts for the clean image.
        target_class: the critical target (argmin of the per-target scores).
        norm: perturbation norm ``p``: ``"1"``, ``"2"`` or ``"inf"``.
        radius: the sampling radius ``R`` (scores are capped at it).
        num_batches: number of batches ``Nb`` (number of maxima fitted).
        num_samples_per_batch: samples per batch ``Ns``.
        seed: the sampling seed (``None``: non-deterministic).
        targets: per-target scores and diagnostics, in class order.
    """

    score: float
    predicted_class: int
    target_class: int
    norm: str
    radius: float
    num_batches: int
    num_samples_per_batch: int
    seed: int | None
    targets: tuple[CleverTargetScore, ...]

    def _critical(self) -> CleverTargetScore:
        return next(t for t in self.targets if t.target_class == self.target_class)

    @property
    def lipschitz(self) -> float:
        """Lipschitz estimate of the critical target."""
        return self._critical().lipschitz

    @property
    def margin(self) -> float:
        """Logit margin ``g(x0)`` of the critical target."""
        return self._critical().margin

    @property
    def fit(self) -> ReverseWeibullFit:
        """Reverse-Weibull fit of the critical target (shape, location, scale, K-S p-value)."""
        return self._critical().fit

    @property
    def ks_pvalue(self) -> float:
        """K-S p-value of the critical target's fit (NaN when no fit was attempted)."""
        return self._critical().fit.ks_pvalue

    @property
    def fallback(self) -> bool:
        """Whether the critical target fell back to the largest sampled norm."""
        return self._critical().fallback

    @property
    def capped(self) -> bool:
        """Whether the score equals the radius cap."""
        return self._critical().capped

    @property
    def num_zero_gradients(self) -> int:
        """Exactly-zero sampled gradients, summed over all scored targets."""
        return sum(t.num_zero_gradients for t in self.targets)

    def to_dict(self) -> dict:
        """Plain-Python dict for JSON (NaN becomes ``None``)."""
        payload = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self) if field.name != "targets"
        }
        payload["targets"] = [target.to_dict() for target in self.targets]
        return payload

    @classmethod
    def from_dict(cls, payload: dict) -> "CleverResult":
        """Inverse of ``to_dict``."""
        values = dict(payload)
        values["targets"] = tuple(CleverTargetScore.from_dict(t) for t in payload["targets"])
        return cls(**values)


def clever_u(model, image, num_batches=None, num_samples_per_batch=None, radius=None,
             norm="2", preset=None, seed=0, clip=True, chunk_size=128, verbose=1):
    """Untargeted CLEVER score of one image: the minimum of the targeted scores over all
    classes other than the predicted one.

    Naming: ART (and the official CLEVER code) call the two budgets ``nb_batches`` and
    ``batch_size``. Here they
    are ``num_batches`` and ``num_samples_per_batch``, following the Keras convention of
    ``num_*`` for counts, and because in Keras ``batch_size`` means the number of inputs per
    forward/backward pass -- which is ``chunk_size`` here and independent of the statistical
    sample size ``Ns``. (ART ``nb_batches`` = ``num_batches``, ART ``batch_size`` =
    ``num_samples_per_batch``.)

    Args:
        model: a Keras model mapping ``(batch, H, W, C)`` images in [0, 1] to **logits**
            ``(batch, num_classes)``. Called with ``training=False``. A model that seems to
            output probabilities triggers a warning (CLEVER is defined on logits).
        image: one image ``(H, W, C)`` or ``(1, H, W, C)`` with pixels in [0, 1].
        num_batches: number of batches ``Nb``, i.e. of maxima fitted. ``None``: from the
            preset.
        num_samples_per_batch: samples per batch ``Ns``. ``None``: from the preset.
        radius: radius ``R`` of the sampling ball; scores are capped at it. ``None``: 2.0 for
            L2, 0.1 for Linf, 40.0 for L1 (ART's test radii for [0, 1] images). Use the
            attack budget (e.g. ``8/255`` for Linf) to score relative to a threat model.
        norm: perturbation norm ``p``: ``"2"``, ``"inf"`` or ``"1"`` (also ``2``, ``np.inf``,
            ``1``). Gradients are measured in the dual norm ``q``.
        preset: ``"paper"`` (500 x 1024, the official CLEVER defaults) or ``"fast"``
            (100 x 256). Explicit ``num_batches`` / ``num_samples_per_batch`` override it.
            ``None`` means ``"paper"``.
        seed: integer seed of the on-device sampler; the same seed (and ``chunk_size``) gives
            the same samples for every image and model of the same input shape. ``None``:
            non-deterministic.
        clip: whether to clip samples to the valid pixel range [0, 1] (default, like ART and
            the official code). Clipping moves every coordinate towards ``x0``, so clipped
            samples stay in the ball; the score then estimates robustness over valid images
            only. ``False`` samples the whole ball (the model sees values outside [0, 1]).
        chunk_size: samples per forward/backward pass on the device. Peak memory grows with
            ``chunk_size`` times the model's activation size (plus ``num_classes - 1``
            input-sized gradients per sample for the untargeted score).
        verbose: 0 silent, 1 progress bar over batches.

    Returns:
        A ``CleverResult``: ``score``, the critical ``target_class``, and per-target
        diagnostics (Lipschitz estimate, Weibull shape/location/scale, K-S p-value, fallback
        and cap flags, zero-gradient count, margin).

    Example:

    ```python
    result = keras_equivariant.metrics.clever_u(model, x_test[0], norm="2", preset="fast")
    print(result.score, result.target_class, result.fallback, result.num_zero_gradients)
    ```
    """
    require_backend("keras_equivariant.metrics.clever_u")
    return _clever(model, image, None, num_batches, num_samples_per_batch, radius, norm,
                   preset, seed, clip, chunk_size, verbose)


def clever_t(model, image, target_class, num_batches=None, num_samples_per_batch=None,
             radius=None, norm="2", preset=None, seed=0, clip=True, chunk_size=128, verbose=1):
    """Targeted CLEVER score of one image for ``target_class``.

    Estimates the smallest Lp perturbation that makes ``target_class`` overtake the predicted
    class ``c``: ``min(g(x0) / L, radius)`` with ``g = z_c - z_target``. Only the gradient of
    ``g`` is computed (one backward pass per sample).

    Args:
        model: see ``clever_u``.
        image: see ``clever_u``.
        target_class: an integer class index in ``[0, num_classes)``, different from the
            predicted class.
        num_batches, num_samples_per_batch, radius, norm, preset, seed, clip, chunk_size,
        verbose: see ``clever_u``.

    Returns:
        A ``CleverResult`` with one entry in ``targets``.

    Example:

    ```python
    result = keras_equivariant.metrics.clever_t(model, image, target_class=3, norm="inf",
                                                radius=8 / 255, preset="fast")
    ```
    """
    require_backend("keras_equivariant.metrics.clever_t")
    if isinstance(target_class, bool) or not isinstance(target_class, (int, np.integer)):
        raise ValueError(
            f"`target_class` must be an integer class index; received {target_class!r}."
        )
    return _clever(model, image, int(target_class), num_batches, num_samples_per_batch,
                   radius, norm, preset, seed, clip, chunk_size, verbose)


def clever_scores(model, images, target_classes=None, num_batches=None,
                  num_samples_per_batch=None, radius=None, norm="2", preset=None, seed=0,
                  clip=True, chunk_size=128, output_path=None, verbose=1):
    """CLEVER scores of several images, optionally saved incrementally so a run can resume.

    Each image is scored exactly as by ``clever_u`` (or ``clever_t`` with
    ``target_classes[i]``) with the same ``seed``, so an image's result does not depend on
    the others or on interruptions.

    Args:
        model: see ``clever_u``.
        images: a batch ``(N, H, W, C)`` with pixels in [0, 1].
        target_classes: ``None`` for untargeted scores, or ``N`` integer targets.
        num_batches, num_samples_per_batch, radius, norm, preset, seed, clip, chunk_size:
            see ``clever_u``.
        output_path: optional JSON file. After every image the file is rewritten atomically
            with the configuration and all results so far, under the identity of the run
            (settings, a fingerprint of the images and of the model weights;
            ``keras_equivariant.utils.resume``). If it already exists with the same identity,
            finished images are loaded instead of recomputed; a different configuration,
            other images or another model raises a ``ValueError`` naming what differs.
        verbose: 0 silent, 1 progress bar over images.

    Returns:
        A list of ``N`` ``CleverResult``.

    Example:

    ```python
    results = clever_scores(model, x_test[:20], norm="2", preset="fast",
                            output_path="runs/clever_l2.json")
    print(np.mean([r.score for r in results]))
    ```
    """
    require_backend("keras_equivariant.metrics.clever_scores")
    images = check_images(images)
    num_images = images.shape[0]
    if target_classes is not None:
        target_classes = np.asarray(target_classes)
        if target_classes.shape != (num_images,) or not np.issubdtype(
            target_classes.dtype, np.integer
        ):
            raise ValueError(
                f"`target_classes` must be None or {num_images} integer class indices (one per "
                f"image); received shape {target_classes.shape} and dtype {target_classes.dtype}."
            )
    config = _resolve_config(num_batches, num_samples_per_batch, radius, norm, preset,
                             seed, chunk_size)
    settings = {
        "norm": config["norm"],
        "radius": config["radius"],
        "num_batches": config["num_batches"],
        "num_samples_per_batch": config["num_samples_per_batch"],
        "seed": None if seed is None else int(seed),
        "clip": bool(clip),
        "chunk_size": config["chunk_size"],
        "target_classes": None if target_classes is None else target_classes.tolist(),
    }
    identity = {"format": _FORMAT, **settings, "data": resume.array_fingerprint(images)}
    payload = {"format": _FORMAT, "config": settings, "results": [None] * num_images}
    if output_path is not None:
        identity["model_weights"] = resume.weights_fingerprint(model)
        existing = resume.load(output_path, identity, what="CLEVER results",
                               hint="Pass a new `output_path` or delete the file to start over.")
        if existing is not None:
            payload["results"] = existing["results"]
    results = [None if r is None else CleverResult.from_dict(r) for r in payload["results"]]
    progress = keras.utils.Progbar(num_images, unit_name="image") if verbose else None
    for index in range(num_images):
        if results[index] is None:
            target = None if target_classes is None else int(target_classes[index])
            results[index] = _clever(model, images[index], target, num_batches,
                                     num_samples_per_batch, radius, norm, preset, seed, clip,
                                     chunk_size, verbose=0)
            payload["results"][index] = results[index].to_dict()
            if output_path is not None:
                resume.save(output_path, identity, payload)
        if progress is not None:
            progress.update(index + 1, values=[("score", results[index].score)])
    return results


# --------------------------------------------------------------------------------------------
# Internals.


def _clever(model, image, target_class, num_batches, num_samples_per_batch, radius, norm,
            preset, seed, clip, chunk_size, verbose):
    config = _resolve_config(num_batches, num_samples_per_batch, radius, norm, preset, seed,
                             chunk_size)
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(
            "`image` must be one image (height, width, channels) or (1, height, width, "
            f"channels); received shape {image.shape}. Score a batch with `clever_scores`."
        )
    image = check_images(image, name="image")
    logits = _logits_at(model, image)
    num_classes = logits.shape[0]
    if num_classes < 2:
        raise ValueError(f"CLEVER needs a model with >= 2 classes; it outputs {num_classes}.")
    predicted = int(np.argmax(logits))
    if target_class is not None:
        if not 0 <= target_class < num_classes:
            raise ValueError(
                f"`target_class` must be in [0, {num_classes}); received {target_class}."
            )
        if target_class == predicted:
            raise ValueError(
                f"`target_class` ({target_class}) is the class the model predicts for this "
                "image; CLEVER-t needs a different class (the margin would be <= 0). Pick "
                "another target or use `clever_u`."
            )
        targets = [target_class]
    else:
        targets = [j for j in range(num_classes) if j != predicted]

    sampler = _sampler_for(model, config["norm"], config["chunk_size"], bool(clip),
                           len(targets))
    maxima, zero_counts = sampler.batch_maxima(
        image, predicted, targets, config["radius"], config["num_batches"],
        config["num_samples_per_batch"], seed, verbose)

    scores = []
    for column, target in enumerate(targets):
        fit = fit_reverse_weibull(maxima[:, column])
        margin = float(logits[predicted]) - float(logits[target])
        raw = math.inf if fit.estimate == 0.0 else margin / fit.estimate
        capped = raw >= config["radius"]
        scores.append(CleverTargetScore(
            target_class=target, score=min(raw, config["radius"]), margin=margin, fit=fit,
            capped=bool(capped), num_zero_gradients=int(zero_counts[column])))
    critical = min(scores, key=lambda s: s.score)
    total_samples = config["num_batches"] * config["num_samples_per_batch"]
    if critical.num_zero_gradients:
        warnings.warn(
            f"CLEVER: {critical.num_zero_gradients} of {total_samples} sampled gradients of the "
            f"margin z_{predicted} - z_{critical.target_class} are exactly zero. Zero gradients "
            "(gradient masking: quantization, saturation, non-differentiable layers) make CLEVER "
            "overestimate robustness; check the model with attacks before trusting this score.",
            stacklevel=3)
    return CleverResult(
        score=float(critical.score), predicted_class=predicted,
        target_class=critical.target_class, norm=config["norm"], radius=config["radius"],
        num_batches=config["num_batches"],
        num_samples_per_batch=config["num_samples_per_batch"],
        seed=None if seed is None else int(seed), targets=tuple(scores))


def _resolve_config(num_batches, num_samples_per_batch, radius, norm, preset, seed,
                    chunk_size):
    if preset is not None:
        check_choice(preset, PRESETS, "preset")
    default_batches, default_samples = PRESETS[preset or "paper"]
    norm = check_norm(norm)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ValueError(f"`seed` must be an integer or None; received {seed!r}.")
    return {
        "num_batches": check_positive_int(
            default_batches if num_batches is None else num_batches, "num_batches", minimum=2),
        "num_samples_per_batch": check_positive_int(
            default_samples if num_samples_per_batch is None else num_samples_per_batch,
            "num_samples_per_batch"),
        "radius": DEFAULT_RADII[norm] if radius is None else _check_radius(radius),
        "norm": norm,
        "chunk_size": check_positive_int(chunk_size, "chunk_size"),
    }


def _check_radius(radius) -> float:
    try:
        value = float(radius)
    except (TypeError, ValueError):
        raise ValueError(f"`radius` must be a number > 0; received {radius!r}.") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"`radius` must be finite and > 0; received {radius!r}. It is the radius of the "
            "sampling ball in pixel units ([0, 1] images), e.g. 2.0 for L2 or 8/255 for Linf."
        )
    return value


def _logits_at(model, image) -> np.ndarray:
    outputs = model(tf.convert_to_tensor(image), training=False)
    if isinstance(outputs, (list, tuple, dict)):
        raise ValueError(
            "CLEVER needs a single-output model returning logits (batch, num_classes); "
            f"received a model with {len(outputs)} outputs."
        )
    logits = np.asarray(keras.ops.convert_to_numpy(outputs), dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] != 1:
        raise ValueError(
            "CLEVER needs a model returning logits of shape (batch, num_classes); received "
            f"shape {logits.shape} for one image."
        )
    if not np.all(np.isfinite(logits)):
        raise ValueError("The model returns NaN or infinite logits for this image.")
    warn_if_probabilities(logits, model, stacklevel=5)
    return logits[0]


def _sampler_for(model, norm, chunk_size, clip, num_targets):
    """The compiled sampler of one (model, configuration), from the shared per-model cache."""
    return cached_for_model(
        model, ("clever_sampler", norm, chunk_size, clip, num_targets),
        lambda: _GradientNormSampler(model, norm, chunk_size, clip, num_targets))


class _GradientNormSampler:
    """Per-batch maxima of the dual norms of ``grad (z_c - z_j)`` for a fixed number of
    targets ``j``, computed on the device.

    Each chunk of samples gets one forward pass and one backward pass per target from a
    persistent tape. (On CPU this measured 2.5-3.5x faster than a vectorized
    ``tape.batch_jacobian`` of all logits followed by differencing, for a 10-layer CNN.)
    """

    def __init__(self, model, norm, chunk_size, clip, num_targets):
        self._model = weakref.ref(model)  # the cache is keyed weakly on the model
        self.norm = norm
        self.chunk_size = chunk_size
        self.clip = clip
        self.num_targets = num_targets
        self.generator = tf.random.Generator.from_seed(0)
        self._batch_statistics = tf.function(self._batch_statistics_impl, reduce_retracing=True)

    def batch_maxima(self, image, predicted, targets, radius, num_batches, num_samples, seed,
                     verbose):
        """Returns ``(maxima (num_batches, num_targets), zero_counts (num_targets,))``."""
        if seed is None:
            self.generator.reset_from_seed(int(np.random.SeedSequence().generate_state(1)[0]))
        else:
            self.generator.reset_from_seed(int(seed))
        arguments = (
            tf.convert_to_tensor(image, tf.float32),
            tf.constant(predicted, tf.int32),
            tf.constant(targets, tf.int32),
            tf.constant(radius, tf.float32),
            tf.constant(num_samples, tf.int32),
        )
        maxima = np.empty((num_batches, self.num_targets), np.float64)
        zeros = np.zeros(self.num_targets, np.int64)
        progress = keras.utils.Progbar(num_batches, unit_name="batch") if verbose else None
        for batch in range(num_batches):
            batch_max, batch_zeros = self._batch_statistics(*arguments)
            maxima[batch] = batch_max.numpy()
            zeros += batch_zeros.numpy()
            if progress is not None:
                progress.update(batch + 1)
        return maxima, zeros

    def _batch_statistics_impl(self, image, predicted, targets, radius, num_samples):
        shape = tf.shape(image)[1:]
        maxima = tf.zeros([self.num_targets], tf.float32)
        zeros = tf.zeros([self.num_targets], tf.int32)
        for start in tf.range(0, num_samples, self.chunk_size):
            count = tf.minimum(self.chunk_size, num_samples - start)
            # One stateless draw per chunk, its seed taken from the per-image generator.
            delta = sample_uniform_ball(tf.concat([[count], shape], axis=0), radius, self.norm,
                                    self.generator.make_seeds(1)[:, 0])
            samples = image + delta
            if self.clip:
                samples = tf.clip_by_value(samples, 0.0, 1.0)
            norms = self._margin_gradient_norms(samples, predicted, targets)  # (count, targets)
            maxima = tf.maximum(maxima, tf.reduce_max(norms, axis=0))
            zeros += tf.reduce_sum(tf.cast(tf.equal(norms, 0.0), tf.int32), axis=0)
        return maxima, zeros

    def _margin_gradient_norms(self, samples, predicted, targets):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(samples)
            logits = tf.cast(self._model()(samples, training=False), tf.float32)
            # Samples are independent (training=False), so the gradient of the summed margin
            # is the per-sample gradient.
            margins = [tf.reduce_sum(logits[:, predicted] - logits[:, targets[i]])
                       for i in range(self.num_targets)]
        norms = []
        for margin in margins:
            # A margin that does not depend on the input (e.g. behind a rounding layer) has
            # gradient None; it counts as zero (and is reported as gradient masking).
            gradient = tape.gradient(margin, samples,
                                     unconnected_gradients=tf.UnconnectedGradients.ZERO)
            norms.append(_dual_norm(tf.reshape(gradient, [tf.shape(samples)[0], -1]),
                                    self.norm))
        return tf.stack(norms, axis=1)


def _dual_norm(gradients, norm):
    if norm == "2":
        return tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=-1))
    if norm == "inf":  # dual of Linf is L1
        return tf.reduce_sum(tf.abs(gradients), axis=-1)
    return tf.reduce_max(tf.abs(gradients), axis=-1)  # dual of L1 is Linf

