"""Helpers of write_explanations: the lifting layer lookup and the weights fingerprint."""

from keras_equivariant import models
from keras_equivariant.utils.resume import weights_fingerprint
from keras_equivariant.visualize.report import lifting_rotation_layer


def test_lifting_rotation_layer_is_found_only_in_group_models():
    assert lifting_rotation_layer(models.BaselineCNN(num_classes=3, depth=4)) is None
    layer = lifting_rotation_layer(models.ParallelGCNN(num_classes=3, depth=4))
    assert layer.name == "rot_conv" and len(layer.output.shape) == 5


def test_weights_fingerprint_changes_with_the_weights():
    model = models.BaselineCNN(num_classes=3, depth=4)
    before = weights_fingerprint(model)
    assert weights_fingerprint(model) == before
    kernel = model.get_layer("conv1").kernel
    kernel.assign(kernel + 1.0)
    assert weights_fingerprint(model) != before
