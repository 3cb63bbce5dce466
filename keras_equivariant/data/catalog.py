"""What the supported datasets are: names, splits, classes, corruptions, and the data errors.

Nothing here reads files; ``local.py`` reads the original releases and ``pipeline.py`` builds
the ``tf.data`` pipelines.
"""

from __future__ import annotations

import dataclasses

from keras_equivariant.utils.validation import check_choice

DATASET_NAMES = ("cifar10", "cifar100", "cifar10_corrupted")
SPLITS = ("train", "test")
SEVERITIES = (1, 2, 3, 4, 5)
IMAGE_SHAPE = (32, 32, 3)

# The 15 benchmark corruptions of Hendrycks & Dietterich (ICLR 2019) in the paper's order
# (noise, blur, weather, digital), named like the ``.npy`` files of the original release.
BENCHMARK_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog",
    "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
# All 19 corruptions of the CIFAR-10-C release: the 15 benchmark ones, then the 4 extra ones.
CORRUPTIONS = BENCHMARK_CORRUPTIONS + ("speckle_noise", "gaussian_blur", "spatter", "saturate")

# tensorflow-datasets names two corruptions differently from the original files.
TFDS_CORRUPTION_NAMES = {"glass_blur": "frosted_glass_blur", "elastic_transform": "elastic"}
_CORRUPTION_ALIASES = {tfds_name: name for name, tfds_name in TFDS_CORRUPTION_NAMES.items()}

CIFAR10_CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
CIFAR100_CLASS_NAMES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
    "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)

_CLASS_NAMES = {
    "cifar10": CIFAR10_CLASS_NAMES,
    "cifar100": CIFAR100_CLASS_NAMES,
    "cifar10_corrupted": CIFAR10_CLASS_NAMES,
}
# Sizes of the full official splits (CIFAR-10-C: per severity; "all" pools 5 severities).
_FULL_SIZES = {
    ("cifar10", "train"): 50_000, ("cifar10", "test"): 10_000,
    ("cifar100", "train"): 50_000, ("cifar100", "test"): 10_000,
    ("cifar10_corrupted", "test"): 10_000,
}

DOWNLOAD_URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    "cifar10_corrupted": "https://zenodo.org/record/2535967/files/CIFAR-10-C.tar",
}


class DataNotFoundError(FileNotFoundError):
    """The requested dataset is in none of the places that were searched.

    The message lists every file that was looked for and how to obtain the data.
    """


class DataFormatError(ValueError):
    """A data file exists but cannot be used (truncated, wrong shape or pixel dtype).

    The message names the file.
    """


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Description of one loaded (or reference) dataset split.

    Attributes:
        name: dataset name, one of `DATASET_NAMES`.
        split: `"train"` or `"test"`.
        num_classes: number of label classes.
        num_examples: number of examples in this split as loaded (after `max_examples`).
        image_shape: `(height, width, channels)` of one image.
        class_names: one name per class index.
        source: where the examples came from (a file path, or `"tfds ..."`), or
            `"reference"` for the full official split described without reading data.
        corruption: the CIFAR-10-C corruption, or `None`.
        severity: the CIFAR-10-C severity (1..5 or `"all"`), or `None`.
    """

    name: str
    split: str
    num_classes: int
    num_examples: int
    image_shape: tuple
    class_names: tuple
    source: str
    corruption: str | None = None
    severity: int | str | None = None

    @property
    def description(self) -> str:
        """Human-readable name for reports, e.g. ``"cifar10_corrupted/fog (severity 3), test"``."""
        text = self.name
        if self.corruption is not None:
            text += f"/{self.corruption} (severity {self.severity})"
        return f"{text}, {self.split}, {self.num_examples} examples from {self.source}"


def normalize_request(name, split, corruption=None, severity=None):
    """Validates a dataset request; returns ``(name, split, corruption, severity)``.

    Accepts the tensorflow-datasets spelling of two corruptions (``frosted_glass_blur``,
    ``elastic``) and returns the original file names. Raises ``ValueError`` listing the
    valid values for an unknown name, split, corruption or severity.
    """
    check_choice(name, DATASET_NAMES, "dataset name")
    check_choice(split, SPLITS, "split")
    if name != "cifar10_corrupted":
        if corruption is not None or severity is not None:
            raise ValueError(
                f"`corruption` and `severity` only apply to 'cifar10_corrupted'; received "
                f"corruption={corruption!r}, severity={severity!r} for dataset {name!r}."
            )
        return name, split, None, None
    if split != "test":
        raise ValueError(
            f"'cifar10_corrupted' only has a 'test' split (CIFAR-10-C corrupts the CIFAR-10 "
            f"test set); received split={split!r}."
        )
    if corruption is None:
        raise ValueError(
            f"'cifar10_corrupted' needs `corruption`: one of {list(CORRUPTIONS)}."
        )
    corruption = _CORRUPTION_ALIASES.get(corruption, corruption)
    check_choice(corruption, CORRUPTIONS, "corruption")
    if isinstance(severity, bool) or severity not in SEVERITIES + ("all",):
        raise ValueError(
            f"Unknown severity: received {severity!r}. Expected one of "
            f"{list(SEVERITIES) + ['all']} ('all' pools the five severities, 50,000 images, "
            "as in the paper's CIFAR-10-C evaluation)."
        )
    return name, split, corruption, (severity if severity == "all" else int(severity))


def tfds_config_names(name, corruption=None, severity=None) -> list[str]:
    """tensorflow-datasets names to load, e.g. ``["cifar10_corrupted/frosted_glass_blur_3"]``.

    Severity ``"all"`` gives the five per-severity configs, in severity order.
    """
    if name != "cifar10_corrupted":
        return [name]
    tfds_corruption = TFDS_CORRUPTION_NAMES.get(corruption, corruption)
    severities = SEVERITIES if severity == "all" else (severity,)
    return [f"cifar10_corrupted/{tfds_corruption}_{level}" for level in severities]


def dataset_info(name, split="test", corruption=None, severity=None) -> DatasetInfo:
    """Reference description of a full official split, without reading any data.

    Use it to get `num_classes` and `class_names` before loading, e.g. to build a model.
    `load_dataset(..., with_info=True)` returns the info of the data actually loaded.

    Example:

    >>> dataset_info("cifar100").num_classes
    100
    """
    name, split, corruption, severity = normalize_request(name, split, corruption, severity)
    num_examples = _FULL_SIZES[(name, split)] * (len(SEVERITIES) if severity == "all" else 1)
    return make_info(name, split, num_examples, "reference", corruption, severity)


def make_info(name, split, num_examples, source, corruption=None, severity=None) -> DatasetInfo:
    """Builds the `DatasetInfo` of a validated request."""
    class_names = _CLASS_NAMES[name]
    return DatasetInfo(
        name=name, split=split, num_classes=len(class_names), num_examples=int(num_examples),
        image_shape=IMAGE_SHAPE, class_names=class_names, source=str(source),
        corruption=corruption, severity=severity,
    )
