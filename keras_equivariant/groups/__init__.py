"""keras_equivariant.groups"""
from keras_equivariant.groups.base import (
    GroupAction,
    available_groups,
    get_group,
    layer_group_actions,
    register_group,
)
from keras_equivariant.groups.rotation import RotationGroup
from keras_equivariant.groups.scale import (
    RotationScaleGroup,
    ScaleGroup,
    check_scales,
    rescale,
    scale_kernel_basis,
)
