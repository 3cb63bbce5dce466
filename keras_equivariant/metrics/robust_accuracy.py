"""Robust accuracy sweeps over a dataset and a grid of perturbation budgets.

An example counts as robust at a budget only if the model classifies it correctly both clean
**and** after the attack (clean errors are non-robust, as in AutoAttack and RobustBench). Only
clean-correct examples are attacked; the adversarial batch is then classified as a whole, with
the same compiled forward pass as the clean batch, so ``eps=0`` reproduces the clean accuracy
exactly.

Sweeps are resumable: with ``output_dir`` the report is rewritten atomically (CSV and JSON)
after every finished budget, under the identity of the sweep (settings, shard and a fingerprint
of the model weights; ``keras_equivariant.utils.resume``). A rerun with the same identity
reuses the finished budgets instead of recomputing them, after a clean pass checks that the
data give the same number of examples and clean accuracy; another identity is refused.

Sweeps can be split over machines: ``shard=(index, count)`` evaluates the batches
``index, index + count, index + 2 * count, ...`` (each batch keeps the random-start seed of its
position in the whole dataset), and :func:`merge_reports` adds the shards' counts up into the
report the unsharded sweep gives, exactly.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_equivariant.attacks.gradient import compiled_logits, warn_if_probabilities
from keras_equivariant.attacks.protocols import AttackSpec, default_eps, get_protocol
from keras_equivariant.utils import resume
from keras_equivariant.utils.distribution import split_over_replicas
from keras_equivariant.utils.io import atomic_write_json, atomic_write_text, read_json
from keras_equivariant.utils.validation import (
    check_eps,
    check_images,
    check_labels,
    check_positive_int,
    require_backend,
)

CSV_COLUMNS = ("model_name", "protocol", "attack", "norm", "eps", "eps_pixel", "step_size_pixel",
               "accuracy", "num_robust", "num_examples", "clean_accuracy")


class ReportFiles:
    """JSON and CSV files of a report dataclass: needs ``rows()`` and the CSV ``COLUMNS``."""

    COLUMNS: tuple = ()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, payload: dict):
        fields = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in payload.items() if key in fields})

    def to_json(self, path) -> Path:
        """Writes the report as JSON, atomically."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path):
        payload = read_json(path)
        if payload is None:
            raise ValueError(f"No report at {str(path)!r}.")
        return cls.from_dict(payload)

    def to_csv(self, path) -> Path:
        """Writes one row per evaluated value, atomically."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows())
        return atomic_write_text(path, buffer.getvalue())


@dataclasses.dataclass
class RobustAccuracyReport(ReportFiles):
    """Per-budget robust accuracy of one model under one attack and protocol.

    Attributes:
        model_name: name used in files and plot legends (several reports with the same name are
            treated as seeds of one model by the plots).
        protocol: protocol name (``"default"`` or ``"paper"``).
        eps_unit: the unit of ``eps`` (pixel, or the paper's normalized space).
        attack: the pixel-space attack settings (:class:`AttackSpec` as a dict).
        eps: budgets in ``eps_unit``; ``eps_pixel``: the same budgets in pixel units.
        step_size_pixel: the pixel step size used at each budget.
        accuracy: robust accuracy (fraction in [0, 1]) at each budget.
        num_robust: number of robust examples at each budget.
        clean_accuracy: accuracy on the unperturbed examples.
        num_examples: number of evaluated examples.
        seed: base seed of the random starts.
        max_batches: evaluated batches limit (``None``: the whole dataset).
        num_clean_correct: number of examples classified correctly without attack.
        shard: ``[index, count]`` for one shard of a split sweep, ``None`` for a whole one.
        robust_examples: per budget, which examples are robust, in dataset order: a string of
            ``"0"``/``"1"`` (see :meth:`robust_examples_at`), what paired comparisons of models
            on the same images need (``keras_equivariant.metrics.statistics``). Empty for files
            written before 0.2 (and for a merge of such shards).
        batch_sizes: sizes of the evaluated batches in order (what :func:`merge_reports` needs
            to put the shards' per-example flags back in dataset order).
    """

    COLUMNS = CSV_COLUMNS

    model_name: str
    protocol: str
    eps_unit: str
    attack: dict
    eps: list = dataclasses.field(default_factory=list)
    eps_pixel: list = dataclasses.field(default_factory=list)
    step_size_pixel: list = dataclasses.field(default_factory=list)
    accuracy: list = dataclasses.field(default_factory=list)
    num_robust: list = dataclasses.field(default_factory=list)
    clean_accuracy: float | None = None
    num_examples: int | None = None
    seed: int = 0
    max_batches: int | None = None
    num_clean_correct: int | None = None
    shard: list | None = None
    robust_examples: list = dataclasses.field(default_factory=list)
    batch_sizes: list = dataclasses.field(default_factory=list)

    def robust_examples_at(self, eps: float) -> np.ndarray:
        """Per-example robustness (bool array, dataset order) at budget ``eps`` (``eps_unit``).

        Raises:
            ValueError: ``eps`` was not evaluated, or the report keeps no per-example flags.
        """
        position = self._position(eps)
        if len(self.robust_examples) != len(self.eps):
            raise ValueError(
                f"The report of {self.model_name!r} keeps no per-example flags (it was merged "
                "from shards written by an older version); rerun the sweep.")
        return np.frombuffer(self.robust_examples[position].encode("ascii"), np.uint8) == ord("1")

    def _position(self, eps: float) -> int:
        for position, value in enumerate(self.eps):
            if math.isclose(value, eps, rel_tol=1e-9, abs_tol=1e-12):
                return position
        raise ValueError(f"eps={eps} was not evaluated; evaluated budgets: {self.eps}.")

    def rows(self) -> list[dict]:
        """One dict per budget with the :data:`CSV_COLUMNS` keys."""
        return [
            {"model_name": self.model_name, "protocol": self.protocol,
             "attack": self.attack["attack"], "norm": self.attack["norm"], "eps": eps,
             "eps_pixel": eps_pixel, "step_size_pixel": step, "accuracy": accuracy,
             "num_robust": robust, "num_examples": self.num_examples,
             "clean_accuracy": self.clean_accuracy}
            for eps, eps_pixel, step, accuracy, robust in zip(
                self.eps, self.eps_pixel, self.step_size_pixel, self.accuracy, self.num_robust)
        ]

    def accuracy_at(self, eps: float) -> float:
        """Robust accuracy at budget ``eps`` (in ``eps_unit``)."""
        return self.accuracy[self._position(eps)]

    def __str__(self) -> str:
        settings = ", ".join(f"{key}={value}" for key, value in self.attack.items())
        clean = "n/a" if self.clean_accuracy is None else f"{100 * self.clean_accuracy:.2f}%"
        lines = [
            f"Robust accuracy of {self.model_name!r} (protocol={self.protocol!r}; {settings})",
            f"clean accuracy: {clean} on {self.num_examples} examples",
            f"{'eps [' + self.eps_unit + ']':>46}  {'eps pixel':>10}  {'accuracy':>9}",
        ]
        for eps, eps_pixel, accuracy in zip(self.eps, self.eps_pixel, self.accuracy):
            lines.append(f"{eps:>46.5g}  {eps_pixel:>10.5g}  {100 * accuracy:>8.2f}%")
        return "\n".join(lines)


def as_dataset(dataset, batch_size: int = 128):
    """Accepts a ``tf.data.Dataset`` of ``(images, labels)`` batches or an ``(images, labels)`` pair."""
    if isinstance(dataset, tf.data.Dataset):
        return dataset
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        return tf.data.Dataset.from_tensor_slices(tuple(dataset)).batch(batch_size)
    raise ValueError(
        "`dataset` must be a batched tf.data.Dataset of (images, labels) or a tuple "
        f"(images, labels); received {type(dataset).__name__}."
    )


def check_shard(shard):
    """``shard`` as ``(index, count)`` with ``0 <= index < count`` (``None`` stays ``None``)."""
    if shard is None:
        return None
    if (not isinstance(shard, (tuple, list)) or len(shard) != 2
            or any(isinstance(value, bool) or not isinstance(value, (int, np.integer))
                   for value in shard)):
        raise ValueError(f"`shard` must be a pair (index, count) of integers; received {shard!r}.")
    index, count = int(shard[0]), int(shard[1])
    if count < 1 or not 0 <= index < count:
        raise ValueError(
            f"`shard` must satisfy 0 <= index < count; received index={index}, count={count}. "
            "Shards are numbered from 0: (0, 2) and (1, 2) split a sweep in two."
        )
    return index, count


def iterate_batches(model, dataset, max_batches=None, shard=None):
    """Yields ``(batch_index, images, labels, clean_correct)`` for validated batches.

    ``images`` is a float32 tensor in [0, 1], ``labels`` an int32 tensor and ``clean_correct`` a
    NumPy bool array. With ``shard=(index, count)`` only the batches whose position ``i`` in the
    dataset has ``i % count == index`` are yielded (``batch_index`` stays ``i``). Raises
    ``ValueError`` on bad batches before attacking them; warns once if the model returns
    probabilities.
    """
    shard = check_shard(shard)
    first = True
    for index, element in enumerate(dataset):
        if max_batches is not None and index >= max_batches:
            return
        if shard is not None and index % shard[1] != shard[0]:
            continue
        if not isinstance(element, (tuple, list)) or len(element) < 2:
            raise ValueError(
                "Every dataset element must be a pair (images, labels); received "
                f"{type(element).__name__}."
            )
        images = check_images(element[0])
        tensor = tf.convert_to_tensor(images)
        logits = compiled_logits(model, images.shape[1:])(tensor)
        if first:
            warn_if_probabilities(logits, model)
            first = False
        labels = check_labels(element[1], images.shape[0], int(logits.shape[-1]))
        clean_correct = np.argmax(logits.numpy(), axis=-1) == labels
        yield index, tensor, tf.convert_to_tensor(labels), clean_correct


def robust_flags(model, spec: AttackSpec, images, labels, clean_correct, eps_pixel, seed):
    """Per-example robustness of one batch: clean-correct AND still correct after the attack.

    Under an active ``tf.distribute`` strategy with several replicas in this process, the
    attacked points are split over the replicas (:mod:`keras_equivariant.utils.distribution`);
    each part is attacked with the batch's seed, so attacks with random starts draw other
    starts than on one device (deterministic attacks give the same flags)."""
    attacked = np.flatnonzero(clean_correct)
    if attacked.size == 0:
        return clean_correct.copy()
    indices = tf.constant(attacked[:, None], tf.int32)
    adversarial = split_over_replicas(
        lambda part_images, part_labels: spec.run(model, part_images, part_labels, eps_pixel,
                                                  seed),
        tf.gather_nd(images, indices), tf.gather_nd(labels, indices))
    adversarial = tf.tensor_scatter_nd_update(images, indices, adversarial)
    logits = compiled_logits(model, images.shape[1:])(adversarial)
    return clean_correct & (np.argmax(logits.numpy(), axis=-1) == labels.numpy())


def batch_seed(seed: int, batch_index: int) -> int:
    """The random-start seed of one batch: fixed per (seed, batch), shared by all budgets."""
    return int(seed) * 1_000_003 + int(batch_index)


def _known_batches(dataset, max_batches, shard=None):
    cardinality = int(dataset.cardinality())
    total = cardinality if cardinality >= 0 else None
    if max_batches is not None:
        total = max_batches if total is None else min(total, max_batches)
    if total is not None and shard is not None:
        total = len(range(shard[0], total, shard[1]))
    return total


def _file_stem(model_name, protocol, spec):
    text = f"{model_name}_{protocol}_{spec.attack}_L{spec.norm}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)


def _same_eps(first, second) -> bool:
    return math.isclose(first, second, rel_tol=1e-9, abs_tol=1e-12)


def robust_accuracy(model, dataset, attack="pgd", eps=None, protocol="default", norm="inf",
                    steps=None, step_size=None, restarts=None, loss=None, output_dir=None,
                    max_batches=None, seed=0, model_name=None, verbose=1, shard=None):
    """Accuracy under attack for each budget in ``eps``, over a dataset of pixel images in [0, 1].

    Args:
        model: Keras classifier returning logits (called with ``training=False``).
        dataset: batched ``tf.data.Dataset`` of ``(images, labels)`` with pixels in [0, 1], or an
            ``(images, labels)`` pair of arrays (batched by 128).
        attack: ``"pgd"``, ``"fgsm"``, ``"random_noise"``, an AutoAttack component
            (``"apgd-ce"``, ``"apgd-t"``, ``"fab-t"``, ``"square"``) or ``"autoattack"`` (the
            standard ensemble; see :data:`keras_equivariant.choices.ATTACKS`).
        eps: budgets in the protocol's unit (pixel for ``"default"``, normalized [-1, 1] for
            ``"paper"``); ``None`` uses the protocol's default grid.
        protocol: ``"default"`` (honest) or ``"paper"`` (the official evaluation of the paper,
            see :mod:`keras_equivariant.attacks.protocols`).
        norm: ``"inf"`` or ``"2"``.
        steps, step_size, restarts, loss: PGD settings (step size in the protocol's eps unit);
            ``None`` takes the protocol's value (default protocol: 10 steps, ``2.5 * eps / steps``,
            1 restart, cross-entropy). ``restarts`` is the number of draws for ``random_noise``.
            For the AutoAttack family ``steps`` is the number of iterations (APGD, FAB; default
            100) or queries (Square; default 5000); see :class:`AttackSpec`.
        output_dir: if set, ``<model>_<protocol>_<attack>_L<norm>.{csv,json}`` are rewritten there
            after every finished budget, and finished budgets are reused by a rerun.
        max_batches: evaluate only the first ``max_batches`` batches.
        seed: base seed of the random starts (each batch uses a fixed seed derived from it).
        model_name: name recorded in the report (default ``model.name``).
        verbose: 1 shows a progress bar per budget, 0 is silent.
        shard: ``(index, count)`` evaluates only shard ``index`` (from 0) of ``count``: every
            ``count``-th batch, starting at batch ``index``. Combine the shards' reports with
            :func:`merge_reports`. ``None`` evaluates every batch.

    Under an active ``tf.distribute`` strategy (``with strategy.scope(): ...``, e.g.
    ``keras_equivariant.training.select_strategy()`` over several GPUs) every batch's attack is
    split over the strategy's replicas in this process (several workers: use ``shard``).

    Returns:
        A :class:`RobustAccuracyReport`.

    Example:

    >>> report = robust_accuracy(model, test_dataset, attack="pgd", eps=[0, 2 / 255, 8 / 255])
    >>> report.to_csv("pgd.csv")
    """
    require_backend("keras_equivariant.metrics.robust_accuracy")
    protocol = get_protocol(protocol)
    spec = protocol.resolve(attack, norm, steps, step_size, restarts, loss)
    eps_values = default_eps(protocol, spec.norm) if eps is None else check_eps(eps, norm=spec.norm)
    for position, value in enumerate(eps_values):
        if any(_same_eps(value, other) for other in eps_values[:position]):
            raise ValueError(f"`eps` holds {value} twice; received {eps_values}.")
    eps_pixel = protocol.to_pixel(eps_values)
    if max_batches is not None:
        max_batches = check_positive_int(max_batches, "max_batches")
    shard = check_shard(shard)
    dataset = as_dataset(dataset)
    model_name = model_name or model.name
    report = RobustAccuracyReport(model_name=model_name, protocol=protocol.name,
                                  eps_unit=protocol.eps_unit, attack=spec.to_dict(),
                                  seed=int(seed), max_batches=max_batches,
                                  shard=None if shard is None else list(shard))
    finished = {}
    json_path = csv_path = identity = None
    if output_dir is not None:
        stem = _file_stem(model_name, protocol.name, spec)
        json_path = Path(output_dir) / f"{stem}.json"
        csv_path = Path(output_dir) / f"{stem}.csv"
        identity = {**{name: getattr(report, name) for name in _IDENTITY_FIELDS},
                    "model_weights": resume.weights_fingerprint(model)}
        stored = resume.load(json_path, identity, what="a robust-accuracy sweep",
                             hint="Use another output_dir, or delete the file to start over.")
        if stored:
            previous = RobustAccuracyReport.from_dict(stored)
            report.clean_accuracy = previous.clean_accuracy
            report.num_examples = previous.num_examples
            report.num_clean_correct = previous.num_clean_correct
            report.batch_sizes = list(previous.batch_sizes)
            finished = {"rows": previous.rows()}
            if len(previous.robust_examples) == len(previous.eps):
                for row, flags in zip(finished["rows"], previous.robust_examples):
                    row["flags"] = flags
            else:  # a file without per-example flags: its budgets are recomputed
                finished = {}
            # reused budgets are only valid for the same data: check with a clean pass before
            # reusing anything, even when every budget is already finished
            _check_same_data(report, *_clean_counts(model, dataset, max_batches, shard))
    num_batches = _known_batches(dataset, max_batches, shard)
    reused = [value for value in eps_values
              if any(_same_eps(row["eps"], value) for row in finished.get("rows", []))]
    if reused and verbose:
        print(f"{spec.attack}: reusing {len(reused)} finished eps "
              f"({', '.join(f'{value:g}' for value in reused)}; {protocol.eps_unit}) from "
              f"{json_path}")

    for value, value_pixel in zip(eps_values, eps_pixel):
        previous = next((row for row in finished.get("rows", []) if _same_eps(row["eps"], value)),
                        None)
        if previous is not None:
            num_robust = int(previous["num_robust"])
            flags = previous["flags"]
        else:
            if verbose:
                print(f"{spec.attack} eps={value:g} [{protocol.eps_unit}] "
                      f"(pixel eps={value_pixel:.5g})")
            flags, num_correct, batch_sizes = _sweep_one(
                model, dataset, spec, value_pixel, seed, max_batches, num_batches, verbose,
                shard)
            num_robust = int(flags.sum())
            _check_same_data(report, num_correct, flags.size)
            report.batch_sizes = report.batch_sizes or batch_sizes
        _append(report, spec, value, value_pixel, num_robust, flags)
        if json_path is not None and previous is None:
            _write(report, json_path, csv_path, identity)
    if json_path is not None:
        _write(report, json_path, csv_path, identity)
    return report


# What makes two sweeps the same sweep (with the model weights): resuming needs all equal.
_IDENTITY_FIELDS = ("model_name", "protocol", "attack", "seed", "max_batches", "shard")


def _write(report, json_path, csv_path, identity):
    resume.save(json_path, identity, report.to_dict())
    report.to_csv(csv_path)


def merge_reports(reports) -> RobustAccuracyReport:
    """Combines the reports of the shards ``(0, N) ... (N - 1, N)`` of one sweep into the report
    of the whole sweep (identical to the unsharded one: counts are added, then divided).

    Raises:
        ValueError: the reports are not exactly the ``N`` shards of one sweep (other settings,
            other budgets, a shard missing or given twice).
    """
    reports = list(reports)
    if not reports:
        raise ValueError("`reports` must hold the reports of every shard; received none.")
    first = reports[0]
    count = None if first.shard is None else first.shard[1]
    found = sorted(tuple(report.shard) for report in reports if report.shard is not None)
    if count is None or found != [(index, count) for index in range(count)]:
        raise ValueError(
            f"merge_reports needs one report per shard (0..N-1 of N); received shards "
            f"{[report.shard for report in reports]}."
        )
    for report in reports[1:]:
        for name in ("model_name", "protocol", "eps_unit", "attack", "seed", "max_batches",
                     "eps", "eps_pixel", "step_size_pixel"):
            if getattr(report, name) != getattr(first, name):
                raise ValueError(
                    f"Shard {report.shard} of {first.model_name!r} differs from shard "
                    f"{first.shard} in {name}: {getattr(report, name)!r} vs "
                    f"{getattr(first, name)!r}. Merge the shards of one sweep only (rerun the "
                    "missing budgets on every shard)."
                )
    num_examples = sum(report.num_examples for report in reports)
    num_clean_correct = sum(report.num_clean_correct for report in reports)
    num_robust = [sum(values) for values in zip(*(report.num_robust for report in reports))]
    robust_examples, batch_sizes = _interleave_shards(sorted(reports, key=lambda r: r.shard[0]))
    return dataclasses.replace(
        first, shard=None, robust_examples=robust_examples, batch_sizes=batch_sizes,
        num_examples=num_examples,
        num_clean_correct=num_clean_correct,
        clean_accuracy=num_clean_correct / num_examples, num_robust=num_robust,
        accuracy=[robust / num_examples for robust in num_robust])


def _interleave_shards(reports):
    """``(robust_examples, batch_sizes)`` of the whole sweep from its shards (in shard order):
    shard ``k`` of ``N`` holds batches ``k, k + N, ...``, so its flags are cut at its batch
    sizes and dealt back in dataset order. Empty lists when a shard keeps no flags (older
    files)."""
    count = len(reports)
    if any(not report.batch_sizes or len(report.robust_examples) != len(report.eps)
           for report in reports):
        return [], []
    pieces = []  # per shard: per budget, the flags of each of its batches
    for report in reports:
        ends = np.cumsum(report.batch_sizes)
        pieces.append([[flags[end - size:end] for end, size in zip(ends, report.batch_sizes)]
                       for flags in report.robust_examples])
    num_batches = sum(len(report.batch_sizes) for report in reports)
    order = [(index % count, index // count) for index in range(num_batches)]
    batch_sizes = [reports[shard].batch_sizes[position] for shard, position in order]
    robust_examples = ["".join(pieces[shard][budget][position] for shard, position in order)
                       for budget in range(len(reports[0].eps))]
    return robust_examples, batch_sizes


def _sweep_one(model, dataset, spec, eps_pixel, seed, max_batches, num_batches, verbose,
               shard=None):
    progress = keras.utils.Progbar(num_batches, verbose=verbose, unit_name="batch",
                                   stateful_metrics=["clean_accuracy", "robust_accuracy"])
    flags, batch_sizes = [], []
    num_robust = num_correct = num_examples = 0
    for position, (index, images, labels, clean_correct) in enumerate(
            iterate_batches(model, dataset, max_batches, shard)):
        robust = robust_flags(model, spec, images, labels, clean_correct, eps_pixel,
                              batch_seed(seed, index))
        flags.append(robust)
        batch_sizes.append(int(robust.size))
        num_robust += int(robust.sum())
        num_correct += int(clean_correct.sum())
        num_examples += int(clean_correct.size)
        progress.update(position + 1, [("clean_accuracy", num_correct / num_examples),
                                       ("robust_accuracy", num_robust / num_examples)])
    if num_examples == 0:
        raise ValueError("`dataset` yielded no examples.")
    return np.concatenate(flags), num_correct, batch_sizes


def _clean_counts(model, dataset, max_batches, shard=None):
    """``(num_correct, num_examples)`` of the unperturbed data (forward passes only)."""
    num_correct = num_examples = 0
    for _, _, _, clean_correct in iterate_batches(model, dataset, max_batches, shard):
        num_correct += int(clean_correct.sum())
        num_examples += int(clean_correct.size)
    if num_examples == 0:
        raise ValueError("`dataset` yielded no examples.")
    return num_correct, num_examples


def _check_same_data(report, num_correct, num_examples):
    clean_accuracy = num_correct / num_examples
    if report.num_examples is None:
        report.num_examples, report.clean_accuracy = num_examples, clean_accuracy
        report.num_clean_correct = num_correct
    elif report.num_examples != num_examples or not math.isclose(report.clean_accuracy,
                                                                 clean_accuracy):
        raise ValueError(
            f"The evaluated data changed between passes: {report.num_examples} examples at "
            f"{100 * report.clean_accuracy:.4f}% clean accuracy before, {num_examples} at "
            f"{100 * clean_accuracy:.4f}% now. Use a deterministic dataset (no reshuffling, "
            "no random augmentation) and the same model; for a different model or dataset "
            "use a new output_dir."
        )


def _append(report, spec, value, value_pixel, num_robust, flags):
    report.eps.append(float(value))
    report.eps_pixel.append(float(value_pixel))
    report.step_size_pixel.append(float(spec.step_size_for(value_pixel)))
    report.num_robust.append(int(num_robust))
    report.accuracy.append(num_robust / report.num_examples)
    if isinstance(flags, str):
        report.robust_examples.append(flags)
    else:
        report.robust_examples.append("".join("1" if flag else "0" for flag in flags))
