"""The layers, builders, fold, check_equivariance, FGSM and PGD give the same results on JAX as on
TensorFlow.

The parent process (TensorFlow) builds every case of tests/backend_cases.py with random weights,
saves it as ``.keras`` and records its outputs; tests/backend_worker.py then runs in a subprocess
with ``KERAS_BACKEND=jax`` (one backend per process is Keras' rule), loads the files, recomputes
the outputs, trains a few cases one step and saves them back, which the parent loads again on
TensorFlow; it also attacks two models with FGSM and PGD (same seed) for the parent to compare.
Skipped when JAX is not installed (``pip install -e ".[jax]"``).

The ``torch_backend`` tests run the same layer and builder cases in a ``KERAS_BACKEND=torch``
worker when PyTorch is importable, from the environment or from the folders listed in
``KERAS_EQUIVARIANT_TORCH_PATH`` (e.g. a ``pip install --target DIR torch``; torch is never a
dependency of the project); they are skipped otherwise.
"""

import importlib.machinery
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

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="the reference outputs are computed on the TensorFlow "
                                "backend")

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "backend_worker.py"
#: Extra folders (os.pathsep-separated) holding torch for the ``torch_backend`` tests.
TORCH_PATH = [folder for folder in os.environ.get("KERAS_EQUIVARIANT_TORCH_PATH", "").split(
    os.pathsep) if folder]


def require_jax():
    if importlib.util.find_spec("jax") is None:
        pytest.skip('JAX is not installed; pip install -e ".[jax]" to run these tests')


def require_torch():
    if (importlib.util.find_spec("torch") is None
            and importlib.machinery.PathFinder.find_spec("torch", TORCH_PATH) is None):
        pytest.skip("PyTorch is not importable; install it (e.g. pip install --target DIR torch) "
                    "and set KERAS_EQUIVARIANT_TORCH_PATH=DIR to run the torch_backend tests")


def relative_error(actual, expected):
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12))


