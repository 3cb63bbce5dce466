"""The layers, builders, fold and check_equivariance give the same results on JAX as on TensorFlow.

The parent process (TensorFlow) builds every case of tests/backend_cases.py with random weights,
saves it as ``.keras`` and records its outputs; tests/backend_worker.py then runs in a subprocess
with ``KERAS_BACKEND=jax`` (one backend per process is Keras' rule), loads the files, recomputes
the outputs, trains a few cases one step and saves them back, which the parent loads again on
TensorFlow. Skipped when JAX is not installed (``pip install -e ".[jax]"``).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import backend_cases

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                       reason='JAX is not installed; pip install -e ".[jax]" to run these tests'),
    pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                       reason="the reference outputs are computed on the TensorFlow backend"),
]

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "backend_worker.py"


def relative_error(actual, expected):
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12))


def run_cases(directory, names, fit_names, checks):
    """TensorFlow outputs (before and after one training step) and the JAX worker's results."""
    inputs, tensorflow = {}, {}
    for name in names:
        keras.utils.set_random_seed(list(backend_cases.CASES).index(name))
        model = backend_cases.CASES[name][0]()
        backend_cases.randomize_weights(model, seed=list(backend_cases.CASES).index(name))
        inputs[name] = backend_cases.inputs_for(name)
        tensorflow[f"{name}/outputs"] = backend_cases.outputs(model, inputs[name])
        model.save(directory / f"{name}.keras")
        if name in fit_names:
            tensorflow[f"{name}/loss"] = backend_cases.fit_one_step(model, inputs[name])
            tensorflow[f"{name}/trained_outputs"] = backend_cases.outputs(model, inputs[name])
        keras.backend.clear_session()
    np.savez(directory / "inputs.npz", **inputs)
    (directory / "cases.json").write_text(json.dumps(
        {"names": list(names), "fit": list(fit_names), "checks": checks}))
    environment = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
                   "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run([sys.executable, str(WORKER), str(directory)], env=environment,
                               capture_output=True, text=True, timeout=1200)
    assert completed.returncode == 0, completed.stderr[-4000:]
    jax = dict(np.load(directory / "results.npz"))
    report = json.loads((directory / "results.json").read_text())
    return {"directory": directory, "inputs": inputs, "tensorflow": tensorflow, "jax": jax,
            "report": report}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every layer and depth-4 builder; a few one-step fits; equivariance, fold, errors."""
    names = [*backend_cases.LAYER_CASES, *backend_cases.DEFAULT_MODEL_CASES]
    return run_cases(tmp_path_factory.mktemp("backends"), names, backend_cases.FIT_CASES, True)


@pytest.fixture(scope="module")
def slow_runs(tmp_path_factory):
    """The depth-10 builders, and one fit step of every depth-4 builder."""
    names = [*backend_cases.MODEL_CASES, *backend_cases.DEEP_MODEL_CASES]
    return run_cases(tmp_path_factory.mktemp("slow_backends"), names,
                     backend_cases.SLOW_FIT_CASES, False)


def test_worker_ran_on_jax(runs):
    assert runs["report"]["backend"] == "jax"


def check_outputs(results, name):
    key = f"{name}/outputs"
    assert results["jax"][key].shape == results["tensorflow"][key].shape
    assert relative_error(results["jax"][key], results["tensorflow"][key]) <= 1e-5


def check_training_step(results, name):
    assert results["report"]["losses"][name] == pytest.approx(
        results["tensorflow"][f"{name}/loss"], rel=1e-5)
    key = f"{name}/trained_outputs"
    tensorflow = results["tensorflow"]
    before, after = tensorflow[f"{name}/outputs"], tensorflow[key]
    change = np.abs(after - before).max()
    assert change > 1e-4 * np.abs(before).max()  # the step changed the model
    # Both backends changed it the same way: to 1e-5 of the outputs, or 0.1% of the change (a
    # deep model's step amplifies float round-off of the gradients; the losses agree to 1e-5).
    difference = np.abs(results["jax"][key] - after).max()
    assert difference <= max(1e-5 * np.abs(after).max(), 1e-3 * change)
    # The model trained and saved on JAX loads on TensorFlow with the JAX weights.
    model = keras.saving.load_model(results["directory"] / f"{name}.trained.keras")
    outputs = backend_cases.outputs(model, results["inputs"][name])
    assert relative_error(outputs, results["jax"][key]) <= 1e-5


@pytest.mark.parametrize("name", [*backend_cases.LAYER_CASES,
                                  *backend_cases.DEFAULT_MODEL_CASES])
def test_same_outputs_on_jax(runs, name):
    check_outputs(runs, name)


@pytest.mark.parametrize("name", backend_cases.FIT_CASES)
def test_one_training_step_matches_and_loads_back(runs, name):
    check_training_step(runs, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [*backend_cases.PAPER_MODEL_CASES,
                                  *backend_cases.DEEP_MODEL_CASES])
def test_same_outputs_on_jax_paper_variants_and_depth10(slow_runs, name):
    check_outputs(slow_runs, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", backend_cases.SLOW_FIT_CASES)
def test_every_builder_trains_one_step_alike(slow_runs, name):
    check_training_step(slow_runs, name)


def test_exact_equivariance_on_jax(runs):
    report = runs["report"]
    assert report["C4_error"] < 1e-5
    assert report["D4_error"] < 1e-5
    assert report["model_c4_error"] < 1e-5


def test_fold_on_jax(runs):
    reference = runs["jax"]["CascadedGCNN_equivariant_depth4/outputs"]
    assert runs["report"]["fold_error"] <= 1e-5 * np.abs(reference).max()


@pytest.mark.parametrize("feature", ["pgd", "export_saved_model"])
def test_tensorflow_only_features_say_so_on_jax(runs, feature):
    kind, message = runs["report"]["tensorflow_only_errors"][feature]
    assert kind == "RuntimeError"
    assert f"keras_equivariant.{'attacks' if feature == 'pgd' else 'export'}.{feature}" in message
    assert "'jax' backend" in message and "KERAS_BACKEND=tensorflow" in message
