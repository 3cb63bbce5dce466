"""Tests for ScaleConv2D, the scale group and the scale branch of check_equivariance."""

import numpy as np
import pytest
import keras
import tensorflow as tf
from keras import ops

from keras_equivariant import check_equivariance
from keras_equivariant.equivariance import smooth_random_images
from keras_equivariant.groups import ScaleGroup, check_scales, rescale, scale_kernel_basis
from keras_equivariant.layers import (
    GroupBatchNormalization,
    GroupPooling,
    ScaleConv2D,
)

SQRT2 = 2**0.5


def reference_scale_conv(layer, inputs):
    """Direct implementation: explicit scale windows (padded), dense kernels, valid conv."""
    kernels = [kernel.numpy() for kernel in layer.expanded_kernels()]
    num_scales, taps = layer.num_scales, layer.scale_size
    outputs = []
    for index in range(num_scales):
        if inputs.ndim == 4:
            window = inputs
        else:
            parts = []
            for tap in range(taps):
                source = index + tap
                if source < num_scales:
                    parts.append(inputs[:, :, :, source])
                elif layer.scale_padding == "replicate":
                    parts.append(inputs[:, :, :, -1])
                else:
                    parts.append(np.zeros_like(inputs[:, :, :, 0]))
            window = np.concatenate(parts, axis=-1)
        kernel = kernels[index]
        if layer.padding == "same":
            pad_h, pad_w = (kernel.shape[0] - 1) // 2, (kernel.shape[1] - 1) // 2
            window = np.pad(window, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)))
        else:
            largest = layer.dilated_sizes[-1]
            crop_h = (largest[0] - kernel.shape[0]) // 2
            crop_w = (largest[1] - kernel.shape[1]) // 2
            window = window[:, crop_h : window.shape[1] - crop_h, crop_w : window.shape[2] - crop_w]
        outputs.append(tf.nn.conv2d(window, kernel, layer.strides, "VALID").numpy())
    outputs = np.stack(outputs, axis=3)
    return outputs + layer.bias.numpy() if layer.use_bias else outputs


@pytest.mark.parametrize(
    "scales, scale_size, scale_padding, padding, strides",
    [
        ((1, 2), 1, "zeros", "same", 1),
        ((1, 2, 4), 2, "zeros", "same", 1),
        ((1, 2, 4), 3, "replicate", "same", 2),
        ((1, 2, 4), 2, "replicate", "valid", 1),
        ((1, SQRT2, 2), 1, "zeros", "valid", 2),
        ((1, SQRT2, 2), 2, "zeros", "same", 1),
    ],
)
def test_group_conv_matches_direct_implementation(
    scales, scale_size, scale_padding, padding, strides
):
    layer = ScaleConv2D(
        3, 3, scales=scales, scale_size=scale_size, scale_padding=scale_padding,
        padding=padding, strides=strides, bias_initializer="random_normal",
    )
    inputs = np.random.default_rng(0).random((2, 17, 19, len(scales), 2)).astype("float32")
    outputs = layer(inputs).numpy()
    assert outputs.shape == layer.compute_output_shape(inputs.shape)
    np.testing.assert_allclose(outputs, reference_scale_conv(layer, inputs), atol=1e-5)


@pytest.mark.parametrize(
    "scales, padding, strides",
    [((1, 2, 4), "same", 1), ((1, 2), "valid", 2), ((1, SQRT2, 2), "same", 2)],
)
def test_lifting_matches_direct_implementation(scales, padding, strides):
    layer = ScaleConv2D(4, 3, scales=scales, padding=padding, strides=strides,
                        bias_initializer="random_normal")
    inputs = np.random.default_rng(1).random((2, 19, 21, 3)).astype("float32")
    outputs = layer(inputs).numpy()
    assert outputs.shape == layer.compute_output_shape(inputs.shape)
    np.testing.assert_allclose(outputs, reference_scale_conv(layer, inputs), atol=1e-5)


def test_integer_scale_kernels_are_dilated_copies_of_the_same_weights():
    layer = ScaleConv2D(2, 3, scales=(1, 2, 4))
    layer.build((None, 16, 16, 3))
    kernel = layer.kernel.numpy()
    for scale, expanded in zip((1, 2, 4), layer.expanded_kernels()):
        expected = np.zeros((2 * scale + 1, 2 * scale + 1) + kernel.shape[2:], "float32")
        expected[::scale, ::scale] = kernel
        np.testing.assert_array_equal(expanded.numpy(), expected)
    basis = scale_kernel_basis(3, SQRT2)  # non-integer: interpolated, rows sum to ~1
    assert basis.shape == (5, 5, 3, 3)
    np.testing.assert_allclose(basis.sum(axis=(0, 1)), 1.0, atol=0.1)


