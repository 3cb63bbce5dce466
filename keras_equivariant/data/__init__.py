"""keras_equivariant.data: CIFAR-10, CIFAR-100 and CIFAR-10-C input pipelines, online or offline."""

from keras_equivariant.data.catalog import (
    BENCHMARK_CORRUPTIONS,
    CORRUPTIONS,
    DATASET_NAMES,
    SEVERITIES,
    DataFormatError,
    DataNotFoundError,
    DatasetInfo,
    dataset_info,
)
from keras_equivariant.data.local import sample_data_dir
from keras_equivariant.data.pipeline import load_arrays, load_dataset, stratified_indices
