"""Reading the original CIFAR releases, .npz files and CIFAR-10-C from a local data_dir."""

import pickle

import numpy as np
import pytest

from keras_equivariant.data import DataFormatError, DataNotFoundError, load_arrays


@pytest.mark.parametrize("binary", [False, True], ids=["python", "binary"])
@pytest.mark.parametrize("layout", ["release_folder", "flat_folder", "archive_in_dir", "archive_file"])
def test_cifar10_original_releases(tmp_path, fake_cifar10, binary, layout):
    top = "cifar-10-batches-bin" if binary else "cifar-10-batches-py"
    archive = "cifar-10-binary.tar.gz" if binary else "cifar-10-python.tar.gz"
    if layout == "release_folder":
        fake_cifar10.write_folder(tmp_path / top, binary)
        data_dir = tmp_path
    elif layout == "flat_folder":
        data_dir = fake_cifar10.write_folder(tmp_path / "anywhere", binary)
    else:
        path = fake_cifar10.write_archive(tmp_path / archive, top, binary)
        data_dir = tmp_path if layout == "archive_in_dir" else path
    for split in ("train", "test"):
        images, labels, info = load_arrays("cifar10", split, data_dir=data_dir, with_info=True)
        expected_images, expected_labels = fake_cifar10.split(split)
        np.testing.assert_array_equal(images, expected_images)  # pixel layout and batch order
        np.testing.assert_array_equal(labels, expected_labels)
        assert images.dtype == np.uint8 and labels.dtype == np.int32
        assert info.num_examples == (20 if split == "train" else 3)
        assert info.source.startswith(str(tmp_path))


@pytest.mark.parametrize("binary", [False, True], ids=["python", "binary"])
@pytest.mark.parametrize("archived", [False, True], ids=["extracted", "archive"])
def test_cifar100_uses_fine_labels(tmp_path, fake_cifar100, binary, archived):
    top = "cifar-100-binary" if binary else "cifar-100-python"
    if archived:
        fake_cifar100.write_archive(tmp_path / f"{top}.tar.gz", top, binary)
    else:
        fake_cifar100.write_folder(tmp_path / top, binary)
    images, labels, info = load_arrays("cifar100", "train", data_dir=tmp_path, with_info=True)
    expected_images, expected_labels = fake_cifar100.split("train")
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)
    assert info.num_classes == 100 and len(info.class_names) == 100


def test_npz_in_folder_or_as_file(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "cifar10_tiny.npz", x_train=images, y_train=np.arange(6, dtype=np.uint8),
             x_test=images[:2], y_test=np.array([[7], [9]], np.uint8))  # Keras-style (N, 1) labels
    for data_dir in (tmp_path, tmp_path / "cifar10_tiny.npz"):
        train_images, train_labels = load_arrays("cifar10", "train", data_dir=data_dir)
        np.testing.assert_array_equal(train_images, images)
        np.testing.assert_array_equal(train_labels, np.arange(6))
        _, test_labels = load_arrays("cifar10", "test", data_dir=data_dir)
        np.testing.assert_array_equal(test_labels, [7, 9])
    # A cifar10_*.npz must not be taken for CIFAR-100.
    with pytest.raises(DataNotFoundError):
        load_arrays("cifar100", "train", data_dir=tmp_path)


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_cifar10_c_takes_the_severity_block(cifar10_c_folder, severity):
    for data_dir in (cifar10_c_folder, cifar10_c_folder / "CIFAR-10-C"):
        images, labels, info = load_arrays("cifar10_corrupted", "test", data_dir=data_dir,
                                           corruption="gaussian_noise", severity=severity,
                                           with_info=True)
        assert images.shape == (3, 32, 32, 3)
        assert np.all(images == 10 * severity)
        np.testing.assert_array_equal(labels, [severity - 1, severity, severity + 1])
        assert (info.corruption, info.severity, info.num_examples) == ("gaussian_noise", severity, 3)


def test_cifar10_c_all_severities_and_tfds_alias(cifar10_c_folder):
    images, labels = load_arrays("cifar10_corrupted", "test", data_dir=cifar10_c_folder,
                                 corruption="gaussian_noise", severity="all")
    assert images.shape[0] == 15
    np.testing.assert_array_equal(images[::3, 0, 0, 0], [10, 20, 30, 40, 50])
    # tensorflow-datasets calls glass_blur "frosted_glass_blur"; the file is glass_blur.npy.
    images, _, info = load_arrays("cifar10_corrupted", "test", data_dir=cifar10_c_folder,
                                  corruption="frosted_glass_blur", severity=1, with_info=True)
    assert np.all(images == 50) and info.corruption == "glass_blur"


