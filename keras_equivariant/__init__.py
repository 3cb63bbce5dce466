"""keras-equivariant: equivariant Keras 3 layers and models, and honest robustness evaluation.

Subpackages (one concept each): ``groups``, ``layers``, ``models``, ``attacks``, ``metrics``,
``data``, ``export``, ``visualize``, ``cli``.
"""

__version__ = "0.1.0"

from keras_equivariant import export, layers
from keras_equivariant.equivariance import check_equivariance
from keras_equivariant.models import (
    BaselineCNN,
    CascadedGCNN,
    ParallelGCNN,
    ParallelRotScaleGCNN,
    WeightedParallelGCNN,
)
