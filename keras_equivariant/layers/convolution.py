"""A 2D convolution whose input gradient is a forward convolution: fast backward passes on CPU.

TensorFlow computes the input gradient of a convolution with ``Conv2DBackpropInput``. On CPUs
without oneDNN (its default on AMD EPYC, for instance) that kernel is very slow on small feature
maps: for a batch of 128, a 3x3 convolution with 256 -> 256 channels on a 1x1 map took 424 ms
backward against 8 ms forward, and 128 -> 256 channels on 2x2 maps 195 ms against 10 ms
(measured on a 2-core AMD EPYC, TF 2.21, oneDNN off). The 10-layer plans of the paper end with
convolutions on maps that small, so attacks (which repeat input gradients) and training spent
most of their time there.

For a stride-1 convolution the input gradient *is* a convolution: of the output gradient with
the kernel flipped in space and transposed in channels, padded by the forward padding's mirror
image. :func:`conv2d` computes it that way (measured 10 ms and 14 ms for the two cases above,
and never slower than ``Conv2DBackpropInput`` from 1x1 to 16x16 maps), and the kernel gradient
with the stock ``Conv2DBackpropFilter``. Strided and dilated convolutions keep TensorFlow's own
path (a zero-inserted output gradient would cost stride² more; dilations run through
``tf.nn.convolution``'s space-to-batch, whose gradient is not the slow kernel). The gradients equal the stock ones
to float32 round-off (relative error <= 1e-6; tested). Other Keras backends use their own
convolution unchanged.
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
    pads = _explicit_padding(tuple(kernel.shape), padding)
    forward_pads = [[0, 0], list(pads[0]), list(pads[1]), [0, 0]]
    # The input gradient pads by the mirror image of the forward padding: a kernel tap that
    # reaches `before` pixels up in the forward pass reaches `size - 1 - before` pixels down.
    backward_pads = [[0, 0]] + [
        [size - 1 - before, size - 1 - after]
        for (before, after), size in zip(pads, kernel.shape[:2])
    ] + [[0, 0]]

    @tf.custom_gradient
    def convolve(x, w):
        y = tf.nn.conv2d(x, w, strides=1, padding=forward_pads)

        def gradient(dy):
            flipped = tf.transpose(tf.reverse(w, axis=[0, 1]), [0, 1, 3, 2])
            dx = tf.nn.conv2d(dy, flipped, strides=1, padding=backward_pads)
            dw = tf.raw_ops.Conv2DBackpropFilter(
                input=x, filter_sizes=tf.shape(w), out_backprop=dy, strides=[1, 1, 1, 1],
                padding="EXPLICIT", explicit_paddings=sum(forward_pads, []))
            return dx, dw

        return y, gradient

    # Read variables outside the custom gradient: it then sees tensors, and the gradient flows
    # to the variable through the read.
    return convolve(tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel))


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
