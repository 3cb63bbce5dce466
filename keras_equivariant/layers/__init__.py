"""keras_equivariant.layers"""
from keras_equivariant.layers.convolution import Conv2D
from keras_equivariant.layers.flatten import GroupFlatten
from keras_equivariant.layers.normalization import BatchNormalization, GroupBatchNormalization
from keras_equivariant.layers.pooling import GroupPooling
from keras_equivariant.layers.rotation import RotationConv2D
from keras_equivariant.layers.scale import ScaleConv2D
from keras_equivariant.layers.rotation_scale import RotationScaleConv2D, split_rotation_scale_axis
from keras_equivariant.layers.base import GroupConv2D, PlainConvolution
