"""Helpers of write_explanations: the lifting layer lookup."""

from keras_equivariant import models
from keras_equivariant.visualize.report import lifting_rotation_layer


def test_lifting_rotation_layer_is_found_only_in_group_models():
    assert lifting_rotation_layer(models.BaselineCNN(num_classes=3, depth=4)) is None
    layer = lifting_rotation_layer(models.ParallelGCNN(num_classes=3, depth=4))
    assert layer.name == "rot_conv" and len(layer.output.shape) == 5
