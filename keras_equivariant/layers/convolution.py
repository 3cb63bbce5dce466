"""A 2D convolution whose input gradient is a forward convolution: fast backward passes on CPU.

TensorFlow computes the input gradient of a convolution with ``Conv2DBackpropInput``. On CPUs
without oneDNN (its default on AVX2-only AMD EPYCs, for instance) that kernel is very slow on small feature
maps: for a batch of 128, a 3x3 convolution with 256 -> 256 channels on a 1x1 map took 424 ms
backward against 8 ms forward, and 128 -> 256 channels on 2x2 maps 195 ms against 10 ms
(measured on a 2-core AMD EPYC, TF 2.21, oneDNN off). The 10-layer plans of the paper end with
convolutions on maps that small, so attacks (which repeat input gradients) and training spent
most of their time there.

For a stride-1 convolution the input gradient *is* a convolution: of the output gradient with
the kernel flipped in space and transposed in channels, padded by the forward padding's mirror
image. :func:`conv2d` computes it that way (measured 10 ms and 14 ms for the two cases above,
and never slower than ``Conv2DBackpropInput`` from 1x1 to 16x16 maps), and the kernel gradient
with the stock ``Conv2DBackpropFilter``, except on maps of at most 4 output pixels, where one
matrix product per kernel tap over the pixels it reaches is 1.5-4x faster (see
``_kernel_gradient``). Paddings are passed as ``"SAME"``/``"VALID"`` wherever they equal those,
since oneDNN's kernels take only the strings. Strided and dilated convolutions keep
TensorFlow's own path (a zero-inserted output gradient would cost stride² more; dilations run
through ``tf.nn.convolution``'s space-to-batch, whose gradient is not the slow kernel). The
gradients equal the stock ones to float32 round-off (relative error <= 1e-6; tested). Other
Keras backends use their own convolution unchanged.
"""

from __future__ import annotations

import keras
from keras import ops


def _tensorflow():
    import tensorflow as tf  # noqa: PLC0415 (only on the TensorFlow backend)

    return tf


def _explicit_padding(kernel_shape, padding):
    """``((top, bottom), (left, right))`` of a stride-1 ``"same"``/``"valid"`` convolution."""
    pads = []
    for size in kernel_shape[:2]:
        total = size - 1 if padding == "same" else 0
        pads.append((total // 2, total - total // 2))
    return pads


def _tensorflow_padding(pads, kernel_shape):
    """``tf.nn.conv2d``'s padding for ``pads`` (stride 1): ``"VALID"`` or ``"SAME"`` where they
    match, since TensorFlow's oneDNN kernels (``Conv2DBackpropFilter`` in particular) take those
    and fall back to slower ones for explicit paddings, else the explicit NHWC list."""
    if all(before == after == 0 for before, after in pads):
        return "VALID"
    if list(map(tuple, pads)) == _explicit_padding(kernel_shape, "same"):
        return "SAME"
    return [[0, 0], list(pads[0]), list(pads[1]), [0, 0]]


def conv2d(inputs, kernel, padding="valid"):
    """Stride-1 NHWC 2D convolution with a forward-convolution input gradient (TensorFlow).

    Args:
        inputs: ``(batch, height, width, in_channels)`` tensor.
        kernel: ``(kernel_height, kernel_width, in_channels, out_channels)`` tensor.
        padding: ``"same"`` or ``"valid"`` (Keras' meaning).

    Returns:
        ``(batch, out_height, out_width, out_channels)``, equal to ``tf.nn.conv2d``.
    """
    tf = _tensorflow()
    kernel_shape = tuple(kernel.shape)
    pads = _explicit_padding(kernel_shape, padding)
    forward_padding = _tensorflow_padding(pads, kernel_shape)
    # The input gradient pads by the mirror image of the forward padding: a kernel tap that
    # reaches `before` pixels up in the forward pass reaches `size - 1 - before` pixels down.
    backward_padding = _tensorflow_padding(
        [(size - 1 - before, size - 1 - after) for (before, after), size in zip(pads, kernel_shape)],
        kernel_shape)

    @tf.custom_gradient
    def convolve(x, w):
        y = tf.nn.conv2d(x, w, strides=1, padding=forward_padding)

        def gradient(dy):
            flipped = tf.transpose(tf.reverse(w, axis=[0, 1]), [0, 1, 3, 2])
            dx = tf.nn.conv2d(dy, flipped, strides=1, padding=backward_padding)
            return dx, _kernel_gradient(x, dy, w, pads, forward_padding)

        return y, gradient

    # Read variables outside the custom gradient: it then sees tensors, and the gradient flows
    # to the variable through the read.
    return convolve(tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel))


#: Output maps of at most this many pixels take the tap-by-tap kernel gradient.
SMALL_MAP_PIXELS = 4


def _kernel_gradient(x, dy, kernel, pads, padding):
    """Gradient of a stride-1 convolution with respect to its kernel.

    ``pads`` is the forward padding as ``((top, bottom), (left, right))`` and ``padding`` the
    same as given to ``tf.nn.conv2d`` (see :func:`_tensorflow_padding`).

    On maps of at most :data:`SMALL_MAP_PIXELS` output pixels (the 2x2 and 1x1 maps that end the
    10-layer plans) it is one matrix product per kernel tap over the pixels that tap actually
    reaches, ``x[shifted]^T dy``; a tap that reaches only padding gets zeros. On a 1x1 map with
    "same" padding only the centre tap is non-zero, so 8 of the 9 products that
    ``Conv2DBackpropFilter`` computes are skipped; measured on a 2-core AMD EPYC, batch 128, 3x3
    kernels: 1x1 map, 256 -> 256 channels 1.0-1.5 ms against 3.3-4.9 ms; 2x2 map, 128 -> 256
    channels 1.7-3.1 ms against 3.7-4.8 ms (oneDNN on and off alike). Larger maps keep the stock
    kernel, which wins there. Equal to the stock gradient to float32 round-off (tested).
    """
    tf = _tensorflow()
    kernel_height, kernel_width, in_channels, out_channels = kernel.shape
    height, width = x.shape[1:3]
    out_height, out_width = dy.shape[1:3]
    static = None not in (height, width, out_height, out_width)
    if not static or out_height * out_width > SMALL_MAP_PIXELS:
        explicit = {} if isinstance(padding, str) else {"explicit_paddings": sum(padding, [])}
        return tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=tf.shape(kernel), out_backprop=dy, strides=[1, 1, 1, 1],
            padding=padding if isinstance(padding, str) else "EXPLICIT", **explicit)
    (top, _), (left, _) = pads
    flat_dy = {}
    rows = []
    for i in range(kernel_height):
        # Output row r reads input row r + i - top: the rows where that lies inside the input.
        row_start, row_stop = max(0, top - i), min(out_height, height + top - i)
        taps = []
        for j in range(kernel_width):
            column_start, column_stop = max(0, left - j), min(out_width, width + left - j)
            if row_stop <= row_start or column_stop <= column_start:
                taps.append(tf.zeros((in_channels, out_channels), dy.dtype))
                continue
            window = (row_start, row_stop, column_start, column_stop)
            if window not in flat_dy:
                flat_dy[window] = tf.reshape(
                    dy[:, row_start:row_stop, column_start:column_stop, :], (-1, out_channels))
            shifted = x[:, row_start + i - top:row_stop + i - top,
                        column_start + j - left:column_stop + j - left, :]
            taps.append(tf.matmul(tf.reshape(shifted, (-1, in_channels)), flat_dy[window],
                                  transpose_a=True))
        rows.append(tf.stack(taps))
    return tf.stack(rows)


