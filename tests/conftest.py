"""Shared pytest set-up: quiet TF logs, headless matplotlib, deterministic seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras  # noqa: E402
import pytest  # noqa: E402
from attack_toys import held_out_split, trained_classifier  # noqa: E402

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf  # noqa: E402

    # The test workers (pytest-xdist) share a GPU where one is visible: each takes memory as it
    # needs it instead of all of it at start-up.
    for _gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(_gpu, True)


@pytest.fixture(autouse=True)
def _seed_everything():
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()


@pytest.fixture
def toy_data():
    """Held-out synthetic test images and labels (240 examples, 3 classes); see attack_toys."""
    return held_out_split()


@pytest.fixture
def toy_model():
    """A tiny CNN trained on synthetic stripes (once per process); returns logits."""
    return trained_classifier()
