"""The study's statistics and report on synthetic results with known answers (the pipeline
that produces such results: tests/cli/test_reproduce.py)."""

import dataclasses

import numpy as np
import pytest

from keras_equivariant import reproduce, study

SEEDS = ("0", "1", "2")


def _flags(vector):
    return "".join("1" if value else "0" for value in vector)


def _results(model_flags, spatial=None):
    """A results dict like `reproduce` writes: {label: {seed: {eps: bool array}}}."""
    preset = dataclasses.asdict(reproduce.PRESETS["study"])
    models = {}
    for label, by_seed in model_flags.items():
        seeds = {}
        for seed, by_eps in by_seed.items():
            entry = {"training": {"num_parameters": 10},
                     "robust_examples": {"pgd": {f"{eps:.6g}": _flags(flags)
                                                 for eps, flags in by_eps.items()}}}
            if spatial is not None:
                entry["spatial"] = {"worst_case_accuracy": spatial[label][int(seed)],
                                    "consistency_90": 0.5}
            seeds[seed] = entry
        models[label] = {"model": label.split(" ")[0], "variant": "equivariant",
                         "seeds": seeds}
    return {"preset": preset, "models": models, "seeds": [0, 1, 2],
            "dataset": {"name": "cifar10", "train": "t", "test": "t"},
            "hardware": {"cpu": "cpu", "cpu_cores": 2, "gpus": [], "tensorflow": "x",
                         "keras": "x"}}


def _model(rng, clean_rate, robust_rate, num_images=500):
    by_seed = {}
    for seed in SEEDS:
        clean = rng.random(num_images) < clean_rate
        by_seed[seed] = {0.0: clean, 1 / 255: clean & (rng.random(num_images) < robust_rate)}
    return by_seed


def test_identical_models_differ_by_exactly_zero_and_are_not_significant():
    rng = np.random.default_rng(0)
    baseline = _model(rng, 0.5, 0.3)
    results = _results({"BaselineCNN": baseline, "Twin": baseline},
                       spatial={"BaselineCNN": [0.1, 0.2, 0.15], "Twin": [0.1, 0.2, 0.15]})
    summary = study.summarize(results, num_resamples=2000)
    for key in ("clean", f"pgd@{1 / 255:.6g}", "spatial"):
        difference = summary["differences"]["Twin"][key]
        assert difference["mean"] == 0 and difference["low"] <= 0 <= difference["high"]
        assert not difference["significant"] and "not significant" in difference["sentence"]
    assert summary["differences"]["Twin"]["clean"]["num_images"] == 500
    assert summary["differences"]["Twin"]["spatial"]["num_images"] is None or \
        summary["differences"]["Twin"]["spatial"]["num_seeds"] == 3


def test_a_clearly_better_model_is_significant_and_the_report_says_so():
    rng = np.random.default_rng(1)
    baseline = _model(rng, 0.5, 0.2)
    better = {seed: {0.0: flags[0.0], 1 / 255: flags[0.0].copy()}  # every clean point robust
              for seed, flags in baseline.items()}
    results = _results({"BaselineCNN": baseline, "Better": better})
    summary = study.summarize(results, num_resamples=2000)
    key = f"pgd@{1 / 255:.6g}"
    difference = summary["differences"]["Better"][key]
    true_gain = np.mean([baseline[s][0.0].mean() - baseline[s][1 / 255].mean() for s in SEEDS])
    assert difference["mean"] == pytest.approx(true_gain)
    assert 0 < difference["low"] <= true_gain <= difference["high"]
    assert difference["significant"]
    assert difference["sentence"].startswith("Better: +") and \
        difference["sentence"].endswith("; significant")
    # Clean accuracy is the same images and flags: exactly zero, not significant.
    assert summary["differences"]["Better"]["clean"]["mean"] == 0
    estimate = summary["estimates"]["BaselineCNN"]["clean"]
    assert estimate["low"] < estimate["mean"] < estimate["high"] and estimate["num_seeds"] == 3
    results["statistics"] = summary
    report = study.render_report(results)
    assert "| Better |" in report and "**+" in report  # significant differences in bold
    assert "PGD accuracy at 1/255" in report and "; significant" in report
    assert "## Conclusions (generated from the intervals above)" in report


def test_a_partial_study_uses_the_seeds_both_models_finished():
    rng = np.random.default_rng(2)
    baseline = _model(rng, 0.5, 0.3)
    other = {seed: flags for seed, flags in _model(rng, 0.5, 0.3).items() if seed != "2"}
    summary = study.summarize(_results({"BaselineCNN": baseline, "Other": other}),
                              num_resamples=500)
    assert summary["differences"]["Other"]["clean"]["num_seeds"] == 2
    assert summary["estimates"]["Other"]["clean"]["num_seeds"] == 2
