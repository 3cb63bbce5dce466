"""Argument helpers shared by the ``keras-equivariant`` subcommands."""

from __future__ import annotations

import argparse
from fractions import Fraction

from keras_equivariant.choices import MODEL_NAMES  # noqa: F401  (argparse choices)

TRAIN_DATASETS = ("cifar10", "cifar100")


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


def shard_value(text):
    """argparse type for ``--shard``: ``I/N`` with ``0 <= I < N``; returns ``(I, N)``."""
    index, _, count = text.partition("/")
    try:
        index, count = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid shard {text!r}: expected I/N, e.g. 0/4 for the first of 4 shards"
        ) from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(
            f"invalid shard {text!r}: expected 0 <= I < N (shards are numbered from 0)")
    return index, count


def default_name(path):
    """``runs/<run name>/model.keras`` -> ``<run name>``; ``foo.keras`` -> ``foo``."""
    from pathlib import Path

    path = Path(path)
    return path.resolve().parent.name if path.stem == "model" else path.stem


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
    """Loads a saved ``.keras`` image classifier (importing the library registers its custom
    layers).

    Raises:
        FileNotFoundError: ``path`` is not a file, not a ``.keras`` (zip) archive, or an
            unreadable one (no ``config.json``, truncated weights).
        ValueError: the model does not map images ``(batch, height, width, channels)`` to logits
            ``(batch, num_classes)``.
    """
    import json
    import zipfile
    from pathlib import Path

    import keras

    import keras_equivariant  # noqa: F401  (registers the serializable layers)

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No model file at {path}. Pass the .keras file written by `keras-equivariant train` "
            "(runs/<run name>/model.keras)."
        )
    if not zipfile.is_zipfile(path):
        raise FileNotFoundError(
            f"{path} is not a .keras model archive (a .keras file is a zip archive). Pass the "
            ".keras file written by `keras-equivariant train` (runs/<run name>/model.keras)."
        )
    try:
        model = keras.saving.load_model(path)
    except (KeyError, OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        # A zip without config.json (KeyError), truncated weights (h5py's OSError), ...
        reason = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise FileNotFoundError(
            f"{path} is not a readable .keras model: {reason}. The file is damaged or "
            "incomplete; train or save the model again (runs/<run name>/model.keras)."
        ) from None
    input_shapes = [tuple(tensor.shape) for tensor in model.inputs]
    output_shapes = [tuple(tensor.shape) for tensor in model.outputs]
    if (len(input_shapes) != 1 or len(input_shapes[0]) != 4 or len(output_shapes) != 1
            or len(output_shapes[0]) != 2):
        raise ValueError(
            f"{path} is not an image classifier: expected one input (batch, height, width, "
            f"channels) and one output of logits (batch, num_classes); received inputs "
            f"{input_shapes} and outputs {output_shapes}. Pass a model built by "
            "keras_equivariant (e.g. runs/<run name>/model.keras)."
        )
    return model
