"""keras_equivariant.metrics"""
