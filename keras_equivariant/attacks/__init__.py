"""keras_equivariant.attacks"""
