"""keras_equivariant.evaluation: sharded sweeps merge exactly; cached stages know their model."""

import pytest
from tiny_cifar import write_tiny_cifar10

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


def test_equivariance_cache_is_not_reused_for_another_model(tmp_path):
    """Regression: the cache was keyed on num_images only, so a retrained or other model got
    the stored errors of the first one."""
    data_dir = write_tiny_cifar10(tmp_path / "data", num_train=10, num_test=10)
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


def test_clever_stage_is_not_reused_for_another_model_or_budget(tmp_path):
    """Regression: reproduce's CLEVER stage must know the model and the whole budget, not only
    the number of images."""
    data_dir = write_tiny_cifar10(tmp_path / "data", num_train=10, num_test=10)
    path = tmp_path / "clever_2.json"
    budget = dict(num_images=1, num_batches=3, num_samples_per_batch=4, data_dir=data_dir)
    model = models.BaselineCNN(num_classes=10, depth=4)
    first = evaluation.clever_summary(model, path, **budget)
    assert evaluation.clever_summary(model, path, **budget) == first
    with pytest.raises(ValueError, match="num_batches: stored 3, requested 4"):
        evaluation.clever_summary(model, path, **{**budget, "num_batches": 4})
    with pytest.raises(ValueError, match="a different model"):
        evaluation.clever_summary(models.BaselineCNN(num_classes=10, depth=4), path, **budget)
