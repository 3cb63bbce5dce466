"""keras_equivariant.models: the paper's five architectures as functional ``keras.Model`` builders.

Every builder takes pixels in [0, 1] (normalization is the model's first layer), returns logits,
and names its last spatial feature map ``"features"`` (see ``docs/model-summary.md``).
"""

from keras_equivariant.models.baseline import BaselineCNN
from keras_equivariant.models.blocks import BilinearResize, SoftmaxWeightedSum
from keras_equivariant.models.cascaded import CascadedGCNN
from keras_equivariant.models.parallel import ParallelGCNN, ParallelRotScaleGCNN
from keras_equivariant.models.weighted import WeightedParallelGCNN
