import json
import os
import stat

from keras_equivariant.utils.io import atomic_write_json, atomic_write_text, read_json


def test_atomic_write_json_round_trip_and_no_temporary_left(tmp_path):
    path = atomic_write_json(tmp_path / "sub" / "results.json", {"accuracy": [0.5, 0.25]})
    assert read_json(path) == {"accuracy": [0.5, 0.25]}
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]


def test_atomic_write_text_uses_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "report.md", "# report\n")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_read_json_default_when_missing(tmp_path):
    assert read_json(tmp_path / "absent.json", default={}) == {}


def test_atomic_write_json_converts_numpy_values(tmp_path):
    import numpy as np

    path = atomic_write_json(tmp_path / "a.json", {"x": np.float32(0.5), "y": np.arange(3)})
    assert json.loads(path.read_text()) == {"x": 0.5, "y": [0, 1, 2]}
