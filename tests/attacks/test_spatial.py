"""attacks.spatial: exact quarter turns, transformation conventions, worst-of-grid, bad input."""

import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

from keras_equivariant.attacks import spatial, spatial_grid, spatial_transform
from keras_equivariant.attacks.spatial import _build_worst, _compiled, spatial_settings
from keras_equivariant.equivariance import smooth_random_images
from keras_equivariant.groups import get_group


def _images(size, channels=2, seed=0, height=None):
    rng = np.random.default_rng(seed)
    return rng.random((3, height or size, size, channels)).astype(np.float32)


@pytest.mark.parametrize("size", [7, 8])
def test_quarter_turns_are_np_rot90_bit_for_bit(size):
    images = _images(size)
    for interpolation, fill_mode in [("bilinear", "constant"), ("nearest", "reflect"),
                                     ("bilinear", "wrap")]:
        for turns in (1, 2, 3, -1, -2, 4):
            rotated = spatial_transform(images, rotation=90 * turns, interpolation=interpolation,
                                        fill_mode=fill_mode)
            np.testing.assert_array_equal(rotated, np.rot90(images, turns, axes=(1, 2)))


def test_quarter_turns_inside_the_attack_are_exact(toy_model, toy_data):
    images = toy_data[0][:5]
    for angle in (90, 180, 270):
        result = spatial(toy_model, images, rotations=[angle], translations=None)
        np.testing.assert_array_equal(result.images, np.rot90(images, angle // 90, axes=(1, 2)))


def test_non_square_images_have_exact_half_turns():
    images = _images(9, height=6)
    np.testing.assert_array_equal(spatial_transform(images, rotation=180),
                                  np.rot90(images, 2, axes=(1, 2)))
    assert spatial_transform(images, rotation=90).shape == images.shape


def test_integer_shifts_are_exact_and_move_down_and_right():
    images = _images(8)
    shifted = spatial_transform(images, translation=(1, -2))
    expected = np.zeros_like(images)
    expected[:, 1:, :-2] = images[:, :-1, 2:]
    np.testing.assert_array_equal(shifted, expected)
    reflected = spatial_transform(images, translation=(0, 1), fill_mode="reflect")
    np.testing.assert_array_equal(reflected[:, :, 1:], images[:, :, :-1])


def test_rotation_direction_and_centre_follow_the_rotation_groups():
    # the C8 group (and so check_equivariance) rotates with scipy.ndimage.rotate(axes=(1, 2))
    images = smooth_random_images(2, 21, channels=1, wavelength=6)
    for angle in (30, -45, 100):
        reference = scipy.ndimage.rotate(images, angle, axes=(1, 2), reshape=False, order=1)
        rotated = spatial_transform(images, rotation=angle)
        np.testing.assert_allclose(rotated[:, 4:17, 4:17], reference[:, 4:17, 4:17], atol=1e-5)


def test_angles_agree_with_the_groups_of_check_equivariance():
    images = smooth_random_images(2, 21, channels=1, wavelength=6)
    for angle in (90, 180, 270):
        np.testing.assert_array_equal(spatial_transform(images, rotation=angle),
                                      get_group("C4").transform_images(images, f"rot{angle}"))
    # C8's 45 degrees are cubic-spline rotations: close to the bilinear ones on smooth images
    cubic = get_group("C8").transform_images(images, "rot45")
    np.testing.assert_allclose(spatial_transform(images, rotation=45)[:, 5:16, 5:16],
                               cubic[:, 5:16, 5:16], atol=0.02)


def test_zoom_is_about_the_centre():
    images = smooth_random_images(2, 21, channels=1, wavelength=6)
    zoomed = spatial_transform(images, scale=1.25)
    matrix = np.eye(2) / 1.25
    offset = 10 - matrix @ np.array([10.0, 10.0])
    reference = np.stack([scipy.ndimage.affine_transform(image[..., 0], matrix, offset, order=1)
                          for image in images])[..., None]
    np.testing.assert_allclose(zoomed, reference, atol=1e-5)


def test_default_grid_is_21_angles_times_49_shifts():
    rotation, translation, scale = spatial_grid()
    assert rotation.shape == (1029,) and translation.shape == (1029, 2)
    assert sorted(set(rotation)) == list(range(-30, 31, 3)) and set(scale) == {1.0}
    assert sorted(set(translation[:, 0])) == list(range(-3, 4))


def _margins(model, images, labels):
    logits = model(images, training=False).numpy()
    rows = np.arange(len(labels))
    others = logits.copy()
    others[rows, labels] = -np.inf
    return logits[rows, labels] - others.max(axis=1), logits.argmax(axis=1) != labels


def test_worst_of_grid_equals_a_brute_force_loop(toy_model, toy_data):
    images, labels = toy_data[0][:7], toy_data[1][:7]
    grid = dict(rotations=[-20, 0, 10, 90], translations=[-1, 0, 2], scales=[0.9, 1.0])
    # batch_size 20 -> 2 grid points per forward pass of 7 images: 36 passes, the last one short
    result = spatial(toy_model, images, labels, **grid, batch_size=20)
    rotation, translation, scale = spatial_grid(**grid)
    best = [None] * len(images)
    for point in range(len(rotation)):
        transformed = spatial_transform(images, rotation[point], translation[point], scale[point])
        margin, misclassified = _margins(toy_model, transformed, labels)
        for example in range(len(images)):
            key = (not misclassified[example], margin[example])
            if best[example] is None or key < best[example][0]:
                best[example] = (key, point, transformed[example])
    np.testing.assert_array_equal(result.index, [entry[1] for entry in best])
    np.testing.assert_array_equal(result.images, np.stack([entry[2] for entry in best]))
    np.testing.assert_array_equal(result.misclassified, [not entry[0][0] for entry in best])
    np.testing.assert_allclose(result.margin, [entry[0][1] for entry in best], rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_array_equal(result.rotation, rotation[result.index])
    np.testing.assert_array_equal(result.translation, translation[result.index])
    np.testing.assert_array_equal(result.scale, scale[result.index])


def test_random_mode_draws_within_the_ranges_reproducibly(toy_model, toy_data):
    images, labels = toy_data[0][:6], toy_data[1][:6]
    options = dict(rotations=[-30, 30], translations=[-2, 2], scales=[0.9, 1.1], mode="random",
                   num_samples=4)
    first = spatial(toy_model, images, labels, **options, seed=5)
    again = spatial(toy_model, images, labels, **options, seed=5)
    np.testing.assert_array_equal(first.images, again.images)
    assert np.all(np.abs(first.rotation) <= 30) and np.all(np.abs(first.translation) <= 2)
    assert np.all((first.scale >= 0.9) & (first.scale <= 1.1))
    assert set(first.index) <= set(range(4))
    for example in range(len(images)):
        redone = spatial_transform(images[example:example + 1], first.rotation[example],
                                   first.translation[example], first.scale[example])
        np.testing.assert_allclose(redone[0], first.images[example], atol=1e-6)


def test_types_round_trip_and_labels_default_to_predictions(toy_model, toy_data):
    images = toy_data[0][:4]
    result = spatial(toy_model, tf.constant(images, tf.float64), rotations=[0],
                     translations=None)
    assert tf.is_tensor(result.images) and result.images.dtype == tf.float64
    # identity only and labels = predictions: nothing is misclassified
    assert not result.misclassified.any() and np.all(result.margin >= 0)
    np.testing.assert_array_equal(result.images.numpy(), images)


def test_one_compiled_function_for_all_batches_and_grids(toy_model, toy_data):
    images, labels = toy_data
    spatial(toy_model, images[:5], labels[:5], rotations=[0, 10], translations=[0])
    spatial(toy_model, images[:9], labels[:9], rotations=[5, 10, 15], translations=[-1, 1],
            scales=[0.9, 1.1], fill_value=0.5, batch_size=7)
    settings = spatial_settings()
    function = _compiled(toy_model, "worst", _build_worst, images.shape[1:], settings)
    assert function.experimental_get_tracing_count() == 1


class _MustNotRun:
    name = "must_not_run"

    def __call__(self, *args, **kwargs):
        raise AssertionError("the model was called before the input was validated")


@pytest.mark.parametrize("options, message", [
    (dict(rotations="30"), "rotations"),
    (dict(rotations=[True, 10]), "real numbers"),
    (dict(rotations=[]), "at least one"),
    (dict(rotations=[[0, 10]]), "flat"),
    (dict(rotations=[0, float("nan")]), "finite"),
    (dict(rotations=[0, 10, 0]), "more than once"),
    (dict(scales=[1.0, 0.0]), "> 0"),
    (dict(scales=[-0.5]), "> 0"),
    (dict(translations=[-8, 0]), "off the canvas"),
    (dict(translations=["1"]), "real numbers"),
    (dict(mode="grid", num_samples=5), "mode='random'"),
    (dict(mode="random", num_samples=0), "num_samples"),
    (dict(mode="exhaustive"), "mode"),
    (dict(fill_mode="zeros"), "fill_mode"),
    (dict(interpolation="bicubic"), "interpolation"),
    (dict(fill_value=2.0), "fill_value"),
    (dict(batch_size=0), "batch_size"),
])
def test_bad_input_fails_before_any_work(options, message, toy_data):
    with pytest.raises(ValueError, match=message):
        spatial(_MustNotRun(), toy_data[0][:2], toy_data[1][:2], **options)


def test_bad_transform_arguments():
    images = _images(8)
    with pytest.raises(ValueError, match="one \\(down, right\\) pair"):
        spatial_transform(images, translation=3)
    with pytest.raises(ValueError, match="off the canvas"):
        spatial_transform(images, translation=(0, 9))
    with pytest.raises(ValueError, match="> 0"):
        spatial_transform(images, scale=0)
