"""CIFAR-10-C heatmaps from dicts, records and JSON files."""

import json

import numpy as np
import pytest

from keras_equivariant.visualize import corruption_tables, plot_corruption_heatmap


def test_tables_accept_every_documented_form(tmp_path):
    single = {"fog": [0.9, 0.8], "gaussian_noise": {"1": 0.7, "2": 0.5}}
    corruptions, severities, matrix = corruption_tables(single)["model"]
    assert corruptions == ["gaussian_noise", "fog"]  # release order: noise before weather
    assert severities == [1, 2]
    np.testing.assert_allclose(matrix, [[0.7, 0.5], [0.9, 0.8]])

    records = [{"model": "a", "corruption": "fog", "severity": 2, "accuracy": 0.4},
               {"model": "b", "corruption": "fog", "severity": 1, "accuracy": 0.6}]
    tables = corruption_tables(records)
    assert set(tables) == {"a", "b"}
    assert np.isnan(tables["a"][2]).sum() == 0 and tables["a"][1] == [2]

    path = tmp_path / "c10c.json"
    path.write_text(json.dumps({"cnn": single, "gcnn": single}))
    assert set(corruption_tables(path)) == {"cnn", "gcnn"}

    # `keras-equivariant evaluate --corruptions` writes {"cells": records}, one file per model.
    cells = tmp_path / "corruptions.json"
    cells.write_text(json.dumps({"cells": [
        {"corruption": "fog", "severity": 1, "accuracy": 0.5, "num_examples": 10},
        {"corruption": "fog", "severity": 2, "accuracy": 0.25, "num_examples": 10}]}))
    tables = corruption_tables({"cnn": cells, "gcnn": str(cells)})
    np.testing.assert_allclose(tables["gcnn"][2], [[0.5, 0.25]])
    assert corruption_tables(cells)["model"][1] == [1, 2]


def test_bad_results_raise():
    with pytest.raises(ValueError, match="fractions in \\[0, 1\\]"):
        corruption_tables({"fog": [90.0, 80.0]})
    with pytest.raises(ValueError, match="record must be a dict"):
        corruption_tables([{"corruption": "fog"}])
    with pytest.raises(FileNotFoundError):
        corruption_tables("/nonexistent/c10c.json")


def test_heatmap_is_written(tmp_path):
    results = {name: {"fog": [0.9, 0.8, 0.7, 0.6, 0.5], "contrast": [0.8, 0.7, 0.6, 0.5, 0.3]}
               for name in ("cnn", "gcnn")}
    path = plot_corruption_heatmap(results, tmp_path / "heatmap.png")
    assert path.exists() and path.stat().st_size > 10_000
