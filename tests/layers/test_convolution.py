"""keras_equivariant.layers.Conv2D: stock forward pass, forward-convolution input gradient."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_equivariant.layers.convolution import Conv2D, convolve


def _stock_and_fast_gradients(x, kernel, padding, dilation_rate, strides=1):
    x, kernel = tf.constant(x), tf.constant(kernel)

    def stock(a, b):
        return tf.nn.convolution(a, b, strides, padding.upper(), dilations=dilation_rate)

    def fast(a, b):
        return convolve(a, b, (strides, strides), padding, dilation_rate)

    weights = tf.random.stateless_normal(stock(x, kernel).shape, (1, 2))
    results = []
    for function in (stock, fast):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([x, kernel])
            output = function(x, kernel)
            objective = tf.reduce_sum(weights * output)
        results.append([output, *tape.gradient(objective, [x, kernel])])
    return results


def _relative_error(actual, expected):
    actual, expected = tf.convert_to_tensor(actual), tf.convert_to_tensor(expected)
    scale = max(float(tf.reduce_max(tf.abs(expected))), 1e-6)  # all-zero outputs: absolute
    return float(tf.reduce_max(tf.abs(actual - expected))) / scale


@pytest.mark.parametrize("size", [(1, 1), (1, 2), (2, 2), (2, 3), (5, 6)])
@pytest.mark.parametrize("kernel_size", [1, 2, 3])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("dilation, strides", [(1, 1), (2, 1), (1, 2)])
def test_forward_and_gradients_equal_the_stock_convolution(size, kernel_size, padding, dilation,
                                                          strides):
    """Stride 1 takes the forward-convolution gradient (and, on maps of at most 4 output pixels,
    the tap-by-tap kernel gradient); dilations and strides Keras' path."""
    if padding == "valid" and (kernel_size - 1) * dilation + 1 > min(size):
        pytest.skip("no valid output")
    rng = np.random.default_rng(size[0] * 100 + size[1] * 7 + kernel_size * 10 + dilation)
    x = rng.normal(size=(3, *size, 4)).astype("float32")
    kernel = rng.normal(size=(kernel_size, kernel_size, 4, 5)).astype("float32")
    stock, fast = _stock_and_fast_gradients(x, kernel, padding, (dilation, dilation), strides)
    for name, expected, actual in zip(("output", "input gradient", "kernel gradient"),
                                      stock, fast):
        assert actual.shape == expected.shape, name
        assert _relative_error(actual, expected) <= 1e-5, name


def test_wrong_gradient_would_be_caught():
    """The comparison is sensitive: an input gradient padded on the wrong side differs."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 5, 5, 3)).astype("float32"))
    kernel = tf.constant(rng.normal(size=(2, 2, 3, 4)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        output = tf.nn.conv2d(x, kernel, 1, "SAME")
    dy = tf.ones_like(output) * tf.reshape(tf.range(25, dtype=tf.float32), (1, 5, 5, 1))
    expected = tape.gradient(output, x, output_gradients=dy)
    flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
    wrong = tf.nn.conv2d(dy, flipped, 1, [[0, 0], [0, 1], [0, 1], [0, 0]])  # mirror not taken
    assert _relative_error(wrong, expected) > 1e-2


@pytest.mark.parametrize("strides", [1, 2])
def test_layer_matches_keras_conv2d_and_round_trips(tmp_path, strides):
    inputs = keras.Input((9, 9, 3))
    layer = Conv2D(6, 3, strides=strides, padding="same", activation="relu", name="conv")
    model = keras.Model(inputs, layer(inputs))
    stock = keras.layers.Conv2D.from_config(layer.get_config())
    stock.build((None, 9, 9, 3))
    stock.set_weights(layer.get_weights())
    x = tf.constant(np.random.default_rng(1).random((4, 9, 9, 3)).astype("float32"))
    gradients = []
    for candidate in (model, stock):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = tf.reduce_sum(tf.sin(candidate(x)))
        gradients.append(tape.gradient(value, x))
    np.testing.assert_allclose(model(x), stock(x), rtol=1e-5, atol=1e-6)
    assert _relative_error(gradients[0], gradients[1]) <= 1e-5
    path = tmp_path / "conv.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored.get_layer("conv")) is Conv2D
    np.testing.assert_array_equal(restored(x), model(x))


@pytest.mark.parametrize("builder_name", ["BaselineCNN", "ParallelGCNN", "ParallelRotScaleGCNN",
                                          "CascadedGCNN", "WeightedParallelGCNN"])
@pytest.mark.parametrize("depth", [4, pytest.param(10, marks=pytest.mark.numerics)])
@pytest.mark.parametrize("variant", ["paper", "equivariant"])
def test_builders_gradients_equal_the_stock_convolution(monkeypatch, builder_name, depth,
                                                        variant):
    """Input and weight gradients of every builder equal those of Keras' own convolution path."""
    import keras_equivariant
    from keras_equivariant.layers import convolution

    keras.utils.set_random_seed(depth)
    model = getattr(keras_equivariant, builder_name)(depth=depth, variant=variant)
    x = tf.constant(np.random.default_rng(depth).random((2, 32, 32, 3)).astype("float32"))
    labels = tf.constant([1, 7])

    def gradients():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = keras.losses.sparse_categorical_crossentropy(
                labels, model(x, training=False), from_logits=True)
        return tape.gradient(loss, [x, *model.trainable_variables])

    fast = gradients()
    monkeypatch.setattr(convolution, "uses_forward_input_gradient", lambda *args: False)
    stock = gradients()
    for index, (actual, expected) in enumerate(zip(fast, stock)):
        assert _relative_error(actual, expected) <= 1e-5, (index, model.trainable_variables[
            index - 1].path if index else "input")


@pytest.mark.parametrize("size, stock_kernel_gradient", [((1, 1), False), ((2, 2), False),
                                                         ((2, 3), True), ((5, 5), True)])
def test_small_maps_take_the_tap_by_tap_kernel_gradient(size, stock_kernel_gradient):
    """Maps of at most 4 output pixels skip ``Conv2DBackpropFilter``; larger maps keep it."""
    x = tf.zeros((2, *size, 3))
    kernel = tf.zeros((3, 3, 3, 4))

    @tf.function
    def kernel_gradient(a, b):
        with tf.GradientTape() as tape:
            tape.watch(b)
            value = tf.reduce_sum(convolve(a, b, (1, 1), "same", (1, 1)))
        return tape.gradient(value, b)

    graph = kernel_gradient.get_concrete_function(x, kernel).graph
    op_types = {op.type for op in graph.get_operations()}
    for function in graph._functions.values():  # the custom gradient's body
        op_types |= {op.type for op in function.graph.get_operations()}
    assert ("Conv2DBackpropFilter" in op_types) is stock_kernel_gradient
