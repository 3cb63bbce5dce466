"""``keras-equivariant export``: a TF Serving SavedModel taking uint8 images."""

from __future__ import annotations

from keras_equivariant.cli import _common

HELP = ("export a .keras model as a TF Serving SavedModel (uint8 images in, logits and "
        "probabilities out)")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export", help=HELP, description=HELP + ". Writes <output-dir>/<name>/<version>/ with a "
        "'serving_default' signature: images uint8 [None, H, W, C] -> {'logits', "
        "'probabilities'}; the /255 preprocessing is inside the graph.")
    parser.add_argument("model_path", help="the .keras file written by `keras-equivariant train`")
    parser.add_argument("--name", default=None,
                        help="served model name (default: the run directory's name for "
                             "runs/<run name>/model.keras, else the file name without .keras)")
    parser.add_argument("--version", type=_common.positive_int, default=None,
                        help="integer version (default: one more than the newest existing)")
    parser.add_argument("--output-dir", default="saved_models", help="(default: %(default)s)")
    parser.add_argument("--fold", action="store_true",
                        help="export the folded model (group convolutions as plain convolutions)")
    parser.set_defaults(run=run)
    return parser


def run(args):
    from keras_equivariant.export.serving import export_for_serving

    model = _common.load_model(args.model_path)
    name = args.name or _common.default_name(args.model_path)
    path = export_for_serving(model, name, output_dir=args.output_dir, version=args.version,
                              fold=args.fold)
    print(f"SavedModel written to {path}\n"
          f"inspect: saved_model_cli show --dir {path} --all\n"
          f"serve:   docker run -p 8501:8501 --mount type=bind,source={path.parent.resolve()},"
          f"target=/models/{name} -e MODEL_NAME={name} tensorflow/serving")
    return path
