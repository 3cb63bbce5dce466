"""The equivariance picture: a rotation layer's feature map on an image and on the rotated image.

For a C4 lifting convolution ``Phi`` (e.g. ``RotationConv2D(filters, 3, group="C4")`` on a rank-4
input) and the rotation ``r`` by 90 degrees, equivariance means::

    Phi(r x)[:, :, g, c] == r( Phi(x)[:, :, g - s, c] )      for every group index g

for a fixed cyclic shift ``s`` (``s = 1`` or ``s = |G| - 1`` depending on the layer's
convention of the group axis; ``|G| / 4`` for C8 and a 90-degree rotation). Rotating the output
back (``r^-1``) therefore gives the original feature map with its group axis cyclically shifted.
:func:`rotation_feature_maps` computes the three maps and *measures* the shift (the cyclic shift
with the smallest error) instead of assuming a convention; :func:`plot_rotation_equivariance`
draws them as a grid: rows = group index, columns = original / rotated input / rotated back.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_equivariant.utils.validation import check_images, check_positive_int
from keras_equivariant.visualize._plotting import new_figure, save_figure


def _rotate(array, quarter_turns):
    """Rotates ``(..., H, W, ...)`` spatial axes 1 and 2 by ``quarter_turns`` * 90 degrees (CCW)."""
    return np.rot90(array, k=quarter_turns, axes=(1, 2))


def rotation_feature_maps(layer, image, quarter_turns=1):
    """Feature maps of a group layer on ``image`` and on ``image`` rotated by a multiple of 90°.

    Args:
        layer: a layer (or any callable) mapping images ``(batch, H, W, C)`` to group feature maps
            ``(batch, H, W, group_size, filters)``, e.g. a lifting
            ``keras_equivariant.layers.RotationConv2D(..., group="C4")``. Square inputs only.
        image: one image ``(H, W, C)`` (or a batch of one) in [0, 1].
        quarter_turns: the rotation, in counter-clockwise quarter turns (1, 2 or 3).

    Returns:
        A dict of NumPy arrays / values: ``original`` = ``layer(x)``, ``rotated_input`` =
        ``layer(r x)``, ``rotated_back`` = ``r^-1 layer(r x)`` (each ``(H, W, group_size,
        filters)``); ``shift``: the cyclic group shift ``s`` minimising
        ``|rotated_back[:, :, g] - original[:, :, g - s]|``; ``shift_errors``: the relative error
        for every candidate shift (the smallest is the equivariance error; exactly equivariant
        layers give about 1e-7).
    """
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[None]
    image = check_images(image, name="image")
    if image.shape[0] != 1:
        raise ValueError(f"`image` must be a single image (H, W, C); received a batch of {image.shape[0]}.")
    if image.shape[1] != image.shape[2]:
        raise ValueError(
            f"`image` must be square so that a 90-degree rotation keeps its shape; received "
            f"{image.shape[1]}x{image.shape[2]}. Crop it to a square first."
        )
    check_positive_int(quarter_turns, "quarter_turns")
    if quarter_turns % 4 == 0:
        raise ValueError(f"`quarter_turns` must not be a multiple of 4 (the identity); received {quarter_turns}.")
    rotated_image = np.ascontiguousarray(_rotate(image, quarter_turns))
    original = keras.ops.convert_to_numpy(layer(image))
    rotated_input = keras.ops.convert_to_numpy(layer(rotated_image))
    if original.ndim != 5:
        raise ValueError(
            "`layer` must return a group feature map (batch, height, width, group_size, filters); "
            f"it returned shape {original.shape}. Use a lifting rotation layer such as "
            "RotationConv2D(filters, 3, group='C4') on a rank-4 input."
        )
    rotated_back = np.ascontiguousarray(_rotate(rotated_input, -quarter_turns))
    group_size = original.shape[3]
    scale = np.linalg.norm(original) + 1e-12
    shift_errors = np.array([
        np.linalg.norm(rotated_back - np.roll(original, shift, axis=3)) / scale
        for shift in range(group_size)
    ])
    return {
        "original": original[0],
        "rotated_input": rotated_input[0],
        "rotated_back": rotated_back[0],
        "shift": int(np.argmin(shift_errors)),
        "shift_errors": shift_errors,
        "quarter_turns": int(quarter_turns),
    }


def plot_rotation_equivariance(layer, image, path, channel=0, quarter_turns=1, title=None):
    """Draws :func:`rotation_feature_maps` for one output channel; saved as a PNG.

    The grid has one row per group index ``g`` and three columns: ``layer(x)[g]``,
    ``layer(r x)[g]`` and ``r^-1 layer(r x)[g]``; the third column equals the first column
    shifted cyclically by the measured shift ``s`` (row ``g`` shows ``layer(x)[g - s]``), which
    each of its panels states. A top row shows the input and the rotated input.

    Args:
        layer: see :func:`rotation_feature_maps`.
        image: one image ``(H, W, C)`` in [0, 1].
        path: where the PNG is written.
        channel: which output channel (filter) to draw.
        quarter_turns: the rotation in counter-clockwise quarter turns.
        title: optional figure title.

    Returns:
        The ``pathlib.Path`` of the written PNG.
    """
    maps = rotation_feature_maps(layer, image, quarter_turns)
    num_channels = maps["original"].shape[-1]
    if not 0 <= int(channel) < num_channels:
        raise ValueError(f"`channel` must be in [0, {num_channels - 1}]; received {channel}.")
    group_size = maps["original"].shape[2]
    shift = maps["shift"]
    image = np.asarray(image).reshape(maps["original"].shape[:2] + (-1,))
    columns = ("original: Φ(x)", f"rotated input: Φ(r x), r = {90 * quarter_turns}°",
               "rotated back: r⁻¹ Φ(r x)")
    selected = [maps[key][..., channel] for key in ("original", "rotated_input", "rotated_back")]
    low = min(float(values.min()) for values in selected)
    high = max(float(values.max()) for values in selected)
    figure, axes = new_figure(group_size + 1, 3, figsize=(6.3, 2.0 * (group_size + 1) + 0.4))
    axes[0, 0].imshow(image.squeeze(), interpolation="nearest")
    axes[0, 0].set_title("input x", fontsize=8)
    axes[0, 1].imshow(_rotate(image[None], quarter_turns)[0].squeeze(), interpolation="nearest")
    axes[0, 1].set_title("rotated input r x", fontsize=8)
    axes[0, 2].axis("off")
    axes[0, 2].text(0.0, 0.5,
                    f"group size {group_size}, channel {channel}\n"
                    f"measured shift s = {shift}\n"
                    f"rel. error at s: {maps['shift_errors'][shift]:.1e}\n"
                    f"(other shifts: {np.delete(maps['shift_errors'], shift).min():.2f} or more)",
                    fontsize=8, va="center")
    for group_index in range(group_size):
        for column, values in enumerate(selected):
            axis = axes[group_index + 1, column]
            axis.imshow(values[:, :, group_index], cmap="viridis", vmin=low, vmax=high,
                        interpolation="nearest")
            label = f"g = {group_index}"
            if column == 2:
                label += f"  (= original g = {(group_index - shift) % group_size})"
            if group_index == 0:
                label = f"{columns[column]}\n{label}"
            axis.set_title(label, fontsize=7)
    for axis in axes.ravel():
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(title or "Rotation equivariance: the group axis shifts cyclically", fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path)
