"""Evaluation pipelines of a trained model: attack sweeps, the CIFAR-10-C sweep, CLEVER and the
C4 equivariance check, resumable, shardable and mergeable.

These are the Python API behind ``keras-equivariant evaluate`` and ``clever`` (and the
evaluation stages of ``keras_equivariant.reproduce``). Every result file records its identity
(settings, data, model weights; ``keras_equivariant.utils.resume``): a rerun reuses what is
finished and refuses files that belong to another model, other data or other settings.

Scaling out: ``evaluate(..., shard=(index, count))`` evaluates every ``count``-th test batch
starting at batch ``index`` (numbered from 0) into ``<output_dir>/shard-<index>-of-<count>/``,
so ``count`` machines of any scheduler (Slurm arrays, Kubernetes indexed jobs) can split one
evaluation; :func:`merge_shards` then adds the shards' counts up into ``<output_dir>``: the
same files and numbers as the unsharded run.
"""

from __future__ import annotations

import re
from pathlib import Path

#: Attacks swept by default, and the attacks whose ``steps`` a sweep sets (the others pin them).
DEFAULT_ATTACKS = ("fgsm", "pgd")
STEPPED_ATTACKS = ("pgd", "apgd-ce", "apgd-t", "fab-t", "square")  # square: queries
SHARD_DIRECTORY = "shard-{index}-of-{count}"
_SHARD_PATTERN = re.compile(r"^shard-(\d+)-of-(\d+)$")


def evaluate(model, output_dir, attacks=DEFAULT_ATTACKS, eps=None, protocol="default",
             steps=None, dataset="cifar10", data_dir=None, max_examples=None, batch_size=128,
             corruptions=None, severities=(1, 2, 3, 4, 5), skip_attacks=False, spatial=False,
             spatial_eps=None, model_name=None, shard=None, verbose=1):
    """Attack sweeps and (optionally) the CIFAR-10-C sweep of ``model`` into ``output_dir``.

    Args:
        model: Keras classifier of [0, 1] images returning logits.
        output_dir: results folder (with ``shard``, its ``shard-<i>-of-<n>`` subfolder).
        attacks, eps, protocol, steps: see :func:`attack_sweeps`.
        dataset, data_dir, max_examples, batch_size: the test data (``keras_equivariant.data``).
        corruptions: CIFAR-10-C corruption names, ``["all"]``, or ``None`` for no CIFAR-10-C
            sweep; checked before any work.
        severities: CIFAR-10-C severities.
        skip_attacks: run only the CIFAR-10-C (and/or spatial) sweep.
        spatial: also run :func:`spatial_sweep` (worst-of-grid rotations/translations and the
            accuracy-vs-rotation and -zoom curves) into ``output_dir/spatial``.
        spatial_eps: with ``spatial``, also the combined threat model: the worst
            transformation followed by L-inf PGD at this pixel budget.
        model_name: name in reports and file names (default ``model.name``).
        shard: ``(index, count)`` to evaluate one shard of the test set (see the module doc).
        verbose: 1 prints the reports and progress.

    Returns:
        ``{"attacks": {attack: RobustAccuracyReport}, "corruptions": {name: {severity: acc}},
        "spatial": {"worst_case": ..., "curves": ...}}`` (the keys of what ran).
    """
    from keras_equivariant.metrics.robust_accuracy import check_shard

    if skip_attacks and not (corruptions or spatial):
        raise ValueError("--skip-attacks leaves nothing to evaluate: add --corruptions (names or "
                         "'all') for the CIFAR-10-C sweep or --spatial, or drop --skip-attacks.")
    shard = check_shard(shard)
    if spatial and shard is not None:
        raise ValueError("The spatial sweep does not shard yet: run `spatial` in an unsharded "
                         "evaluation (it can reuse the same `output_dir`), without `shard`.")
    if spatial_eps is not None and not spatial:
        raise ValueError("`spatial_eps` (a PGD budget after the worst transformation) needs "
                         "`spatial`: turn the spatial sweep on, or drop `spatial_eps`.")
    corruptions = check_corruption_names(corruptions) if corruptions else None
    output_dir = shard_directory(output_dir, shard)
    results = {}
    if not skip_attacks:
        results["attacks"] = attack_sweeps(
            model, output_dir, attacks=attacks, eps=eps, protocol=protocol, steps=steps,
            dataset=dataset, data_dir=data_dir, max_examples=max_examples,
            batch_size=batch_size, model_name=model_name, shard=shard, verbose=verbose)
        if verbose:
            for report in results["attacks"].values():
                print(report)
    if corruptions:
        results["corruptions"] = corruption_sweep(
            model, output_dir / "corruptions", corruptions=corruptions, severities=severities,
            data_dir=data_dir, max_examples=max_examples, batch_size=batch_size, shard=shard,
            verbose=verbose)
    if spatial:
        results["spatial"] = spatial_sweep(
            model, output_dir / "spatial", eps=spatial_eps, dataset=dataset, data_dir=data_dir,
            max_examples=max_examples, batch_size=batch_size, model_name=model_name,
            verbose=verbose)
    return results


