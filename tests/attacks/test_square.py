"""Square Attack: success on linear classifiers, masking, invariants, compilation, bad input."""

import keras
import numpy as np
import pytest
from attack_toys import (
    IMAGE_SHAPE,
    NUM_CLASSES,
    Quantize,
    accuracy,
    linear_problem,
    perturbation_size,
    predictions,
)

from keras_equivariant.attacks import apgd, pgd, square
from keras_equivariant.attacks.square import SquareConfig, compiled_square, window_fraction


# L2: the random search needs far more queries on a linear model than L-inf (~79 % of the
# points inside 0.9 eps within 3000 queries on 12x12 images; 94-95 % with 5000 on 8x8), so its
# bar is lower.
@pytest.mark.parametrize("norm, eps, side, queries, rate", [
    ("inf", 0.015, 4, 1000, 0.95),
    pytest.param("2", 0.06, 12, 3000, 0.75, marks=pytest.mark.slow)])
def test_square_breaks_the_points_well_inside_the_budget(norm, eps, side, queries, rate):
    num_classes = 5 if norm == "inf" else 2
    model, images, labels, distance = linear_problem(num_classes, norm, seed=1, side=side)
    adversarial = square(model, images, labels, eps, norm=norm, queries=queries, seed=0)
    broken = predictions(model, adversarial) != labels
    inside = distance < 0.9 * eps
    assert inside.sum() >= 20 and (distance > eps).sum() >= 20
    assert broken[inside].mean() >= rate
    assert not broken[distance > eps + 1e-4].any()
    assert perturbation_size(adversarial - images, norm).max() <= eps + 1e-6
    assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0


def test_square_breaks_a_gradient_masked_model_that_pgd_and_apgd_cannot(toy_data):
    images, _ = toy_data
    masked = keras.Sequential([keras.Input(IMAGE_SHAPE), Quantize(4), keras.layers.Flatten(),
                               keras.layers.Dense(NUM_CLASSES)])
    labels = predictions(masked, images)
    black_box = accuracy(masked, square(masked, images, labels, 0.1, queries=300, seed=0), labels)
    white_box = max(accuracy(masked, pgd(masked, images, labels, 0.1, seed=0), labels),
                    accuracy(masked, apgd(masked, images, labels, 0.1, steps=10, seed=0), labels))
    assert white_box > 0.7 and black_box < 0.2


def test_p_schedule_halves_at_the_papers_iterations():
    fractions = [float(window_fraction(i, 0.8)) for i in (0, 10, 11, 50, 51, 500, 501, 8001,
                                                          10001)]
    assert fractions == pytest.approx([0.8, 0.8, 0.4, 0.4, 0.2, 0.1, 0.05, 0.8 / 512, 0.8])


@pytest.mark.parametrize("norm, eps", [("inf", 0.05), ("2", 0.5)])
def test_inside_eps_ball_unit_box_and_clean_errors_untouched(toy_model, toy_data, norm, eps):
    images, labels = toy_data
    adversarial = square(toy_model, images, labels, eps, norm=norm, queries=50, seed=0)
    assert adversarial.dtype == images.dtype
    assert perturbation_size(adversarial - images, norm).max() <= eps + 1e-6
    assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0
    wrong = predictions(toy_model, images) != labels
    np.testing.assert_array_equal(adversarial[wrong], images[wrong])
    assert accuracy(toy_model, adversarial, labels) < accuracy(toy_model, images, labels)


def test_no_retrace_across_batches_eps_queries_and_seeds(toy_model, toy_data):
    images, labels = toy_data
    for batch, eps, queries, seed in [(240, 0.01, 3, 0), (17, 0.05, 5, 1), (64, 0.2, 1, 2)]:
        square(toy_model, images[:batch], labels[:batch], eps, queries=queries, seed=seed)
    attack = compiled_square(toy_model, SquareConfig("inf"), IMAGE_SHAPE)
    assert attack.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"eps": -0.1}, ">= 0"),
    ({"queries": 0}, "queries"),
    ({"p_init": 0.0}, "p_init"),
    ({"norm": "l1"}, "Unknown norm"),
])
def test_bad_arguments_raise_before_work(toy_model, toy_data, kwargs, message):
    images, labels = toy_data
    with pytest.raises(ValueError, match=message):
        square(toy_model, images[:4], labels[:4], **{"eps": 0.1, **kwargs})
    with pytest.raises(ValueError, match="NaN"):
        square(toy_model, np.where(images[:4] > 0.5, np.nan, images[:4]), labels[:4], 0.1)
