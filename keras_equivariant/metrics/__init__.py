"""keras_equivariant.metrics"""

from keras_equivariant.metrics.clever import (  # noqa: F401
    CleverResult,
    CleverTargetScore,
    clever_scores,
    clever_t,
    clever_u,
)
from keras_equivariant.metrics.weibull import ReverseWeibullFit, fit_reverse_weibull  # noqa: F401
from keras_equivariant.metrics.plots import (  # noqa: F401
    plot_differences,
    plot_robust_accuracy,
    plot_transformation_accuracy,
)
from keras_equivariant.metrics.robust_accuracy import RobustAccuracyReport, robust_accuracy  # noqa: F401
from keras_equivariant.metrics.sanity import SanityCheck, SanityReport, sanity_checks  # noqa: F401
from keras_equivariant.metrics.statistics import (  # noqa: F401
    Difference,
    Estimate,
    describe_difference,
    format_estimate,
    mean_confidence_interval,
    paired_bootstrap_difference,
    student_t_quantile,
)
from keras_equivariant.metrics.transformation import (  # noqa: F401
    SpatialRobustAccuracyReport,
    TransformationAccuracyReport,
    spatial_robust_accuracy,
    transformation_accuracy,
)
