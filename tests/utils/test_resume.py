"""The one resume rule: a stored result is reused only for the same identity."""

import numpy as np
import pytest

from keras_equivariant import models
from keras_equivariant.utils import resume
from keras_equivariant.utils.resume import weights_fingerprint


def test_same_identity_is_reused_and_another_is_refused_with_the_keys_named(tmp_path):
    path = tmp_path / "results.json"
    identity = {"max_examples": 50, "model_weights": "abc", "seed": (1, 2)}
    assert resume.load(path, identity) is None
    resume.save(path, identity, {"cells": [1, 2]})
    assert resume.load(path, identity)["cells"] == [1, 2]  # tuples compare after a JSON trip
    with pytest.raises(resume.ResumeMismatchError,
                       match=r"different settings\): max_examples: stored 50, requested 100") \
            as error:
        resume.load(path, {**identity, "max_examples": 100}, what="CIFAR-10-C cells")
    assert isinstance(error.value, ValueError)
    assert error.value.differences == {"max_examples": (50, 100)}
    with pytest.raises(ValueError, match="a different model"):
        resume.load(path, {**identity, "model_weights": "def"})
    with pytest.raises(ValueError, match="different data"):
        resume.load(path, {**identity, "data": "123"})
    # where recomputing is the documented behaviour, a mismatch reads as "nothing stored"
    assert resume.load(path, {**identity, "seed": 3}, on_mismatch="recompute") is None


def test_a_file_without_identity_is_not_reused(tmp_path):
    path = tmp_path / "old.json"
    path.write_text('{"cells": []}')
    with pytest.raises(ValueError, match="max_examples: stored None, requested 5"):
        resume.load(path, {"max_examples": 5})


def test_array_fingerprint_sees_values_shapes_and_dtypes():
    images = np.zeros((2, 3), np.float32)
    assert resume.array_fingerprint(images) == resume.array_fingerprint(images.copy())
    assert resume.array_fingerprint(images) != resume.array_fingerprint(images.reshape(3, 2))
    assert resume.array_fingerprint(images) != resume.array_fingerprint(images.astype(np.float64))
    changed = images.copy()
    changed[0, 0] = 1
    assert resume.array_fingerprint(images) != resume.array_fingerprint(changed)


# Moved from tests/visualize/test_report.py with the fingerprint.
def test_weights_fingerprint_changes_with_the_weights():
    model = models.BaselineCNN(num_classes=3, depth=4)
    before = weights_fingerprint(model)
    assert weights_fingerprint(model) == before
    kernel = model.get_layer("conv1").kernel
    kernel.assign(kernel + 1.0)
    assert weights_fingerprint(model) != before
