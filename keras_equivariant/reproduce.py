"""Reproduction runs: train and evaluate a set of models with one protocol, write ``report.md``.

``reproduce(preset, output_dir)`` is the Python API behind ``keras-equivariant reproduce``.

Every stage (training, each attack sweep, CLEVER, the equivariance check) keeps its results
in the model's run directory and is skipped when a rerun finds it done, so an interrupted
``reproduce`` continues where it stopped. ``results.json`` is rewritten after every stage.

Layout of ``<output-dir>`` (default ``runs/reproduce-<preset>``):

```
report.md  results.json  robust_accuracy_fgsm.png  robust_accuracy_pgd.png  rotation_accuracy.png
<run name>/               one `keras-equivariant train` run directory per model
    evaluation/fgsm/ evaluation/pgd/   robust-accuracy CSV/JSON (resumable)
    evaluation/clever_2.json           CLEVER scores per image (resumable)
    evaluation/equivariance.json       relative errors of the logits under C4
    evaluation/spatial/                worst rotation/translation, accuracy vs angle (resumable)
```
"""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import time
from pathlib import Path

from keras_equivariant.choices import MODEL_NAMES

# (model name, variant) pairs whose logits are invariant to 90-degree rotations by construction
# (docs/model-summary.md, "Which models are rotation-invariant"); every other pair is a hybrid.
C4_INVARIANT_MODELS = frozenset({("CascadedGCNN", "equivariant")})


@dataclasses.dataclass(frozen=True)
class Preset:
    """What ``reproduce`` runs. Budgets ``eps`` are in the protocol's unit (pixels for
    ``"default"``, the paper's normalized [-1, 1] units for ``"paper"``)."""

    name: str
    description: str
    models: tuple
    depth: int
    variant: str
    epochs: int
    batch_size: int
    lr_schedule: str  # "constant", "step", "cosine" or "paper" (the official per-model schedule)
    max_train_examples: int | None
    max_test_examples: int | None
    protocol: str
    eps: tuple
    pgd_steps: int | None
    clever_images: int
    clever_preset: str
    clever_norm: str
    clever_num_batches: int | None  # None: the CLEVER preset's
    clever_num_samples_per_batch: int | None
    equivariance_images: int
    # Spatial robustness: worst of rotations -30..30 deg x translations -3..3 px, searched over
    # the whole grid ("grid", 1029 transforms) or over `spatial_samples` random draws per image
    # ("random", Engstrom et al.'s worst-of-k); plus the 0..355 deg accuracy curve.
    spatial_mode: str = "random"
    spatial_samples: int | None = 10
    # Multi-seed studies: every model is trained and evaluated once per seed; with several seeds
    # the report gives means with 95 % confidence intervals and paired differences to the
    # baseline (``keras_equivariant.study``).
    seeds: tuple = (0,)
    paper_variants: tuple = ()  # models also run in their "paper" variant (official structure)
    augment: bool = False  # random crops and flips while training
    attacks: tuple = ("fgsm", "pgd")  # swept at `eps` under `protocol`
    autoattack_eps: tuple = ()  # pixel budgets of the standard L-inf AutoAttack
    paper_protocol_eps: tuple = ()  # FGSM and PGD-40 of the paper's protocol (normalized eps)
    # CLEVER, AutoAttack and the sanity checks (the expensive diagnostics) run on the first
    # `diagnostic_seeds` seeds only (None: on all)
    diagnostic_seeds: int | None = None
    # images per attack call of the sweeps (None: `batch_size`); one call on the whole test
    # subset amortizes AutoAttack's thousands of sequential steps
    evaluation_batch_size: int | None = None
    sanity_images: int = 0  # test images for `metrics.sanity_checks` at 8/255 (0: skipped)
    rotation_curve_step: int = 5  # degrees between the points of the 0..360 accuracy curve
    # Without --data-dir: the CIFAR-10 subset shipped in data/ (True) or tensorflow-datasets.
    uses_shipped_data: bool = True

    def runs(self):
        """``(label, model name, variant)`` of every model of the preset, in order."""
        runs = [(name, name, self.variant) for name in self.models]
        runs += [(f"{name} (paper)", name, "paper") for name in self.paper_variants
                 if self.variant != "paper"]
        return runs