def uses_forward_input_gradient(strides, dilation_rate, data_format="channels_last") -> bool:
    """Whether :func:`conv2d` applies: TensorFlow backend, stride 1, no dilation, NHWC."""
    return (keras.backend.backend() == "tensorflow" and tuple(strides) == (1, 1)
            and tuple(dilation_rate) == (1, 1) and data_format == "channels_last")


def convolve(inputs, kernel, strides, padding, dilation_rate, data_format="channels_last"):
    """``keras.ops.conv`` with :func:`conv2d`'s fast input gradient where it applies."""
    strides, dilation_rate = tuple(strides), tuple(dilation_rate)
    if uses_forward_input_gradient(strides, dilation_rate, data_format):
        return conv2d(inputs, kernel, padding=padding)
    return ops.conv(inputs, kernel, strides=strides, padding=padding,
                    dilation_rate=dilation_rate, data_format=data_format)


@keras.saving.register_keras_serializable(package="keras_equivariant")
class Conv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with a fast input gradient on CPU (same arguments, same outputs).

    A drop-in replacement used by every model builder: the forward pass, weights, config and
    SavedModel export are those of ``keras.layers.Conv2D``; only the backward pass of a stride-1
    convolution on the TensorFlow backend differs, computed as a forward convolution (see the
    module docstring for why and how much faster). Not a group convolution: no equivariance
    beyond translations.

    Args:
        filters, kernel_size, strides, padding, dilation_rate, ...: as ``keras.layers.Conv2D``.

    Input shape:
        ``(batch, height, width, channels)`` (``channels_first`` falls back to Keras' path).

    Output shape:
        ``(batch, new_height, new_width, filters)``.

    Example:

    >>> layer = Conv2D(8, 3, padding="same")
    >>> layer(np.zeros((2, 5, 5, 3), "float32")).shape
    (2, 5, 5, 8)
    """

    def convolution_op(self, inputs, kernel):
        if self.groups != 1:
            return super().convolution_op(inputs, kernel)
        return convolve(inputs, kernel, self.strides, self.padding, self.dilation_rate,
                        self.data_format)
