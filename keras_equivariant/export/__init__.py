"""keras_equivariant.export"""
