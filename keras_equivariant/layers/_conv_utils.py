"""Kernel machinery shared by the rotation convolutions (:class:`RotationConv2D` and
:class:`RotationScaleConv2D`): the learned-parameter layout of a rotated kernel and its expansion.
"""

from __future__ import annotations

from keras import ops


def rotation_kernel_parameters(rotations, kernel_size, input_order):
    """How a rotation-equivariant ``kernel_size`` kernel is parameterized.

    C4/D4 kernels are gathered from the learned parameters by an index table (exact rotations
    of the pixel grid); C8 kernels are a linear combination of a steerable basis.

    Args:
        rotations: the layer's ``RotationGroup``.
        kernel_size: int, the (square) kernel size.
        input_order: ``|G_in|``, 1 for a lifting layer, else the group order.

    Returns:
        ``(indices, basis, num_basis)``: exactly one of ``indices`` (C4/D4) and ``basis`` (C8) is
        not ``None``; the learned kernel has ``num_basis`` rows.
    """
    if rotations.name == "C8":
        basis = rotations.kernel_basis(kernel_size, input_order)
        return None, basis, basis.shape[0]
    indices = rotations.kernel_indices(kernel_size, input_order)
    return indices, None, kernel_size * kernel_size * input_order


def expand_rotation_kernel(kernel, indices, basis):
    """The kernel of every (output element, input element): ``(k, k, |G_in|, |G|, ...)``.

    ``kernel`` is the learned ``(num_basis, ...)`` weight; ``indices`` and ``basis`` come from
    :func:`rotation_kernel_parameters`.
    """
    kernel = ops.convert_to_tensor(kernel)  # autocast under mixed precision
    if indices is not None:
        return ops.take(kernel, indices, axis=0)
    basis = ops.convert_to_tensor(basis, dtype=kernel.dtype)
    return ops.tensordot(basis, kernel, axes=([0], [0]))
