"""Writers for tiny fake CIFAR releases in the original formats (pickles, binary, npz, .npy)."""

import io
import pickle
import tarfile

import numpy as np
import pytest


def random_images(count, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)


def planar(images):
    """(N, 32, 32, 3) -> the releases' (N, 3072) rows: all red, then green, then blue."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


class FakeCifar:
    """Known images and labels per file, and writers for every supported layout."""

    def __init__(self, name, files):
        self.name = name
        self.files = files  # file stem -> (images, labels, coarse labels or None)

    def split(self, split):
        stems = self.split_stems(split)
        return (np.concatenate([self.files[stem][0] for stem in stems]),
                np.concatenate([self.files[stem][1] for stem in stems]))

    def split_stems(self, split):
        if self.name == "cifar10":
            return [f"data_batch_{index}" for index in range(1, 6)] if split == "train" else ["test_batch"]
        return [split]

    def pickles(self):
        payloads = {}
        for stem, (images, labels, coarse) in self.files.items():
            if self.name == "cifar10":
                batch = {b"data": planar(images), b"labels": labels.tolist(),
                         b"batch_label": stem.encode()}
            else:
                batch = {b"data": planar(images), b"fine_labels": labels.tolist(),
                         b"coarse_labels": coarse.tolist()}
            payloads[stem] = pickle.dumps(batch)
        return payloads

    def binaries(self):
        payloads = {}
        for stem, (images, labels, coarse) in self.files.items():
            label_columns = [labels[:, None]] if coarse is None else [coarse[:, None], labels[:, None]]
            rows = np.concatenate([*(column.astype(np.uint8) for column in label_columns),
                                   planar(images)], axis=1)
            payloads[f"{stem}.bin"] = rows.tobytes()
        return payloads

    def write_folder(self, folder, binary=False):
        folder.mkdir(parents=True, exist_ok=True)
        for file_name, payload in (self.binaries() if binary else self.pickles()).items():
            (folder / file_name).write_bytes(payload)
        return folder

    def write_archive(self, path, top_folder, binary=False):
        with tarfile.open(path, "w:gz") as archive:
            for file_name, payload in (self.binaries() if binary else self.pickles()).items():
                member = tarfile.TarInfo(f"{top_folder}/{file_name}")
                member.size = len(payload)
                archive.addfile(member, io.BytesIO(payload))
        return path


@pytest.fixture
def fake_cifar10():
    files = {}
    for index, stem in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        count = 3 if stem == "test_batch" else 4
        labels = np.random.default_rng(100 + index).integers(0, 10, size=count).astype(np.uint8)
        files[stem] = (random_images(count, index), labels, None)
    return FakeCifar("cifar10", files)


@pytest.fixture
def fake_cifar100():
    files = {}
    for index, stem in enumerate(["train", "test"]):
        count = 6 if stem == "train" else 4
        rng = np.random.default_rng(200 + index)
        files[stem] = (random_images(count, 50 + index),
                       rng.integers(0, 100, size=count).astype(np.uint8),
                       rng.integers(0, 20, size=count).astype(np.uint8))
    return FakeCifar("cifar100", files)


@pytest.fixture
def cifar10_c_folder(tmp_path):
    """CIFAR-10-C layout with 3 images per severity; every pixel of block s equals 10 * s
    and its labels are (s - 1, s, s + 1), so a wrong block or misaligned labels show."""
    folder = tmp_path / "CIFAR-10-C"
    folder.mkdir()
    per_severity = 3
    images = np.concatenate([np.full((per_severity, 32, 32, 3), 10 * severity, np.uint8)
                             for severity in range(1, 6)])
    labels = np.concatenate([np.arange(severity - 1, severity - 1 + per_severity, dtype=np.uint8)
                             for severity in range(1, 6)])
    np.save(folder / "gaussian_noise.npy", images)
    np.save(folder / "glass_blur.npy", images[::-1].copy())
    np.save(folder / "labels.npy", labels)
    return tmp_path
