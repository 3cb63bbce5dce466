"""keras_equivariant.models"""
