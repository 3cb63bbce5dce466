"""keras_equivariant.evaluation: sharded sweeps merge exactly; cached stages know their model."""

import numpy as np
import pytest

from keras_equivariant import evaluation, models
from keras_equivariant.metrics.robust_accuracy import merge_reports, robust_accuracy


def test_two_shards_merge_to_the_unsharded_sweep_exactly(toy_model, toy_data, tmp_path):
    import tensorflow as tf

    images, labels = toy_data
    dataset = tf.data.Dataset.from_tensor_slices((images[:100], labels[:100])).batch(40)
    arguments = dict(attack="pgd", eps=[0.0, 0.05, 0.1], steps=3, seed=3, verbose=0,
                     model_name="toy")
    whole = robust_accuracy(toy_model, dataset, **arguments)
    shards = [robust_accuracy(toy_model, dataset, shard=(index, 2),
                              output_dir=tmp_path / str(index), **arguments)
              for index in (1, 0)]
    assert sorted(report.num_examples for report in shards) == [40, 60]  # batches 1 | 0, 2
    merged = merge_reports(shards)
    assert merged == whole
    assert 0.0 < min(merged.accuracy) < merged.clean_accuracy  # the attack did something
    with pytest.raises(ValueError, match="one report per shard"):
        merge_reports(shards[:1])


def test_shard_must_be_an_index_below_the_count(toy_model, toy_data):
    images, labels = toy_data
    for shard in [(2, 2), (-1, 2), (0, 0), (1,), (0.5, 2)]:
        with pytest.raises(ValueError, match="shard"):
            robust_accuracy(toy_model, (images[:8], labels[:8]), eps=[0.0], shard=shard,
                            verbose=0)


def _tiny_test_set(folder):
    rng = np.random.default_rng(0)
    folder.mkdir()
    np.savez(folder / "cifar10_tiny.npz",
             x_train=rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8),
             y_train=(np.arange(10) % 10).astype(np.uint8),
             x_test=rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8),
             y_test=(np.arange(10) % 10).astype(np.uint8))
    return folder


def test_equivariance_cache_is_not_reused_for_another_model(tmp_path):
    """Regression: the cache was keyed on num_images only, so a retrained or other model got
    the stored errors of the first one."""
    data_dir = _tiny_test_set(tmp_path / "data")
    path = tmp_path / "equivariance.json"
    invariant = models.CascadedGCNN(num_classes=10, depth=4)
    first = evaluation.equivariance_errors(invariant, path, num_images=4, data_dir=data_dir)
    assert first["max_relative_error"] < 1e-4
    assert evaluation.equivariance_errors(invariant, path, num_images=4,
                                          data_dir=data_dir) == first
    hybrid = models.BaselineCNN(num_classes=10, depth=4)
    with pytest.raises(ValueError, match="a different model.*model_weights"):
        evaluation.equivariance_errors(hybrid, path, num_images=4, data_dir=data_dir)
    with pytest.raises(ValueError, match="num_images: stored 4, requested 6"):
        evaluation.equivariance_errors(invariant, path, num_images=6, data_dir=data_dir)
