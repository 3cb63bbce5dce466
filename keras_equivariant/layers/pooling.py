"""Pooling over the group axis: invariance (or restriction to a subgroup) of group feature maps."""

from __future__ import annotations

import keras
from keras import ops

from keras_equivariant.groups.base import available_groups, get_group
from keras_equivariant.utils.validation import check_choice

POOLING_MODES = ("max", "mean")

# (group, subgroup) -> (reshape of the group axis, axis of the reshaped pair that is pooled).
# D4 index 4*m + r: pool the mirror pair {r, 4 + r}. C8 index r: pool {2q, 2q + 1}, which
# under a 90° rotation (shift by 2) shifts the pooled index q by 1.
SUBGROUP_POOLING = {
    ("D4", "C4"): ((2, 4), 0),
    ("C8", "C4"): ((4, 2), 1),
}


@keras.saving.register_keras_serializable(package="keras_equivariant")
class GroupPooling(keras.layers.Layer):
    """Pools the group axis of a group feature map (max or mean).

    Without ``subgroup`` the whole group axis is pooled away: the output is *invariant* to the
    action on the group axis, so a G-equivariant feature map becomes an ordinary feature map
    that rotates (flips, rescales) with the input. Works on any group axis size (rotations,
    reflections, scales). With ``subgroup`` the group axis is pooled onto a subgroup: ``"D4"``
    → ``"C4"`` pools each rotation with its mirror image, ``"C8"`` → ``"C4"`` pools pairs of
    neighbouring 45° orientations; the output is equivariant to the subgroup (exactly where the
    input was). Pooling over the group is best done once, at the end of a network (Cohen,
    GrouPy #9).

    Args:
        mode: ``"max"`` or ``"mean"``.
        group: optional name of the group of the input (``"C4"``, ``"D4"``, ``"C8"``, or any
            registered group); when given, the size of the group axis is checked against it.
            Required with ``subgroup``.
        subgroup: ``None`` (pool the whole axis) or ``"C4"`` (from ``"D4"`` or ``"C8"``).
        **kwargs: base ``keras.layers.Layer`` arguments.

    Input shape:
        ``(batch, height, width, group_size, channels)``.

    Output shape:
        ``(batch, height, width, channels)``; with ``subgroup``:
        ``(batch, height, width, subgroup_size, channels)``.

    Example:

    >>> features = keras.random.uniform((2, 9, 9, 8, 16))
    >>> tuple(GroupPooling("max")(features).shape)
    (2, 9, 9, 16)
    >>> tuple(GroupPooling("mean", group="D4", subgroup="C4")(features).shape)
    (2, 9, 9, 4, 16)
    """

    def __init__(self, mode="max", group=None, subgroup=None, **kwargs):
        super().__init__(**kwargs)
        self.mode = check_choice(mode, POOLING_MODES, "mode")
        if group is not None:
            check_choice(group, available_groups(), "group")
        if subgroup is not None:
            pairs = sorted(SUBGROUP_POOLING)
            if group is None:
                raise ValueError(
                    f"`subgroup={subgroup!r}` needs the `group` of the input; supported "
                    f"(group, subgroup) pairs: {pairs}."
                )
            check_choice((group, subgroup), pairs, "(group, subgroup) pair")
        self.group = group
        self.subgroup = subgroup

    def _check_input_shape(self, input_shape):
        if len(input_shape) != 5:
            raise ValueError(
                f"{type(self).__name__} expects a rank-5 group feature map (batch, height, "
                f"width, group_size, channels); received shape {tuple(input_shape)}."
            )
        if self.group is not None:
            order = get_group(self.group).order
            if input_shape[3] is not None and input_shape[3] != order:
                raise ValueError(
                    f"The group axis (axis 3) must have size {order} for group={self.group!r}; "
                    f"received shape {tuple(input_shape)}."
                )

    def build(self, input_shape):
        self._check_input_shape(input_shape)

    def call(self, inputs):
        reduce = ops.max if self.mode == "max" else ops.mean
        if self.subgroup is None:
            return reduce(inputs, axis=3)
        (outer, inner), pooled = SUBGROUP_POOLING[(self.group, self.subgroup)]
        shape = ops.shape(inputs)
        split = ops.reshape(inputs, (-1, shape[1], shape[2], outer, inner, shape[4]))
        return reduce(split, axis=3 + pooled)

    def compute_output_shape(self, input_shape):
        self._check_input_shape(input_shape)
        batch, height, width, _, channels = input_shape
        if self.subgroup is None:
            return (batch, height, width, channels)
        (outer, inner), pooled = SUBGROUP_POOLING[(self.group, self.subgroup)]
        return (batch, height, width, inner if pooled == 0 else outer, channels)

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "group": self.group, "subgroup": self.subgroup})
        return config