PRESETS = {
    "quick": Preset(
        name="quick",
        description=(
            "A CPU smoke reproduction, about 15 minutes on 2 CPU cores: 4 depth-4 models (3 "
            "hybrids and the end-to-end C4-invariant CascadedGCNN) trained for 6 epochs on 4,660 training images (by default all of the "
            "CIFAR-10 subset (4660 train / 846 test) shipped in the repository's data/ folder; "
            "with --data-dir or tfds data a class-balanced 4,660 of them), evaluated on 400 class-balanced test images "
            "with FGSM and PGD-10 (random start, default protocol, pixel eps), CLEVER-L2 on 2 "
            "images with a reduced sampling budget. The numbers show that the pipeline works; "
            "the models are far from converged."),
        models=("BaselineCNN", "ParallelGCNN", "ParallelRotScaleGCNN", "CascadedGCNN"),
        depth=4, variant="equivariant", epochs=6, batch_size=128, lr_schedule="constant",
        max_train_examples=4660, max_test_examples=400, protocol="default",
        eps=(0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255), pgd_steps=10,
        clever_images=2, clever_preset="fast", clever_norm="2", clever_num_batches=100,
        clever_num_samples_per_batch=16, equivariance_images=16,
        spatial_mode="random", spatial_samples=10,
    ),
    "study": Preset(
        name="study",
        description=(
            "The multi-seed study, sized for about 2 hours on 2 CPU cores: the five builders "
            "(depth 4, `equivariant` variant) plus the `paper` variants of ParallelRotScaleGCNN "
            "and CascadedGCNN, 3 seeds each, one training recipe for all (8 epochs, Adam 1e-3 "
            "with a cosine schedule, batch 128, random crops and flips) on 4,660 training "
            "images (by default the CIFAR-10 subset shipped in data/), evaluated on the same 500 "
            "class-balanced test images: L-inf PGD-10 at 1, 2, 4, 8/255, standard AutoAttack at "
            "1/255 and 2/255, the paper's FGSM / PGD-40 protocol at the same pixel budgets "
            "(1/255 and 2/255), spatial robustness (worst of 10 rotations/translations, accuracy "
            "every 10 deg of rotation), the C4 equivariance error, the gradient-masking sanity "
            "checks on 128 images, and CLEVER-L2 on 20 images. AutoAttack, the sanity checks "
            "and CLEVER run on the first seed only (they dominate the budget): their "
            "differences to the baseline resample test images, not seeds. Every number is a mean over seeds with a 95 % Student-t "
            "interval; differences to BaselineCNN are paired over seeds and test images "
            "(bootstrap)."),
        models=MODEL_NAMES,
        depth=4, variant="equivariant", epochs=8, batch_size=128, lr_schedule="cosine",
        max_train_examples=4660, max_test_examples=500, protocol="default",
        eps=(0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255), pgd_steps=10,
        clever_images=20, clever_preset="fast", clever_norm="2", clever_num_batches=20,
        clever_num_samples_per_batch=16, equivariance_images=16,
        spatial_mode="random", spatial_samples=10,
        seeds=(0, 1, 2), paper_variants=("ParallelRotScaleGCNN", "CascadedGCNN"), augment=True,
        attacks=("pgd",), autoattack_eps=(1 / 255, 2 / 255),
        paper_protocol_eps=(2 / 255, 4 / 255), diagnostic_seeds=1, sanity_images=128,
        rotation_curve_step=10, evaluation_batch_size=500,
    ),
    "paper": Preset(
        name="paper",
        description=(
            "The paper's protocol: the five 10-layer models (official 'paper' variants), full "
            "CIFAR-10, 200 epochs, Adam 1e-3, batch 128, the official per-model LR schedule, "
            "no augmentation, evaluated on the full test set with the official FGSM/PGD-40 "
            "protocol at eps 0.01..0.15 (normalized units = pixel eps/2), CLEVER-L2 with the "
            "paper sampling budget (500 x 1024 per target class) on 20 images. Needs a GPU: about a day on one modern GPU, months on a CPU."),
        models=MODEL_NAMES,
        depth=10, variant="paper", epochs=200, batch_size=128, lr_schedule="paper",
        max_train_examples=None, max_test_examples=None, protocol="paper",
        eps=tuple(round(0.01 * step, 2) for step in range(16)), pgd_steps=None,
        clever_images=20, clever_preset="paper", clever_norm="2", clever_num_batches=None,
        clever_num_samples_per_batch=None, equivariance_images=100,
        spatial_mode="grid", spatial_samples=None, uses_shipped_data=False,
    ),
}


