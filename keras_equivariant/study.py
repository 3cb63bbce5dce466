"""The statistics of a multi-seed reproduction: means with confidence intervals, paired
differences to the baseline, the paper-vs-honest gap table, figures and ``report.md``.

:func:`keras_equivariant.reproduce.reproduce` runs every model of a preset once per seed and
keeps, for each robust-accuracy sweep, which test images stayed correctly classified
(``results["models"][label]["seeds"][seed]["robust_examples"]``). From those numbers alone this
module computes (:mod:`keras_equivariant.metrics.statistics`):

- for every model and every number, the mean over seeds and its 95 % Student-t interval;
- for every model and every accuracy, the difference to ``BaselineCNN`` with a 95 % interval
  from a paired bootstrap that resamples seeds and test images (the same images for both
  models); numbers without per-image results (spatial accuracy) resample seeds only;
- the gap to the baseline under the paper's protocol beside the gap under ours, at the same
  pixel budgets;
- the conclusion sentences, generated from those intervals ("significant" only when the
  interval excludes 0), never written by hand.

``summarize(results)`` returns all of it as plain data (stored in ``results.json`` under
``"statistics"``); ``render_report(results)`` writes the markdown and ``write_figures`` the
curves with confidence bands and the forest plot of the differences.
"""

from __future__ import annotations

import numpy as np

from keras_equivariant.metrics import statistics

REFERENCE = "BaselineCNN"
CONFIDENCE = 0.95
NUM_RESAMPLES = 10000


def _eps_label(eps_pixel):
    return f"{float(eps_pixel) * 255:.3g}/255"


def metric_table(results):
    """``{label: {metric: {"title", "per_seed": [...], "seeds": [...], "flags": array|None}}}``.

    Metric keys: ``"clean"``, ``"<sweep>@<eps>"`` for every robust-accuracy sweep and budget
    (``eps`` as stored, in the sweep's protocol unit), ``"spatial"``, ``"consistency_90"``,
    ``"equivariance_error"``, ``"clever_median"``. ``flags`` (seeds x images, bool) is present
    for the sweeps, which keep per-image results.
    """
    table = {}
    for label, run in results["models"].items():
        metrics = {}
        for seed, entry in sorted(run["seeds"].items(), key=lambda item: int(item[0])):
            for sweep, by_eps in entry.get("robust_examples", {}).items():
                for eps, flags in by_eps.items():
                    if float(eps) == 0:
                        key, title = "clean", "clean accuracy"
                    else:
                        key, title = f"{sweep}@{eps}", _sweep_title(sweep, eps)
                    metric = metrics.setdefault(key, {"title": title, "per_seed": [],
                                                      "seeds": [], "flags": []})
                    if seed in metric["seeds"]:
                        continue  # clean flags come from every sweep's eps = 0: keep one
                    vector = np.frombuffer(flags.encode("ascii"), np.uint8) == ord("1")
                    metric["per_seed"].append(float(vector.mean()))
                    metric["seeds"].append(seed)
                    metric["flags"].append(vector)
            scalars = {
                "spatial": ("worst rotation/translation accuracy",
                            (entry.get("spatial") or {}).get("worst_case_accuracy")),
                "consistency_90": ("predictions unchanged by 90° rotations",
                                   (entry.get("spatial") or {}).get("consistency_90")),
                "equivariance_error": ("C4 equivariance error of the logits",
                                       (entry.get("equivariance") or {}).get(
                                           "max_relative_error")),
                "clever_median": ("CLEVER-L2 median", (entry.get("clever") or {}).get("median")),
            }
            for key, (title, value) in scalars.items():
                if value is None:
                    continue
                metric = metrics.setdefault(key, {"title": title, "per_seed": [], "seeds": [],
                                                  "flags": None})
                metric["per_seed"].append(float(value))
                metric["seeds"].append(seed)
        for metric in metrics.values():
            if metric["flags"] is not None:
                sizes = {flags.size for flags in metric["flags"]}
                metric["flags"] = np.stack(metric["flags"]) if len(sizes) == 1 else None
        table[label] = metrics
    return table