#: ``spatial_sweep``'s grids: Engstrom et al.'s worst-of-grid (21 angles x 7 x 7 shifts) and
#: the accuracy curves over a full turn and over zooms.
SPATIAL_CURVE_ROTATIONS = tuple(range(0, 360, 5))
SPATIAL_CURVE_SCALES = (0.8, 0.9, 1.0, 1.1, 1.25)


def spatial_sweep(model, output_dir, rotations=None, translations=None, eps=None,
                  dataset="cifar10", data_dir=None, max_examples=None, batch_size=128,
                  model_name=None, verbose=1):
    """Spatial robustness of ``model``: the worst-of-grid accuracy over ``rotations`` (degrees,
    default -30..30 step 3) x ``translations`` (pixels, default -3..3 on both axes), with
    ``eps`` also the worst transformation followed by L-inf PGD, and the accuracy /
    consistency curves over :data:`SPATIAL_CURVE_ROTATIONS` and :data:`SPATIAL_CURVE_SCALES`.

    Writes ``<model>_spatial.{json,csv}`` and ``<model>_transformation.{json,csv,png}`` into
    ``output_dir``; each resumes by batch. Returns ``{"worst_case":
    SpatialRobustAccuracyReport, "curves": TransformationAccuracyReport}``.
    """
    from keras_equivariant import data, metrics
    from keras_equivariant.attacks.spatial import DEFAULT_ROTATIONS, DEFAULT_TRANSLATIONS

    test_data = data.load_dataset(dataset, "test", data_dir=data_dir, batch_size=batch_size,
                                  shuffle=False, max_examples=max_examples)
    output_dir = Path(output_dir)
    reports = {"worst_case": metrics.spatial_robust_accuracy(
        model, test_data,
        rotations=DEFAULT_ROTATIONS if rotations is None else rotations,
        translations=DEFAULT_TRANSLATIONS if translations is None else translations,
        eps=eps, output_dir=output_dir, model_name=model_name, verbose=verbose)}
    reports["curves"] = metrics.transformation_accuracy(
        model, test_data, rotations=SPATIAL_CURVE_ROTATIONS, scales=SPATIAL_CURVE_SCALES,
        output_dir=output_dir, model_name=model_name, verbose=verbose)
    if verbose:
        for report in reports.values():
            print(report)
    return reports


def shard_directory(output_dir, shard=None) -> Path:
    """``output_dir`` for a whole run, ``output_dir/shard-<index>-of-<count>`` for a shard."""
    output_dir = Path(output_dir)
    if shard is None:
        return output_dir
    return output_dir / SHARD_DIRECTORY.format(index=shard[0], count=shard[1])