def reproduce(preset="quick", output_dir=None, dataset="cifar10", data_dir=None, seed=0,
              verbose=1):
    """Runs ``preset`` (a ``Preset`` or a name in ``PRESETS``) into ``output_dir`` (default
    ``runs/reproduce-<preset name>``); returns the results dict also written to
    ``results.json``. Resumable: every stage keeps its results in the model's run directory
    under the identity of the stage (``keras_equivariant.utils.resume``).

    ``seed`` offsets the preset's seeds (a single-seed preset runs seed ``seed``; the study
    runs ``seed + 0, seed + 1, seed + 2``). Stages run seed by seed, so an interrupted study
    already holds every model's first seeds. With several seeds the report is the study's
    (:mod:`keras_equivariant.study`: means with 95 % intervals, paired differences)."""
    from keras_equivariant import data, study
    from keras_equivariant.utils import io, resume

    if isinstance(preset, str):
        preset = PRESETS[_check_preset(preset)]
    output_dir = Path(output_dir or f"runs/reproduce-{preset.name}")
    results_path = output_dir / "results.json"
    seeds = [seed + offset for offset in preset.seeds]
    # Fail on missing data before any work, and record what the splits hold.
    splits = {}
    for split, limit in (("train", preset.max_train_examples), ("test", preset.max_test_examples)):
        try:
            _, _, info = data.load_arrays(dataset, split, data_dir=data_dir, with_info=True)
        except data.DataNotFoundError as error:
            needs = (f"full {dataset} ({preset.name!r} uses every image)"
                     if limit is None else f"{dataset} data")
            raise data.DataNotFoundError(
                f"The {preset.name!r} preset needs {needs}; none was found. {error}") from None
        used = info.num_examples if limit is None else min(limit, info.num_examples)
        splits[split] = (f"{used} of the {info.num_examples} {split} images "
                         f"({'all' if used == info.num_examples else 'class-balanced subset'}) "
                         f"from {info.source}")
    # results.json is a summary of the stage files: it is reused (wall times, stage times) only
    # for the same preset, data and seeds, and rebuilt from the stages otherwise.
    identity = {"preset": dataclasses.asdict(preset), "dataset": dataset,
                "data": splits, "seeds": seeds}
    results = resume.load(results_path, identity, on_mismatch="recompute") or {}
    results.pop(resume.IDENTITY_KEY, None)
    previous_models = results.get("models", {})
    results.update({
        "preset": dataclasses.asdict(preset),
        "dataset": {"name": dataset, **splits},
        "seeds": seeds,
        "hardware": hardware_description(),
        # Only this preset's models: entries of models dropped from `--models` are not reported.
        "models": {label: {"model": name, "variant": variant,
                           "seeds": previous_models.get(label, {}).get("seeds", {})}
                   for label, name, variant in preset.runs()},
    })
    start = time.perf_counter()
    previous_seconds = results.get("wall_seconds_before_resume", 0.0) + results.get(
        "wall_seconds_this_session", 0.0)
    results["wall_seconds_before_resume"] = previous_seconds
    results["load_average"] = {"cpu_cores": results["hardware"]["cpu_cores"],
                               "start": _load_average(), "max": _load_average()}

    def save():
        load = _load_average()
        if load is not None:
            results["load_average"].update(end=load, max=max(load, results["load_average"]["max"]))
        results["wall_seconds_this_session"] = time.perf_counter() - start
        results["wall_seconds"] = previous_seconds + results["wall_seconds_this_session"]
        resume.save(results_path, identity, results)

    reports = {}
    rotation_curves = []
    runs = preset.runs()
    total = len(runs) * len(seeds)
    for seed_position, run_seed in enumerate(seeds):
        for run_position, (label, model_name, variant) in enumerate(runs):
            done = seed_position * len(runs) + run_position
            header = f"[{done + 1}/{total}] {label}, seed {run_seed}"
            entry = results["models"][label]["seeds"].setdefault(str(run_seed), {})
            entry.setdefault("stage_seconds", {})
            run_reports, curve = _run_stages(
                preset, label, model_name, variant, run_seed, seed_position, entry, header,
                output_dir, dataset, data_dir, verbose, save)
            for key, report in run_reports.items():
                reports.setdefault(key, []).append(report)
            rotation_curves.append(curve)
            print(f"{header}: done; {_eta_text(done + 1, total, start)}")

    _write_figures(preset, reports, rotation_curves, output_dir)
    if len(seeds) > 1:
        statistics = study.summarize(results)
        results["statistics"] = statistics
        study.write_figures(results, output_dir)
        report_text = study.render_report(results)
    else:
        report_text = render_report(results)
    io.atomic_write_text(output_dir / "report.md", report_text)
    save()
    print(f"report: {output_dir / 'report.md'} (wall time {results['wall_seconds']:.0f} s)")
    return results


