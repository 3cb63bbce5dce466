"""keras_equivariant.visualize"""
