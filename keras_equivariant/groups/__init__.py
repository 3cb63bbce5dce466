"""keras_equivariant.groups"""
from keras_equivariant.groups.scale import check_scales, scale_kernel_basis
