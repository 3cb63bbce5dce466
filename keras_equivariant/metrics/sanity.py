"""Gradient-masking sanity checks for a robustness evaluation.

A model that *looks* robust because its gradients are useless (zero, shattered, saturated) fails
at least one of these, following Athalye et al. 2018 and Carlini et al. 2019:

* ``pgd_not_weaker_than_fgsm``: iterative PGD must not leave more examples robust than one-step
  FGSM (accuracy_PGD <= accuracy_FGSM + tolerance).
* ``more_steps_do_not_help_the_model``: doubling the PGD steps must not raise accuracy.
* ``eps_zero_equals_clean``: PGD at eps = 0 must give exactly the clean accuracy.
* ``accuracy_decreases_with_eps``: accuracy at eps/2 >= at eps >= at the unbounded budget.
* ``large_eps_breaks_model``: an unbounded budget (L-inf 1.0, i.e. the whole [0, 1] cube, or L2
  ``sqrt(d)``) must drive accuracy to at most :data:`LARGE_EPS_MAX_ACCURACY`.
* ``random_noise_not_stronger_than_pgd``: uniform noise in the same ball must not break
  examples that PGD leaves robust (fraction of examples <= tolerance).
* ``outputs_are_logits``: the model must not output saturated probabilities. When its outputs
  are non-negative rows summing to 1 (a final softmax) and the top probability of more than a
  ``tolerance`` fraction of the examples is within :data:`SATURATED_PROBABILITY_GAP` of 1, the
  softmax's gradient is float32 round-off: whether an attack gets a zero gradient or a noisy one
  then depends on which CPU kernels computed the softmax, so no attack result on such a model
  means anything. Decided on the outputs alone, so the verdict is the same on every CPU.
* ``black_box_not_stronger_than_pgd``: the Square attack (a score-based random search that
  reads only the logits, so a useless gradient cannot stop it) must not break examples that
  white-box PGD (neither PGD-k nor PGD-2k) leaves robust, beyond :data:`BLACK_BOX_SLACK` of the
  examples (a fixed-step PGD is not optimal, so a healthy model shows a little of this too).
  The strongest single check against gradient masking (Croce & Hein 2020).
* ``gradients_finite_and_nonzero``: the gradient of the loss the attacks use (softmax
  cross-entropy of the outputs) must be finite, and must not vanish for more than a
  ``tolerance`` fraction of the clean examples. It vanishes when even its first-order effect
  over the whole eps-ball, ``eps * ||gradient||_dual`` (L1 norm for L-inf, L2 for L2), is at most
  one float32 resolution step of the loss (``2**-23 * |loss|``): an attack following it cannot
  change the loss at all. Exactly-zero gradients (rounding, argmax) always vanish. The margin
  gradient is reported beside it to tell a saturated softmax (cross-entropy vanishes, margin does
  not: attack with ``loss="margin"``) from a non-differentiable model (both vanish).
* ``deterministic_model``: two forward passes on the same batch must agree (a randomized model
  needs Expectation-over-Transformation attacks, which this library does not run).
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from keras_equivariant.attacks.gradient import (
    DEFAULT_EPS,
    looks_like_probabilities,
    model_logits,
    normalize_norm,
)
from keras_equivariant.attacks.losses import cross_entropy_loss, margin_loss
from keras_equivariant.attacks.protocols import AttackSpec
from keras_equivariant.metrics.robust_accuracy import (
    as_dataset,
    batch_seed,
    iterate_batches,
    robust_flags,
)
from keras_equivariant.utils.io import atomic_write_json
from keras_equivariant.utils.validation import (
    check_eps,
    check_positive_int,
    require_backend,
)

LARGE_EPS_MAX_ACCURACY = 0.02
# Top probabilities closer to 1 than this (about 16 float32 steps below 1) leave the softmax's
# gradient, p * (1 - p), with a handful of significant bits: it is round-off, not a derivative.
SATURATED_PROBABILITY_GAP = 2.0**-20
FLOAT32_RESOLUTION = float(np.finfo(np.float32).eps)  # 2**-23: relative spacing of float32


@dataclasses.dataclass
class SanityCheck:
    """One check: its name, whether it passed, a one-line explanation with numbers, raw values."""

    name: str
    passed: bool
    detail: str
    values: dict


@dataclasses.dataclass
class SanityReport:
    """The result of :func:`sanity_checks`; ``passed`` is True only if every check passed."""

    model_name: str
    eps: float
    norm: str
    num_examples: int
    clean_accuracy: float
    checks: list

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> list[str]:
        """Names of the failed checks."""
        return [check.name for check in self.checks if not check.passed]

    def __getitem__(self, name) -> SanityCheck:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"No check named {name!r}; checks: {[c.name for c in self.checks]}.")

    def to_dict(self) -> dict:
        payload = dataclasses.asdict(self)
        payload["passed"] = self.passed
        return payload

    def to_json(self, path):
        return atomic_write_json(path, self.to_dict())

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else f"FAILED ({', '.join(self.failed)})"
        lines = [
            f"Gradient-masking sanity checks for {self.model_name!r}: {verdict}",
            f"eps={self.eps:g} (L{self.norm}, pixel units), {self.num_examples} examples, "
            f"clean accuracy {100 * self.clean_accuracy:.2f}%",
        ]
        width = max(len(check.name) for check in self.checks)
        for check in self.checks:
            mark = "pass" if check.passed else "FAIL"
            lines.append(f"  [{mark}] {check.name:<{width}}  {check.detail}")
        return "\n".join(lines)


def _per_example_gradient(model, images, labels, loss):
    """``(loss values, gradients)`` of a per-example ``loss`` of the outputs w.r.t. the images."""
    with tf.GradientTape() as tape:
        tape.watch(images)
        values = loss(model_logits(model, images), labels)
    gradient = tape.gradient(values, images, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return values.numpy(), tf.reshape(gradient, [tf.shape(gradient)[0], -1]).numpy()


def _gradient_flags(model, images, labels, eps, norm):
    """Per example: non-finite cross-entropy gradient, vanishing cross-entropy gradient and
    vanishing margin gradient (see ``gradients_finite_and_nonzero`` in the module docstring)."""
    dual = 1 if norm == "inf" else 2

    def vanishing(values, gradient):
        finite = np.where(np.isfinite(gradient), gradient, 0.0)  # non-finite rows: own flag
        change = eps * np.linalg.norm(finite, ord=dual, axis=1)
        return change <= FLOAT32_RESOLUTION * np.abs(values)

    loss, gradient = _per_example_gradient(model, images, labels, cross_entropy_loss)
    non_finite = ~np.all(np.isfinite(gradient), axis=1)
    margin, margin_gradient = _per_example_gradient(model, images, labels, margin_loss)
    return non_finite, vanishing(loss, gradient) & ~non_finite, vanishing(margin, margin_gradient)


def _saturated_probabilities(model, images):
    """Per example: True when the outputs are probabilities and the top one rounds to ~1."""
    outputs = model_logits(model, images).numpy()
    if not looks_like_probabilities(outputs):
        return np.zeros(len(outputs), bool), False
    return 1.0 - outputs.max(axis=-1) <= SATURATED_PROBABILITY_GAP, True


def _differs_between_passes(model, images):
    """Per example: do two inference-mode forward passes give different logits?"""
    first = model_logits(model, images).numpy()
    second = model_logits(model, images).numpy()
    return ~np.all(np.isclose(first, second, rtol=1e-4, atol=1e-5), axis=1)


# Square may break a few points that PGD-k and PGD-2k miss on a healthy model too (PGD with a
# fixed step is not optimal: 1.6 % of a trained toy model's test points at eps 0.1); masked
# gradients leave most of the points PGD "keeps" to Square. Flagged above this fraction.
BLACK_BOX_SLACK = 0.05


def sanity_checks(model, dataset, eps=DEFAULT_EPS, norm="inf", steps=10, num_noise_samples=100,
                  num_black_box_queries=1000, tolerance=0.005, max_batches=None, seed=0, model_name=None, verbose=0):
    """Runs the gradient-masking checklist on ``model`` and returns a printable pass/fail report.

    Args:
        model: Keras classifier returning logits.
        dataset: batched ``tf.data.Dataset`` of ``(images, labels)`` in [0, 1], or an
            ``(images, labels)`` pair.
        eps: budget in pixel units (one value).
        norm: ``"inf"`` or ``"2"``.
        steps: PGD steps of the reference attack (the "more steps" check uses twice as many).
        num_noise_samples: uniform draws per example for the random-noise attack.
        num_black_box_queries: model queries per example of the Square attack.
        tolerance: allowed slack, as a fraction of the examples, for the comparisons between
            attacks and for the zero-gradient fraction.
        max_batches: evaluate only the first ``max_batches`` batches.
        seed: base seed of all random draws.
        model_name: name recorded in the report (default ``model.name``).
        verbose: 1 shows a progress bar over batches.

    Returns:
        A :class:`SanityReport`; ``print(report)`` shows every check with its numbers.

    Example:

    >>> report = sanity_checks(model, test_dataset, eps=8 / 255)
    >>> print(report); assert report.passed
    """
    require_backend("keras_equivariant.metrics.sanity_checks")
    norm = normalize_norm(norm)
    if np.ndim(eps) != 0:
        raise ValueError(f"`eps` must be a single budget; received {eps!r}.")
    eps = check_eps(eps, norm=norm)[0]
    if eps == 0:
        raise ValueError("`eps` must be > 0 for the sanity checks; received 0.")
    steps = check_positive_int(steps, "steps")
    num_noise_samples = check_positive_int(num_noise_samples, "num_noise_samples")
    num_black_box_queries = check_positive_int(num_black_box_queries, "num_black_box_queries")
    if max_batches is not None:
        max_batches = check_positive_int(max_batches, "max_batches")
    if not 0 <= tolerance < 1:
        raise ValueError(f"`tolerance` must be in [0, 1); received {tolerance}.")
    dataset = as_dataset(dataset)

    runs = {}  # name -> (spec, eps in pixels); every run yields per-example robust flags
    runs["fgsm"] = (AttackSpec("fgsm", norm), eps)
    runs["pgd"] = (AttackSpec("pgd", norm, steps=steps), eps)
    runs["pgd_more_steps"] = (AttackSpec("pgd", norm, steps=2 * steps), eps)
    runs["pgd_half_eps"] = (AttackSpec("pgd", norm, steps=steps), eps / 2)
    runs["pgd_eps_zero"] = (AttackSpec("pgd", norm, steps=steps), 0.0)
    runs["random_noise"] = (AttackSpec("random_noise", norm, restarts=num_noise_samples), eps)
    runs["square"] = (AttackSpec("square", norm, steps=num_black_box_queries), eps)
    flags = {name: [] for name in runs}
    flags.update(clean=[], non_finite=[], zero_gradient=[], zero_margin_gradient=[],
                 saturated=[], nondeterministic=[])
    probability_outputs = False
    large_eps = None
    progress = keras.utils.Progbar(max_batches, verbose=verbose, unit_name="batch")
    for index, images, labels, clean_correct in iterate_batches(model, dataset, max_batches):
        if large_eps is None:
            large_eps = 1.0 if norm == "inf" else math.sqrt(float(np.prod(images.shape[1:])))
            runs["pgd_large_eps"] = (AttackSpec("pgd", norm, steps=max(2 * steps, 20)), large_eps)
            flags["pgd_large_eps"] = []
        flags["clean"].append(clean_correct)
        for name, (spec, budget) in runs.items():
            flags[name].append(robust_flags(model, spec, images, labels, clean_correct, budget,
                                            batch_seed(seed, index)))
        non_finite, zero, zero_margin = _gradient_flags(model, images, labels, eps, norm)
        saturated, probabilities = _saturated_probabilities(model, images)
        probability_outputs |= probabilities
        flags["nondeterministic"].append(_differs_between_passes(model, images))
        flags["non_finite"].append(non_finite)
        flags["zero_gradient"].append(zero)
        flags["zero_margin_gradient"].append(zero_margin)
        flags["saturated"].append(saturated)
        progress.update(index + 1)
    if large_eps is None:
        raise ValueError("`dataset` yielded no examples.")
    flags = {name: np.concatenate(values) for name, values in flags.items()}
    accuracy = {name: float(values.mean()) for name, values in flags.items()}

    def percent(value):
        return f"{100 * value:.2f}%"

    checks = []

    def add(name, passed, detail, **values):
        checks.append(SanityCheck(name, bool(passed), detail, values))

    fgsm_only = float(np.mean(flags["pgd"] & ~flags["fgsm"]))
    add("pgd_not_weaker_than_fgsm",
        accuracy["pgd"] <= accuracy["fgsm"] + tolerance,
        f"PGD-{steps} {percent(accuracy['pgd'])} vs FGSM {percent(accuracy['fgsm'])} "
        f"(examples broken by FGSM only: {percent(fgsm_only)})",
        pgd_accuracy=accuracy["pgd"], fgsm_accuracy=accuracy["fgsm"],
        broken_by_fgsm_only=fgsm_only)
    add("more_steps_do_not_help_the_model",
        accuracy["pgd_more_steps"] <= accuracy["pgd"] + tolerance,
        f"PGD-{2 * steps} {percent(accuracy['pgd_more_steps'])} vs PGD-{steps} "
        f"{percent(accuracy['pgd'])}",
        pgd_accuracy=accuracy["pgd"], pgd_more_steps_accuracy=accuracy["pgd_more_steps"])
    same = bool(np.array_equal(flags["pgd_eps_zero"], flags["clean"]))
    add("eps_zero_equals_clean", same,
        f"PGD at eps=0 {percent(accuracy['pgd_eps_zero'])} vs clean {percent(accuracy['clean'])}"
        + ("" if same else " (per-example predictions differ)"),
        eps_zero_accuracy=accuracy["pgd_eps_zero"], clean_accuracy=accuracy["clean"])
    ordered = [accuracy["pgd_half_eps"], accuracy["pgd"], accuracy["pgd_large_eps"]]
    add("accuracy_decreases_with_eps",
        ordered[0] + tolerance >= ordered[1] and ordered[1] + tolerance >= ordered[2],
        f"eps/2 {percent(ordered[0])} >= eps {percent(ordered[1])} >= eps={large_eps:g} "
        f"{percent(ordered[2])}",
        half_eps_accuracy=ordered[0], eps_accuracy=ordered[1], large_eps_accuracy=ordered[2])
    add("large_eps_breaks_model",
        accuracy["pgd_large_eps"] <= LARGE_EPS_MAX_ACCURACY,
        f"PGD at unbounded eps={large_eps:g}: {percent(accuracy['pgd_large_eps'])} "
        f"(must be <= {percent(LARGE_EPS_MAX_ACCURACY)})",
        large_eps=large_eps, large_eps_accuracy=accuracy["pgd_large_eps"])
    noise_only = float(np.mean(flags["pgd"] & ~flags["random_noise"]))
    add("random_noise_not_stronger_than_pgd",
        noise_only <= tolerance,
        f"random noise ({num_noise_samples} draws) {percent(accuracy['random_noise'])} vs PGD "
        f"{percent(accuracy['pgd'])}; examples broken by noise but not by PGD: "
        f"{percent(noise_only)}",
        random_noise_accuracy=accuracy["random_noise"], pgd_accuracy=accuracy["pgd"],
        broken_by_noise_only=noise_only)
    # the white-box reference is the better of PGD-k and PGD-2k: points either breaks are not
    # evidence of masking when Square breaks them too
    white_box_robust = flags["pgd"] & flags["pgd_more_steps"]
    black_box_only = float(np.mean(white_box_robust & ~flags["square"]))
    add("black_box_not_stronger_than_pgd",
        black_box_only <= max(tolerance, BLACK_BOX_SLACK),
        f"Square ({num_black_box_queries} queries) {percent(accuracy['square'])} vs PGD "
        f"{percent(accuracy['pgd'])}; examples broken by Square but by neither PGD-{steps} nor "
        f"PGD-{2 * steps}: {percent(black_box_only)}",
        square_accuracy=accuracy["square"], pgd_accuracy=accuracy["pgd"],
        broken_by_black_box_only=black_box_only)
    add("outputs_are_logits",
        accuracy["saturated"] <= tolerance,
        ("outputs are logits" if not probability_outputs else
         f"outputs are probabilities (a final softmax); saturated (top probability within "
         f"{SATURATED_PROBABILITY_GAP:.1e} of 1): {percent(accuracy['saturated'])}"
         + (" - remove the softmax and attack the logits" if accuracy["saturated"] > tolerance
            else "")),
        probability_outputs=probability_outputs, saturated_fraction=accuracy["saturated"])
    masking_hint = ""
    if accuracy["zero_gradient"] > tolerance:
        masking_hint = (" - the cross-entropy saturates but the margin does not: attack with "
                        "loss='margin'" if accuracy["zero_margin_gradient"] <= tolerance
                        else " - the model is not differentiable where it matters")
    add("gradients_finite_and_nonzero",
        accuracy["non_finite"] == 0 and accuracy["zero_gradient"] <= tolerance,
        f"cross-entropy gradient non-finite: {percent(accuracy['non_finite'])}, vanishing "
        f"(eps-ball change <= float32 resolution of the loss): "
        f"{percent(accuracy['zero_gradient'])}; margin gradient vanishing: "
        f"{percent(accuracy['zero_margin_gradient'])}{masking_hint}",
        non_finite_fraction=accuracy["non_finite"],
        zero_gradient_fraction=accuracy["zero_gradient"],
        zero_margin_gradient_fraction=accuracy["zero_margin_gradient"])
    add("deterministic_model", accuracy["nondeterministic"] == 0,
        f"examples whose logits differ between two forward passes: "
        f"{percent(accuracy['nondeterministic'])}",
        nondeterministic_fraction=accuracy["nondeterministic"])
    return SanityReport(
        model_name=model_name or model.name, eps=eps, norm=norm,
        num_examples=int(flags["clean"].size), clean_accuracy=accuracy["clean"], checks=checks,
    )
