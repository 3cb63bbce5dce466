"""keras_equivariant.layers"""
from keras_equivariant.layers.scale import ScaleConv2D
