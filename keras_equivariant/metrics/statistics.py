"""Confidence intervals for multi-seed robustness studies (NumPy only, no SciPy).

A robustness study trains each model with several seeds and evaluates every run on the same
test images. Two sources of randomness then blur a comparison: the *training* randomness
(another seed gives another model) and the *test-set sampling* (another draw of test images
gives another accuracy). This module quantifies both:

* :func:`mean_confidence_interval` -- the Student-t interval of a mean over a few numbers,
  e.g. one robust accuracy per seed (training randomness only).
* :func:`paired_bootstrap_difference` -- the difference between a model and a reference
  (e.g. the baseline) with a two-way paired bootstrap over seeds *and* test images.
* :func:`describe_difference` / :func:`format_estimate` -- the sentences and table cells
  the study's conclusions are written with, generated from the numbers.

The Student-t quantile is computed here (:func:`student_t_quantile`: bisection on the t
distribution function, itself the regularized incomplete beta function evaluated with a
continued fraction), so the module depends on NumPy and the standard library only.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

_CONTINUED_FRACTION_ITERATIONS = 10_000
_CONTINUED_FRACTION_TOLERANCE = 1e-15


def _incomplete_beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, _CONTINUED_FRACTION_ITERATIONS + 1):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < _CONTINUED_FRACTION_TOLERANCE:
            return fraction
    raise ArithmeticError(  # not reached for the arguments of the t distribution function
        f"The incomplete beta continued fraction did not converge for a={a}, b={b}, x={x}.")


def _regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b)`` for ``a, b > 0`` and ``0 <= x <= 1``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):  # the continued fraction converges fast on this side
        return math.exp(log_front) * _incomplete_beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _incomplete_beta_fraction(b, a, 1.0 - x) / b


def _student_t_cdf(t: float, degrees_of_freedom: float) -> float:
    """``P(T <= t)`` for a Student-t variable with ``degrees_of_freedom``."""
    tail = 0.5 * _regularized_incomplete_beta(
        degrees_of_freedom / 2.0, 0.5, degrees_of_freedom / (degrees_of_freedom + t * t))
    return 1.0 - tail if t >= 0 else tail


@functools.lru_cache(maxsize=256)
def student_t_quantile(probability: float, degrees_of_freedom: float) -> float:
    """The ``probability`` quantile of the Student-t distribution, e.g. ``t_{0.975, df}``.

    Bisection on the distribution function, which is the regularized incomplete beta
    function ``1 - I_{df / (df + t^2)}(df / 2, 1 / 2) / 2`` for ``t >= 0`` (continued
    fraction, accurate to about 1e-12). For example ``student_t_quantile(0.975, 4)`` is
    2.7764; as ``degrees_of_freedom`` grows it tends to the normal quantile (1.9600).

    Args:
        probability: a number strictly between 0 and 1.
        degrees_of_freedom: a positive number (``n - 1`` for a mean of ``n`` values).

    Returns:
        The quantile ``t`` with ``P(T <= t) == probability``, as a float.
    """
    if not 0.0 < probability < 1.0:
        raise ValueError(f"`probability` must be strictly between 0 and 1; received "
                         f"{probability!r}.")
    if not degrees_of_freedom > 0:
        raise ValueError(f"`degrees_of_freedom` must be positive; received "
                         f"{degrees_of_freedom!r}.")
    if probability < 0.5:
        return -student_t_quantile(1.0 - probability, degrees_of_freedom)
    low, high = 0.0, 1.0
    while _student_t_cdf(high, degrees_of_freedom) < probability:
        low, high = high, 2.0 * high
    for _ in range(200):
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        if _student_t_cdf(middle, degrees_of_freedom) < probability:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def _check_confidence(confidence) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be strictly between 0 and 1 (e.g. 0.95); "
                         f"received {confidence!r}.")
    return float(confidence)


def _finite_array(values, name: str) -> np.ndarray:
    """``values`` as a non-empty float array; NaN or infinity raise with their position."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError(f"`{name}` must hold at least one value; received an empty array "
                         f"of shape {array.shape}.")
    bad = np.argwhere(~np.isfinite(array))
    if len(bad):
        position = tuple(int(index) for index in bad[0])
        position = position[0] if len(position) == 1 else position
        raise ValueError(f"`{name}` must be finite; received {array[tuple(bad[0])]} at "
                         f"position {position} ({len(bad)} non-finite value(s) in all). Drop "
                         "or rerun the failed runs before computing statistics.")
    return array


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A mean with its confidence interval (from :func:`mean_confidence_interval`).

    Attributes:
        mean: the sample mean.
        low: lower end of the interval; NaN with a single value.
        high: upper end of the interval; NaN with a single value.
        num_samples: how many values the mean is over (e.g. seeds).
        confidence: the coverage of the interval, e.g. 0.95.
    """

    mean: float
    low: float
    high: float
    num_samples: int
    confidence: float


def mean_confidence_interval(values, confidence: float = 0.95) -> Estimate:
    """The mean of ``values`` with its Student-t confidence interval.

    The interval is ``mean ± t_{(1 + confidence) / 2, n - 1} * s / sqrt(n)`` with ``s`` the
    sample standard deviation (``ddof=1``): exact for normally distributed values and the
    usual choice for a handful of seeds, where the normal quantile 1.96 would be far too
    narrow (with 3 seeds the 95 % quantile is 4.30). Over seeds it captures the training
    randomness only, not the sampling of the test set (see
    :func:`paired_bootstrap_difference` for both).

    Args:
        values: a 1-D sequence of numbers, e.g. one robust accuracy per seed.
        confidence: coverage of the interval, strictly between 0 and 1.

    Returns:
        An :class:`Estimate`. With a single value there is no spread to estimate: ``low``
        and ``high`` are NaN.

    Example:

    >>> mean_confidence_interval([0.52, 0.49, 0.55])  # mean 0.52, interval [0.45, 0.59]
    """
    confidence = _check_confidence(confidence)
    array = _finite_array(values, "values")
    if array.ndim != 1:
        raise ValueError(f"`values` must be one-dimensional (one number per seed); received "
                         f"shape {array.shape}.")
    mean = float(array.mean())
    if len(array) == 1:
        return Estimate(mean, math.nan, math.nan, 1, confidence)
    half_width = (student_t_quantile((1.0 + confidence) / 2.0, len(array) - 1)
                  * float(array.std(ddof=1)) / math.sqrt(len(array)))
    return Estimate(mean, mean - half_width, mean + half_width, len(array), confidence)


@dataclasses.dataclass(frozen=True)
class Difference:
    """``mean(values) - mean(reference)`` with a bootstrap confidence interval.

    Attributes:
        mean: the observed difference of the means.
        low: lower end of the percentile interval.
        high: upper end of the percentile interval.
        confidence: the coverage of the interval, e.g. 0.95.
        num_seeds: number of paired seeds.
        num_items: number of paired test items, or ``None`` when there was one number per
            seed.
        num_resamples: number of bootstrap resamples.
    """

    mean: float
    low: float
    high: float
    confidence: float
    num_seeds: int
    num_items: int | None
    num_resamples: int

    @property
    def significant(self) -> bool:
        """Whether the interval excludes 0."""
        return self.low > 0 or self.high < 0


def paired_bootstrap_difference(values, reference, num_resamples: int = 10000,
                                confidence: float = 0.95, seed: int = 0) -> Difference:
    """The difference between a model and a reference with a paired two-way bootstrap.

    Each resample draws the seeds with replacement *and*, independently, the test items with
    replacement, and recomputes ``mean(values) - mean(reference)`` on the drawn rows and
    columns; the interval is given by the percentiles of these differences. Resampling seeds
    captures the training randomness (another seed, another model); resampling items
    captures the sampling of the test set (another draw of images, another accuracy). The
    same draw is applied to both arrays: seed ``s`` of the model stays paired with seed ``s``
    of the reference and image ``i`` with image ``i``, so the difficulty of an image, shared
    by both models, cancels out of the difference.

    The resamples are vectorised: a draw of seeds with replacement is a vector of
    multinomial counts, so the resampled seeds' per-item sums are
    ``seed_counts @ (values - reference)``, from which the drawn items are then gathered
    (10,000 resamples of 3 x 500 flags take about a tenth of a second).

    Args:
        values: array of shape ``(num_seeds, num_items)`` (e.g. per-image 0/1 robust flags of
            the model, one row per seed) or ``(num_seeds,)`` (one number per seed: only the
            seeds are resampled).
        reference: array of the same shape for the reference model (e.g. the baseline).
        num_resamples: number of bootstrap resamples.
        confidence: coverage of the interval, strictly between 0 and 1.
        seed: seed of the NumPy generator; the same seed gives the same interval.

    Returns:
        A :class:`Difference`; its ``significant`` property tells whether the interval
        excludes 0. Identical arrays give exactly 0 and the interval ``[0, 0]``.

    Example:

    >>> difference = paired_bootstrap_difference(model_flags, baseline_flags)  # (3, 500) each
    >>> difference.mean, difference.low, difference.high, difference.significant
    """
    confidence = _check_confidence(confidence)
    if isinstance(num_resamples, bool) or not isinstance(num_resamples, (int, np.integer)) \
            or num_resamples < 1:
        raise ValueError(f"`num_resamples` must be a positive integer; received "
                         f"{num_resamples!r}.")
    values, reference = _finite_array(values, "values"), _finite_array(reference, "reference")
    if values.shape != reference.shape:
        raise ValueError(f"`values` and `reference` must have the same shape (paired seeds "
                         f"and items); received shapes {values.shape} and {reference.shape}.")
    if values.ndim not in (1, 2):
        raise ValueError(f"`values` must have shape (num_seeds,) or (num_seeds, num_items); "
                         f"received shape {values.shape}.")
    num_items = values.shape[1] if values.ndim == 2 else None
    differences = (values - reference).reshape(values.shape[0], -1)
    num_seeds, num_columns = differences.shape
    generator = np.random.default_rng(seed)
    seed_counts = generator.multinomial(num_seeds, np.full(num_seeds, 1.0 / num_seeds),
                                        size=num_resamples)
    column_sums = seed_counts @ differences  # (num_resamples, num_columns)
    if num_items is not None:
        items = generator.integers(0, num_items, size=(num_resamples, num_items))
        column_sums = np.take_along_axis(column_sums, items, axis=1)
    resampled = column_sums.sum(axis=1) / (num_seeds * num_columns)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled, [tail, 1.0 - tail])
    return Difference(float(values.mean() - reference.mean()), float(low), float(high),
                      confidence, num_seeds, num_items, int(num_resamples))


def _signed(number: float, digits: int) -> str:
    """``number`` with the sign of the unrounded value: ``-0.0`` is below 0, ``+0.0`` is 0."""
    return f"{'-' if number < 0 else '+'}{abs(number):.{digits}f}"


def describe_difference(subject: str, difference: Difference, quantity: str,
                        unit: str = "points", scale: float = 100) -> str:
    """One sentence stating a difference, its interval and whether it is significant.

    The study's conclusions are written with this function, from the numbers, never by hand.
    "significant" means that the interval excludes 0 (:attr:`Difference.significant`).

    Args:
        subject: who the difference is about, e.g. ``"ParallelRotScaleGCNN"``.
        difference: a :class:`Difference` (e.g. from :func:`paired_bootstrap_difference`).
        quantity: what was compared, e.g. ``"PGD accuracy at 1/255"``.
        unit: unit of the scaled numbers.
        scale: factor applied to the numbers (100: fractions to percentage points).

    Returns:
        A string such as ``"ParallelRotScaleGCNN: +2.4 points PGD accuracy at 1/255
        [95 % CI -1.0, +5.9]; not significant"``.
    """
    verdict = "significant" if difference.significant else "not significant"
    return (f"{subject}: {_signed(scale * difference.mean, 1)} {unit} {quantity} "
            f"[{100 * difference.confidence:g} % CI {_signed(scale * difference.low, 1)}, "
            f"{_signed(scale * difference.high, 1)}]; {verdict}")


def format_estimate(estimate: Estimate, scale: float = 100, digits: int = 1) -> str:
    """A table cell for an :class:`Estimate`: ``"52.3 [49.1, 55.5]"``, or ``"52.3"`` for n=1.

    Args:
        estimate: an :class:`Estimate` (e.g. from :func:`mean_confidence_interval`).
        scale: factor applied to the numbers (100: fractions to percent).
        digits: decimals printed.

    Returns:
        The mean followed by the interval in brackets; the mean alone with a single sample.
    """
    def number(value):
        return f"{round(scale * value, digits) + 0.0:.{digits}f}"

    if estimate.num_samples == 1:
        return number(estimate.mean)
    return f"{number(estimate.mean)} [{number(estimate.low)}, {number(estimate.high)}]"
