"""Worker of tests/test_backends.py, run as ``python backend_worker.py DIR`` on another backend.

``DIR`` holds ``<case>.keras`` files, ``inputs.npz`` and ``cases.json`` (``names``, ``fit``,
``attacks``, ``checks``) written by the parent test under TensorFlow (see tests/backend_cases.py).
The worker, under the backend named by ``KERAS_BACKEND`` (jax or torch), loads every named model,
recomputes its outputs, trains the ``fit`` ones one step and saves them back as
``<case>.trained.keras``, and runs the ``attacks`` cases (adversarial images and robust flags);
with ``checks`` it also measures the exact C4/D4 equivariance errors, the fold error and the
errors of the TensorFlow-only features. It writes ``results.npz`` and ``results.json`` to ``DIR``.
"""

import json
import os
import sys
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backend_cases  # noqa: E402
from keras_equivariant import check_equivariance  # noqa: E402
from keras_equivariant.export import fold  # noqa: E402
from keras_equivariant.layers import RotationConv2D  # noqa: E402


def tensorflow_only_errors(model, images, directory):
    """``{feature: (exception type, message)}`` of the TensorFlow-only features on this backend."""
    from keras_equivariant.attacks import apgd  # noqa: PLC0415
    from keras_equivariant.export import export_saved_model  # noqa: PLC0415
    from keras_equivariant.metrics import robust_accuracy  # noqa: PLC0415

    labels = np.zeros(len(images), int)
    calls = {"attacks.apgd": lambda: apgd(model, images, labels, eps=0.01, steps=1),
             "metrics.robust_accuracy": lambda: robust_accuracy(model, (images, labels),
                                                                eps=[0.01], verbose=0),
             "export.export_saved_model": lambda: export_saved_model(model,
                                                                     directory / "saved_model")}
    errors = {}
    for feature, call in calls.items():
        try:
            call()
        except Exception as error:  # noqa: BLE001 (recorded and asserted on by the parent)
            errors[feature] = [type(error).__name__, str(error)]
    return errors


def main(directory):
    directory = Path(directory)
    inputs = dict(np.load(directory / "inputs.npz"))
    arrays, report = {}, {"backend": keras.backend.backend(), "losses": {}}
    request = json.loads((directory / "cases.json").read_text())
    for name in request["names"]:
        model = keras.saving.load_model(directory / f"{name}.keras")
        arrays[f"{name}/outputs"] = backend_cases.outputs(model, inputs[name])
        for attack in request["attacks"]:
            if backend_cases.ATTACK_CASES[attack][0] == name:
                arrays[f"{attack}/adversarial"], arrays[f"{attack}/robust"] = (
                    backend_cases.run_attack_case(model, attack))
        if name in request["fit"]:
            report["losses"][name] = backend_cases.fit_one_step(model, inputs[name])
            arrays[f"{name}/trained_outputs"] = backend_cases.outputs(model, inputs[name])
            model.save(directory / f"{name}.trained.keras")
        if name == "CascadedGCNN_equivariant_depth4":
            folded = fold(model)
            report["fold_error"] = float(np.abs(
                backend_cases.outputs(folded, inputs[name]) - arrays[f"{name}/outputs"]).max())
            report["model_c4_error"] = check_equivariance(model, inputs[name], "C4").max_error
    if request["checks"]:
        images = np.random.default_rng(0).random((2, 9, 9, 3), dtype=np.float32)
        for group in ("C4", "D4"):
            report[f"{group}_error"] = check_equivariance(
                RotationConv2D(4, 3, group=group), images, group=group).max_error
        report["tensorflow_only_errors"] = tensorflow_only_errors(
            keras.saving.load_model(directory / "BaselineCNN_equivariant_depth4.keras"),
            inputs["BaselineCNN_equivariant_depth4"], directory)
    np.savez(directory / "results.npz", **arrays)
    (directory / "results.json").write_text(json.dumps(report))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: KERAS_BACKEND=jax|torch python {sys.argv[0]} DIRECTORY")
    print(f"backend_worker on {os.environ.get('KERAS_BACKEND')}", flush=True)
    main(sys.argv[1])