def _run_stages(preset, label, model_name, variant, seed, seed_position, entry, header,
                output_dir, dataset, data_dir, verbose, save):
    """Trains one (model, variant, seed) and runs every evaluation stage of ``preset`` on it;
    fills ``entry`` (saved after each stage) and returns ``({sweep key: report},
    rotation-curve report)``. Each stage resumes from its own files."""
    import keras

    from keras_equivariant import evaluation, layers, training  # noqa: F401 (custom objects)

    def timed(stage_name, function):
        begin = time.perf_counter()
        value = function()
        entry["stage_seconds"][stage_name] = time.perf_counter() - begin
        return value

    print(f"{header}: training")
    lr_schedule = (training.PAPER_LR_SCHEDULES[model_name] if preset.lr_schedule == "paper"
                   else preset.lr_schedule)
    summary = training.train(
        model_name, depth=preset.depth, variant=variant, dataset=dataset,
        epochs=preset.epochs, batch_size=preset.batch_size, lr_schedule=lr_schedule,
        augment=preset.augment, data_dir=data_dir, output_dir=output_dir, seed=seed,
        max_train_examples=preset.max_train_examples,
        max_test_examples=preset.max_test_examples, verbose=verbose)
    entry["training"] = summary
    entry["stage_seconds"].setdefault("training", summary.get("train_seconds"))
    save()
    run_dir = Path(summary["run_dir"])
    evaluation_dir = run_dir / "evaluation"
    model = keras.saving.load_model(summary["model_path"])  # written by `training.train`
    sweeps = [(attack, attack, preset.protocol, list(preset.eps), preset.pgd_steps)
              for attack in preset.attacks]
    diagnostics = seed_position < (len(preset.seeds) if preset.diagnostic_seeds is None
                                   else preset.diagnostic_seeds)
    if preset.autoattack_eps and diagnostics:
        sweeps.append(("autoattack", "autoattack", "default", list(preset.autoattack_eps), None))
    for attack in ("fgsm", "pgd") if preset.paper_protocol_eps else ():
        sweeps.append((f"paper_{attack}", attack, "paper", list(preset.paper_protocol_eps), None))
    sweep_reports = {}
    strategy = training.select_strategy("auto")
    for key, attack, protocol, eps, steps in sweeps:
        units = " normalized" if protocol == "paper" else ""  # the paper's [-1, 1] units
        print(f"{header}: {attack.upper()} ({protocol} protocol) at{units} eps "
              f"{', '.join(f'{value * 255:.3g}/255' for value in eps)}")
        with strategy.scope():  # each batch split over the replicas, as training is
            sweep_reports[key] = timed(key, lambda: evaluation.attack_sweeps(
                model, evaluation_dir, attacks=(attack,), eps=eps, protocol=protocol,
                steps=steps, dataset=dataset, data_dir=data_dir,
                max_examples=preset.max_test_examples,
                batch_size=preset.evaluation_batch_size or preset.batch_size, model_name=label,
                verbose=verbose)[attack])
        entry.setdefault("attacks", {})[key] = evaluation.accuracy_by_eps(sweep_reports[key])
        entry.setdefault("robust_examples", {})[key] = {
            f"{float(value):.6g}": flags
            for value, flags in zip(sweep_reports[key].eps, sweep_reports[key].robust_examples)}
        save()

    if preset.clever_images > 0 and diagnostics:
        print(f"{header}: CLEVER-L{preset.clever_norm} ({preset.clever_preset}) on "
              f"{preset.clever_images} images")
        entry["clever"] = timed("clever", lambda: evaluation.clever_summary(
            model, evaluation_dir / f"clever_{preset.clever_norm}.json",
            num_images=preset.clever_images, preset=preset.clever_preset,
            norm=preset.clever_norm, num_batches=preset.clever_num_batches,
            num_samples_per_batch=preset.clever_num_samples_per_batch, seed=seed,
            dataset=dataset, data_dir=data_dir))
        save()

    print(f"{header}: equivariance check (C4 rotations of the input, logits compared)")
    entry["equivariance"] = evaluation.equivariance_errors(
        model, evaluation_dir / "equivariance.json",
        num_images=preset.equivariance_images, dataset=dataset, data_dir=data_dir)
    save()

    print(f"{header}: spatial robustness (worst rotation/translation, 0-360 deg curve)")
    entry["spatial"], curve = timed("spatial", lambda: _spatial_stage(
        model, label, run_dir, preset, dataset, data_dir))
    save()

    if preset.sanity_images > 0 and diagnostics:
        print(f"{header}: gradient-masking sanity checks on {preset.sanity_images} images")
        entry["sanity"] = timed("sanity", lambda: evaluation.sanity_summary(
            model, evaluation_dir / "sanity.json", num_images=preset.sanity_images,
            dataset=dataset, data_dir=data_dir, seed=seed, model_name=label))
        save()
    return sweep_reports, curve


