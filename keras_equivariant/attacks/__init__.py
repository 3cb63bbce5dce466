"""keras_equivariant.attacks"""

from keras_equivariant.attacks.apgd import apgd  # noqa: F401
from keras_equivariant.attacks.autoattack import AutoAttackReport, autoattack  # noqa: F401
from keras_equivariant.attacks.fab import fab  # noqa: F401
from keras_equivariant.attacks.gradient import (  # noqa: F401
    fgsm,
    pgd,
    random_noise,
    sample_uniform_ball,
)
from keras_equivariant.attacks.losses import (  # noqa: F401
    cross_entropy_loss,
    dlr_loss,
    margin_loss,
    targeted_dlr_loss,
)
from keras_equivariant.attacks.spatial import (  # noqa: F401
    SpatialAttackResult,
    spatial,
    spatial_grid,
    spatial_transform,
)
from keras_equivariant.attacks.square import square  # noqa: F401
from keras_equivariant.attacks.protocols import (  # noqa: F401
    PROTOCOLS,
    AttackSpec,
    EvaluationProtocol,
    get_protocol,
)
