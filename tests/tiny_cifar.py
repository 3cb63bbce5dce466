"""Shared test helper: a tiny CIFAR-10-format ``.npz`` that ``keras_equivariant.data`` reads."""

import numpy as np


def write_tiny_cifar10(folder, num_train=48, num_test=24, seed=0):
    """Writes ``folder/cifar10_tiny.npz`` (random uint8 images, labels cycling over 10 classes)
    and returns ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / "cifar10_tiny.npz",
        x_train=rng.integers(0, 256, (num_train, 32, 32, 3), dtype=np.uint8),
        y_train=(np.arange(num_train) % 10).astype(np.uint8),
        x_test=rng.integers(0, 256, (num_test, 32, 32, 3), dtype=np.uint8),
        y_test=(np.arange(num_test) % 10).astype(np.uint8),
    )
    return folder