def _write_figures(preset, reports, rotation_curves, output_dir):
    from keras_equivariant import metrics

    for key, key_reports in reports.items():
        protocol = "paper" if key.startswith("paper_") else preset.protocol
        metrics.plot_robust_accuracy(
            key_reports, path=output_dir / f"robust_accuracy_{key}.png",
            band="ci95" if len(preset.seeds) > 1 else "std",
            title=f"{key.removeprefix('paper_').upper()}, {preset.name} preset ({protocol} "
                  "protocol)" + (", mean and 95 % CI over seeds" if len(preset.seeds) > 1
                                 else ""))
    metrics.plot_transformation_accuracy(
        rotation_curves, path=output_dir / "rotation_accuracy.png",
        title=f"Accuracy vs rotation angle, {preset.name} preset")


def _eta_text(done, total, start):
    """``"elapsed ..., about ... left"`` from the mean time per finished run this session."""
    elapsed = time.perf_counter() - start
    left = elapsed / done * (total - done) if done else float("nan")
    return (f"{elapsed / 60:.1f} min this session, about {left / 60:.0f} min left "
            f"({total - done} of {total} runs)")


def _spatial_stage(model, model_name, run_dir, preset, dataset, data_dir):
    """``(summary, rotation-curve report)`` of one model; both metrics resume by batch."""
    from keras_equivariant import data, metrics

    test = data.load_dataset(dataset, "test", data_dir=data_dir, batch_size=preset.batch_size,
                             shuffle=False, max_examples=preset.max_test_examples)
    folder = run_dir / "evaluation" / "spatial"
    curve = metrics.transformation_accuracy(
        model, test, rotations=range(0, 360, preset.rotation_curve_step), output_dir=folder,
        model_name=model_name, verbose=0)
    worst = metrics.spatial_robust_accuracy(
        model, test, mode=preset.spatial_mode, num_samples=preset.spatial_samples,
        output_dir=folder, model_name=model_name, verbose=0)
    angles, accuracies = curve.curve("rotation")
    summary = {
        "worst_case_accuracy": worst.spatial_accuracy,
        "num_transformations": worst.num_transformations,
        "consistency_90": min(curve.at("rotation", angle, "consistency")
                              for angle in (90, 180, 270)),
        "rotation_curve": {f"{angle:g}": accuracy for angle, accuracy in zip(angles, accuracies)},
    }
    return summary, curve


