"""The tf.data pipelines: tfds path (mocked), batching, shuffling, augmentation, subsets."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_equivariant.data import (
    DataNotFoundError,
    load_arrays,
    load_dataset,
    stratified_indices,
)

REAL_SUBSET = Path(__file__).resolve().parents[2] / "data" / "cifar10_subset.npz"  # shipped


def _collect(dataset):
    batches = list(dataset.as_numpy_iterator())
    return (np.concatenate([images for images, _ in batches]),
            np.concatenate([labels for _, labels in batches]),
            [len(labels) for _, labels in batches])


def _check_batches(dataset, batch_sizes, num_classes):
    assert dataset.element_spec[0].dtype == tf.float32
    assert dataset.element_spec[1].dtype == tf.int32
    images, labels, sizes = _collect(dataset)
    assert sizes == batch_sizes
    assert images.shape[1:] == (32, 32, 3)
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.max() > 0.5
    assert labels.min() >= 0 and labels.max() < num_classes


@pytest.mark.parametrize("name, split, kwargs, num_classes", [
    ("cifar10", "train", {}, 10),
    ("cifar10", "test", {}, 10),
    ("cifar100", "train", {}, 100),
    ("cifar10_corrupted", "test", {"corruption": "elastic_transform", "severity": 3}, 10),
])
def test_tfds_path(name, split, kwargs, num_classes):
    with tfds.testing.mock_data(num_examples=10):
        dataset, info = load_dataset(name, split, batch_size=4, with_info=True, **kwargs)
        _check_batches(dataset, [4, 4, 2], num_classes)
    assert info.num_examples == 10 and info.num_classes == num_classes
    assert info.source.startswith("tfds ")
    if name == "cifar10_corrupted":
        assert "cifar10_corrupted/elastic_3" in info.source  # tfds spelling of the config


def test_tfds_all_severities_pools_five_configs():
    with tfds.testing.mock_data(num_examples=4):
        images, labels, info = load_arrays("cifar10_corrupted", "test", corruption="fog",
                                           severity="all", with_info=True)
    assert images.shape == (20, 32, 32, 3) and labels.shape == (20,)
    assert all(f"cifar10_corrupted/fog_{severity}" in info.source for severity in range(1, 6))


def test_tfds_failure_becomes_data_not_found(monkeypatch):
    def offline_load(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'www.cs.toronto.edu'")

    monkeypatch.setattr(tfds, "load", offline_load)
    with pytest.raises(DataNotFoundError) as caught:
        load_dataset("cifar100", "test")
    message = str(caught.value)
    assert "Failed to resolve" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in message
    assert "--data-dir" in message


def test_prepared_tfds_folder_is_read_without_download(tmp_path, monkeypatch):
    (tmp_path / "cifar10" / "3.0.2").mkdir(parents=True)
    prepared = type("PreparedBuilder", (), {"is_prepared": lambda self: True})
    monkeypatch.setattr(tfds, "builder", lambda name, data_dir: prepared())
    calls = []
    with tfds.testing.mock_data(num_examples=5):
        mocked_load = tfds.load

        def recording_load(name, **kwargs):
            calls.append((name, kwargs))
            return mocked_load(name, **kwargs)

        monkeypatch.setattr(tfds, "load", recording_load)
        _, labels, info = load_arrays("cifar10", "test", data_dir=tmp_path, with_info=True)
    assert labels.shape == (5,) and info.source == f"tfds cifar10 in {str(tmp_path)!r}"
    assert calls == [("cifar10", {"split": "test", "data_dir": str(tmp_path),
                                  "as_supervised": True, "download": False})]


@pytest.fixture
def npz_dir(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    images[0] = 255  # a known pixel value for the [0, 1] scaling check
    labels = np.arange(30, dtype=np.uint8) % 3
    np.savez(tmp_path / "cifar10.npz", x_train=images, y_train=labels, x_test=images,
             y_test=labels)
    return tmp_path


def test_local_batches_and_scaling(npz_dir):
    dataset = load_dataset("cifar10", "test", data_dir=npz_dir, batch_size=8)
    _check_batches(dataset, [8, 8, 8, 6], 10)
    images, labels, _ = _collect(dataset)
    raw_images, raw_labels = load_arrays("cifar10", "test", data_dir=npz_dir)
    np.testing.assert_allclose(images, raw_images / 255.0, atol=1e-7)
    np.testing.assert_array_equal(labels, raw_labels)  # test split: not shuffled by default
    assert np.all(images[0] == 1.0)


def test_shuffle_defaults_and_seed(npz_dir):
    train = load_dataset("cifar10", "train", data_dir=npz_dir, batch_size=30, seed=3)
    first_epoch, second_epoch = (_collect(train)[0] for _ in range(2))
    assert not np.array_equal(first_epoch, second_epoch)  # reshuffled every epoch
    # Every epoch is a permutation of the data.
    raw_images, _ = load_arrays("cifar10", "train", data_dir=npz_dir)
    np.testing.assert_array_equal(np.sort(first_epoch.reshape(30, -1), axis=0),
                                  np.sort(raw_images.reshape(30, -1) / 255.0, axis=0).astype(np.float32))
    again = load_dataset("cifar10", "train", data_dir=npz_dir, batch_size=30, seed=3)
    np.testing.assert_array_equal(_collect(again)[0], first_epoch)
    unshuffled = load_dataset("cifar10", "train", data_dir=npz_dir, batch_size=30, shuffle=False)
    np.testing.assert_allclose(_collect(unshuffled)[0], raw_images / 255.0, atol=1e-7)


def test_augmentation_off_by_default_and_seeded_when_on(npz_dir):
    plain = load_dataset("cifar10", "test", data_dir=npz_dir, batch_size=30)
    reference = _collect(plain)[0]
    np.testing.assert_array_equal(_collect(plain)[0], reference)  # deterministic

    augmented = load_dataset("cifar10", "test", data_dir=npz_dir, batch_size=30, augment=True, seed=7)
    images, labels, _ = _collect(augmented)
    assert images.shape == reference.shape and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    changed = np.any(images != reference, axis=(1, 2, 3))
    assert changed.mean() > 0.5
    np.testing.assert_array_equal(labels, np.arange(30) % 3)  # labels follow their images
    # Each augmented image is a shifted (by <= 4 pixels) and possibly flipped copy of its
    # original, so its central 24x24 window is a 24x24 window of the (flipped) original.
    flipped_count = 0
    for original, augmented_image in zip(reference, images):
        window = augmented_image[4:28, 4:28]
        matches = [any(np.array_equal(window, source[row:row + 24, col:col + 24])
                       for row in range(9) for col in range(9))
                   for source in (original, np.flip(original, axis=1))]
        assert any(matches)
        flipped_count += matches[1] and not matches[0]
    assert 0 < flipped_count < 30
    np.testing.assert_array_equal(
        _collect(load_dataset("cifar10", "test", data_dir=npz_dir, batch_size=30,
                              augment=True, seed=7))[0], images)
    assert not np.array_equal(_collect(augmented)[0], images)  # new draws every epoch


def test_max_examples_takes_a_balanced_subset(npz_dir):
    dataset, info = load_dataset("cifar10", "train", data_dir=npz_dir, batch_size=4,
                                 max_examples=9, shuffle=False, with_info=True)
    _, labels, sizes = _collect(dataset)
    assert sizes == [4, 4, 1] and info.num_examples == 9
    np.testing.assert_array_equal(np.bincount(labels), [3, 3, 3])


def test_stratified_indices():
    np.testing.assert_array_equal(stratified_indices([0, 0, 0, 1, 1, 2], 4), [0, 1, 3, 5])
    labels = np.repeat([4, 1, 7], [50, 5, 20])
    chosen = stratified_indices(labels, 30)
    assert chosen.tolist() == sorted(chosen.tolist()) and len(set(chosen.tolist())) == 30
    # Class 1 runs out after 5; the others share the rest evenly.
    assert sorted(np.bincount(labels[chosen], minlength=8)[[4, 1, 7]].tolist()) == [5, 12, 13]
    np.testing.assert_array_equal(stratified_indices(labels, 1000), np.arange(75))
    with pytest.raises(ValueError, match="num_examples"):
        stratified_indices(labels, 0)


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size"),
    ({"max_examples": -1}, "max_examples"),
    ({"seed": "seven"}, "seed"),
])
def test_bad_arguments(npz_dir, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dataset("cifar10", "train", data_dir=npz_dir, **kwargs)


def test_real_cifar10_subset():
    dataset, info = load_dataset("cifar10", "test", data_dir=REAL_SUBSET.parent, batch_size=128,
                                 with_info=True)
    assert (info.num_examples, info.num_classes) == (846, 10)
    assert info.source == (f"{REAL_SUBSET} (the CIFAR-10 subset (4660 train / 846 test) shipped "
                           "in the repository)")
    images, labels, sizes = _collect(dataset)
    assert sizes == [128] * 6 + [78]
    assert images.dtype == np.float32 and 0.0 <= images.min() and images.max() <= 1.0
    counts = np.bincount(labels, minlength=10)
    assert counts.min() >= 70 and counts.max() <= 113  # as documented in data/README.md
    _, quick_info = load_dataset("cifar10", "train", data_dir=REAL_SUBSET, max_examples=1000,
                                 with_info=True)
    assert quick_info.num_examples == 1000
