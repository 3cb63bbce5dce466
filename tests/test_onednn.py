"""Numerically sensitive tests must pass for the right reason on every CPU.

TensorFlow picks oneDNN or Eigen CPU kernels by CPU model (oneDNN is off by default on AMD EPYC,
on by default on recent Intel). The tests marked ``numerics`` (gradient-masking verdicts,
equivariance tolerances, CLEVER on exact models, fold) run in the main process under this
machine's setting, and once more here, in a subprocess, under the other one — so a pass that
depends on the kernels cannot hide on either kind of machine.
"""

import os
import pathlib
import subprocess
import sys

import pytest

from keras_equivariant.utils.platform import describe, onednn_enabled

TESTS = pathlib.Path(__file__).resolve().parent


@pytest.mark.numerics
def test_onednn_state_is_the_requested_one():
    requested = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if requested not in ("0", "1"):
        pytest.skip("TF_ENABLE_ONEDNN_OPTS is not set: this process runs TensorFlow's default")
    assert onednn_enabled() == (requested == "1"), describe()


def test_numerics_tests_pass_under_the_other_onednn_setting():
    other = "0" if onednn_enabled() else "1"
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": other, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "pytest", str(TESTS), "-m", "numerics and not slow", "-q",
               "-p", "no:cacheprovider", "--no-header", "-o", "addopts=--import-mode=importlib"]
    result = subprocess.run(command, env=env, cwd=TESTS.parent, capture_output=True, text=True,
                            timeout=1200)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, (
        f"numerics tests failed with TF_ENABLE_ONEDNN_OPTS={other}:\n{result.stdout[-6000:]}"
        f"\n{result.stderr[-2000:]}")
    assert " passed" in summary and "deselected" in summary, summary
