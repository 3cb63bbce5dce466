"""keras_equivariant.export"""
from keras_equivariant.export.fold import fold
