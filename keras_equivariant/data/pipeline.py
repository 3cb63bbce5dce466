"""``tf.data`` input pipelines for CIFAR-10, CIFAR-100 and CIFAR-10-C, online or offline.

Where the data comes from is chosen automatically:

- ``data_dir=None``: ``tensorflow_datasets.load`` (downloads on first use; needs internet, or an
  already-prepared ``~/tensorflow_datasets`` / ``$TFDS_DATA_DIR``).
- ``data_dir`` given: the original releases or an ``.npz`` in that folder (see
  ``keras_equivariant.data.local``), else a tensorflow-datasets folder already prepared there.
  Nothing is downloaded when ``data_dir`` is given.

Images stay uint8 in memory and become float32 in [0, 1] inside the pipeline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_equivariant.data.catalog import (
    DOWNLOAD_URLS,
    IMAGE_SHAPE,
    DataNotFoundError,
    make_info,
    normalize_request,
    tfds_config_names,
)
from keras_equivariant.data.local import validate_arrays, read_local
from keras_equivariant.utils.validation import check_positive_int

AUGMENT_PADDING = 4


def load_dataset(name, split="train", data_dir=None, batch_size=128, shuffle=None,
                 augment=False, seed=None, max_examples=None, corruption=None, severity=None,
                 with_info=False):
    """Builds a batched, prefetched ``tf.data.Dataset`` of ``(images, labels)``.

    Images are float32 ``(batch, 32, 32, 3)`` in [0, 1] (normalization happens inside the
    models); labels are int32 ``(batch,)``. The last batch may be smaller.

    Args:
        name: `"cifar10"`, `"cifar100"` (fine labels) or `"cifar10_corrupted"` (CIFAR-10-C).
        split: `"train"` or `"test"` (`"cifar10_corrupted"` only has `"test"`).
        data_dir: `None` to use tensorflow-datasets (downloads on first use), or a local folder
            or file: the original CIFAR python/binary releases (archive or extracted), an
            `.npz` with uint8 `x_train, y_train, x_test, y_test`, the extracted CIFAR-10-C
            release (`<corruption>.npy` + `labels.npy`), or a prepared tensorflow-datasets
            folder. Nothing is downloaded when `data_dir` is given.
        batch_size: examples per batch.
        shuffle: reshuffle every epoch. Defaults to `True` for `"train"`, `False` otherwise.
        augment: random crop after 4-pixel zero padding, then random horizontal flip, drawn
            anew every epoch. Off by default, as in the paper.
        seed: integer seed for shuffling, augmentation and nothing else; `None` uses the global
            seed (`keras.utils.set_random_seed`) if one is set.
        max_examples: keep a deterministic, class-balanced subset of at most this many
            examples (see `stratified_indices`); `None` keeps all.
        corruption: for `"cifar10_corrupted"`, one of `CORRUPTIONS`.
        severity: for `"cifar10_corrupted"`, 1..5, or `"all"` to pool the five severities
            (50,000 images, as in the paper's CIFAR-10-C evaluation).
        with_info: also return a `DatasetInfo` describing the loaded examples.

    Returns:
        The dataset, or `(dataset, info)` when `with_info=True`.

    Raises:
        DataNotFoundError: the data is in none of the searched places; the message lists
            them and how to obtain the data.
        DataFormatError: a data file is truncated or has the wrong shape/dtype.
        ValueError: an unknown name, split, corruption or severity, or a bad argument.

    Example:

    ```python
    # Offline: the CIFAR-10 subset shipped in the repository (or any folder holding
    # cifar-10-python.tar.gz or an .npz):
    train = load_dataset("cifar10", "train", data_dir=sample_data_dir(), augment=True, seed=0)
    # Online (tensorflow-datasets downloads on first use):
    fog, info = load_dataset("cifar10_corrupted", "test", corruption="fog", severity=3,
                             with_info=True)
    model.evaluate(fog)
    ```
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    if seed is not None:
        seed = check_positive_int(seed, "seed", minimum=0)
    images, labels, info = load_arrays(
        name, split, data_dir=data_dir, corruption=corruption, severity=severity,
        max_examples=max_examples, with_info=True)
    shuffle = (info.split == "train") if shuffle is None else bool(shuffle)
    dataset = _make_pipeline(images, labels, batch_size, shuffle, bool(augment), seed)
    return (dataset, info) if with_info else dataset


def load_arrays(name, split="train", data_dir=None, corruption=None, severity=None,
                max_examples=None, with_info=False):
    """Loads one split into memory as NumPy arrays, from the same sources as `load_dataset`.

    Returns:
        `(images, labels)`: raw uint8 pixels `(N, 32, 32, 3)` (divide by 255 for [0, 1]) and
        int32 labels `(N,)`; `(images, labels, info)` when `with_info=True`.
    """
    name, split, corruption, severity = normalize_request(name, split, corruption, severity)
    if max_examples is not None:
        max_examples = check_positive_int(max_examples, "max_examples")
    if data_dir is None:
        images, labels, source = _read_tfds(name, split, corruption, severity, data_dir=None)
    else:
        images, labels, source = _read_data_dir(name, split, data_dir, corruption, severity)
    if max_examples is not None and max_examples < labels.shape[0]:
        keep = stratified_indices(labels, max_examples)
        images, labels = images[keep], labels[keep]
    if not with_info:
        return images, labels
    return images, labels, make_info(name, split, labels.shape[0], source, corruption, severity)


def stratified_indices(labels, num_examples):
    """Indices of a deterministic, class-balanced subset of ``num_examples`` examples.

    Classes are visited round-robin, each contributing its examples in their original order,
    so per-class counts differ by at most one (unless a class runs out). The indices are
    returned sorted, so the subset keeps the original order.

    Example:

    >>> stratified_indices([0, 0, 0, 1, 1, 2], 4)
    array([0, 1, 3, 5])
    """
    labels = np.asarray(labels).reshape(-1)
    num_examples = check_positive_int(num_examples, "num_examples")
    if num_examples >= labels.size:
        return np.arange(labels.size)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    rank_in_class = np.empty(labels.size, dtype=np.int64)
    rank_in_class[order] = np.arange(labels.size) - np.searchsorted(sorted_labels, sorted_labels)
    chosen = np.lexsort((np.arange(labels.size), rank_in_class))[:num_examples]
    return np.sort(chosen)


def _read_data_dir(name, split, data_dir, corruption, severity):
    found, looked_for = read_local(name, split, data_dir, corruption, severity)
    if found is not None:
        return found
    configs = tfds_config_names(name, corruption, severity)
    if all(_tfds_prepared(config, data_dir) for config in configs):
        return _read_tfds(name, split, corruption, severity, data_dir=data_dir)
    looked_for += [str(Path(data_dir, config, "<version>", "dataset_info.json"))
                   + " (a prepared tensorflow-datasets folder)" for config in configs]
    raise DataNotFoundError(
        f"No {_describe(name, corruption, severity)} {split} data in data_dir {str(data_dir)!r}. "
        "Looked for:\n  " + "\n  ".join(looked_for) + "\n" + _how_to_get(name, data_dir)
    )


def _tfds_prepared(config, data_dir):
    if not Path(data_dir, config.split("/")[0]).is_dir():
        return False
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(config, data_dir=str(data_dir)).is_prepared()
    except Exception:  # noqa: BLE001 - an unreadable tfds folder is simply not a source.
        return False


def _read_tfds(name, split, corruption, severity, data_dir):
    """Loads every tfds config of the request fully into memory (CIFAR fits in RAM)."""
    import tensorflow_datasets as tfds

    parts, sources = [], []
    for config in tfds_config_names(name, corruption, severity):
        try:
            dataset = tfds.load(config, split=split,
                                data_dir=None if data_dir is None else str(data_dir),
                                as_supervised=True, download=data_dir is None)
        except Exception as error:  # noqa: BLE001 - network, missing files, broken install.
            where = "" if data_dir is None else f" from the prepared folder {str(data_dir)!r}"
            raise DataNotFoundError(
                f"tensorflow-datasets could not load {config!r}{where} "
                f"({type(error).__name__}: {error}).\n" + _how_to_get(name, data_dir)
            ) from error
        batches = list(tfds.as_numpy(dataset.batch(10_000)))
        parts.append((np.concatenate([images for images, _ in batches]),
                      np.concatenate([labels for _, labels in batches])))
        sources.append(config)
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    source = f"tfds {', '.join(sources)}" + ("" if data_dir is None else f" in {str(data_dir)!r}")
    num_classes = 100 if name == "cifar100" else 10
    return (*validate_arrays(images, labels, num_classes, source), source)


def _describe(name, corruption, severity):
    return name if corruption is None else f"{name} ({corruption}, severity {severity})"


def _how_to_get(name, data_dir):
    url = DOWNLOAD_URLS[name]
    target = "DATA_DIR" if data_dir is None else str(data_dir)
    if name == "cifar10_corrupted":
        fetch = f"download {url} (2.9 GB) and extract it: `tar -xf CIFAR-10-C.tar -C {target}`"
    else:
        fetch = f"download {url} into {target} (the .tar.gz is read directly, no need to extract)"
    return (
        f"To get the data offline: {fetch}, then pass that folder as data_dir (CLI: --data-dir). "
        "With internet access, leave data_dir unset (no --data-dir): tensorflow-datasets "
        "downloads and prepares the dataset in ~/tensorflow_datasets (or $TFDS_DATA_DIR)."
    )


def _make_pipeline(images, labels, batch_size, shuffle, augment, seed):
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        dataset = dataset.shuffle(labels.shape[0], seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if augment:
        # One stateless seed pair per batch, drawn anew every epoch, reproducible with `seed`.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            _augment_batch, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(_to_unit_range, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _augment_batch(batch, seed):
    """Per image: random crop of the zero-padded image, then random horizontal flip."""
    images, labels = batch
    padding = AUGMENT_PADDING
    height, width = IMAGE_SHAPE[:2]
    num_images = tf.shape(images)[0]
    offset_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    offsets = tf.random.stateless_uniform([2, num_images], offset_seed, minval=0,
                                          maxval=2 * padding + 1, dtype=tf.int32)
    flips = tf.random.stateless_uniform([num_images, 1], flip_seed, minval=0, maxval=2,
                                        dtype=tf.int32) > 0
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    rows = offsets[0][:, None] + tf.range(height)
    columns = tf.range(width)
    columns = offsets[1][:, None] + tf.where(flips, width - 1 - columns, columns)
    images = tf.gather(padded, rows, axis=1, batch_dims=1)
    images = tf.gather(images, columns, axis=2, batch_dims=1)
    return images, labels


def _to_unit_range(images, labels):
    return tf.cast(images, tf.float32) / 255.0, labels
