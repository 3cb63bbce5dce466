"""The equivariance picture of a C4 lifting RotationConv2D."""

import numpy as np
import pytest

from keras_equivariant.layers import RotationConv2D
from keras_equivariant.visualize import plot_rotation_equivariance, rotation_feature_maps


@pytest.fixture
def image():
    return np.random.default_rng(0).uniform(size=(12, 12, 3)).astype("float32")


@pytest.mark.parametrize("quarter_turns", [1, 2, 3])
def test_lifting_conv_output_shifts_cyclically(image, quarter_turns):
    maps = rotation_feature_maps(RotationConv2D(3, 3, group="C4"), image, quarter_turns)
    assert maps["original"].shape == maps["rotated_back"].shape == (12, 12, 4, 3)
    errors = maps["shift_errors"]
    assert errors[maps["shift"]] < 1e-5  # exact up to float round-off
    assert np.delete(errors, maps["shift"]).min() > 0.05  # and only one shift fits
    # The shift composes: k quarter turns shift the group axis k times as far.
    single = rotation_feature_maps(RotationConv2D(3, 3, group="C4"), image, 1)["shift"]
    assert single in (1, 3)
    # (a fresh layer has fresh weights, but the convention of the group axis is the same)
    assert maps["shift"] == (quarter_turns * single) % 4
    # The rotated input is not just the same map: the maps really move.
    assert not np.allclose(maps["rotated_input"], maps["original"])


def test_rejects_non_group_outputs_and_bad_images(image):
    with pytest.raises(ValueError, match="group feature map"):
        rotation_feature_maps(lambda x: x, image)
    with pytest.raises(ValueError, match="square"):
        rotation_feature_maps(RotationConv2D(2, 3), image[:, :10])
    with pytest.raises(ValueError, match="multiple of 4"):
        rotation_feature_maps(RotationConv2D(2, 3), image, quarter_turns=4)


def test_figure_is_written(tmp_path, image):
    path = plot_rotation_equivariance(RotationConv2D(2, 3, group="C4"), image,
                                      tmp_path / "equivariance.png", channel=1)
    assert path.exists() and path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="channel"):
        plot_rotation_equivariance(RotationConv2D(2, 3), image, tmp_path / "x.png", channel=2)
