"""keras_equivariant.data"""
