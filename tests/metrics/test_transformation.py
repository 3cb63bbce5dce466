"""transformation_accuracy and spatial_robust_accuracy: exact C4 invariance, counting, resume,
atomic files, plots and bad input."""

import csv
import json

import numpy as np
import pytest
import tensorflow as tf
from attack_toys import predictions

from keras_equivariant import metrics
from keras_equivariant.attacks import spatial, spatial_transform
from keras_equivariant.metrics import transformation as transformation_module
from keras_equivariant.models import CascadedGCNN


def _dataset(images, labels, batch_size=64):
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)


def test_c4_invariant_model_is_exactly_consistent_at_quarter_turns(toy_model, toy_data):
    images, labels = toy_data[0][:64], toy_data[1][:64]
    invariant = CascadedGCNN(3, depth=4, input_shape=images.shape[1:], variant="equivariant")
    quarter_turns = [0, 90, 180, 270]
    report = metrics.transformation_accuracy(invariant, (images, labels), rotations=quarter_turns,
                                             verbose=0)
    accuracy = [report.at("rotation", angle) for angle in quarter_turns]
    assert accuracy == [report.clean_accuracy] * 4
    assert [report.at("rotation", angle, "consistency") for angle in quarter_turns] == [1.0] * 4
    plain = metrics.transformation_accuracy(toy_model, (images, labels), rotations=quarter_turns,
                                            verbose=0)
    assert plain.at("rotation", 0, "consistency") == 1.0
    assert plain.at("rotation", 0) == plain.clean_accuracy
    assert min(plain.consistency[1:]) < 0.9 and min(plain.accuracy[1:]) < plain.clean_accuracy


def test_counts_equal_a_direct_evaluation(toy_model, toy_data):
    images, labels = toy_data[0][:100], toy_data[1][:100]
    report = metrics.transformation_accuracy(toy_model, _dataset(images, labels, 32),
                                             rotations=[0, 30, 90], scales=[0.8, 1.25],
                                             batch_size=50, verbose=0, model_name="toy")
    clean = predictions(toy_model, images)
    cases = [("rotation", 0, dict()), ("rotation", 30, dict(rotation=30)),
             ("rotation", 90, dict(rotation=90)), ("scale", 0.8, dict(scale=0.8)),
             ("scale", 1.25, dict(scale=1.25))]
    for kind, value, transform in cases:
        predicted = predictions(toy_model, spatial_transform(images, **transform))
        assert report.at(kind, value) == np.mean(predicted == labels), (kind, value)
        assert report.at(kind, value, "consistency") == np.mean(predicted == clean)
    assert report.transformation == ["rotation"] * 3 + ["scale"] * 2
    assert report.clean_accuracy == np.mean(clean == labels) and report.num_examples == 100
    text = str(report)
    assert "consistency" in text and "toy" in text


def test_spatial_robust_accuracy_counts_clean_correct_examples_surviving_the_grid(
        toy_model, toy_data):
    images, labels = toy_data[0][:80], toy_data[1][:80]
    grid = dict(rotations=[0, 180], translations=None, scales=[0.95, 1.0])
    report = metrics.spatial_robust_accuracy(toy_model, _dataset(images, labels, 40), **grid,
                                             eps=0.0, verbose=0)
    correct = predictions(toy_model, images) == labels
    result = spatial(toy_model, images, labels, **grid)
    expected = int(np.sum(correct & ~result.misclassified))
    assert 0 < expected < correct.sum()
    assert report.num_spatial_robust == expected and report.spatial_accuracy == expected / 80
    # eps=0: PGD cannot move the worst transformed images
    assert report.num_combined_robust == expected
    assert report.num_transformations == 4 and report.clean_accuracy == correct.mean()
    attacked = metrics.spatial_robust_accuracy(toy_model, (images, labels), **grid, eps=0.05,
                                               verbose=0)
    assert attacked.combined_accuracy < attacked.spatial_accuracy == report.spatial_accuracy
    assert [row["threat_model"] for row in attacked.rows()] == ["none", "spatial",
                                                                "spatial+linf_pgd"]


