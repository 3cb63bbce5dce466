"""The group-action protocol shared by all symmetry groups, and the registry of groups by name.

A group object knows how its elements act on an image batch ``(batch, height, width, channels)``
and on a group feature map ``(batch, height, width, group_size, channels)``. That is all
:func:`keras_equivariant.check_equivariance` needs, so a new symmetry (e.g. scale) plugs into the
check by subclassing :class:`GroupAction` and calling :func:`register_group`.
"""

from __future__ import annotations

import numpy as np

from keras_equivariant.utils.validation import check_choice


class GroupAction:
    """How the elements of a symmetry group act on images and on group feature maps.

    Subclasses set ``name`` (the registry key, e.g. ``"C4"``) and ``order`` (the size of the
    group axis of the feature maps that layers equivariant to this group produce) and implement
    ``elements``, ``transform_images`` and ``transform_features``. Arrays are NumPy arrays.
    """

    name: str = ""
    order: int = 1

    def elements(self) -> tuple[str, ...]:
        """Names of the transformations that ``check_equivariance`` tests (identity excluded)."""
        raise NotImplementedError(f"{type(self).__name__} must implement `elements()`.")

    def transform_images(self, images: np.ndarray, element: str) -> np.ndarray:
        """Applies ``element`` to the spatial axes 1 and 2 of ``(batch, height, width, ...)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement `transform_images()`.")

    def transform_features(self, features: np.ndarray, element: str) -> np.ndarray:
        """Applies ``element`` to a group feature map ``(batch, height, width, order, channels)``:
        the spatial transformation and the matching permutation/shift of the group axis."""
        raise NotImplementedError(f"{type(self).__name__} must implement `transform_features()`.")

    def comparison_mask(self, element: str, height: int, width: int):
        """Boolean ``(height, width)`` mask of the pixels to compare, or ``None`` for all.

        Exact grid transformations compare every pixel; approximate ones (e.g. 45° rotations)
        restrict the comparison to a region unaffected by the image border.
        """
        return None

    def bind(self, layer_or_model) -> "GroupAction":
        """The group to check ``layer_or_model`` with: ``self``, unless the discretisation
        depends on the layer (the scale group takes the scale grid of the first layer whose
        ``group_action`` is a scale group, see :func:`layer_group_actions`)."""
        return self

    def relative_error(self, element, actual, expected, reference):
        """A group-specific error of ``actual = L(g·x)`` against ``expected = g·L(x)``, or
        ``None`` to use :func:`check_equivariance`'s default (max-abs over the comparison mask,
        relative to ``max|reference|``). The scale group returns a per-scale-pair relative L2."""
        return None

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r} (order {self.order})>"


def layer_group_actions(layer_or_model):
    """The ``group_action`` of every group layer in ``layer_or_model``, in layer order.

    A group layer is any layer with a public ``group_action`` attribute (every subclass of
    :class:`keras_equivariant.layers.base.GroupConv2D`); models are searched recursively
    through their public ``layers``. This is how groups find the discretisation of the layers
    they check without importing the layers.
    """
    actions, pending = [], [layer_or_model]
    while pending:
        layer = pending.pop(0)
        action = getattr(layer, "group_action", None)
        if isinstance(action, GroupAction):
            actions.append(action)
        pending[:0] = list(getattr(layer, "layers", None) or ())
    return actions


_REGISTRY: dict[str, GroupAction] = {}


def register_group(group: GroupAction) -> GroupAction:
    """Registers ``group`` under ``group.name`` so that ``get_group(name)`` returns it."""
    if not isinstance(group, GroupAction):
        raise ValueError(
            f"`group` must be a GroupAction instance; received {type(group).__name__}."
        )
    _REGISTRY[group.name] = group
    return group


def available_groups() -> list[str]:
    """Names of the registered groups."""
    return sorted(_REGISTRY)


def get_group(group) -> GroupAction:
    """Returns the registered group called ``group`` (or ``group`` itself if it is one)."""
    if isinstance(group, GroupAction):
        return group
    check_choice(group, available_groups(), "group")
    return _REGISTRY[group]
