"""The README's Python examples run as written (all blocks, in order, in one namespace)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _python_blocks(text=None):
    """The Python blocks of ``text`` (default: the whole README), in order."""
    text = README.read_text(encoding="utf-8") if text is None else text
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_python_examples():
    assert len(_python_blocks()) >= 3


def test_readme_main_command_needs_nothing_outside_the_repository():
    text = README.read_text(encoding="utf-8")
    assert 'pip install -e ".[test]" && keras-equivariant reproduce\n' in text
    assert "../" not in text  # a user's clone has nothing next to it
    assert (ROOT / "data" / "cifar10_subset.npz").is_file()


def test_readme_python_examples_run(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    namespace = {"__name__": "readme"}
    for index, block in enumerate(_python_blocks()):
        exec(compile(block, f"README.md python block {index}", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "True" in printed  # the PGD example's eps-ball check
    assert "rot90" in printed  # check_equivariance's per-rotation errors
    assert max(namespace["result"].errors.values()) < 1e-5


def _section_blocks(heading):
    """The Python blocks of the README section ``heading`` (up to the next heading)."""
    text = README.read_text(encoding="utf-8")
    section = re.search(rf"^#+ {re.escape(heading)}\n(.*?)(?=^#+ )", text, flags=re.S | re.M)
    assert section, heading
    return _python_blocks(section.group(1))


@pytest.mark.slow  # a fresh JAX process: 30-120 s
def test_readme_layer_and_model_examples_run_unchanged_on_jax(tmp_path):
    """Keras 3's promise: the Quickstart (build, fit, real data, save/load) and the equivariant
    layers' example run as written with KERAS_BACKEND=jax."""
    import importlib.util
    import os
    import subprocess
    import sys

    if importlib.util.find_spec("jax") is None:
        pytest.skip('JAX is not installed (pip install -e ".[jax]")')
    blocks = _section_blocks("Quickstart") + _section_blocks("Equivariant layers")
    script = "\n".join(blocks) + (
        "\nimport keras\nassert keras.backend.backend() == 'jax'"
        "\nassert max(result.errors.values()) < 1e-5, result.errors\nprint('JAX OK')\n")
    (tmp_path / "readme_on_jax.py").write_text(script, encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, str(tmp_path / "readme_on_jax.py")], cwd=ROOT, capture_output=True,
        text=True, timeout=600,
        env=dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2"))
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "JAX OK" in completed.stdout
