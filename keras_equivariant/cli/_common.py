"""Argument helpers shared by the ``keras-equivariant`` subcommands."""

from __future__ import annotations

import argparse
from fractions import Fraction

from keras_equivariant.training import MODEL_NAMES  # noqa: F401  (argparse choices)

TRAIN_DATASETS = ("cifar10", "cifar100")
ATTACKS = ("fgsm", "pgd")


def eps_value(text):
    """Parses one perturbation budget: ``0.03``, ``8/255`` or ``8/255.``; returns a float >= 0."""
    try:
        value = float(Fraction(text)) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"invalid eps {text!r}: expected a number such as 0.03 or a fraction such as 8/255"
        ) from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"invalid eps {text!r}: must be >= 0")
    return value


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; received {value}")
    return value


def save_freq_value(text):
    """argparse type for ``--save-freq``: ``epoch`` or a positive number of batches."""
    return "epoch" if text == "epoch" else positive_int(text)


def add_data_arguments(parser, datasets=TRAIN_DATASETS):
    """``--dataset`` and ``--data-dir``."""
    parser.add_argument("--dataset", default="cifar10", choices=datasets,
                        help="dataset name (default: %(default)s)")
    parser.add_argument("--data-dir", default=None,
                        help="directory holding the data files (e.g. cifar10_subset.npz or the "
                             "original CIFAR releases); default: tensorflow-datasets' data dir")


def load_model(path):
    """Loads a saved ``.keras`` model (importing the library registers its custom layers)."""
    from pathlib import Path

    import keras

    import keras_equivariant  # noqa: F401  (registers the serializable layers)

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No model file at {path}. Pass the .keras file written by `keras-equivariant train` "
            "(runs/<run name>/model.keras)."
        )
    return keras.saving.load_model(path)
