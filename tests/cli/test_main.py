"""Tests for keras_equivariant.cli.main: argument errors, data errors, exit codes."""

import os
import subprocess
import sys

import pytest

from keras_equivariant.cli.main import main

MODEL_NAMES = ["BaselineCNN", "ParallelGCNN", "ParallelRotScaleGCNN", "CascadedGCNN",
               "WeightedParallelGCNN"]


def test_every_model_name_is_a_builder():
    import keras_equivariant
    from keras_equivariant.cli import _common

    assert list(_common.MODEL_NAMES) == MODEL_NAMES
    for name in MODEL_NAMES:
        assert callable(getattr(keras_equivariant, name))


def test_unknown_model_name_exits_2_and_lists_valid_names(capsys, tmp_path):
    with pytest.raises(SystemExit) as error:
        main(["train", "ResNet50", "--output-dir", str(tmp_path)])
    assert error.value.code == 2
    message = capsys.readouterr().err
    assert "invalid choice: 'ResNet50'" in message
    for name in MODEL_NAMES:
        assert name in message


def test_missing_data_dir_exits_1_with_a_clear_message(capsys, tmp_path):
    code = main(["train", "BaselineCNN", "--depth", "4", "--epochs", "1",
                 "--data-dir", str(tmp_path / "nowhere"), "--output-dir", str(tmp_path)])
    assert code == 1
    message = capsys.readouterr().err
    assert message.startswith("keras-equivariant train: error:")
    assert "nowhere" in message and "does not exist" in message


def test_corrupted_data_file_exits_1(capsys, tmp_path):
    (tmp_path / "cifar10_broken.npz").write_bytes(b"not a zip file")
    code = main(["reproduce", "--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "out")])
    assert code == 1
    assert "cifar10_broken.npz" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_values_exit_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as error:
        main(["evaluate", "model.keras", "--eps", "eight"])
    assert error.value.code == 2
    assert "invalid eps 'eight'" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "absent.keras")]) == 1
    assert "No model file" in capsys.readouterr().err


def test_console_entry_point_prints_no_traceback(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "keras_equivariant.cli.main", "evaluate",
         str(tmp_path / "absent.keras")],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    assert "keras-equivariant evaluate: error: No model file" in completed.stderr


def test_a_file_that_is_not_a_keras_archive_exits_1(capsys, tmp_path):
    (tmp_path / "model.keras").write_text("not a model")
    assert main(["evaluate", str(tmp_path / "model.keras")]) == 1
    message = capsys.readouterr().err
    assert "is not a .keras model archive" in message
    assert "File not found" not in message


@pytest.mark.parametrize("damage", ["no_config", "truncated_weights"])
@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_an_unreadable_keras_archive_exits_1(capsys, tmp_path, command, damage):
    import zipfile

    import keras

    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "good.keras")
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(tmp_path / "good.keras") as source, \
            zipfile.ZipFile(path, "w") as damaged:
        for name in source.namelist():
            content = source.read(name)
            if damage == "no_config" and name == "config.json":
                continue
            if damage == "truncated_weights" and name.endswith(".h5"):
                content = content[:len(content) // 2]
            damaged.writestr(name, content)
    assert main([command, str(path), "--output-dir", str(tmp_path / "out")]) == 1
    message = capsys.readouterr().err
    assert message.startswith(f"keras-equivariant {command}: error: {path} is not a readable "
                              ".keras model: ")
    assert ("config.json" if damage == "no_config" else "truncated file") in message
    assert len(message.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["evaluate", "clever", "export"])
def test_a_model_that_is_not_an_image_classifier_exits_2(capsys, tmp_path, command):
    import keras

    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Conv2D(3, 3, padding="same")(inputs)  # images out, not logits
    path = tmp_path / "segmenter.keras"
    keras.Model(inputs, outputs).save(path)
    assert main([command, str(path), "--data-dir", str(tmp_path / "unused")]
                if command != "export" else [command, str(path), "--output-dir",
                                             str(tmp_path / "saved")]) == 2
    message = capsys.readouterr().err
    assert "is not an image classifier" in message
    assert "(None, 8, 8, 3)" in message
    assert not (tmp_path / "saved").exists()


def _environment_without_tf_log_level():
    environment = dict(os.environ)
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return environment


@pytest.mark.parametrize("arguments", [["--help"], ["evaluate", "--help"], ["train", "--help"]])
def test_help_is_answered_without_importing_tensorflow(arguments):
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "keras_equivariant", *arguments],
        capture_output=True, text=True, timeout=300, env=_environment_without_tf_log_level())
    assert completed.returncode == 0
    assert completed.stdout.startswith("usage: keras-equivariant")
    imported = [line.rsplit("|", 1)[-1].strip() for line in completed.stderr.splitlines()
                if line.startswith("import time:")]
    assert "keras_equivariant.cli.main" in imported
    assert not [name for name in imported if name.split(".")[0] in ("tensorflow", "keras")]


