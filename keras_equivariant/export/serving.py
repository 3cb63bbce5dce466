"""TF Serving export: a SavedModel whose signature takes raw uint8 images.

The exported ``serving_default`` signature takes ``images``, uint8 ``[batch, height, width,
channels]`` (the pixels as stored in an image file), divides by 255 inside the graph, runs the
model in inference mode and returns ``{"logits", "probabilities"}`` (float32,
``[batch, num_classes]``). The SavedModel needs TensorFlow only: neither Keras nor
keras_equivariant has to be installed where it is served.

TF Serving expects ``<model_base_path>/<integer version>/saved_model.pb``, so models are written
to ``saved_models/<name>/<version>/`` (see ``docs/serving.md``).
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import tensorflow as tf

from keras_equivariant.utils import validation

SIGNATURE_NAME = "serving_default"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def export_saved_model(model, export_dir, fold=False):
    """Writes ``model`` as a TF Serving SavedModel into ``export_dir``.

    TensorFlow backend only (a tf.function serving signature): on another Keras backend it
    raises a ``RuntimeError`` saying so.

    Args:
        model: a ``keras.Model`` taking float32 pixels in [0, 1] and returning logits (every
            model of this library), or the path of a saved ``.keras`` file.
        export_dir: directory to create; it must not exist yet or be empty.
        fold: replace the model by ``keras_equivariant.export.fold(model)`` first, a plain
            convolution network computing the same function (faster to serve).

    Returns:
        The ``Path`` of ``export_dir``.

    Example:

    ```python
    export_saved_model(model, "saved_models/parallel_gcnn/1")
    served = tf.saved_model.load("saved_models/parallel_gcnn/1")
    outputs = served.signatures["serving_default"](images=uint8_images)
    outputs["probabilities"]
    ```
    """
    validation.require_backend("keras_equivariant.export.export_saved_model")
    if isinstance(model, (str, Path)):
        model = keras.saving.load_model(model)
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`model` must be a keras.Model or the path of a .keras file; received "
            f"{type(model).__name__}."
        )
    export_dir = Path(export_dir)
    if export_dir.exists() and any(export_dir.iterdir()):
        raise ValueError(
            f"Export directory {export_dir} already holds files. TF Serving versions are "
            "immutable: export to a new version number."
        )
    if fold:
        from keras_equivariant.export import fold as fold_model

        model = fold_model(model)
    input_shape = tuple(model.input_shape[1:])
    if len(input_shape) != 3 or any(size is None for size in input_shape):
        raise ValueError(
            "The serving signature needs a model with a fixed image input (height, width, "
            f"channels); received input shape {model.input_shape}."
        )

    def serve(images):
        # The signature's declared shape is not enforced when it is called: without this check
        # a model that folds the batch into other axes answers with the wrong number of rows.
        images = tf.ensure_shape(images, (None,) + input_shape, name="images_shape_check")
        pixels = tf.cast(images, tf.float32) / 255.0
        logits = tf.cast(model(pixels, training=False), tf.float32)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE_NAME,
        fn=serve,
        input_signature=[tf.TensorSpec((None,) + input_shape, tf.uint8, name="images")],
    )
    archive.write_out(str(export_dir), verbose=False)
    return export_dir


def next_version(model_base_path):
    """The next free integer version under ``model_base_path`` (1 for a new model)."""
    model_base_path = Path(model_base_path)
    versions = [int(path.name) for path in model_base_path.glob("*")
                if path.is_dir() and path.name.isdigit()]
    return max(versions, default=0) + 1


def export_for_serving(model, name, output_dir="saved_models", version=None, fold=False):
    """Exports ``model`` to ``<output_dir>/<name>/<version>/`` for TF Serving.

    TensorFlow backend only (a TF Serving SavedModel): on another Keras backend it raises a
    ``RuntimeError`` saying so.

    Args:
        model: a ``keras.Model`` or the path of a saved ``.keras`` file.
        name: the model name TF Serving will serve it under (letters, digits, ``_.-``).
        output_dir: the directory holding one sub-directory per served model.
        version: positive integer version; default: one more than the newest existing version.
        fold: export ``keras_equivariant.export.fold(model)`` (plain convolutions).

    Returns:
        The ``Path`` of the version directory.
    """
    validation.require_backend("keras_equivariant.export.export_for_serving")
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValueError(
            f"`name` must be letters, digits, '_', '.' or '-' (a directory name and a TF Serving "
            f"model name); received {name!r}."
        )
    model_base_path = Path(output_dir) / name
    if version is None:
        version = next_version(model_base_path)
    version = validation.check_positive_int(version, "version")
    return export_saved_model(model, model_base_path / str(version), fold=fold)


__all__ = ["SIGNATURE_NAME", "export_saved_model", "export_for_serving", "next_version"]