def test_missing_data_dir_names_the_path(tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(DataNotFoundError, match="no_such_folder.*does not exist"):
        load_arrays("cifar10", "train", data_dir=missing)


def test_empty_folder_lists_searched_files_and_how_to_get_them(tmp_path):
    with pytest.raises(DataNotFoundError) as caught:
        load_arrays("cifar10", "test", data_dir=tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "cifar-10-batches-py" / "test_batch") in message
    assert str(tmp_path / "cifar-10-python.tar.gz") in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert "--data-dir" in message
    assert isinstance(caught.value, FileNotFoundError)

    with pytest.raises(DataNotFoundError) as caught:
        load_arrays("cifar10_corrupted", "test", data_dir=tmp_path, corruption="fog", severity=2)
    assert str(tmp_path / "CIFAR-10-C" / "fog.npy") in str(caught.value)
    assert "zenodo.org/record/2535967" in str(caught.value)


def test_incomplete_release_names_missing_batches(tmp_path, fake_cifar10):
    folder = fake_cifar10.write_folder(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_4").unlink()
    with pytest.raises(DataNotFoundError, match="data_batch_4"):
        load_arrays("cifar10", "train", data_dir=tmp_path)


def test_cifar10_c_without_labels_file(cifar10_c_folder):
    (cifar10_c_folder / "CIFAR-10-C" / "labels.npy").unlink()
    with pytest.raises(DataNotFoundError, match="labels.npy"):
        load_arrays("cifar10_corrupted", "test", data_dir=cifar10_c_folder,
                    corruption="gaussian_noise", severity=1)


def _truncate(path):
    payload = path.read_bytes()
    path.write_bytes(payload[: len(payload) // 2])


@pytest.mark.parametrize("kind", ["npz", "pickle", "binary", "archive", "npy"])
def test_truncated_file_raises_format_error_naming_it(tmp_path, fake_cifar10, cifar10_c_folder, kind):
    if kind == "npz":
        path = tmp_path / "cifar10.npz"
        images = np.zeros((4, 32, 32, 3), np.uint8)
        np.savez(path, x_train=images, y_train=np.zeros(4, np.uint8), x_test=images,
                 y_test=np.zeros(4, np.uint8))
    elif kind == "pickle":
        path = fake_cifar10.write_folder(tmp_path / "cifar-10-batches-py") / "test_batch"
    elif kind == "binary":
        path = fake_cifar10.write_folder(tmp_path / "cifar-10-batches-bin", binary=True) / "test_batch.bin"
    elif kind == "archive":
        path = fake_cifar10.write_archive(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py")
    else:
        path = cifar10_c_folder / "CIFAR-10-C" / "gaussian_noise.npy"
    _truncate(path)
    with pytest.raises(DataFormatError) as caught:
        if kind == "npy":
            load_arrays("cifar10_corrupted", "test", data_dir=tmp_path,
                        corruption="gaussian_noise", severity=5)
        else:
            load_arrays("cifar10", "test", data_dir=tmp_path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("images, labels, match", [
    (np.zeros((4, 32, 32, 3), np.float32), np.zeros(4, np.uint8), "dtype float32.*uint8"),
    (np.zeros((4, 3, 32, 32), np.uint8), np.zeros(4, np.uint8), r"shape \(4, 3, 32, 32\)"),
    (np.zeros((4, 32, 32, 3), np.uint8), np.zeros(3, np.uint8), r"labels have shape \(3,\)"),
    (np.zeros((4, 32, 32, 3), np.uint8), np.full(4, 10, np.uint8), r"labels span \[10, 10\]"),
])
def test_wrong_npz_content(tmp_path, images, labels, match):
    path = tmp_path / "cifar10.npz"
    np.savez(path, x_train=images, y_train=labels, x_test=images, y_test=labels)
    with pytest.raises(DataFormatError, match=match) as caught:
        load_arrays("cifar10", "train", data_dir=tmp_path)
    assert str(path) in str(caught.value)


def test_npz_without_split_keys(tmp_path):
    np.savez(tmp_path / "cifar10.npz", images=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(DataFormatError, match=r"no \['x_test', 'y_test'\].*images"):
        load_arrays("cifar10", "test", data_dir=tmp_path)


def test_ambiguous_npz_files(tmp_path):
    for stem in ("cifar10_a", "cifar10_b"):
        np.savez(tmp_path / f"{stem}.npz", x_test=np.zeros((1, 32, 32, 3), np.uint8), y_test=[0])
    with pytest.raises(DataFormatError, match="Several .npz files.*cifar10_a.npz"):
        load_arrays("cifar10", "test", data_dir=tmp_path)


def test_pickle_with_foreign_objects_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    # A pickle that would call os.system when loaded with plain pickle.load.
    (folder / "test_batch").write_bytes(b"cos\nsystem\n(S'echo unsafe'\ntR.")
    with pytest.raises(DataFormatError, match="refusing to load os.system"):
        load_arrays("cifar10", "test", data_dir=tmp_path)


def test_pickle_written_with_str_keys_and_arrays(tmp_path, fake_cifar10):
    images, labels = fake_cifar10.split("test")
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    payload = {"data": images.transpose(0, 3, 1, 2).reshape(3, -1), "labels": labels}
    (folder / "test_batch").write_bytes(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    loaded_images, loaded_labels = load_arrays("cifar10", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)


def test_pickle_with_non_uint8_pixels(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    payload = {b"data": np.full((2, 3072), 300, np.int64), b"labels": [0, 1]}
    (folder / "test_batch").write_bytes(pickle.dumps(payload))
    with pytest.raises(DataFormatError, match="test_batch.*dtype int64.*uint8"):
        load_arrays("cifar10", "test", data_dir=tmp_path)


def test_the_shipped_cifar10_subset_is_real_and_labelled_as_a_subset():
    from keras_equivariant.data import load_arrays, sample_data_dir

    images, labels, info = load_arrays("cifar10", "train", data_dir=sample_data_dir(),
                                       with_info=True)
    assert images.shape == (4660, 32, 32, 3) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).min() >= 70
    assert "CIFAR-10 subset (4660 train / 846 test)" in info.source
    assert load_arrays("cifar10", "test", data_dir=sample_data_dir())[1].shape == (846,)
    assert sample_data_dir("cifar100") is None
    provenance = (sample_data_dir() / "README.md").read_text(encoding="utf-8")
    assert "Krizhevsky" in provenance and "4660 train / 846 test" in provenance
