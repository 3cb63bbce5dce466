"""FAB / FAB-T: minimum norm on linear classifiers, the projection, invariants, bad input."""

import numpy as np
import pytest
import tensorflow as tf
from attack_toys import (
    IMAGE_SHAPE,
    accuracy,
    assert_breaks_exactly_the_close_points,
    linear_problem,
    perturbation_size,
    predictions,
)

from keras_equivariant.attacks import fab
from keras_equivariant.attacks.fab import FabConfig, compiled_fab, project_onto_hyperplane_in_box


@pytest.mark.parametrize("norm, eps, targeted", [("inf", 0.015, True), ("2", 0.05, True),
                                                 ("inf", 0.015, False)])
def test_fab_finds_every_boundary_within_eps_of_a_linear_classifier(norm, eps, targeted):
    model, images, labels, distance = linear_problem(5, norm, seed=1)
    adversarial = fab(model, images, labels, eps, norm=norm, targeted=targeted, seed=0)
    # FAB approaches the boundary from outside (overshoot eta = 1.05, pull-back beta = 0.9):
    # after 100 steps its perturbation is within ~1 % of the exact minimum, not within 1e-4
    assert_breaks_exactly_the_close_points(model, images, labels, adversarial, distance, eps, norm,
                                           tolerance=0.01 * eps)
    if not targeted:  # FAB-T stops at the first target class that breaks a point within eps
        broken = predictions(model, adversarial) != labels
        # minimum norm: close to the exact distance, not just anywhere inside the ball
        found = perturbation_size(adversarial - images, norm)[broken]
        assert np.all(found <= 1.02 * distance[broken] + 1e-6)


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_projection_is_the_minimum_norm_point_of_the_hyperplane_in_the_box(norm):
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 1, (64, 10)).astype(np.float32)
    weights = rng.normal(size=(64, 10)).astype(np.float32)
    offsets = (np.sum(weights * points, 1) + rng.normal(size=64)).astype(np.float32)
    step = project_onto_hyperplane_in_box(tf.constant(points), tf.constant(weights),
                                          tf.constant(offsets), norm).numpy()
    moved = points + step
    assert moved.min() >= -1e-6 and moved.max() <= 1 + 1e-6
    reachable = np.abs(np.sum(weights * moved, 1) - offsets) < 1e-4
    assert reachable.mean() > 0.5
    # no point of the hyperplane in the box is closer: random feasible points are all farther
    length = perturbation_size(step, norm)
    for _ in range(200):
        other = np.clip(moved + rng.normal(scale=0.05, size=moved.shape), 0, 1)
        shift = offsets - np.sum(weights * other, 1)  # move back onto the plane along one axis
        axis = np.argmax(np.abs(weights), 1)
        other[np.arange(64), axis] += shift / weights[np.arange(64), axis]
        ok = reachable & (other.min(1) >= 0) & (other.max(1) <= 1)
        assert np.all(perturbation_size(other - points, norm)[ok] >= length[ok] - 1e-5)


def test_inside_eps_ball_unit_box_and_weaker_eps_breaks_less(toy_model, toy_data):
    images, labels = toy_data
    small = fab(toy_model, images, labels, 0.02, steps=20, seed=0)
    large = fab(toy_model, images, labels, 0.1, steps=20, seed=0)
    for adversarial, eps in ((small, 0.02), (large, 0.1)):
        assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0
        assert perturbation_size(adversarial - images, "inf").max() <= eps + 1e-6
    assert accuracy(toy_model, large, labels) < accuracy(toy_model, small, labels)
    unbroken = predictions(toy_model, small) == labels
    np.testing.assert_array_equal(small[unbroken], images[unbroken])  # failures stay clean


def test_no_retrace_across_batches_eps_steps_and_seeds(toy_model, toy_data):
    images, labels = toy_data
    for batch, eps, steps, seed in [(240, 0.01, 3, 0), (17, 0.05, 5, 1), (64, 0.2, 1, 2)]:
        fab(toy_model, images[:batch], labels[:batch], eps, steps=steps, restarts=2, seed=seed)
    attack = compiled_fab(toy_model, FabConfig("inf", True), IMAGE_SHAPE)
    assert attack.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"eps": -0.1}, ">= 0"),
    ({"steps": 0}, "steps"),
    ({"restarts": 0}, "restarts"),
    ({"norm": "l1"}, "Unknown norm"),
    ({"targeted": False, "target_class_rank": 2}, "targeted=True"),
])
def test_bad_arguments_raise_before_work(toy_model, toy_data, kwargs, message):
    images, labels = toy_data
    with pytest.raises(ValueError, match=message):
        fab(toy_model, images[:4], labels[:4], **{"eps": 0.1, **kwargs})
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        fab(toy_model, images[:4] * 255, labels[:4], 0.1)