def test_python_m_runs_the_command_line_without_tensorflow_logs(tmp_path):
    """A CPU user sees the one-line error, not TensorFlow's C++ start-up lines (cuInit, ...)."""
    command = [sys.executable, "-m", "keras_equivariant", "evaluate",
               str(tmp_path / "absent.keras")]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300,
                               env=_environment_without_tf_log_level())
    assert completed.returncode == 1
    assert completed.stderr.splitlines() == [
        "keras-equivariant evaluate: error: No model file at "
        f"{tmp_path / 'absent.keras'}. Pass the .keras file written by `keras-equivariant "
        "train` (runs/<run name>/model.keras)."]


def test_a_runtime_failure_exits_1_with_one_line(monkeypatch, capsys, tmp_path):
    from keras_equivariant.cli import export

    def failing(args):
        raise RuntimeError("device out of memory\n<a long tensor dump>")

    monkeypatch.setattr(export, "run", failing)
    assert main(["export", str(tmp_path / "model.keras")]) == 1
    message = capsys.readouterr().err
    assert message.startswith("keras-equivariant export: error: RuntimeError: device out of "
                              "memory")
    assert len(message.strip().splitlines()) == 1 and "tensor dump" not in message


@pytest.mark.parametrize("user_value, expected", [
    (None, "TF_ENABLE_ONEDNN_OPTS=1, set by the command line"),
    ("0", "TF_ENABLE_ONEDNN_OPTS=0, set by the user"),
])
def test_command_line_requests_onednn_unless_the_user_chose(user_value, expected):
    env = {name: value for name, value in os.environ.items() if name != "TF_ENABLE_ONEDNN_OPTS"}
    if user_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = user_value
    completed = subprocess.run([sys.executable, "-m", "keras_equivariant", "--version"],
                               capture_output=True, text=True, timeout=60, env=env)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().endswith(f"({expected})")


def test_request_onednn_leaves_the_environment_alone_once_tensorflow_is_loaded():
    import tensorflow  # noqa: F401  (the kernels are chosen at this import)

    from keras_equivariant.cli.main import request_onednn

    environ = {}
    assert request_onednn(environ) == (
        "TF_ENABLE_ONEDNN_OPTS unset, TensorFlow already imported with its default")
    assert environ == {}
    assert request_onednn({"TF_ENABLE_ONEDNN_OPTS": "0"}) == (
        "TF_ENABLE_ONEDNN_OPTS=0, set by the user")


def test_verbose_header_names_the_cpu_and_the_onednn_state(capsys, tmp_path):
    from keras_equivariant.utils.platform import cpu_model

    assert main(["--verbose", "evaluate", str(tmp_path / "absent.keras")]) == 1
    header = capsys.readouterr().err.splitlines()[0]
    assert header.startswith(f"keras-equivariant: {cpu_model()} (")
    assert "oneDNN on" in header or "oneDNN off" in header
    assert "TF_ENABLE_ONEDNN_OPTS" in header
