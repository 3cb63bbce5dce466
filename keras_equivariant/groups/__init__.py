"""keras_equivariant.groups"""