def _sweep_title(sweep, eps):
    if sweep.startswith("paper_"):
        attack = {"paper_fgsm": "FGSM", "paper_pgd": "PGD-40"}.get(sweep, sweep)
        return f"{attack} accuracy, paper protocol, eps {float(eps):.4g} normalized " \
               f"({_eps_label(float(eps) / 2)} pixel)"
    name = {"pgd": "PGD", "fgsm": "FGSM", "autoattack": "AutoAttack"}.get(sweep, sweep.upper())
    return f"{name} accuracy at {_eps_label(eps)}"


def summarize(results, reference=REFERENCE, num_resamples=NUM_RESAMPLES, seed=0):
    """The statistics of a multi-seed ``results`` dict, as plain data:

    ``{"estimates": {label: {metric: {mean, low, high, num_seeds, title}}},
    "differences": {label: {metric: {mean, low, high, significant, num_seeds, num_images,
    sentence}}}, "gaps": [...], "conclusions": [...]}``. Differences are to ``reference``
    (absent from ``results``: none), on the seeds both models finished.
    """
    table = metric_table(results)
    estimates = {}
    for label, metrics in table.items():
        estimates[label] = {}
        for key, metric in metrics.items():
            estimate = statistics.mean_confidence_interval(metric["per_seed"], CONFIDENCE)
            estimates[label][key] = {"mean": estimate.mean, "low": estimate.low,
                                     "high": estimate.high, "num_seeds": estimate.num_samples,
                                     "title": metric["title"]}
    differences = {}
    if reference in table:
        for label, metrics in table.items():
            if label == reference:
                continue
            differences[label] = {}
            for key, metric in metrics.items():
                if key in ("equivariance_error", "clever_median"):
                    continue  # not accuracies: compared through their own columns
                difference = _paired_difference(metric, table[reference].get(key),
                                                num_resamples, seed)
                if difference is None:
                    continue
                differences[label][key] = {
                    "mean": difference.mean, "low": difference.low, "high": difference.high,
                    "significant": difference.significant, "num_seeds": difference.num_seeds,
                    "num_images": difference.num_items, "title": metric["title"],
                    "sentence": statistics.describe_difference(label, difference,
                                                               metric["title"]),
                }
    gaps = gap_table(results, differences)
    # the conclusions: clean, the smallest PGD budget, every AutoAttack budget, spatial
    headline = [key for key, _ in _headline_columns(results) if key != "consistency_90"]
    pgd_keys = [key for key in headline if key.startswith("pgd@")]
    headline = [key for key in headline if key not in pgd_keys[1:]]
    return {"reference": reference, "confidence": CONFIDENCE, "num_resamples": num_resamples,
            "estimates": estimates, "differences": differences, "gaps": gaps,
            "conclusions": conclusions(differences, gaps, headline)}


def _paired_difference(metric, reference, num_resamples, seed):
    if reference is None:
        return None
    seeds = [value for value in metric["seeds"] if value in reference["seeds"]]
    if not seeds:
        return None
    rows = [metric["seeds"].index(value) for value in seeds]
    reference_rows = [reference["seeds"].index(value) for value in seeds]
    if metric["flags"] is not None and reference["flags"] is not None and \
            metric["flags"].shape[1] == reference["flags"].shape[1]:
        values, baseline = metric["flags"][rows], reference["flags"][reference_rows]
    else:
        values = np.asarray(metric["per_seed"])[rows]
        baseline = np.asarray(reference["per_seed"])[reference_rows]
    return statistics.paired_bootstrap_difference(
        values.astype(float), baseline.astype(float), num_resamples=num_resamples,
        confidence=CONFIDENCE, seed=seed)


def gap_table(results, differences):
    """Rows ``{label, eps_pixel, paper_pgd, pgd, autoattack}``: each model's difference to the
    baseline (mean, low, high) under the paper's protocol (PGD-40) and under ours (PGD-10 and
    AutoAttack) at the same pixel budget."""
    preset = results["preset"]
    rows = []
    for label, by_metric in differences.items():
        for eps_normalized in preset.get("paper_protocol_eps") or ():
            eps_pixel = eps_normalized / 2
            row = {"label": label, "eps_pixel": eps_pixel}
            for column, sweep, eps in (("paper_pgd", "paper_pgd", eps_normalized),
                                       ("pgd", "pgd", eps_pixel),
                                       ("autoattack", "autoattack", eps_pixel)):
                row[column] = by_metric.get(f"{sweep}@{float(eps):.6g}")
            rows.append(row)
    return rows


