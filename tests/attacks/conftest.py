import pytest
from attack_toys import held_out_split, trained_classifier


@pytest.fixture
def toy_data():
    """Held-out synthetic test images and labels (240 examples, 3 classes)."""
    return held_out_split()


@pytest.fixture
def toy_model():
    """A tiny CNN trained on synthetic stripes (once per process); returns logits."""
    return trained_classifier()
