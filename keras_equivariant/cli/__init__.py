"""keras_equivariant.cli"""