def conclusions(differences, gaps, keys):
    """The report's conclusion sentences, generated from the intervals: every model's
    difference to the baseline in the metrics ``keys``, then the paper-vs-ours gaps."""
    sentences = []
    for by_metric in differences.values():
        sentences += [by_metric[key]["sentence"] for key in keys if key in by_metric]
    for row in gaps:
        paper, ours = row["paper_pgd"], row["autoattack"] or row["pgd"]
        if paper is None or ours is None:
            continue
        attack = "AutoAttack" if row["autoattack"] else "PGD-10"
        sentences.append(
            f"{row['label']} at {_eps_label(row['eps_pixel'])}: the gap to {REFERENCE} is "
            f"{_signed_points(paper['mean'])} under the paper's PGD-40 protocol and "
            f"{_signed_points(ours['mean'])} under {attack} "
            f"({'significant' if ours['significant'] else 'not significant'} under ours).")
    return sentences


def _signed_points(value):
    return f"{100 * value:+.1f} points"


def _format_interval(values, digits=1, scale=100.0):
    """``mean [low, high]``; accuracies (``scale`` 100) have their interval clipped to
    [0, 100] %."""
    if values is None:
        return "n/a"
    mean, low, high = (scale * values[name] for name in ("mean", "low", "high"))
    if scale == 100.0 and not np.isnan(low):
        low, high = max(low, 0.0), min(high, 100.0)
    if np.isnan(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _format_difference(values):
    if values is None:
        return "n/a"
    text = (f"{100 * values['mean']:+.1f} [{100 * values['low']:+.1f}, "
            f"{100 * values['high']:+.1f}]")
    return f"**{text}**" if values["significant"] else text


def _headline_columns(results):
    """``[(metric key, column title)]`` of the headline table, in a fixed order."""
    preset = results["preset"]
    columns = [("clean", "clean")]
    columns += [(f"pgd@{float(eps):.6g}", f"PGD {_eps_label(eps)}") for eps in preset["eps"]
                if eps > 0 and "pgd" in preset.get("attacks", ())]
    columns += [(f"autoattack@{float(eps):.6g}", f"AA {_eps_label(eps)}")
                for eps in preset.get("autoattack_eps") or ()]
    columns += [("spatial", "worst rot./transl."), ("consistency_90", "90° consistency")]
    return columns


def render_report(results):
    """The study's markdown report: setup, the headline table (mean [95 % CI] over seeds), the
    paired differences to the baseline, the paper-vs-ours gap table, the generated
    conclusions, and the per-model details."""
    from keras_equivariant.reproduce import claims_c4_invariance, setup_lines

    summary = results.get("statistics") or summarize(results)
    estimates, differences = summary["estimates"], summary["differences"]
    columns = _headline_columns(results)
    seeds = results.get("seeds", [])
    lines = setup_lines(results) + [
        "## Headline: accuracy (%) on the same test images, mean [95 % CI] over "
        f"{len(seeds)} seeds",
        "",
        "| model | params | " + " | ".join(title for _, title in columns)
        + " | C4 equiv. error | CLEVER-L2 median | sanity checks |",
        "|---|---|" + "---|" * (len(columns) + 3),
    ]
    for label, run in results["models"].items():
        model_estimates = estimates.get(label, {})
        first = next(iter(run["seeds"].values()), {})
        parameters = (first.get("training") or {}).get("num_parameters", 0)
        error = model_estimates.get("equivariance_error")
        clever = model_estimates.get("clever_median")
        lines.append(
            f"| {label} | {parameters:,} | "
            + " | ".join(_format_interval(model_estimates.get(key)) for key, _ in columns)
            + f" | {'n/a' if error is None else format(error['mean'], '.2g')}"
            + (" (C4-invariant by construction)"
               if claims_c4_invariance(run["model"], run["variant"]) else "")
            + f" | {'n/a' if clever is None else format(clever['mean'], '.3g')}"
            + f" | {_sanity_text(run)} |")
    lines += [
        "",
        "CI: Student-t interval of the mean over seeds (training randomness; with 3 seeds it is "
        "wide), clipped to [0, 100] %. A number without an interval ran on one seed only "
        "(AutoAttack, CLEVER and the sanity checks run on the first seed: see the setup); its "
        "difference to the baseline below still has an interval, over test images.",
        "",
        f"## Difference to {summary['reference']} (points), paired over seeds and test images",
        "",
        f"Mean difference [95 % bootstrap CI, {summary['num_resamples']} resamples of seeds and "
        "of test images, the same images for both models]; **bold**: the interval excludes 0. "
        "Spatial columns resample seeds only (no per-image results).",
        "",
        "| model | " + " | ".join(title for _, title in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for label, by_metric in differences.items():
        lines.append(f"| {label} | "
                     + " | ".join(_format_difference(by_metric.get(key)) for key, _ in columns)
                     + " |")
    if summary["gaps"]:
        lines += [
            "",
            "## The paper's protocol vs ours: the gap to the baseline at the same pixel budget",
            "",
            "The paper's numbers come from FGSM/PGD-40 with a fixed step and no random start; ours "
            "from PGD-10 with random start and from AutoAttack. A gap that shrinks under the "
            "stronger attacks was partly an artifact of the weaker one.",
            "",
            "| model | pixel eps | gap, paper PGD-40 | gap, our PGD-10 | gap, AutoAttack |",
            "|---|---|---|---|---|",
        ]
        for row in summary["gaps"]:
            lines.append(f"| {row['label']} | {_eps_label(row['eps_pixel'])} | "
                         f"{_format_difference(row['paper_pgd'])} | "
                         f"{_format_difference(row['pgd'])} | "
                         f"{_format_difference(row['autoattack'])} |")
    lines += ["", "## Conclusions (generated from the intervals above)", ""]
    lines += [f"- {sentence}" for sentence in summary["conclusions"]] or ["- (no baseline run)"]
    lines += ["", "## Every number (mean [95 % CI] over seeds)", ""]
    for label, model_estimates in estimates.items():
        lines.append(f"### {label}")
        lines.append("")
        for key, values in sorted(model_estimates.items()):
            scale = 100.0 if key not in ("equivariance_error", "clever_median") else 1.0
            digits = 1 if scale == 100.0 else 3
            lines.append(f"- {values['title']}: {_format_interval(values, digits, scale)}"
                         f"{' %' if scale == 100.0 else ''} (n = {values['num_seeds']})")
        lines.append("")
    lines += ["Figures: `robust_accuracy_<attack>.png` (mean and 95 % CI band over seeds), "
              "`differences.png` (forest plot of the differences to the baseline), "
              "`rotation_accuracy.png`. Raw numbers: `results.json`.", ""]
    return "\n".join(lines)


def _sanity_text(run):
    reports = [entry["sanity"] for entry in run["seeds"].values() if entry.get("sanity")]
    if not reports:
        return "n/a"
    failed = sorted({name for report in reports for name in report.get("failed", [])})
    passed = sum(bool(report.get("passed")) for report in reports)
    return f"{passed}/{len(reports)} passed" + (f" (failed: {', '.join(failed)})" if failed
                                                else "")


def write_figures(results, output_dir):
    """``differences.png``: the forest plot of every model's difference to the baseline in the
    headline metrics (the robust-accuracy curves are drawn by ``reproduce``)."""
    from pathlib import Path

    from keras_equivariant.metrics import plot_differences

    summary = results.get("statistics") or summarize(results)
    rows = []
    for label, by_metric in summary["differences"].items():
        for key, title in _headline_columns(results):
            values = by_metric.get(key)
            if values is None or key == "consistency_90":
                continue
            rows.append((f"{label}: {title}", statistics.Difference(
                mean=values["mean"], low=values["low"], high=values["high"],
                confidence=summary["confidence"], num_seeds=values["num_seeds"],
                num_items=values["num_images"], num_resamples=summary["num_resamples"])))
    if rows:
        plot_differences(rows, path=Path(output_dir) / "differences.png",
                         title=f"Difference to {summary['reference']} (points, 95 % CI)")
