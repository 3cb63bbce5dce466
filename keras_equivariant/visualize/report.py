"""All explanation figures for a set of models on one image set (what ``keras-equivariant explain``
writes).

``<output_dir>/``:

```
saliency.png                  saliency / SmoothGrad / GradCAM++ per model, clean and PGD rows
tolerance.json                perturbation-tolerance results per model (reused on a rerun when
                              the model weights and settings are unchanged)
tolerance_distribution.png    per-model distribution of tolerances
tolerance_example_<i>.png     original / masked at each model's tolerance / p(true) curves
equivariance_<model>.png      for models with a lifting RotationConv2D: the group-axis shift
```
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np

from keras_equivariant.utils import resume
from keras_equivariant.utils.io import atomic_write_json, read_json
from keras_equivariant.utils.validation import (check_choice, check_eps, check_images,
                                                check_labels, check_positive_int)
from keras_equivariant.visualize.equivariance import plot_rotation_equivariance
from keras_equivariant.visualize.saliency import METHODS, plot_saliency_comparison
from keras_equivariant.visualize.tolerance import (DEFAULT_FRACTIONS, FILLS,
                                                   perturbation_tolerance,
                                                   plot_tolerance_distribution,
                                                   plot_tolerance_example)

_ARRAY_KEYS = ("fractions", "tolerance", "first_flip", "clean_correct", "correct",
               "label_probability", "predictions", "image_indices")


def lifting_rotation_layer(model):
    """The first group layer of ``model`` that lifts images to a rotation group, or None.

    Any layer describing itself as such qualifies (its ``group_action`` a
    :class:`keras_equivariant.groups.RotationGroup`, ``is_lifting`` true), e.g. a
    ``RotationConv2D`` on a rank-4 input.
    """
    from keras_equivariant.groups import RotationGroup

    for layer in model.layers:
        if isinstance(getattr(layer, "group_action", None), RotationGroup) and layer.is_lifting:
            return layer
    return None


def _file_safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _load_cached(entry, identity, path):
    """The cached tolerance result of one model, or None when absent or computed for another
    identity (documented behaviour: recomputed, never reused)."""
    if not entry or not resume.matches(entry.get(resume.IDENTITY_KEY), identity, path,
                                       on_mismatch="recompute"):
        return None
    result = dict(entry["result"])
    for key in _ARRAY_KEYS:
        result[key] = np.asarray(result[key], dtype=np.float64 if key in (
            "fractions", "tolerance", "first_flip", "label_probability") else None)
    for key in ("clean_correct", "correct"):
        result[key] = result[key].astype(bool)
    return result


def write_explanations(models, images, labels, output_dir, model_names=None, num_images=4,
                       class_names=None, methods=METHODS, eps=8 / 255, pgd_steps=10,
                       num_tolerance_images=100, fill="zero", seed=0, verbose=1):
    """Writes the saliency, perturbation-tolerance and equivariance figures of ``models``.

    Args:
        models: list of ``keras.Model`` mapping [0, 1] images to logits.
        images: float array ``(N, H, W, C)`` in [0, 1] (e.g. the first test images).
        labels: their true classes ``(N,)``.
        output_dir: folder for the files listed in the module docstring.
        model_names: one name per model (default ``model.name``); used in titles and file names.
        num_images: images in the saliency figure and number of per-image tolerance figures.
        class_names: optional class names for titles.
        methods: explanation methods (see :func:`saliency_maps`).
        eps: L-inf PGD budget (pixels) of the adversarial rows; 0 draws clean rows only.
        pgd_steps: PGD steps (random start, ``keras_equivariant.attacks.pgd`` defaults otherwise).
        num_tolerance_images: how many of ``images`` (the first ones) enter the tolerance study.
        fill: removed-pixel value for the tolerance study, ``"zero"`` or ``"mean"``.
        seed: seed of the PGD random start and of the removal masks.
        verbose: 1 prints progress.

    Returns:
        Dict ``{figure or file kind: path or list of paths}``.
    """
    models = list(models)
    if not models:
        raise ValueError("`models` must hold at least one keras.Model; received an empty list.")
    model_names = [model.name for model in models] if model_names is None else list(model_names)
    if len(model_names) != len(models) or len(set(model_names)) != len(model_names):
        raise ValueError(
            f"`model_names` must be {len(models)} distinct names, one per model; received "
            f"{model_names}."
        )
    images = check_images(images)
    labels = check_labels(labels, images.shape[0])
    num_images = check_positive_int(num_images, "num_images")
    num_tolerance_images = check_positive_int(num_tolerance_images, "num_tolerance_images")
    methods = [check_choice(method, METHODS, "method") for method in methods]
    check_choice(fill, FILLS, "fill")
    eps = check_eps(eps)[0]
    pgd_steps = check_positive_int(pgd_steps, "pgd_steps")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = {}

    def say(message):
        if verbose:
            print(message, flush=True)

    shown, shown_labels = images[:num_images], labels[:num_images]
    adversarial = None
    if eps > 0:
        from keras_equivariant.attacks import pgd

        say(f"PGD-{pgd_steps} (eps={eps:.4g}) on {len(shown)} images for {len(models)} models")
        adversarial = [pgd(model, shown, shown_labels, eps=eps, steps=pgd_steps, seed=seed)
                       for model in models]
    condition = f"; second row per image: PGD-{pgd_steps}, eps={eps:.4g}" if eps > 0 else ""
    written["saliency"] = plot_saliency_comparison(
        models, shown, output_dir / "saliency.png", labels=shown_labels, model_names=model_names,
        methods=methods, adversarial_images=adversarial, class_names=class_names,
        title=f"Explanations of the true class (logit){condition}")
    say(f"wrote {written['saliency']}")

    tolerance_images = images[:num_tolerance_images]
    tolerance_labels = labels[:num_tolerance_images]
    settings = {"fill": fill, "seed": int(seed), "fractions": list(DEFAULT_FRACTIONS),
                "num_images": int(len(tolerance_images)),
                "data": resume.array_fingerprint(tolerance_images, tolerance_labels)}
    cache_path = output_dir / "tolerance.json"
    cache = read_json(cache_path, default={}) or {}
    results = {}
    for model, name in zip(models, model_names):
        identity = {**settings, "model_weights": resume.weights_fingerprint(model)}
        result = _load_cached(cache.get(name), identity, cache_path)
        if result is None:
            say(f"perturbation tolerance of {name} on {len(tolerance_images)} images")
            result = perturbation_tolerance(model, tolerance_images, tolerance_labels, fill=fill,
                                            seed=seed, verbose=verbose)
            cache[name] = {resume.IDENTITY_KEY: identity, "result": result}
            atomic_write_json(cache_path, cache)
        else:
            say(f"perturbation tolerance of {name}: reusing {cache_path}")
        results[name] = result
    written["tolerance"] = cache_path
    written["tolerance_distribution"] = plot_tolerance_distribution(
        results, output_dir / "tolerance_distribution.png")
    everyone_correct = np.all([results[name]["clean_correct"] for name in model_names], axis=0)
    positions = np.flatnonzero(everyone_correct)
    if positions.size == 0:
        positions = np.arange(len(tolerance_images))
    written["tolerance_examples"] = [
        plot_tolerance_example(
            tolerance_images[position], tolerance_labels[position], results, position,
            output_dir / f"tolerance_example_{position}.png", class_names=class_names,
            title=f"Image {position}: random pixel removal (nested masks, fill={fill})")
        for position in positions[:num_images]
    ]
    say(f"wrote {written['tolerance_distribution']} and {len(written['tolerance_examples'])} "
        "per-image tolerance figures")

    written["equivariance"] = []
    for model, name in zip(models, model_names):
        layer = lifting_rotation_layer(model)
        if layer is None:
            continue
        # From the model's input (normalization included) to the lifting layer's output.
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        lifting = keras.Model(inputs, layer.output)
        written["equivariance"].append(plot_rotation_equivariance(
            lifting, images[0], output_dir / f"equivariance_{_file_safe(name)}.png",
            title=f"{name}: layer {layer.name!r} on x and on the 90°-rotated x"))
    say(f"wrote {len(written['equivariance'])} equivariance figures")
    return written
