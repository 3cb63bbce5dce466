"""Accuracy under rotations and scalings, and the worst case over a grid of small transformations.

* :func:`transformation_accuracy`: accuracy at each rotation angle (and zoom factor) of the whole
  dataset, and the *consistency* rate: how often the prediction on the transformed image equals
  the prediction on the untransformed one. A C4-invariant model is exactly as accurate and 100 %
  consistent at 0°, 90°, 180° and 270° (exact pixel rotations), whatever its accuracy.
* :func:`spatial_robust_accuracy`: accuracy under the worst transformation of a grid (Engstrom
  et al., ICML 2019: rotations ±30°, shifts ±3 px), and optionally under the combined threat
  model: the worst transformation followed by an L-inf PGD attack.

The transformation conventions are those of :mod:`keras_equivariant.attacks.spatial`. Both
metrics count only clean-correct examples as robust (like ``robust_accuracy``) and are resumable
by batch: with ``output_dir`` the counts of every finished batch are stored (atomically) under a
key of the settings and the model's weights, with a fingerprint of the batch's images and
labels. A rerun reuses the stored batches; different settings or weights, or a batch whose data
changed, raise a ``ValueError`` instead of being silently reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_equivariant.attacks.gradient import compiled_logits
from keras_equivariant.attacks.protocols import get_protocol
from keras_equivariant.attacks.spatial import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_ROTATIONS,
    DEFAULT_TRANSLATIONS,
    spatial_settings,
    transformed_predictions,
    worst_transformations,
)
from keras_equivariant.metrics.plots import plot_transformation_accuracy
from keras_equivariant.metrics.robust_accuracy import (
    ReportFiles,
    _known_batches,
    as_dataset,
    batch_seed,
    iterate_batches,
)
from keras_equivariant.utils.io import (
    atomic_save_figure,
    atomic_write_json,
    read_json,
)
from keras_equivariant.utils.validation import (
    check_eps,
    check_positive_int,
    check_real_values,
    require_backend,
)

DEFAULT_CURVE_ROTATIONS = tuple(range(0, 360, 5))
TRANSFORMATION_COLUMNS = ("model_name", "transformation", "value", "accuracy", "consistency",
                          "num_correct", "num_consistent", "num_examples", "clean_accuracy")
SPATIAL_COLUMNS = ("model_name", "threat_model", "eps", "accuracy", "num_robust",
                   "num_examples", "num_transformations")


@dataclasses.dataclass
class TransformationAccuracyReport(ReportFiles):
    """Accuracy and consistency of one model at each rotation angle and zoom factor.

    Attributes:
        model_name: name used in files and plot legends.
        settings: interpolation, fill mode and fill value of the transformations.
        transformation: ``"rotation"`` or ``"scale"`` for each row.
        value: the angle in degrees or the zoom factor of each row.
        accuracy: fraction of examples classified correctly after the transformation.
        consistency: fraction of examples whose prediction after the transformation equals the
            prediction on the untransformed image.
        num_correct, num_consistent: the corresponding counts.
        clean_accuracy: accuracy on the untransformed examples.
        num_examples: number of evaluated examples.
    """

    COLUMNS = TRANSFORMATION_COLUMNS

    model_name: str
    settings: dict
    transformation: list = dataclasses.field(default_factory=list)
    value: list = dataclasses.field(default_factory=list)
    accuracy: list = dataclasses.field(default_factory=list)
    consistency: list = dataclasses.field(default_factory=list)
    num_correct: list = dataclasses.field(default_factory=list)
    num_consistent: list = dataclasses.field(default_factory=list)
    clean_accuracy: float | None = None
    num_examples: int | None = None

    def rows(self) -> list[dict]:
        """One dict per (transformation, value) with the :data:`TRANSFORMATION_COLUMNS` keys."""
        return [
            {"model_name": self.model_name, "transformation": kind, "value": value,
             "accuracy": accuracy, "consistency": consistency, "num_correct": correct,
             "num_consistent": consistent, "num_examples": self.num_examples,
             "clean_accuracy": self.clean_accuracy}
            for kind, value, accuracy, consistency, correct, consistent in zip(
                self.transformation, self.value, self.accuracy, self.consistency,
                self.num_correct, self.num_consistent)
        ]

    def curve(self, transformation="rotation", metric="accuracy"):
        """``(values, fractions)`` of one transformation, e.g. accuracy against the angle."""
        if metric not in ("accuracy", "consistency"):
            raise ValueError(
                f"Unknown metric: received {metric!r}. Expected 'accuracy' or 'consistency'.")
        rows = [row for row in self.rows() if row["transformation"] == transformation]
        if not rows:
            raise ValueError(
                f"{self.model_name!r} has no {transformation!r} values; it evaluated "
                f"{sorted(set(self.transformation))}.")
        return [row["value"] for row in rows], [row[metric] for row in rows]

    def at(self, transformation, value, metric="accuracy") -> float:
        """The accuracy (or consistency) at one angle or zoom factor."""
        for row_value, fraction in zip(*self.curve(transformation, metric)):
            if math.isclose(row_value, value, rel_tol=1e-9, abs_tol=1e-12):
                return fraction
        raise ValueError(
            f"{transformation}={value} was not evaluated; evaluated: "
            f"{self.curve(transformation)[0]}.")

    def __str__(self) -> str:
        lines = [
            f"Accuracy under transformations of {self.model_name!r} "
            f"(clean accuracy {100 * self.clean_accuracy:.2f}% on {self.num_examples} examples)",
            f"{'transformation':>14}  {'value':>8}  {'accuracy':>9}  {'consistency':>11}",
        ]
        for row in self.rows():
            lines.append(f"{row['transformation']:>14}  {row['value']:>8.4g}  "
                         f"{100 * row['accuracy']:>8.2f}%  {100 * row['consistency']:>10.2f}%")
        return "\n".join(lines)


@dataclasses.dataclass
class SpatialRobustAccuracyReport(ReportFiles):
    """Accuracy under the worst transformation of a grid, and under the combined threat model.

    Attributes:
        model_name: name used in files and tables.
        settings: the transformation settings (grid values, mode, interpolation, fill) and,
            with ``eps``, the PGD settings.
        num_transformations: transformations tried per example.
        clean_accuracy: accuracy on the untransformed examples.
        spatial_accuracy: fraction of examples correct under every tried transformation.
        num_spatial_robust: the corresponding count.
        eps: L-inf budget of the combined threat model (``None``: not evaluated).
        combined_accuracy: fraction still correct after PGD on the worst transformation.
        num_combined_robust: the corresponding count.
        num_examples: number of evaluated examples.
    """

    COLUMNS = SPATIAL_COLUMNS

    model_name: str
    settings: dict
    num_transformations: int = 0
    clean_accuracy: float | None = None
    spatial_accuracy: float | None = None
    num_spatial_robust: int | None = None
    eps: float | None = None
    combined_accuracy: float | None = None
    num_combined_robust: int | None = None
    num_examples: int | None = None

    def rows(self) -> list[dict]:
        """One dict per threat model with the :data:`SPATIAL_COLUMNS` keys."""
        common = {"model_name": self.model_name, "num_examples": self.num_examples,
                  "num_transformations": self.num_transformations}
        rows = [
            {**common, "threat_model": "none", "eps": None, "accuracy": self.clean_accuracy,
             "num_robust": round(self.clean_accuracy * self.num_examples)},
            {**common, "threat_model": "spatial", "eps": None, "accuracy": self.spatial_accuracy,
             "num_robust": self.num_spatial_robust},
        ]
        if self.eps is not None:
            rows.append({**common, "threat_model": "spatial+linf_pgd", "eps": self.eps,
                         "accuracy": self.combined_accuracy,
                         "num_robust": self.num_combined_robust})
        return rows

    def __str__(self) -> str:
        lines = [f"Spatial robustness of {self.model_name!r} ({self.settings['mode']}, "
                 f"{self.num_transformations} transformations per example, "
                 f"{self.num_examples} examples)"]
        for row in self.rows():
            name = row["threat_model"] + (f" (eps={row['eps']:.5g})" if row["eps"] else "")
            lines.append(f"{name:>32}: {100 * row['accuracy']:6.2f}%")
        return "\n".join(lines)


def _fingerprint(*arrays) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:32]


class _BatchStore:
    """Per-batch counts in one JSON file, under a key of settings and the model's weights.

    A stored batch is reused only when its images and labels have the same fingerprint; a file
    with another key or a changed batch raises a ``ValueError``. ``path=None`` stores nothing.
    """

    def __init__(self, path, key: dict, model):
        self.path, self.key, self.batches = path, key, {}
        if path is None:
            return
        key["weights"] = _model_fingerprint(model)
        payload = read_json(path)
        if payload is None:
            return
        previous = payload.get("key", {})
        changed = sorted(name for name in set(previous) | set(key)
                         if previous.get(name) != key.get(name))
        if changed:
            raise ValueError(
                f"{str(path)!r} holds results for different settings or another model "
                f"({', '.join(changed)} differ: {[previous.get(name) for name in changed]} "
                f"stored, {[key.get(name) for name in changed]} now). Use another output_dir or "
                "delete the file to start over."
            )
        self.batches = payload.get("batches", {})

    def get(self, index, fingerprint):
        entry = self.batches.get(str(index))
        if entry is None:
            return None
        if entry["fingerprint"] != fingerprint:
            raise ValueError(
                f"Batch {index} differs from the batch stored in {str(self.path)!r}: the data "
                "changed since the interrupted run. Use a deterministic dataset (no "
                "reshuffling, no random augmentation), or another output_dir for other data."
            )
        return entry["counts"]

    def put(self, index, fingerprint, counts):
        self.batches[str(index)] = {"fingerprint": fingerprint, "counts": counts}
        if self.path is not None:
            atomic_write_json(self.path, {"key": self.key, "batches": self.batches})


def _run_batches(model, dataset, store, evaluate, max_batches, verbose, progress_name,
                 progress_label):
    """Sums ``evaluate(index, images, labels, clean_correct) -> counts`` over batches, resumably.

    ``counts`` is a dict of integers or lists of integers. Returns the summed counts, which
    include ``num_examples`` and ``num_clean_correct``; the progress bar shows the running
    fraction ``progress_name / num_examples`` (an integer count) as ``progress_label``.
    """
    progress = keras.utils.Progbar(_known_batches(dataset, max_batches), verbose=verbose,
                                   unit_name="batch", stateful_metrics=[progress_label])
    totals = {}
    for index, images, labels, clean_correct in iterate_batches(model, dataset, max_batches):
        fingerprint = _fingerprint(images.numpy(), labels.numpy())
        counts = store.get(index, fingerprint)
        if counts is None:
            counts = {"num_examples": int(clean_correct.size),
                      "num_clean_correct": int(clean_correct.sum()),
                      **evaluate(index, images, labels, clean_correct)}
            store.put(index, fingerprint, counts)
        for name, value in counts.items():
            totals[name] = (np.add(totals[name], value) if name in totals
                            else np.asarray(value)).tolist()
        progress.update(index + 1,
                        [(progress_label, totals[progress_name] / totals["num_examples"])])
    if not totals:
        raise ValueError("`dataset` yielded no examples.")
    return totals


def _model_fingerprint(model) -> str:
    return _fingerprint(*[np.asarray(weight) for weight in model.get_weights()])


def _paths(output_dir, model_name, kind):
    if output_dir is None:
        return None
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{model_name}_{kind}")
    return {suffix: Path(output_dir) / f"{stem}{suffix}"
            for suffix in (".json", ".csv", ".png", ".batches.json")}


def transformation_accuracy(model, data, rotations=DEFAULT_CURVE_ROTATIONS, scales=None,
                            interpolation="bilinear", fill_mode="constant", fill_value=0.0,
                            batch_size=DEFAULT_BATCH_SIZE, output_dir=None, max_batches=None,
                            model_name=None, verbose=1) -> TransformationAccuracyReport:
    """Accuracy and prediction consistency at each rotation angle and zoom factor.

    Every example is rotated by each angle (zoom 1, no shift) and zoomed by each factor
    (no rotation), with the conventions of :func:`keras_equivariant.attacks.spatial`; multiples
    of 90° are exact pixel rotations. Consistency compares with the prediction on the
    untransformed image (computed in the same pass).

    Args:
        model: Keras classifier returning logits (called with ``training=False``).
        data: batched ``tf.data.Dataset`` of ``(images, labels)`` in [0, 1], or an
            ``(images, labels)`` pair of arrays (batched by 128).
        rotations: angles in degrees (default 0..355 in steps of 5); ``None`` for none.
        scales: zoom factors (> 0), e.g. ``[0.8, 0.9, 1.0, 1.1, 1.25]``; ``None`` for none.
        interpolation, fill_mode, fill_value, batch_size: as in ``attacks.spatial``.
        output_dir: if set, ``<model>_transformation.{json,csv,png}`` are written there
            (atomically) and finished batches are stored in ``.batches.json`` for a resume.
        max_batches: evaluate only the first ``max_batches`` batches.
        model_name: name recorded in the report (default ``model.name``).
        verbose: 1 shows a progress bar, 0 is silent.

    Returns:
        A :class:`TransformationAccuracyReport`.

    Example:

    >>> report = transformation_accuracy(model, (x_test, y_test), rotations=range(0, 360, 15))
    >>> print(report)
    >>> report.at("rotation", 90, metric="consistency")
    """
    require_backend("keras_equivariant.metrics.transformation_accuracy")
    if rotations is None and scales is None:
        raise ValueError(
            "Nothing to evaluate: `rotations` and `scales` are both None. Pass angles in "
            "degrees (e.g. range(0, 360, 5)) and/or zoom factors (e.g. [0.8, 1.0, 1.25]).")
    rotations = ([] if rotations is None
                 else list(check_real_values(rotations, "rotations", "degrees")))
    scales = ([] if scales is None
              else list(check_real_values(scales, "scales", "zoom factors", positive=True)))
    settings = spatial_settings(0, 0, None, interpolation=interpolation, fill_mode=fill_mode,
                                fill_value=fill_value, batch_size=batch_size)
    if max_batches is not None:
        max_batches = check_positive_int(max_batches, "max_batches")
    dataset = as_dataset(data)
    model_name = model_name or model.name
    kinds = ["rotation"] * len(rotations) + ["scale"] * len(scales)
    values = rotations + scales
    # the untransformed reference first, then the rotations (zoom 1), then the zooms (angle 0)
    parameters = (np.array([0.0] + rotations + [0.0] * len(scales)),
                  np.zeros((1 + len(values), 2)),
                  np.array([1.0] + [1.0] * len(rotations) + scales))
    options = {"interpolation": interpolation, "fill_mode": fill_mode,
               "fill_value": settings.fill_value}
    paths = _paths(output_dir, model_name, "transformation")
    store = _BatchStore(paths and paths[".batches.json"], {
        "metric": "transformation_accuracy", "model_name": model_name, **options,
        "transformation": kinds, "value": values}, model)

    def evaluate(index, images, labels, clean_correct):
        predictions = transformed_predictions(model, images, parameters, settings)
        transformed, reference = predictions[1:], predictions[:1]
        return {"num_correct": (transformed == labels.numpy()[None]).sum(axis=1).tolist(),
                "num_consistent": (transformed == reference).sum(axis=1).tolist()}

    totals = _run_batches(model, dataset, store, evaluate, max_batches, verbose,
                          "num_clean_correct", "clean_accuracy")
    num_examples = totals["num_examples"]
    report = TransformationAccuracyReport(
        model_name=model_name, settings=options, transformation=kinds, value=values,
        accuracy=[count / num_examples for count in totals["num_correct"]],
        consistency=[count / num_examples for count in totals["num_consistent"]],
        num_correct=totals["num_correct"], num_consistent=totals["num_consistent"],
        clean_accuracy=totals["num_clean_correct"] / num_examples, num_examples=num_examples)
    if paths is not None:
        report.to_json(paths[".json"])
        report.to_csv(paths[".csv"])
        atomic_save_figure(plot_transformation_accuracy(report, kinds[0]), paths[".png"])
    return report


def spatial_robust_accuracy(model, data, rotations=DEFAULT_ROTATIONS,
                            translations=DEFAULT_TRANSLATIONS, scales=None, mode="grid",
                            num_samples=None, interpolation="bilinear", fill_mode="constant",
                            fill_value=0.0, eps=None, steps=10, restarts=1,
                            batch_size=DEFAULT_BATCH_SIZE, output_dir=None, max_batches=None,
                            seed=0, model_name=None, verbose=1) -> SpatialRobustAccuracyReport:
    """Accuracy under the worst transformation of a grid, optionally followed by L-inf PGD.

    An example counts as robust if it is classified correctly clean **and** under every tried
    transformation (:func:`keras_equivariant.attacks.spatial`: by default 21 angles in ±30° times
    7 x 7 shifts in ±3 px). With ``eps``, the combined threat model of Engstrom et al. is also
    evaluated: PGD (L-inf, ``steps`` steps, step size ``2.5 * eps / steps``) attacks the worst
    transformed image of each spatially robust example within ``eps`` of it. Searching the
    transformation first and the pixels second is cheaper than their joint search (PGD at every
    grid point), so the combined accuracy is an upper bound of the joint one.

    Args:
        model: Keras classifier returning logits (called with ``training=False``).
        data: batched ``tf.data.Dataset`` of ``(images, labels)`` in [0, 1], or an
            ``(images, labels)`` pair of arrays (batched by 128).
        rotations, translations, scales, mode, num_samples, interpolation, fill_mode,
            fill_value, batch_size: the transformations, as in ``attacks.spatial``.
        eps: L-inf budget (pixel units) of the combined threat model; ``None`` skips it.
        steps, restarts: PGD settings of the combined threat model.
        output_dir: if set, ``<model>_spatial.{json,csv}`` are written there (atomically) and
            finished batches are stored in ``.batches.json`` for a resume.
        max_batches: evaluate only the first ``max_batches`` batches.
        seed: base seed of the random draws (``mode="random"``) and PGD's random starts.
        model_name: name recorded in the report (default ``model.name``).
        verbose: 1 shows a progress bar, 0 is silent.

    Returns:
        A :class:`SpatialRobustAccuracyReport`.

    Example:

    >>> report = spatial_robust_accuracy(model, (x_test, y_test), eps=8 / 255)
    >>> report.spatial_accuracy, report.combined_accuracy
    """
    require_backend("keras_equivariant.metrics.spatial_robust_accuracy")
    settings = spatial_settings(rotations, translations, scales, mode, num_samples,
                                interpolation, fill_mode, fill_value, batch_size)
    spec = None
    if eps is not None:
        if np.ndim(eps) != 0:
            raise ValueError(f"`eps` must be a single L-inf budget; received {eps!r}.")
        eps = check_eps(eps)[0]
        spec = get_protocol("default").resolve("pgd", "inf", steps, None, restarts, None)
    if max_batches is not None:
        max_batches = check_positive_int(max_batches, "max_batches")
    dataset = as_dataset(data)
    model_name = model_name or model.name
    options = settings.to_dict()
    if spec is not None:
        options["pgd"] = spec.to_dict()
    image_shape = dataset.element_spec[0].shape
    if image_shape.rank == 4 and None not in image_shape[1:3]:
        settings.check_image_size(*image_shape[1:3])
    paths = _paths(output_dir, model_name, "spatial")
    store = _BatchStore(paths and paths[".batches.json"], {
        "metric": "spatial_robust_accuracy", "model_name": model_name, **options, "eps": eps,
        "seed": int(seed)}, model)

    def evaluate(index, images, labels, clean_correct):
        settings.check_image_size(*images.shape[1:3])
        counts = {"num_spatial_robust": 0, "num_combined_robust": 0}
        attacked = np.flatnonzero(clean_correct)
        if attacked.size == 0:
            return counts
        images, labels = tf.gather(images, attacked), tf.gather(labels, attacked)
        result = worst_transformations(model, images, labels, settings, batch_seed(seed, index))
        robust = np.flatnonzero(~result.misclassified)
        counts["num_spatial_robust"] = int(robust.size)
        if spec is not None and robust.size:
            robust_labels = tf.gather(labels, robust)
            adversarial = spec.run(model, tf.gather(result.images, robust), robust_labels, eps,
                                   batch_seed(seed, index))
            logits = compiled_logits(model, images.shape[1:])(adversarial)
            predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
            counts["num_combined_robust"] = int(tf.reduce_sum(
                tf.cast(predictions == robust_labels, tf.int32)))
        return counts

    totals = _run_batches(model, dataset, store, evaluate, max_batches, verbose,
                          "num_spatial_robust", "spatial_accuracy")
    num_examples = totals["num_examples"]
    report = SpatialRobustAccuracyReport(
        model_name=model_name, settings=options,
        num_transformations=settings.num_transformations,
        clean_accuracy=totals["num_clean_correct"] / num_examples,
        spatial_accuracy=totals["num_spatial_robust"] / num_examples,
        num_spatial_robust=totals["num_spatial_robust"], num_examples=num_examples)
    if spec is not None:
        report.eps = eps
        report.num_combined_robust = totals["num_combined_robust"]
        report.combined_accuracy = totals["num_combined_robust"] / num_examples
    if paths is not None:
        report.to_json(paths[".json"])
        report.to_csv(paths[".csv"])
    return report
