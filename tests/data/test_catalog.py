"""Dataset names, corruptions, reference info and request validation."""

import pytest

from keras_equivariant.data import (
    BENCHMARK_CORRUPTIONS,
    CORRUPTIONS,
    DATASET_NAMES,
    dataset_info,
    load_dataset,
)
from keras_equivariant.data.catalog import tfds_config_names


def test_corruption_lists():
    assert len(CORRUPTIONS) == 19 and len(set(CORRUPTIONS)) == 19
    assert CORRUPTIONS[:15] == BENCHMARK_CORRUPTIONS
    assert CORRUPTIONS[0] == "gaussian_noise" and CORRUPTIONS[14] == "jpeg_compression"
    assert set(CORRUPTIONS[15:]) == {"speckle_noise", "gaussian_blur", "spatter", "saturate"}


def test_tfds_config_names():
    assert tfds_config_names("cifar10") == ["cifar10"]
    assert tfds_config_names("cifar10_corrupted", "glass_blur", 3) == ["cifar10_corrupted/frosted_glass_blur_3"]
    assert tfds_config_names("cifar10_corrupted", "elastic_transform", 1) == ["cifar10_corrupted/elastic_1"]
    assert tfds_config_names("cifar10_corrupted", "fog", "all") == [
        f"cifar10_corrupted/fog_{severity}" for severity in range(1, 6)]


def test_reference_info():
    info = dataset_info("cifar10", "train")
    assert (info.num_classes, info.num_examples, info.image_shape) == (10, 50000, (32, 32, 3))
    assert info.class_names[0] == "airplane" and info.class_names[9] == "truck"
    info = dataset_info("cifar100")
    assert info.num_classes == 100 == len(set(info.class_names)) and info.num_examples == 10000
    assert info.class_names[:3] == ("apple", "aquarium_fish", "baby")
    assert dataset_info("cifar10_corrupted", corruption="fog", severity="all").num_examples == 50000
    assert "fog (severity 2)" in dataset_info("cifar10_corrupted", corruption="fog", severity=2).description


@pytest.mark.parametrize("args, kwargs, match", [
    (("imagenet",), {}, r"dataset name.*'imagenet'.*\['cifar10', 'cifar100', 'cifar10_corrupted'\]"),
    (("cifar10", "validation"), {}, r"split.*\['train', 'test'\]"),
    (("cifar10_corrupted", "test"), {"corruption": "rain", "severity": 1}, r"corruption.*'rain'.*gaussian_noise"),
    (("cifar10_corrupted", "test"), {"corruption": "fog", "severity": 6}, r"severity.*6.*\[1, 2, 3, 4, 5, 'all'\]"),
    (("cifar10_corrupted", "test"), {"corruption": "fog", "severity": 0}, r"severity"),
    (("cifar10_corrupted", "test"), {"corruption": "fog", "severity": True}, r"severity"),
    (("cifar10_corrupted", "test"), {"corruption": "fog"}, r"severity.*None"),
    (("cifar10_corrupted", "test"), {}, r"needs `corruption`"),
    (("cifar10_corrupted", "train"), {"corruption": "fog", "severity": 1}, r"only has a 'test' split"),
    (("cifar10", "test"), {"corruption": "fog", "severity": 1}, r"only apply to 'cifar10_corrupted'"),
])
def test_invalid_requests_list_valid_values(tmp_path, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        dataset_info(*args, **kwargs)
    # The same validation runs before any file is touched.
    with pytest.raises(ValueError, match=match):
        load_dataset(*args, data_dir=tmp_path / "missing", **kwargs)


def test_dataset_names():
    assert DATASET_NAMES == ("cifar10", "cifar100", "cifar10_corrupted")
