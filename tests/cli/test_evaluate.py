"""Tests for `keras-equivariant evaluate`: attack sweeps and the CIFAR-10-C sweep, resumable."""

import csv
import importlib
import json

import numpy as np
import pytest

from keras_equivariant.cli.main import main

# The module (the package re-exports a function of the same name).
robust_accuracy_module = importlib.import_module("keras_equivariant.metrics.robust_accuracy")


@pytest.fixture
def count_sweeps(monkeypatch):
    """Counts the eps budgets actually attacked (not reused from a previous run)."""
    calls = []
    original = robust_accuracy_module._sweep_one

    def counting(model, dataset, spec, eps_pixel, *args, **kwargs):
        calls.append((spec.attack, eps_pixel))
        return original(model, dataset, spec, eps_pixel, *args, **kwargs)

    monkeypatch.setattr(robust_accuracy_module, "_sweep_one", counting)
    return calls


def test_attack_sweep_writes_csv_json_png_and_resumes(trained_model_path, tiny_data_dir,
                                                      tmp_path, count_sweeps, capsys):
    command = ["evaluate", str(trained_model_path), "--data-dir", str(tiny_data_dir),
               "--max-examples", "12", "--steps", "2", "--output-dir", str(tmp_path)]
    assert main(command + ["--eps", "0", "2/255"]) == 0
    assert len(count_sweeps) == 4
    printed = capsys.readouterr().out  # the results table of each attack ends the run
    assert "Robust accuracy of" in printed and "attack=fgsm" in printed and "attack=pgd" in printed
    assert (tmp_path / "robust_accuracy.png").stat().st_size > 0
    json_files = sorted(tmp_path.glob("*.json"))
    assert [path.name.split("_")[-2] for path in json_files] == ["fgsm", "pgd"]
    for path in json_files:
        assert path.with_suffix(".csv").is_file()

    # A larger grid later: only the new budget is attacked, for each attack.
    count_sweeps.clear()
    assert main(command + ["--eps", "0", "2/255", "8/255"]) == 0
    assert sorted(count_sweeps) == [("fgsm", pytest.approx(8 / 255)),
                                    ("pgd", pytest.approx(8 / 255))]
    pgd = json.loads(next(tmp_path.glob("*pgd*.json")).read_text())
    assert pgd["eps"] == pytest.approx([0, 2 / 255, 8 / 255])
    assert pgd["num_examples"] == 12
    assert all(0 <= value <= 1 for value in pgd["accuracy"])


def _write_cifar10_c(folder, corruptions, per_severity=4):
    folder = folder / "CIFAR-10-C"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in corruptions:
        np.save(folder / f"{name}.npy",
                rng.integers(0, 256, (5 * per_severity, 32, 32, 3), dtype=np.uint8))
    np.save(folder / "labels.npy", (np.arange(5 * per_severity) % 10).astype(np.uint8))
    return folder.parent


def test_corruption_sweep_is_incremental_and_resumable(trained_model_path, tmp_path,
                                                       monkeypatch):
    from keras_equivariant import data

    data_dir = _write_cifar10_c(tmp_path / "data", ["fog", "contrast"])
    loaded = []
    original = data.load_dataset

    def counting(*args, **kwargs):
        loaded.append((kwargs.get("corruption"), kwargs.get("severity")))
        return original(*args, **kwargs)

    monkeypatch.setattr(data, "load_dataset", counting)
    output = tmp_path / "out"
    command = ["evaluate", str(trained_model_path), "--skip-attacks", "--data-dir",
               str(data_dir), "--output-dir", str(output), "--corruptions", "fog", "contrast"]
    assert main(command + ["--severities", "1", "2"]) == 0
    assert len(loaded) == 4
    loaded.clear()
    assert main(command + ["--severities", "1", "2", "5"]) == 0
    assert sorted(loaded) == [("contrast", 5), ("fog", 5)]

    with open(output / "corruptions" / "corruptions.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(row["corruption"], int(row["severity"])) for row in rows] == [
        ("contrast", 1), ("contrast", 2), ("contrast", 5), ("fog", 1), ("fog", 2), ("fog", 5)]
    assert all(int(row["num_examples"]) == 4 for row in rows)
    cells = json.loads((output / "corruptions" / "corruptions.json").read_text())["cells"]
    assert len(cells) == 6
    assert (output / "corruptions" / "corruptions.png").stat().st_size > 0


@pytest.mark.parametrize("skip_attacks", [["--skip-attacks"], []])
def test_unknown_corruption_is_refused_before_work(trained_model_path, tiny_data_dir, tmp_path,
                                                   capsys, skip_attacks):
    code = main(["evaluate", str(trained_model_path), *skip_attacks, "--corruptions", "rain",
                 "--data-dir", str(tiny_data_dir), "--output-dir", str(tmp_path / "out")])
    assert code == 2
    assert "rain" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # not even the attack sweeps ran


