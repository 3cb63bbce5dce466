"""keras_equivariant.layers"""