def run_cases(directory, names, fit_names, checks, attack_names=(), backend="jax"):
    """TensorFlow outputs (before and after one training step, and of the ``attack_names``
    cases) and the results of the worker on ``backend`` (under the key ``"worker"``)."""
    inputs, tensorflow = {}, {}
    for name in names:
        keras.utils.set_random_seed(list(backend_cases.CASES).index(name))
        model = backend_cases.CASES[name][0]()
        backend_cases.randomize_weights(model, seed=list(backend_cases.CASES).index(name))
        inputs[name] = backend_cases.inputs_for(name)
        tensorflow[f"{name}/outputs"] = backend_cases.outputs(model, inputs[name])
        model.save(directory / f"{name}.keras")
        for attack in attack_names:
            if backend_cases.ATTACK_CASES[attack][0] == name:
                tensorflow[f"{attack}/adversarial"], tensorflow[f"{attack}/robust"] = (
                    backend_cases.run_attack_case(model, attack))
        if name in fit_names:
            tensorflow[f"{name}/loss"] = backend_cases.fit_one_step(model, inputs[name])
            tensorflow[f"{name}/trained_outputs"] = backend_cases.outputs(model, inputs[name])
        keras.backend.clear_session()
    np.savez(directory / "inputs.npz", **inputs)
    (directory / "cases.json").write_text(json.dumps(
        {"names": list(names), "fit": list(fit_names), "attacks": list(attack_names),
         "checks": checks}))
    # The torch folders come last: they never shadow the packages of this environment.
    path = [str(ROOT), os.environ.get("PYTHONPATH", ""),
            *(TORCH_PATH if backend == "torch" else [])]
    environment = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu",
                   "PYTHONPATH": os.pathsep.join(path)}
    completed = subprocess.run([sys.executable, str(WORKER), str(directory)], env=environment,
                               capture_output=True, text=True, timeout=1200)
    assert completed.returncode == 0, completed.stderr[-4000:]
    worker = dict(np.load(directory / "results.npz"))
    report = json.loads((directory / "results.json").read_text())
    return {"directory": directory, "inputs": inputs, "tensorflow": tensorflow, "worker": worker,
            "report": report}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every layer and depth-4 builder; a few one-step fits; the attacks; equivariance, fold,
    errors."""
    require_jax()
    names = [*backend_cases.LAYER_CASES, *backend_cases.DEFAULT_MODEL_CASES,
             *backend_cases.ATTACKED_MODEL_CASES]
    return run_cases(tmp_path_factory.mktemp("backends"), names, backend_cases.FIT_CASES, True,
                     backend_cases.ATTACK_CASES)


@pytest.fixture(scope="module")
def slow_runs(tmp_path_factory):
    """The depth-10 builders, and one fit step of every depth-4 builder."""
    require_jax()
    names = [*backend_cases.MODEL_CASES, *backend_cases.DEEP_MODEL_CASES]
    return run_cases(tmp_path_factory.mktemp("slow_backends"), names,
                     backend_cases.SLOW_FIT_CASES, False)


def test_worker_ran_on_jax(runs):
    assert runs["report"]["backend"] == "jax"


def check_outputs(results, name):
    key = f"{name}/outputs"
    assert results["worker"][key].shape == results["tensorflow"][key].shape
    assert relative_error(results["worker"][key], results["tensorflow"][key]) <= 1e-5


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
    difference = np.abs(results["worker"][key] - after).max()
    assert difference <= max(1e-5 * np.abs(after).max(), 1e-3 * change)
    # The model trained and saved on the worker's backend loads on TensorFlow with its weights
    # (without its optimizer from PyTorch: Keras saves the torch-only optimizer class there).
    model = keras.saving.load_model(results["directory"] / f"{name}.trained.keras",
                                    compile=results["report"]["backend"] != "torch")
    outputs = backend_cases.outputs(model, results["inputs"][name])
    assert relative_error(outputs, results["worker"][key]) <= 1e-5


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
    reference = runs["worker"]["CascadedGCNN_equivariant_depth4/outputs"]
    assert runs["report"]["fold_error"] <= 1e-5 * np.abs(reference).max()


@pytest.mark.parametrize("name", backend_cases.ATTACK_CASES)
def test_attacks_agree_on_jax(runs, name):
    """Same robust flags, and adversarial images within 1e-5, from one seed on both backends."""
    tensorflow, jax = runs["tensorflow"], runs["worker"]
    np.testing.assert_array_equal(jax[f"{name}/robust"], tensorflow[f"{name}/robust"])
    images, _ = backend_cases.attack_batch(name)
    adversarial = tensorflow[f"{name}/adversarial"]
    assert np.abs(adversarial - images).max() > 0.9 * backend_cases.ATTACK_CASES[name][2]["eps"]
    np.testing.assert_allclose(jax[f"{name}/adversarial"], adversarial, rtol=0, atol=1e-5)


@pytest.mark.parametrize("feature", ["attacks.apgd", "metrics.robust_accuracy",
                                     "export.export_saved_model"])
def test_tensorflow_only_features_say_so_on_jax(runs, feature):
    kind, message = runs["report"]["tensorflow_only_errors"][feature]
    assert kind == "RuntimeError"
    assert message.startswith(f"keras_equivariant.{feature} runs on the TensorFlow backend of "
                              "Keras only; Keras is running on the 'jax' backend.")
    assert "KERAS_BACKEND=tensorflow" in message


@pytest.fixture(scope="module")
def torch_runs(tmp_path_factory):
    """Every layer and depth-4 builder and a few one-step fits in a ``KERAS_BACKEND=torch``
    worker."""
    require_torch()
    names = [*backend_cases.LAYER_CASES, *backend_cases.DEFAULT_MODEL_CASES]
    return run_cases(tmp_path_factory.mktemp("torch_backend"), names, backend_cases.FIT_CASES,
                     False, backend="torch")


@pytest.mark.torch_backend
def test_worker_ran_on_torch(torch_runs):
    assert torch_runs["report"]["backend"] == "torch"


@pytest.mark.torch_backend
@pytest.mark.parametrize("name", [*backend_cases.LAYER_CASES,
                                  *backend_cases.DEFAULT_MODEL_CASES])
def test_same_outputs_on_torch(torch_runs, name):
    check_outputs(torch_runs, name)


@pytest.mark.torch_backend
@pytest.mark.parametrize("name", backend_cases.FIT_CASES)
def test_one_training_step_matches_and_loads_back_on_torch(torch_runs, name):
    check_training_step(torch_runs, name)
