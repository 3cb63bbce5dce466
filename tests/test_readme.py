"""The README's Python examples run as written (all blocks, in order, in one namespace)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


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
