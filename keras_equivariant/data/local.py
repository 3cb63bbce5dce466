"""Readers for the original CIFAR releases and ``.npz`` files in a local ``data_dir``.

Supported layouts (``D`` is the ``data_dir``; it may also point directly at a file):

- CIFAR-10, python version: ``D/cifar-10-python.tar.gz`` (read without extracting), or the
  extracted ``data_batch_1..5`` / ``test_batch`` pickles in ``D/cifar-10-batches-py/`` or ``D``.
- CIFAR-10, binary version: ``D/cifar-10-binary.tar.gz``, or ``data_batch_1..5.bin`` /
  ``test_batch.bin`` in ``D/cifar-10-batches-bin/`` or ``D``.
- CIFAR-100 (fine labels): ``D/cifar-100-python.tar.gz`` or ``train`` / ``test`` pickles in
  ``D/cifar-100-python/`` or ``D``; binary ``D/cifar-100-binary.tar.gz`` or ``train.bin`` /
  ``test.bin`` in ``D/cifar-100-binary/`` or ``D``.
- ``.npz`` with uint8 ``x_train, y_train, x_test, y_test``: ``D/<name>.npz`` or
  ``D/<name>_*.npz`` (e.g. ``cifar10_subset.npz``), or the file itself.
- CIFAR-10-C: ``<corruption>.npy`` (uint8, severities 1..5 stacked in equal blocks) and
  ``labels.npy`` in ``D/CIFAR-10-C/`` or ``D``.

Every reader returns uint8 images ``(N, 32, 32, 3)`` and int32 labels ``(N,)``, or raises
`DataFormatError` naming the file.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from keras_equivariant.data.catalog import (
    DOWNLOAD_URLS,
    IMAGE_SHAPE,
    SEVERITIES,
    DataFormatError,
    DataNotFoundError,
    dataset_info,
)

_PIXELS = int(np.prod(IMAGE_SHAPE))
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")

# A real CIFAR-10 sample ships in the repository's data/ folder (provenance in data/README.md),
# not in the wheel (15.6 MB): it is there in a clone and an editable install.
_SAMPLE_DATA_DIR = Path(__file__).resolve().parents[2] / "data"
_SAMPLES = {"cifar10": ("cifar10_subset.npz", "CIFAR-10 subset (4660 train / 846 test)")}


def sample_data_dir(name="cifar10"):
    """The repository folder holding the shipped real sample of ``name``, or ``None``.

    ``cifar10``: ``data/cifar10_subset.npz``, a CIFAR-10 subset (4660 train / 846 test) with its
    provenance in ``data/README.md``. ``None`` for other datasets, and when the package was
    installed from a wheel (the sample is repository data, not package data).

    Example:

    >>> train = load_dataset("cifar10", "train", data_dir=sample_data_dir())
    """
    sample = _SAMPLES.get(name)
    if sample is None or not (_SAMPLE_DATA_DIR / sample[0]).is_file():
        return None
    return _SAMPLE_DATA_DIR


def _npz_source(path):
    """The source recorded for an ``.npz``: its path, and what it is for the shipped sample."""
    for file_name, description in _SAMPLES.values():
        if Path(path).resolve() == _SAMPLE_DATA_DIR / file_name:
            return f"{path} (the {description} shipped in the repository)"
    return str(path)


def read_local(name, split, data_dir, corruption=None, severity=None):
    """Reads a validated request from ``data_dir``.

    Returns ``((images, labels, source), looked_for)``: the arrays and the path they came
    from, or ``None`` when no supported file exists, and the list of paths that were searched
    (for the error message). Raises `DataNotFoundError` when ``data_dir`` does not exist or a
    release is only partly there, and `DataFormatError` for unreadable files.
    """
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise DataNotFoundError(
            f"data_dir {str(root)!r} does not exist. Pass the folder (or .npz/.tar.gz file) "
            f"that holds the {name} data, e.g. a folder containing "
            f"{Path(DOWNLOAD_URLS[name]).name} downloaded from {DOWNLOAD_URLS[name]}."
        )
    num_classes = dataset_info(name, split, corruption, severity).num_classes
    if root.is_file():
        return _read_file(root, name, split, num_classes), [str(root)]
    if name == "cifar10_corrupted":
        return _read_cifar10_c(root, corruption, severity)
    return _read_cifar_dir(root, name, split, num_classes)


def _read_file(path, name, split, num_classes):
    if name == "cifar10_corrupted":
        raise DataFormatError(
            f"data_dir points at the file {str(path)!r}; for cifar10_corrupted pass the folder "
            "holding <corruption>.npy and labels.npy (or its parent holding CIFAR-10-C/)."
        )
    if path.suffix == ".npz":
        return (*read_npz(path, split, num_classes), _npz_source(path))
    if path.name.endswith(_ARCHIVE_SUFFIXES):
        return (*read_archive(path, name, split, num_classes), str(path))
    raise DataFormatError(
        f"data_dir points at {str(path)!r}, which is not a supported {name} file: expected a "
        ".npz, .tar.gz or .tar file, or a folder (see keras_equivariant.data.load_dataset)."
    )


def _layout(name, split):
    """(folder names, python pickle names, binary names, archive names, npz patterns)."""
    if name == "cifar10":
        python = ([f"data_batch_{index}" for index in range(1, 6)] if split == "train"
                  else ["test_batch"])
        return (("cifar-10-batches-py", "cifar-10-batches-bin"), python,
                [f"{stem}.bin" for stem in python],
                ("cifar-10-python.tar.gz", "cifar-10-binary.tar.gz"),
                ("cifar10.npz", "cifar10_*.npz"))
    return (("cifar-100-python", "cifar-100-binary"), [split], [f"{split}.bin"],
            ("cifar-100-python.tar.gz", "cifar-100-binary.tar.gz"),
            ("cifar100.npz", "cifar100_*.npz"))


def _read_cifar_dir(root, name, split, num_classes):
    folders, python_names, binary_names, archives, npz_patterns = _layout(name, split)
    python_folder, binary_folder = folders
    looked_for = []
    for folder, names, parse in (
        (root / python_folder, python_names, _parse_pickle),
        (root, python_names, _parse_pickle),
        (root / binary_folder, binary_names, _parse_binary),
        (root, binary_names, _parse_binary),
    ):
        paths = [folder / file_name for file_name in names]
        looked_for.extend(str(path) for path in paths)
        present = [path for path in paths if path.is_file()]
        if not present:
            continue
        if len(present) < len(paths):
            missing = [str(path) for path in paths if not path.is_file()]
            raise DataNotFoundError(
                f"The {name} {split} split is incomplete in {str(folder)!r}: missing {missing}. "
                f"Extract the whole archive again from {DOWNLOAD_URLS[name]}."
            )
        parts = []
        for path in paths:
            arrays = _read_with_context(path, lambda p=path: parse(p.read_bytes(), name, p), name)
            parts.append(validate_arrays(*arrays, num_classes, path))
        return (*_concatenate(parts), str(folder)), looked_for
    for archive_name in archives:
        path = root / archive_name
        looked_for.append(str(path))
        if path.is_file():
            return (*read_archive(path, name, split, num_classes), str(path)), looked_for
    for pattern in npz_patterns:
        looked_for.append(str(root / pattern))
    npz_file = _find_npz(root, npz_patterns)
    if npz_file:
        return (*read_npz(npz_file, split, num_classes), _npz_source(npz_file)), looked_for
    return None, looked_for


def _find_npz(root, patterns):
    exact = root / patterns[0]
    if exact.is_file():
        return exact
    matches = sorted(path for path in root.glob(patterns[1]) if path.is_file())
    if len(matches) > 1:
        raise DataFormatError(
            f"Several .npz files match {str(root / patterns[1])!r}: {[str(m) for m in matches]}. "
            "Pass the one to use as data_dir."
        )
    return matches[0] if matches else None


def read_archive(path, name, split, num_classes):
    """Reads one split from an original ``.tar.gz`` release, without extracting it."""
    _, python_names, binary_names, _, _ = _layout(name, split)

    def read():
        with tarfile.open(path, "r:*") as archive:
            members = {Path(member.name).name: member for member in archive.getmembers()
                       if member.isfile()}
            for names, parse in ((python_names, _parse_pickle), (binary_names, _parse_binary)):
                if all(file_name in members for file_name in names):
                    parts = []
                    for file_name in names:
                        member_path = f"{path}:{members[file_name].name}"
                        payload = archive.extractfile(members[file_name]).read()
                        parts.append(validate_arrays(*parse(payload, name, member_path),
                                                     num_classes, member_path))
                    return _concatenate(parts)
        raise DataFormatError(
            f"{str(path)!r} holds no {name} {split} files: expected members named {python_names} "
            f"(python version) or {binary_names} (binary version). Download the archive again "
            f"from {DOWNLOAD_URLS[name]}."
        )

    return _read_with_context(path, read, name)


def read_npz(path, split, num_classes):
    """Reads ``x_<split>`` (uint8 images) and ``y_<split>`` (labels) from an ``.npz`` file."""
    keys = (f"x_{split}", f"y_{split}")

    def read():
        with np.load(path, allow_pickle=False) as arrays:
            missing = [key for key in keys if key not in arrays.files]
            if missing:
                raise DataFormatError(
                    f"{str(path)!r} has no {missing}: it holds {sorted(arrays.files)}. Expected "
                    "uint8 x_train, y_train, x_test, y_test."
                )
            return arrays[keys[0]], arrays[keys[1]]

    images, labels = _read_with_context(path, read)
    return validate_arrays(images, labels, num_classes, path)


def _read_cifar10_c(root, corruption, severity):
    looked_for = []
    for folder in (root / "CIFAR-10-C", root):
        images_path, labels_path = folder / f"{corruption}.npy", folder / "labels.npy"
        looked_for += [str(images_path), str(labels_path)]
        if not images_path.is_file():
            continue
        if not labels_path.is_file():
            raise DataNotFoundError(
                f"Found {str(images_path)!r} but not {str(labels_path)!r}, which holds its labels. "
                f"Extract labels.npy from {DOWNLOAD_URLS['cifar10_corrupted']}."
            )
        images = _read_with_context(
            images_path, lambda: np.load(images_path, mmap_mode="r", allow_pickle=False),
            "cifar10_corrupted")
        labels = _read_with_context(
            labels_path, lambda: np.load(labels_path, allow_pickle=False), "cifar10_corrupted")
        if images.ndim != 4 or images.shape[0] % len(SEVERITIES) or images.shape[0] == 0:
            raise DataFormatError(
                f"{str(images_path)!r} has shape {images.shape}; expected (5 * n, 32, 32, 3): "
                "severities 1..5 stacked in equal blocks (n = 10000 in the original release)."
            )
        if labels.shape[:1] != images.shape[:1]:
            raise DataFormatError(
                f"{str(labels_path)!r} has shape {labels.shape} but {str(images_path)!r} holds "
                f"{images.shape[0]} images; expected ({images.shape[0]},)."
            )
        if severity != "all":
            block = images.shape[0] // len(SEVERITIES)
            rows = slice((severity - 1) * block, severity * block)
            images, labels = images[rows], labels[rows]
        images, labels = validate_arrays(np.array(images), labels, 10, images_path)
        return (images, labels, str(images_path)), looked_for
    return None, looked_for


def validate_arrays(images, labels, num_classes, path):
    """Validates uint8 images (N, 32, 32, 3) and integer labels (N,) in [0, num_classes)."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8:
        raise DataFormatError(
            f"{str(path)!r}: pixels have dtype {images.dtype}; expected uint8 in [0, 255] as in "
            "the CIFAR releases (the pipeline divides by 255). Convert with "
            "`numpy.round(x * 255).astype('uint8')` if the images are floats in [0, 1]."
        )
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise DataFormatError(
            f"{str(path)!r}: images have shape {images.shape}; expected (N, 32, 32, 3) "
            "(channels last)."
        )
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != images.shape[:1] or not np.issubdtype(labels.dtype, np.integer):
        raise DataFormatError(
            f"{str(path)!r}: labels have shape {labels.shape} and dtype {labels.dtype}; expected "
            f"integer class indices of shape ({images.shape[0]},)."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataFormatError(
            f"{str(path)!r}: labels span [{labels.min()}, {labels.max()}]; expected class "
            f"indices in [0, {num_classes - 1}]."
        )
    return images, labels.astype(np.int32)


def _concatenate(parts):
    return (np.concatenate([images for images, _ in parts]),
            np.concatenate([labels for _, labels in parts]))


def _parse_pickle(payload, name, path):
    """Parses one pickled CIFAR batch: ``{b"data": (N, 3072) uint8, b"labels"/b"fine_labels"}``."""
    batch = _RestrictedUnpickler(payload).load()
    if not isinstance(batch, dict):
        raise DataFormatError(
            f"{str(path)!r} holds a {type(batch).__name__}, not a CIFAR batch dict."
        )
    batch = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
    label_key = "labels" if name == "cifar10" else "fine_labels"
    if "data" not in batch or label_key not in batch:
        raise DataFormatError(
            f"{str(path)!r} has keys {sorted(batch)}; expected 'data' and {label_key!r}."
        )
    data = np.asarray(batch["data"])
    if data.ndim != 2 or data.shape[1] != _PIXELS:
        raise DataFormatError(
            f"{str(path)!r}: 'data' has shape {data.shape}; expected (N, {_PIXELS})."
        )
    return _planar_to_channels_last(data), np.asarray(batch[label_key])


def _parse_binary(payload, name, path):
    """Parses a binary CIFAR file: records of label byte(s) + 3072 planar pixel bytes."""
    label_bytes = 1 if name == "cifar10" else 2  # CIFAR-100: coarse label, then fine label.
    record = label_bytes + _PIXELS
    if not payload or len(payload) % record:
        raise DataFormatError(
            f"{str(path)!r} has {len(payload)} bytes, not a positive multiple of the {record}-byte "
            "record: the file is truncated or not a CIFAR binary file."
        )
    rows = np.frombuffer(payload, dtype=np.uint8).reshape(-1, record)
    return _planar_to_channels_last(rows[:, label_bytes:]), rows[:, label_bytes - 1]


def _planar_to_channels_last(data):
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _read_with_context(path, read, name=None):
    """Runs ``read()``; turns any failure into a `DataFormatError` naming ``path``."""
    try:
        return read()
    except (DataFormatError, DataNotFoundError):
        raise
    except Exception as error:  # noqa: BLE001 - every reader failure means an unusable file.
        hint = f" Delete it and download it again from {DOWNLOAD_URLS[name]}." if name else ""
        raise DataFormatError(
            f"Could not read {str(path)!r} ({type(error).__name__}: {error}); the file is "
            f"truncated or not in the expected format.{hint}"
        ) from error


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches (dicts, lists, NumPy arrays) and refuses any other object."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }

    def __init__(self, payload):
        super().__init__(io.BytesIO(payload), encoding="bytes")

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR batch only holds arrays and lists"
            )
        return super().find_class(module, name)