def test_weights_are_shared_parameter_count_independent_of_num_scales():
    counts = []
    for scales in [(1,), (1, 2), (1, 2, 4), (1, 2, 4, 8)]:
        lifting = ScaleConv2D(8, 3, scales=scales)
        lifting.build((None, 40, 40, 3))
        group = ScaleConv2D(8, 3, scales=scales)
        group.build((None, 40, 40, len(scales), 8))
        counts.append((lifting.count_params(), group.count_params()))
    assert counts == [(3 * 3 * 3 * 8 + 8, 3 * 3 * 8 * 8 + 8)] * 4
    interscale = ScaleConv2D(8, 3, scales=(1, 2, 4), scale_size=2)
    interscale.build((None, 40, 40, 3, 8))
    assert interscale.count_params() == 3 * 3 * 2 * 8 * 8 + 8


class UnsharedMultiBranch(keras.layers.Layer):
    """The paper's "scale" branch: independent Conv2D on resized inputs, resized back.

    Branches are ordered by the effective scale of their kernel (input upsampled ×2 → 0.5,
    ×1 → 1, downsampled ×2 → 2), i.e. a ×2 grid.
    """

    def __init__(self, filters, shared=False, **kwargs):
        super().__init__(**kwargs)
        first = keras.layers.Conv2D(filters, 3, padding="same", bias_initializer="random_normal")
        self.convs = [first] * 3 if shared else [first] + [
            keras.layers.Conv2D(filters, 3, padding="same", bias_initializer="random_normal")
            for _ in range(2)
        ]

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        outputs = []
        for zoom, conv in zip((2.0, 1.0, 0.5), self.convs):
            size = (int(height * zoom), int(width * zoom))
            resized = ops.image.resize(inputs, size, "bilinear") if zoom != 1 else inputs
            outputs.append(ops.image.resize(conv(resized), (height, width), "bilinear"))
        return ops.stack(outputs, axis=3)


def test_x2_scale_equivariance_is_exact_and_beats_unshared_branches():
    """Bound 1e-5: integer dilation commutes exactly with filter-and-decimate resizing, so the
    only error is float32 round-off (measured ~1.5e-7) inside the central crop."""
    images = smooth_random_images(2, 64, wavelength=8)
    grid = ScaleGroup((1, 2, 4))
    shared = ScaleConv2D(6, 3, scales=(1, 2, 4), bias_initializer="random_normal")
    shared_errors = check_equivariance(shared, images, group="scale").errors
    assert set(shared_errors) == {"1->2", "1->4", "2->4"}
    assert max(shared_errors.values()) < 1e-5, shared_errors

    unshared = check_equivariance(UnsharedMultiBranch(6), images, group=grid).errors
    interpolated = check_equivariance(
        UnsharedMultiBranch(6, shared=True), images, group=grid
    ).errors
    for pair in ("1->2", "2->4"):
        assert unshared[pair] > 5 * shared_errors[pair] and unshared[pair] > 0.2, unshared
        # Even with shared weights, resizing the input (SI-ConvNet style) is only approximate.
        assert interpolated[pair] > 5 * shared_errors[pair], interpolated