def test_settings_the_protocol_forbids_are_refused_before_work(trained_model_path, tiny_data_dir,
                                                              tmp_path, capsys):
    code = main(["evaluate", str(trained_model_path), "--protocol", "paper", "--steps", "5",
                 "--data-dir", str(tiny_data_dir), "--output-dir", str(tmp_path / "out")])
    assert code == 2
    assert "steps=40" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_skip_attacks_without_corruptions_is_refused(trained_model_path, tmp_path, capsys):
    code = main(["evaluate", str(trained_model_path), "--skip-attacks",
                 "--output-dir", str(tmp_path / "out")])
    assert code == 2
    assert "--skip-attacks leaves nothing to evaluate" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_corruption_cells_of_other_sample_sizes_or_models_are_not_reused(
        trained_model_path, tmp_path, capsys):
    """Regression: a rerun with another --max-examples (or another model) reused the finished
    cells, so one corruptions.csv mixed sample sizes and models with exit code 0."""
    import keras

    data_dir = _write_cifar10_c(tmp_path / "data", ["fog"], per_severity=20)
    output = tmp_path / "out"
    command = ["evaluate", str(trained_model_path), "--skip-attacks", "--data-dir",
               str(data_dir), "--output-dir", str(output), "--corruptions", "fog",
               "--severities", "1"]
    assert main(command + ["--max-examples", "10"]) == 0
    before = (output / "corruptions" / "corruptions.csv").read_text()
    capsys.readouterr()
    assert main(command + ["--max-examples", "20", "--severities", "2"]) == 2
    message = capsys.readouterr().err
    assert "max_examples: stored 10, requested 20" in message and "not reused" in message
    other = keras.saving.load_model(trained_model_path)
    other.layers[-1].kernel.assign(other.layers[-1].kernel * 2.0)
    other_path = tmp_path / "other.keras"
    other.save(other_path)
    other_command = [str(other_path) if part == str(trained_model_path) else part
                     for part in command]
    assert main(other_command + ["--max-examples", "10", "--severities", "2"]) == 2
    assert "a different model" in capsys.readouterr().err
    assert (output / "corruptions" / "corruptions.csv").read_text() == before


def test_two_shards_and_merge_give_the_unsharded_files(trained_model_path, tiny_data_dir,
                                                      tmp_path):
    data_dir = _write_cifar10_c(tmp_path / "c", ["fog"], per_severity=10)
    for name in ("cifar10_tiny.npz",):  # the attack sweep's test images beside CIFAR-10-C
        source = next(tiny_data_dir.glob("*.npz"))
        (data_dir / name).write_bytes(source.read_bytes())
    common = [str(trained_model_path), "--data-dir", str(data_dir), "--max-examples", "10",
              "--batch-size", "4", "--steps", "2", "--eps", "0", "4/255", "--corruptions",
              "fog", "--severities", "1"]
    assert main(["evaluate", *common, "--output-dir", str(tmp_path / "whole")]) == 0
    sharded = tmp_path / "sharded"
    for shard in ("1/2", "0/2"):
        assert main(["evaluate", *common, "--output-dir", str(sharded), "--shard", shard]) == 0
    assert (sharded / "shard-0-of-2").is_dir() and not list(sharded.glob("*.json"))
    assert main(["evaluate", str(trained_model_path), "--merge", "--output-dir",
                 str(sharded)]) == 0
    for path in sorted((tmp_path / "whole").glob("*.json")):
        whole, merged = json.loads(path.read_text()), json.loads((sharded / path.name).read_text())
        for key in ("eps", "accuracy", "num_robust", "num_examples", "clean_accuracy"):
            assert merged[key] == whole[key], (path.name, key)
        assert (sharded / path.with_suffix(".csv").name).read_text() == \
            path.with_suffix(".csv").read_text()
    assert len(list((tmp_path / "whole").glob("*.json"))) == 2
    assert (sharded / "corruptions" / "corruptions.csv").read_text() == \
        (tmp_path / "whole" / "corruptions" / "corruptions.csv").read_text()


def test_merge_without_shards_exits_1_and_bad_shards_exit_2(trained_model_path, tmp_path,
                                                           capsys):
    assert main(["evaluate", str(trained_model_path), "--merge", "--output-dir",
                 str(tmp_path)]) == 1
    assert "No shard results" in capsys.readouterr().err
    with pytest.raises(SystemExit) as error:
        main(["evaluate", str(trained_model_path), "--shard", "2/2"])
    assert error.value.code == 2
    assert "0 <= I < N" in capsys.readouterr().err


def test_spatial_sweep_writes_worst_case_and_curves(trained_model_path, tiny_data_dir, tmp_path,
                                                    capsys):
    command = ["evaluate", str(trained_model_path), "--data-dir", str(tiny_data_dir),
               "--max-examples", "6", "--skip-attacks", "--spatial", "--output-dir",
               str(tmp_path)]
    assert main(command) == 0
    printed = capsys.readouterr().out
    spatial = tmp_path / "spatial"
    worst = json.loads(next(spatial.glob("*_spatial.json")).read_text())
    curves = json.loads(next(spatial.glob("*_transformation.json")).read_text())
    assert next(spatial.glob("*_transformation.png")).stat().st_size > 0
    assert "Spatial robustness of" in printed and "Accuracy under transformations" in printed
    assert worst["num_transformations"] == 21 * 7 * 7 and worst["num_examples"] == 6
    assert worst["spatial_accuracy"] <= worst["clean_accuracy"]
    angles = [value for kind, value in zip(curves["transformation"], curves["value"])
              if kind == "rotation"]
    scales = [value for kind, value in zip(curves["transformation"], curves["value"])
              if kind == "scale"]
    assert angles == list(range(0, 360, 5)) and scales == [0.8, 0.9, 1.0, 1.1, 1.25]
    assert curves["consistency"][0] == 1.0  # the unrotated image agrees with itself
    assert main(command) == 0  # a rerun reuses the finished batches


def test_spatial_refuses_shards_and_spatial_eps_needs_spatial(trained_model_path, tmp_path,
                                                              capsys):
    base = ["evaluate", str(trained_model_path), "--output-dir", str(tmp_path)]
    assert main(base + ["--spatial", "--shard", "0/2"]) == 2
    error = capsys.readouterr().err
    assert "does not shard yet: run `--spatial`" in error and "without `--shard`" in error
    assert main(base + ["--spatial-eps", "2/255"]) == 2
    # library argument names become the options the user typed
    assert "`--spatial-eps` (a PGD budget after the worst transformation) needs `--spatial`" \
        in capsys.readouterr().err