def check_corruption_names(requested):
    """``requested`` CIFAR-10-C names as a list (``["all"]`` expanded), each checked, so that a
    typo fails before any sweep."""
    from keras_equivariant import data

    names = list(data.CORRUPTIONS) if list(requested) == ["all"] else list(requested)
    for name in names:
        data.dataset_info("cifar10_corrupted", "test", corruption=name, severity=1)
    return names


def attack_sweeps(model, output_dir, attacks=DEFAULT_ATTACKS, eps=None, protocol="default",
                  steps=None, dataset="cifar10", data_dir=None, max_examples=None,
                  batch_size=128, model_name=None, shard=None, verbose=1):
    """Runs ``metrics.robust_accuracy`` for each attack, writing CSV/JSON into ``output_dir``
    after every budget (a rerun reuses finished budgets), and plots all attacks in
    ``output_dir/robust_accuracy.png``. Returns ``{attack: RobustAccuracyReport}``.

    ``steps`` applies to the attacks in :data:`STEPPED_ATTACKS`; settings the protocol forbids
    fail before the first sweep. ``shard``: see :func:`keras_equivariant.metrics.robust_accuracy`.
    """
    from keras_equivariant import attacks as attack_module
    from keras_equivariant import data, metrics

    def steps_for(attack):
        return steps if attack in STEPPED_ATTACKS else None

    for attack in attacks:  # settings the protocol forbids fail before the first sweep
        attack_module.get_protocol(protocol).resolve(attack, steps=steps_for(attack))
    test_data = data.load_dataset(dataset, "test", data_dir=data_dir, batch_size=batch_size,
                                  shuffle=False, max_examples=max_examples)
    reports = {}
    for attack in attacks:
        if verbose:
            print(f"{attack.upper()} sweep ({protocol} protocol)")
        reports[attack] = metrics.robust_accuracy(
            model, test_data, attack=attack, eps=eps, protocol=protocol, steps=steps_for(attack),
            output_dir=output_dir, model_name=model_name, shard=shard, verbose=verbose)
    metrics.plot_robust_accuracy(list(reports.values()),
                                 path=Path(output_dir) / "robust_accuracy.png")
    return reports


def accuracy_by_eps(report):
    """``{eps: accuracy}`` (eps as a string, accuracy in [0, 1]) from a robust-accuracy report."""
    return {f"{float(eps):.6g}": float(accuracy)
            for eps, accuracy in zip(report.eps, report.accuracy)}