def _check_preset(name):
    from keras_equivariant.utils.validation import check_choice

    return check_choice(name, PRESETS, "preset")


def _load_average():
    """The 1-minute load average, or None where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def hardware_description():
    """CPU model, core count, GPUs, versions and the library's git commit, for the report."""
    import keras
    import tensorflow as tf

    from keras_equivariant.utils.platform import cpu_model, onednn_enabled

    import keras_equivariant

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10,
                                cwd=Path(keras_equivariant.__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "cpu": cpu_model(),
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "gpus": [device.name for device in tf.config.list_physical_devices("GPU")],
        "onednn": onednn_enabled(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_equivariant": keras_equivariant.__version__,
        "git_commit": commit or None,
    }


def render_report(results):
    """The markdown report of a single-seed run: one table of headline numbers and one per
    attack (several seeds: :func:`keras_equivariant.study.render_report`)."""
    lines = setup_lines(results) + [
        "## Summary",
        "",
        "| model | parameters | train time (s) | clean acc. (%) | FGSM acc. @ largest eps (%) "
        "| PGD acc. @ largest eps (%) | CLEVER median | claims C4 invariance "
        "| C4 equivariance error | worst rot./transl. acc. (%) | 90° consistency (%) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    preset = results["preset"]
    entries = {label: next(iter(run["seeds"].values()), {})
               for label, run in results["models"].items()}
    for label, run in results["models"].items():
        entry = entries[label]
        training = entry.get("training", {})
        attacks = entry.get("attacks", {})
        clever = entry.get("clever")
        equivariance = entry.get("equivariance")
        lines.append(
            f"| {label} | {training.get('num_parameters', 0):,} | "
            f"{training.get('train_seconds', float('nan')):.0f} | "
            f"{_percent(training.get('test_accuracy'))} | "
            f"{_percent(_last(attacks.get('fgsm')))} | {_percent(_last(attacks.get('pgd')))} | "
            f"{'n/a' if not clever else format(clever['median'], '.4g')} | "
            f"{'yes' if claims_c4_invariance(run['model'], run['variant']) else 'no'} | "
            f"{'n/a' if not equivariance else _format_error(equivariance['max_relative_error'])} "
            f"| {_percent((entry.get('spatial') or {}).get('worst_case_accuracy'))} "
            f"| {_percent((entry.get('spatial') or {}).get('consistency_90'))} |")
    for key in dict.fromkeys(key for entry in entries.values() for key in entry.get("attacks", {})):
        eps_values = sorted({eps for entry in entries.values()
                             for eps in entry.get("attacks", {}).get(key, {})}, key=float)
        protocol = "paper" if key.startswith("paper_") else preset["protocol"]
        scale = 255 if protocol == "default" else 1
        unit = _protocol_unit(protocol)
        lines += ["", f"## {key.removeprefix('paper_').upper()} accuracy (%) per eps ({protocol} "
                  f"protocol, {unit})", "",
                  "| model | " + " | ".join(f"{float(eps) * scale:.3g}" for eps in eps_values)
                  + " |",
                  "|---|" + "---|" * len(eps_values)]
        for label, entry in entries.items():
            curve = entry.get("attacks", {}).get(key, {})
            lines.append(f"| {label} | "
                         + " | ".join(_percent(curve.get(eps)) for eps in eps_values) + " |")
    lines += ["", "Plots: `robust_accuracy_<attack>.png`, `rotation_accuracy.png`. Raw numbers: "
              "`results.json`.", ""]
    return "\n".join(lines)


def _protocol_unit(protocol):
    return ("pixel units x 255" if protocol == "default"
            else "normalized units (pixel eps = eps/2)")


def setup_lines(results):
    """The report's title, the preset's description and what ran (data, training recipe,
    attacks, CLEVER, equivariance, spatial, hardware, wall time), as markdown lines."""
    preset = results["preset"]
    hardware = results["hardware"]
    protocol_unit = _protocol_unit(preset["protocol"])
    seeds = results.get("seeds", [0])
    lines = [
        f"# keras-equivariant reproduce: `{preset['name']}` preset",
        "",
        preset["description"],
        "",
        f"- Data ({results['dataset']['name']}): train on {results['dataset']['train']}; "
        f"test on {results['dataset']['test']}.",
        f"- Models: depth {preset['depth']}, variant `{preset['variant']}`; {preset['epochs']} "
        f"epochs, batch {preset['batch_size']}, Adam 1e-3, LR schedule `{preset['lr_schedule']}`, "
        f"{'random crops and flips' if preset.get('augment') else 'no augmentation'}; "
        f"seed{'s' if len(seeds) > 1 else ''} {', '.join(str(seed) for seed in seeds)}.",
        f"- Attacks: {', '.join(attack.upper() for attack in preset.get('attacks', ()))} under "
        f"the `{preset['protocol']}` protocol, L-inf, eps in {protocol_unit}; PGD steps: "
        f"{preset['pgd_steps'] or 'protocol default'}.",
        *_extra_attack_lines(preset, seeds),
        f"- CLEVER: L{preset['clever_norm']}, radius = the library default, "
        f"{_clever_budget(preset)}, {preset['clever_images']} class-balanced test images "
        f"{_diagnostic_seeds_text(preset, seeds)}"
        "(an estimate of the minimal adversarial distortion, not a certificate).",
        f"- Equivariance: max relative error of the logits under 90/180/270-degree rotations of "
        f"{preset['equivariance_images']} test images (0 = rotation-invariant predictions; "
        "float32 round-off gives ~1e-6 for an exactly invariant model). \"claims C4 invariance\": "
        "whether the architecture is rotation-invariant by construction; the hybrids (standard-"
        "convolution branches or trunks) are not, so errors of order 1 are expected for them.",
        f"- Spatial robustness: accuracy under the worst of rotations -30..30 deg x translations "
        f"-3..3 px ({_spatial_search(preset)}; Engstrom et al., ICML 2019), and the fraction of "
        "test images whose prediction is unchanged by 90/180/270-degree rotations (the minimum "
        "over the three; 100 % for a C4-invariant model). Curves: `rotation_accuracy.png`.",
        f"- Hardware: {hardware['cpu']}, {hardware['cpu_cores']} cores, GPUs: "
        f"{', '.join(hardware['gpus']) or 'none'}; oneDNN "
        f"{ {True: 'on', False: 'off'}.get(hardware.get('onednn'), 'state unknown')}; "
        f"TensorFlow {hardware['tensorflow']}, "
        f"Keras {hardware['keras']}, keras-equivariant {hardware.get('keras_equivariant')} "
        f"(commit {hardware.get('git_commit') or 'unknown'}).",
        f"- Total wall time: {results.get('wall_seconds', 0) / 60:.1f} min"
        f"{_load_text(results.get('load_average'))}.",
        "",
    ]
    return lines


def _extra_attack_lines(preset, seeds):
    lines = []
    if preset.get("autoattack_eps"):
        lines.append("- AutoAttack: the standard L-inf version (APGD-CE, APGD-T, FAB-T, Square "
                     "5000 queries; Croce & Hein, ICML 2020), default protocol, at pixel eps "
                     + ", ".join(f"{eps * 255:.3g}/255" for eps in preset["autoattack_eps"])
                     + ", " + ", ".join(filter(None, [
                         _diagnostic_seeds_text(preset, seeds).strip(),
                         f"one call per {preset.get('evaluation_batch_size') or preset['batch_size']}"
                         " images"])) + ".")
    if preset.get("paper_protocol_eps"):
        lines.append("- The paper's protocol on the same models: FGSM and PGD-40 with the fixed "
                     "step 0.01 (normalized units), no random start, last iterate, at "
                     "normalized eps " + ", ".join(f"{eps:.4g}" for eps in
                                                   preset["paper_protocol_eps"])
                     + " (pixel eps " + ", ".join(f"{eps * 255 / 2:.3g}/255" for eps in
                                                  preset["paper_protocol_eps"]) + ").")
    if preset.get("sanity_images"):
        lines.append(f"- Gradient-masking sanity checks (`metrics.sanity_checks`) at 8/255 on "
                     f"{preset['sanity_images']} test images "
                     f"{_diagnostic_seeds_text(preset, seeds)}".rstrip() + ".")
    return lines


def _diagnostic_seeds_text(preset, seeds):
    count = preset.get("diagnostic_seeds")
    if count is None or count >= len(seeds):
        return ""
    return ("on the first seed only " if count == 1 else f"on the first {count} seeds only ")


def _clever_budget(preset):
    from keras_equivariant.metrics.clever import PRESETS as CLEVER_PRESETS

    batches, samples = CLEVER_PRESETS[preset["clever_preset"]]
    batches = preset["clever_num_batches"] or batches
    samples = preset["clever_num_samples_per_batch"] or samples
    return (f"`{preset['clever_preset']}` preset with {batches} batches x {samples} gradient "
            "samples per target class")


def _spatial_search(preset):
    if preset.get("spatial_mode", "random") == "grid":
        return "whole grid of 21 angles x 7 x 7 shifts"
    return f"worst of {preset.get('spatial_samples') or 10} random draws per image"


def claims_c4_invariance(model_name, variant):
    """Whether ``model_name`` built with ``variant`` has logits invariant to 90-degree rotations
    by construction (``C4_INVARIANT_MODELS``)."""
    return (model_name, variant) in C4_INVARIANT_MODELS


def _format_error(value):
    """Relative errors: 3 significant digits, or 2 in scientific notation below 0.01
    (``8.1e-07``: an exact invariance at float32 round-off must not print as 0.0)."""
    return f"{value:.1e}" if value < 0.01 else f"{value:.3g}"


def _load_text(load_average):
    if not load_average or load_average.get("start") is None:
        return ""
    return (f"; 1-minute load average {load_average['start']:.1f} at the start, "
            f"{load_average.get('end', load_average['start']):.1f} at the end, "
            f"{load_average.get('max', load_average['start']):.1f} at most (sampled after every "
            f"stage) on {load_average['cpu_cores']} cores"
            + (": above the core count, other jobs shared the CPU and stretched the times"
               if load_average.get("max", 0) > load_average["cpu_cores"] + 0.5 else ""))


def _last(curve):
    return None if not curve else list(curve.values())[-1]


def _percent(value):
    return "n/a" if value is None else f"{100 * value:.1f}"
