"""keras_equivariant.metrics"""

from keras_equivariant.metrics.clever import (  # noqa: F401
    CleverResult,
    CleverTargetScore,
    clever_scores,
    clever_t,
    clever_u,
)
from keras_equivariant.metrics.weibull import ReverseWeibullFit, fit_reverse_weibull  # noqa: F401