def corruption_sweep(model, output_dir, corruptions, severities=(1, 2, 3, 4, 5), data_dir=None,
                     max_examples=None, batch_size=128, shard=None, verbose=1):
    """Clean accuracy on every (corruption, severity) of CIFAR-10-C, resumable.

    After each cell the results are rewritten atomically to ``output_dir/corruptions.json`` and
    ``corruptions.csv`` (``corruption,severity,accuracy,num_examples``). The JSON records the
    identity of the sweep (``max_examples``, the shard, the model weights): cells already in it
    are not recomputed, and a file of another model or another ``max_examples`` is refused
    (never mixed with new cells). At the end ``corruptions.png`` shows accuracy per corruption
    and severity.

    Returns:
        ``{corruption: {severity: accuracy}}`` with integer severities.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_equivariant import data
    from keras_equivariant.metrics.robust_accuracy import check_shard
    from keras_equivariant.utils import resume

    shard = check_shard(shard)
    output_dir = Path(output_dir)
    for name in corruptions:  # validate every name before the first expensive cell
        data.dataset_info("cifar10_corrupted", "test", corruption=name, severity=1)
    identity = _corruption_identity(model, max_examples, batch_size, shard)
    stored = resume.load(output_dir / "corruptions.json", identity, what="CIFAR-10-C cells",
                         hint="Pass another --output-dir (output_dir), or delete the file to "
                              "start over.") or {"cells": []}
    done = {(cell["corruption"], cell["severity"]): cell for cell in stored["cells"]}
    todo = [(name, int(level)) for name in corruptions for level in severities
            if (name, int(level)) not in done]

    predict = tf.function(lambda images: tf.argmax(model(images, training=False), axis=-1,
                                                   output_type=tf.int32))
    progress = keras.utils.Progbar(len(todo), unit_name="cell", verbose=verbose) \
        if todo else None
    for index, (name, level) in enumerate(todo):
        dataset = data.load_dataset("cifar10_corrupted", "test", data_dir=data_dir,
                                    batch_size=batch_size, shuffle=False,
                                    max_examples=max_examples, corruption=name, severity=level)
        correct = total = 0
        for batch, (images, labels) in enumerate(dataset):
            if shard is not None and batch % shard[1] != shard[0]:
                continue
            correct += int(np.sum(predict(images).numpy() == labels.numpy()))
            total += int(labels.shape[0])
        if total == 0:
            raise ValueError(f"Shard {shard} of {name} severity {level} holds no test batch: "
                             "use fewer shards or a smaller batch size.")
        done[(name, level)] = _cell(name, level, correct, total)
        write_corruption_results(output_dir, done, identity)
        progress.update(index + 1, values=[("accuracy", correct / total)])
    return _finish_corruptions(output_dir, done, identity)


def _finish_corruptions(output_dir, done, identity):
    """Writes the cells and their plot; returns ``{corruption: {severity: accuracy}}``."""
    write_corruption_results(output_dir, done, identity)
    _plot_corruptions(done, Path(output_dir) / "corruptions.png")
    table = {}
    for (name, level), cell in done.items():
        table.setdefault(name, {})[level] = cell["accuracy"]
    return table


def _corruption_identity(model, max_examples, batch_size, shard):
    from keras_equivariant.utils import resume

    identity = {"max_examples": max_examples, "shard": None if shard is None else list(shard),
                "model_weights": resume.weights_fingerprint(model)}
    if shard is not None:  # shards split by batches: every shard must use the same batches
        identity["batch_size"] = batch_size
    return identity


def _cell(name, level, num_correct, num_examples):
    return {"corruption": name, "severity": level, "accuracy": num_correct / num_examples,
            "num_examples": num_examples, "num_correct": num_correct}


def write_corruption_results(output_dir, done, identity):
    """Writes ``{(corruption, severity): cell}`` to ``corruptions.json`` (with ``identity``)
    and ``corruptions.csv`` in ``output_dir``, atomically."""
    from keras_equivariant.utils import io, resume

    cells = [done[key] for key in sorted(done)]
    resume.save(Path(output_dir) / "corruptions.json", identity, {"cells": cells})
    lines = ["corruption,severity,accuracy,num_examples"] + [
        f"{cell['corruption']},{cell['severity']},{cell['accuracy']:.6f},{cell['num_examples']}"
        for cell in cells]
    io.atomic_write_text(Path(output_dir) / "corruptions.csv", "\n".join(lines) + "\n")


def _plot_corruptions(done, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({name for name, _ in done})
    levels = sorted({level for _, level in done})
    figure, axis = plt.subplots(figsize=(1.2 + 0.55 * len(names), 4))
    width = 0.8 / len(levels)
    for offset, level in enumerate(levels):
        values = [100 * done[(name, level)]["accuracy"] if (name, level) in done else 0.0
                  for name in names]
        axis.bar([index + offset * width for index in range(len(names))], values, width,
                 label=f"severity {level}")
    axis.set_xticks([index + 0.4 - width / 2 for index in range(len(names))])
    axis.set_xticklabels(names, rotation=45, ha="right")
    axis.set_ylabel("accuracy (%)")
    axis.set_title("CIFAR-10-C accuracy")
    axis.legend(fontsize="small")
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def merge_shards(output_dir, verbose=1):
    """Combines the ``shard-<i>-of-<n>`` results under ``output_dir`` into ``output_dir``.

    Every robust-accuracy sweep present in all shards is merged with
    ``metrics.robust_accuracy.merge_reports`` (written as ``<stem>.json`` / ``.csv`` plus
    ``robust_accuracy.png``), and the CIFAR-10-C cells present in all shards are added up into
    ``corruptions/``. The merged numbers equal those of the unsharded run exactly.

    Raises:
        FileNotFoundError: no shard folders under ``output_dir``.
        ValueError: shards of different splits, a shard missing, or shards of other settings.

    Returns:
        ``{"attacks": {file stem: RobustAccuracyReport}, "corruptions": {name: {severity: acc}}}``.
    """
    from keras_equivariant import metrics
    from keras_equivariant.metrics.robust_accuracy import RobustAccuracyReport, merge_reports
    from keras_equivariant.utils import io

    output_dir = Path(output_dir)
    shards = {}
    for folder in sorted(output_dir.glob("shard-*-of-*")):
        match = _SHARD_PATTERN.match(folder.name)
        if match and folder.is_dir():
            shards[(int(match.group(1)), int(match.group(2)))] = folder
    if not shards:
        raise FileNotFoundError(
            f"No shard results under {output_dir}: expected folders shard-<i>-of-<n> written by "
            "`keras-equivariant evaluate --shard i/n --output-dir` with the same output folder.")
    counts = {count for _, count in shards}
    expected = {(index, max(counts)) for index in range(max(counts))}
    if len(counts) != 1 or set(shards) != expected:
        missing = sorted(expected - set(shards))
        raise ValueError(
            f"{output_dir} holds shards {sorted(shards)}; merging needs exactly the shards "
            f"0..{max(counts) - 1} of {max(counts)} (missing: {missing}). Run the missing "
            "shards first.")
    folders = [shards[key] for key in sorted(shards)]
    merged = {"attacks": {}}
    stems = sorted(set.intersection(*({path.stem for path in folder.glob("*.json")}
                                      for folder in folders)))
    for stem in stems:
        report = merge_reports([RobustAccuracyReport.from_json(folder / f"{stem}.json")
                                for folder in folders])
        report.to_json(output_dir / f"{stem}.json")
        report.to_csv(output_dir / f"{stem}.csv")
        merged["attacks"][stem] = report
        if verbose:
            print(report)
    if merged["attacks"]:
        metrics.plot_robust_accuracy(list(merged["attacks"].values()),
                                     path=output_dir / "robust_accuracy.png")
    cell_files = [folder / "corruptions" / "corruptions.json" for folder in folders]
    if all(path.is_file() for path in cell_files):
        merged["corruptions"] = _merge_corruption_cells(output_dir / "corruptions",
                                                        [io.read_json(path) for path in cell_files])
    return merged


def _merge_corruption_cells(output_dir, payloads):
    from keras_equivariant.utils import resume

    identities = [dict(payload[resume.IDENTITY_KEY]) for payload in payloads]
    for identity in identities:
        identity.pop("shard")
    for identity in identities[1:]:
        differing = resume.differences(identities[0], identity)
        if differing:
            raise ValueError(f"The CIFAR-10-C shards were computed with different settings "
                             f"({', '.join(sorted(differing))}); rerun every shard with the same "
                             "options and model.")
    cells = [{(cell["corruption"], cell["severity"]): cell for cell in payload["cells"]}
             for payload in payloads]
    done = {}
    for key in sorted(set.intersection(*(set(shard_cells) for shard_cells in cells))):
        done[key] = _cell(*key, sum(shard_cells[key]["num_correct"] for shard_cells in cells),
                          sum(shard_cells[key]["num_examples"] for shard_cells in cells))
    identity = {**identities[0], "shard": None, "merged_shards": len(payloads)}
    return _finish_corruptions(output_dir, done, identity)


def clever_summary(model, output_path, num_images=10, preset="fast", norm="2", radius=None,
                   num_batches=None, num_samples_per_batch=None, seed=0, dataset="cifar10",
                   data_dir=None):
    """Scores ``num_images`` class-balanced test images with ``metrics.clever_scores`` (resumable
    through ``output_path``, whose identity covers the settings, the images and the model
    weights) and returns ``{median, mean, min, max, num_images, scores, ...}``."""
    import numpy as np

    from keras_equivariant import data, metrics

    images, labels = data.load_arrays(dataset, "test", data_dir=data_dir,
                                      max_examples=num_images)
    results = metrics.clever_scores(
        model, images.astype("float32") / 255.0, num_batches=num_batches,
        num_samples_per_batch=num_samples_per_batch, radius=radius, norm=norm,
        preset=preset, seed=seed,
        output_path=output_path)
    scores = np.array([result.score for result in results])
    return {
        "norm": norm,
        "num_images": int(scores.size),
        "median": float(np.median(scores)),
        "mean": float(np.mean(scores)),
        "min": float(np.min(scores)),
        "max": float(np.max(scores)),
        "scores": scores.tolist(),
        "correctly_classified": [int(result.predicted_class == label)
                                 for result, label in zip(results, labels)],
        "fallback_fits": int(sum(result.fallback for result in results)),
        "output_path": str(output_path),
    }


def equivariance_errors(model, output_path, num_images=16, dataset="cifar10", data_dir=None):
    """Relative errors of the model's logits under the C4 rotations of ``num_images`` test
    images (``keras_equivariant.check_equivariance``), stored in ``output_path`` with their
    identity (number of images, a fingerprint of the images and of the model weights): reused
    for the same identity, refused for another model or other images."""
    from keras_equivariant import check_equivariance, data
    from keras_equivariant.utils import resume

    images, _ = data.load_arrays(dataset, "test", data_dir=data_dir, max_examples=num_images)
    identity = {"group": "C4", "num_images": num_images,
                "data": resume.array_fingerprint(images),
                "model_weights": resume.weights_fingerprint(model)}
    cached = resume.load(output_path, identity, what="equivariance errors")
    if cached is not None:
        cached.pop(resume.IDENTITY_KEY)
        return cached
    result = check_equivariance(model, images.astype("float32") / 255.0, group="C4")
    payload = {"group": "C4", "num_images": num_images,
               "relative_errors": {str(key): float(value) for key, value in result.errors.items()},
               "max_relative_error": float(result.max_error)}
    resume.save(output_path, identity, payload)
    return payload


def sanity_summary(model, output_path, num_images=128, eps=8 / 255, dataset="cifar10",
                   data_dir=None, seed=0, model_name=None):
    """Runs ``metrics.sanity_checks`` at ``eps`` on ``num_images`` class-balanced test images
    and stores the report in ``output_path`` with its identity (settings, a fingerprint of the
    images and of the model weights): reused for the same identity, refused for another model
    or other images. Returns the report as a dict (``passed``, ``failed``, every check)."""
    from keras_equivariant import data, metrics
    from keras_equivariant.utils import resume

    images, labels = data.load_arrays(dataset, "test", data_dir=data_dir, max_examples=num_images)
    identity = {"checks": "sanity_checks", "eps": float(eps), "num_images": int(num_images),
                "seed": int(seed), "data": resume.array_fingerprint(images),
                "model_weights": resume.weights_fingerprint(model)}
    cached = resume.load(output_path, identity, what="sanity checks")
    if cached is not None:
        cached.pop(resume.IDENTITY_KEY)
        return cached
    report = metrics.sanity_checks(model, (images.astype("float32") / 255.0, labels), eps=eps,
                                   seed=seed, model_name=model_name)
    payload = {**report.to_dict(), "failed": report.failed}
    resume.save(output_path, identity, payload)
    return payload
