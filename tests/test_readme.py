"""The README's Python examples run as written (all blocks, in order, in one namespace)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHARED_DATA = ROOT.parent / "shared" / "data" / "cifar10_subset.npz"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_python_examples():
    assert len(_python_blocks()) >= 3


def test_readme_python_examples_run(monkeypatch, capsys):
    if not SHARED_DATA.exists():
        pytest.skip(f"the README's data example reads {SHARED_DATA}, absent here")
    monkeypatch.chdir(ROOT)
    namespace = {"__name__": "readme"}
    for index, block in enumerate(_python_blocks()):
        exec(compile(block, f"README.md python block {index}", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "True" in printed  # the PGD example's eps-ball check
    assert "rot90" in printed  # check_equivariance's per-rotation errors
    assert max(namespace["result"].errors.values()) < 1e-5