def test_group_conv_is_exactly_equivariant_and_stays_so_after_training():
    features = np.random.default_rng(2).random((2, 64, 64, 3, 4)).astype("float32")
    layer = ScaleConv2D(5, 3, scales=(1, 2, 4), scale_size=2, bias_initializer="random_normal")
    assert check_equivariance(layer, features, group="scale").max_error < 1e-5
    model = keras.Sequential([keras.Input((64, 64, 3, 4)), layer, GroupPooling("mean"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(features, np.array([0, 1]), epochs=2, verbose=0)
    assert check_equivariance(layer, features, group="scale").max_error < 1e-5


def test_replicate_scale_padding_is_approximate_only_at_the_coarse_end():
    features = smooth_random_images(2, 32, channels=12, wavelength=8).reshape(2, 32, 32, 3, 4)
    layer = ScaleConv2D(4, 3, scales=(1, 2, 4), scale_size=2, scale_padding="replicate")
    errors = check_equivariance(layer, features, group="scale").errors
    assert errors["1->2"] < 1e-5  # output scale 0 never reads past the coarsest input scale
    assert errors["2->4"] > 1e-3  # output scale 1 reads a replicated (not rescaled) scale


def test_non_integer_scales_are_approximately_equivariant():
    """Bound 3 %: measured 0.6-0.8 % (3x3) and 1.1-1.6 % (5x5) on smooth input; ×2 stays exact."""
    images = smooth_random_images(2, 96, wavelength=8)
    for kernel_size in (3, 5):
        layer = ScaleConv2D(4, kernel_size, scales=(1, SQRT2, 2))
        errors = check_equivariance(layer, images, group="scale").errors
        assert errors["1->1.41"] < 0.03 and errors["1.41->2"] < 0.03, errors
        assert errors["1->2"] < 1e-5, errors


def _object_images(size=64, radius=12):
    """Smooth textured objects on a zero background (so the image border plays no role)."""
    rows = np.arange(size) - (size - 1) / 2
    envelope = np.exp(-0.5 * (np.hypot(rows[:, None], rows[None, :]) / radius) ** 4)
    return (smooth_random_images(4, size, wavelength=8) * envelope[None, :, :, None]).astype(
        "float32"
    )


def _zero_mean_initializer(shape, dtype=None):
    """Structure (not brightness) detectors: a brightness filter is trivially scale invariant."""
    kernel = keras.random.normal(shape, dtype=dtype)
    return kernel - ops.mean(kernel, axis=(0, 1), keepdims=True)


def test_scale_pooled_global_features_are_invariant_to_2x_rescaling():
    """Bound 0.1 relative L2 (measured 0.01-0.06 over 5 seeds); a plain CNN gives 1.7-2.0.

    Two scale layers on (1, 2, 4, 8) with the DSS pre-blur (blur_sigma=0.5), max over scales
    then over space. The error that remains comes from the ends of the scale range and from
    ReLU not commuting with resizing.
    """
    images = _object_images()
    small = rescale(images, 0.5)

    def relative_change(model):
        large, shrunk = model(images).numpy(), model(small).numpy()
        return np.linalg.norm(shrunk - large) / np.linalg.norm(large)

    scales = (1, 2, 4, 8)
    invariant = keras.Sequential([
        keras.Input((None, None, 3)),
        ScaleConv2D(8, 3, scales=scales, blur_sigma=0.5, kernel_initializer=_zero_mean_initializer),
        keras.layers.ReLU(),
        ScaleConv2D(8, 3, scales=scales, kernel_initializer=_zero_mean_initializer),
        GroupPooling("max"),
        keras.layers.GlobalMaxPooling2D(),
    ])
    plain = keras.Sequential([
        keras.Input((None, None, 3)),
        keras.layers.Conv2D(8, 3, padding="same", kernel_initializer=_zero_mean_initializer),
        keras.layers.ReLU(),
        keras.layers.Conv2D(8, 3, padding="same", kernel_initializer=_zero_mean_initializer),
        keras.layers.GlobalMaxPooling2D(),
    ])
    invariant_error, plain_error = relative_change(invariant), relative_change(plain)
    assert invariant_error < 0.1, invariant_error
    assert plain_error > 5 * invariant_error, (plain_error, invariant_error)


def test_group_batch_normalization_and_pooling_on_the_scale_axis():
    """GroupBatchNormalization (stats over batch, space and scales) keeps the ×2 relation
    (bound 1e-5 before the ReLU); pooling over scales leaves an ordinary feature map."""
    images = smooth_random_images(4, 64, wavelength=6)
    lifting = ScaleConv2D(4, 3, scales=(1, 2, 4), bias_initializer="random_normal")
    norm = GroupBatchNormalization()
    model = keras.Sequential([keras.Input((64, 64, 3)), lifting, norm])
    features = model(images, training=True)
    mean = ops.convert_to_numpy(features).mean(axis=(0, 1, 2, 3))
    np.testing.assert_allclose(mean, 0.0, atol=1e-4)  # statistics include the scale axis
    # Move the moving statistics away from their initial values, then check inference mode.
    for _ in range(5):
        model(images, training=True)
    assert not np.allclose(norm.moving_mean.numpy(), 0.0)
    assert check_equivariance(model, images, group="scale").max_error < 1e-5
    pooled = GroupPooling("max")(model(images))
    assert tuple(pooled.shape) == (4, 64, 64, 4)


def test_dynamic_spatial_size_and_blur_sigma_zero():
    model = keras.Sequential([keras.Input((None, None, 3)), ScaleConv2D(4, 3, scales=(1, 2))])
    assert tuple(model(np.zeros((1, 20, 24, 3), "float32")).shape) == (1, 20, 24, 2, 4)
    images = np.random.default_rng(3).random((1, 16, 16, 2)).astype("float32")
    plain = ScaleConv2D(3, 3, scales=(1, 2), name="plain")
    blurred = ScaleConv2D(3, 3, scales=(1, 2), blur_sigma=0.0)
    plain.build(images.shape)
    blurred.build(images.shape)
    blurred.set_weights(plain.get_weights())
    np.testing.assert_allclose(plain(images), blurred(images), atol=1e-6)
    smoothing = ScaleConv2D(3, 3, scales=(1, 2), blur_sigma=1.0)
    smoothing.build(images.shape)
    smoothing.set_weights(plain.get_weights())
    difference = smoothing(images).numpy() - plain(images).numpy()
    assert np.abs(difference[..., 0, :]).max() < 1e-6  # scale 1 is never blurred
    assert np.abs(difference[..., 1, :]).max() > 1e-3


def test_get_config_round_trip_and_keras_save_load(tmp_path):
    layer = ScaleConv2D(4, 3, scales=(1, SQRT2, 2), scale_size=2, strides=2, padding="valid",
                        scale_padding="replicate", blur_sigma=None, use_bias=True,
                        bias_initializer="random_normal", name="scale_conv")
    clone = ScaleConv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    model = keras.Sequential([
        keras.Input((21, 21, 3)),
        ScaleConv2D(4, 3, scales=(1, SQRT2, 2), blur_sigma=0.5),
        keras.layers.ReLU(),
        layer,
        GroupPooling("max"),
    ])
    images = np.random.default_rng(4).random((2, 21, 21, 3)).astype("float32")
    expected = model(images).numpy()
    path = tmp_path / "scale.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(restored(images).numpy(), expected, atol=1e-6)


def test_savedmodel_export_gives_identical_outputs(tmp_path):
    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        ScaleConv2D(4, 3, scales=(1, 2), bias_initializer="random_normal"),
        keras.layers.ReLU(),
        ScaleConv2D(4, 3, scales=(1, 2), scale_size=2),
        GroupPooling("max"),
    ])
    images = np.random.default_rng(5).random((2, 16, 16, 3)).astype("float32")
    model.export(str(tmp_path / "saved"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(reloaded.serve(images).numpy(), model(images).numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(scales=(2, 1)), "strictly increasing"),
        (dict(scales=(1, 1)), "strictly increasing"),
        (dict(scales=(0, 1)), "positive"),
        (dict(scales=(-1, 2)), "positive"),
        (dict(scales=(0.5, 1)), ">= 1"),
        (dict(scales=()), "at least one"),
        (dict(scales="12"), "sequence"),
        (dict(kernel_size=4), "odd"),
        (dict(scale_size=3), "<= len"),
        (dict(scales=(1, 2, 3), scale_size=2), "geometric"),
        (dict(padding="full"), "padding"),
        (dict(scale_padding="circular"), "scale_padding"),
        (dict(blur_sigma=-1.0), "blur_sigma"),
        (dict(filters=0), "filters"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    arguments = dict(filters=4, kernel_size=3)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        ScaleConv2D(**arguments)


@pytest.mark.parametrize(
    "kwargs, shape, message",
    [
        (dict(), (2, 16, 3), "rank-4"),
        (dict(), (2, 16, 16, 3, 3), "scale axis"),
        (dict(scales=(1, 2, 4)), (2, 16, 16, 2, 3), "scale axis"),
        (dict(scale_size=2), (2, 16, 16, 3), "scale_size"),
        (dict(kernel_size=1), (2, 16, 16, 3), "too small"),
        (dict(scales=(1, 2, 4, 8)), (2, 16, 16, 3), "smaller than the largest dilated kernel"),
        (dict(kernel_size=5, scales=(1, 4)), (2, 32, 12, 2, 3), "width"),
    ],
)
def test_bad_input_shapes_raise_clear_errors(kwargs, shape, message):
    arguments = dict(filters=4, kernel_size=3)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        ScaleConv2D(**arguments)(np.zeros(shape, "float32"))


def test_scale_group_checks_its_arguments_and_grids():
    assert check_scales([1, 2.0]) == (1.0, 2.0)
    with pytest.raises(ValueError, match="crop"):
        ScaleGroup((1, 2), crop=0.5)
    with pytest.raises(ValueError, match="method"):
        ScaleGroup((1, 2), method="lanczos")
    with pytest.raises(ValueError, match="geometric"):
        ScaleGroup((1, 2, 3)).transform_features(np.zeros((1, 8, 8, 3, 1)), "1->2")
    with pytest.raises(ValueError, match="rank"):
        rescale(np.zeros((8, 8)), 0.5)
    # check_equivariance("scale") adopts the grid of the layer it checks.
    layer = ScaleConv2D(2, 3, scales=(1, 2, 4, 8))
    result = check_equivariance(layer, smooth_random_images(1, 64), group="scale")
    assert len(result.errors) == 6
