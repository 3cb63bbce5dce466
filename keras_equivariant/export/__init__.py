"""keras_equivariant.export"""
from keras_equivariant.export.fold import fold
from keras_equivariant.export.serving import export_for_serving, export_saved_model