def test_files_are_written_atomically_and_round_trip(toy_model, toy_data, tmp_path):
    images, labels = toy_data[0][:64], toy_data[1][:64]
    report = metrics.transformation_accuracy(toy_model, (images, labels), rotations=[0, 45, 90],
                                             output_dir=tmp_path, model_name="toy", verbose=0)
    spatial_report = metrics.spatial_robust_accuracy(
        toy_model, (images, labels), rotations=[0, 5], translations=[0], output_dir=tmp_path,
        model_name="toy", verbose=0)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "toy_spatial.batches.json", "toy_spatial.csv", "toy_spatial.json",
        "toy_transformation.batches.json", "toy_transformation.csv", "toy_transformation.json",
        "toy_transformation.png"]  # no temporary files left behind
    assert metrics.TransformationAccuracyReport.from_json(tmp_path / "toy_transformation.json") \
        == report
    assert metrics.SpatialRobustAccuracyReport.from_json(tmp_path / "toy_spatial.json") \
        == spatial_report
    with open(tmp_path / "toy_transformation.csv") as file:
        rows = list(csv.DictReader(file))
    assert [float(row["value"]) for row in rows] == [0.0, 45.0, 90.0]
    assert [float(row["accuracy"]) for row in rows] == report.accuracy
    with open(tmp_path / "toy_spatial.csv") as file:
        assert [row["threat_model"] for row in csv.DictReader(file)] == ["none", "spatial"]
    assert (tmp_path / "toy_transformation.png").stat().st_size > 1000


def test_resume_reuses_finished_batches_and_refuses_mismatches(toy_model, toy_data, tmp_path,
                                                               monkeypatch):
    images, labels = toy_data[0][:96], toy_data[1][:96]
    calls = []
    original = transformation_module.transformed_predictions

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(transformation_module, "transformed_predictions", counting)
    options = dict(rotations=[0, 90], output_dir=tmp_path, model_name="toy", verbose=0)
    partial = metrics.transformation_accuracy(toy_model, _dataset(images, labels, 32),
                                              max_batches=2, **options)
    assert len(calls) == 2 and partial.num_examples == 64
    stored = json.loads((tmp_path / "toy_transformation.batches.json").read_text())
    assert sorted(stored["batches"]) == ["0", "1"]
    full = metrics.transformation_accuracy(toy_model, _dataset(images, labels, 32), **options)
    assert len(calls) == 3  # only the third batch was computed
    fresh = metrics.transformation_accuracy(toy_model, _dataset(images, labels, 32),
                                            rotations=[0, 90], verbose=0)
    assert full.num_correct == fresh.num_correct and full.num_consistent == fresh.num_consistent

    with pytest.raises(ValueError, match="value differ"):
        metrics.transformation_accuracy(toy_model, _dataset(images, labels, 32),
                                        **{**options, "rotations": [0, 45]})
    with pytest.raises(ValueError, match="Batch 0 differs"):
        metrics.transformation_accuracy(toy_model, _dataset(images[::-1], labels[::-1], 32),
                                        **options)
    retrained = CascadedGCNN(3, depth=4, input_shape=images.shape[1:])
    with pytest.raises(ValueError, match="weights differ"):
        metrics.transformation_accuracy(retrained, _dataset(images, labels, 32), **options)


def test_plot_one_line_per_model_linear_and_polar(toy_model, toy_data, tmp_path):
    images, labels = toy_data[0][:32], toy_data[1][:32]
    reports = [metrics.transformation_accuracy(toy_model, (images, labels),
                                               rotations=range(0, 360, 90), scales=[0.9, 1.1],
                                               model_name=name, verbose=0)
               for name in ("a", "b")]
    (ax,) = metrics.plot_transformation_accuracy(reports, path=tmp_path / "r.png").axes
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [0, 90, 180, 270])
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), 100 * np.array(reports[0].accuracy[:4]))
    (polar,) = metrics.plot_transformation_accuracy(reports, polar=True,
                                                    metric="consistency").axes
    assert polar.name == "polar" and len(polar.get_lines()[0].get_xdata()) == 5  # closed loop
    (scale,) = metrics.plot_transformation_accuracy(reports, "scale").axes
    np.testing.assert_allclose(scale.get_lines()[1].get_xdata(), [0.9, 1.1])
    with pytest.raises(ValueError, match="polar"):
        metrics.plot_transformation_accuracy(reports, "scale", polar=True)
    assert (tmp_path / "r.png").stat().st_size > 1000


class _MustNotRun:
    name = "must_not_run"

    def __call__(self, *args, **kwargs):
        raise AssertionError("the model was called before the input was validated")


@pytest.mark.parametrize("function, options, message", [
    ("transformation_accuracy", dict(rotations=None), "Nothing to evaluate"),
    ("transformation_accuracy", dict(rotations=[]), "at least one"),
    ("transformation_accuracy", dict(scales=[1.0, 0.0]), "> 0"),
    ("transformation_accuracy", dict(rotations="90"), "rotations"),
    ("spatial_robust_accuracy", dict(translations=[-9, 9]), "off the canvas"),
    ("spatial_robust_accuracy", dict(eps=[0.01, 0.02]), "single"),
    ("spatial_robust_accuracy", dict(eps=-0.1), "eps"),
    ("spatial_robust_accuracy", dict(scales=-1), "> 0"),
])
def test_bad_input_fails_before_any_work(function, options, message, toy_data):
    with pytest.raises(ValueError, match=message):
        getattr(metrics, function)(_MustNotRun(), toy_data, verbose=0, **options)
