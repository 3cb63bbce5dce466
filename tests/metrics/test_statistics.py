"""Student-t intervals over seeds, the paired two-way bootstrap and the generated sentences."""

import math

import numpy as np
import pytest

from keras_equivariant.metrics import (
    Difference,
    describe_difference,
    format_estimate,
    mean_confidence_interval,
    paired_bootstrap_difference,
    student_t_quantile,
)


@pytest.mark.parametrize("degrees_of_freedom, expected", [
    (1, 12.7062), (2, 4.3027), (4, 2.7764), (29, 2.0452), (10**6, 1.9600)])
def test_student_t_quantile_matches_tables(degrees_of_freedom, expected):
    assert student_t_quantile(0.975, degrees_of_freedom) == pytest.approx(expected, rel=1e-3)
    assert student_t_quantile(0.025, degrees_of_freedom) == pytest.approx(-expected, rel=1e-3)


def test_student_t_quantile_rejects_bad_arguments():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        student_t_quantile(1.0, 3)
    with pytest.raises(ValueError, match="positive"):
        student_t_quantile(0.975, 0)


def test_interval_is_mean_plus_minus_t_standard_error():
    estimate = mean_confidence_interval([0.52, 0.49, 0.55])
    half_width = 4.302653 * np.std([0.52, 0.49, 0.55], ddof=1) / math.sqrt(3)
    assert estimate.mean == pytest.approx(0.52)
    assert (estimate.low, estimate.high) == pytest.approx((0.52 - half_width, 0.52 + half_width))
    assert (estimate.num_samples, estimate.confidence) == (3, 0.95)
    assert format_estimate(estimate) == "52.0 [44.5, 59.5]"


def test_interval_covers_a_known_mean_95_percent_of_the_time():
    mu = 3.0
    samples = np.random.default_rng(0).normal(mu, 1.0, size=(2000, 5))
    covered = [(e.low <= mu <= e.high) for e in map(mean_confidence_interval, samples)]
    assert 0.93 <= np.mean(covered) <= 0.97


def test_single_value_has_no_interval_and_bad_values_raise():
    estimate = mean_confidence_interval([0.4])
    assert estimate.mean == 0.4 and math.isnan(estimate.low) and math.isnan(estimate.high)
    assert format_estimate(estimate) == "40.0"
    with pytest.raises(ValueError, match="position 2"):
        mean_confidence_interval([0.1, 0.2, float("nan")])
    with pytest.raises(ValueError, match="at least one value"):
        mean_confidence_interval([])


def _flags(seed, rate, shape=(3, 500)):
    return (np.random.default_rng(seed).random(shape) < rate).astype(float)


def test_identical_arrays_differ_by_exactly_zero():
    flags = _flags(0, 0.5)
    difference = paired_bootstrap_difference(flags, flags.copy())
    assert (difference.mean, difference.low, difference.high) == (0.0, 0.0, 0.0)
    assert not difference.significant
    assert (difference.num_seeds, difference.num_items, difference.num_resamples) == (3, 500,
                                                                                     10000)


def test_clear_shift_is_significant_and_covered():
    reference = _flags(1, 0.7)  # the reference misses about 30 % of the items
    model = np.ones_like(reference)
    difference = paired_bootstrap_difference(model, reference)
    true_difference = 1.0 - reference.mean()
    assert difference.mean == pytest.approx(true_difference)
    assert 0 < difference.low < true_difference < difference.high
    assert difference.significant


def test_bootstrap_matches_explicit_resampling_and_is_deterministic():
    model, reference = _flags(2, 0.55), _flags(3, 0.5)
    difference = paired_bootstrap_difference(model, reference, seed=7)
    assert paired_bootstrap_difference(model, reference, seed=7) == difference
    assert paired_bootstrap_difference(model, reference, seed=8) != difference
    generator, resampled = np.random.default_rng(0), []
    for _ in range(4000):  # the definition: seeds and items drawn with replacement, paired
        seeds, items = generator.integers(0, 3, 3), generator.integers(0, 500, 500)
        resampled.append(model[seeds][:, items].mean() - reference[seeds][:, items].mean())
    np.testing.assert_allclose([difference.low, difference.high],
                               np.quantile(resampled, [0.025, 0.975]), atol=0.004)


def test_one_number_per_seed_resamples_seeds_only():
    difference = paired_bootstrap_difference([0.5, 0.6, 0.7], [0.4, 0.5, 0.6], num_resamples=50)
    assert difference.num_items is None
    assert (difference.mean, difference.low, difference.high) == pytest.approx((0.1, 0.1, 0.1))
    assert difference.significant


def test_bootstrap_rejects_mismatched_shapes_and_bad_arguments():
    with pytest.raises(ValueError, match=r"\(3, 500\) and \(3, 400\)"):
        paired_bootstrap_difference(np.zeros((3, 500)), np.zeros((3, 400)))
    with pytest.raises(ValueError, match="num_resamples"):
        paired_bootstrap_difference(np.zeros(3), np.zeros(3), num_resamples=0)
    reference = np.zeros((3, 4))
    reference[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"`reference` must be finite.*position \(1, 2\)"):
        paired_bootstrap_difference(np.zeros((3, 4)), reference)


def _difference(mean, low, high):
    return Difference(mean, low, high, 0.95, 3, 500, 10000)


def test_describe_difference_writes_sign_interval_and_verdict():
    assert describe_difference("ParallelRotScaleGCNN", _difference(0.024, -0.0104, 0.0591),
                               "PGD accuracy at 1/255") == (
        "ParallelRotScaleGCNN: +2.4 points PGD accuracy at 1/255 [95 % CI -1.0, +5.9]; "
        "not significant")
    assert describe_difference("Cascaded", _difference(-0.05, -0.08, -0.0002), "accuracy") == (
        "Cascaded: -5.0 points accuracy [95 % CI -8.0, -0.0]; significant")
    assert describe_difference("Same", _difference(0.0, 0.0, 0.0), "accuracy") == (
        "Same: +0.0 points accuracy [95 % CI +0.0, +0.0]; not significant")
