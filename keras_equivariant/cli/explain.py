"""``keras-equivariant explain``: saliency, perturbation-tolerance and equivariance figures."""

from __future__ import annotations

from pathlib import Path

from keras_equivariant import choices
from keras_equivariant.cli import _common

HELP = ("explain trained models: saliency/SmoothGrad/GradCAM++ maps on clean and PGD images, "
        "perturbation tolerance, equivariance picture")
METHODS = choices.EXPLANATION_METHODS


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "explain", help=HELP, description=HELP + ". Uses the first test images of --dataset. "
        "Writes to --output-dir: saliency.png, tolerance.json (reused on a rerun with the same "
        "models and settings), tolerance_distribution.png, tolerance_example_<i>.png and, for "
        "models with a lifting RotationConv2D, equivariance_<model>.png.")
    parser.add_argument("--models", nargs="+", required=True, metavar="MODEL_PATH",
                        help=".keras files (e.g. runs/<run name>/model.keras)")
    parser.add_argument("--names", nargs="+", default=None,
                        help="display names, one per model (default: the run directory name, or "
                             "the file name without .keras)")
    _common.add_data_arguments(parser)
    parser.add_argument("--num-images", type=_common.positive_int, default=4,
                        help="images in the saliency figure and per-image tolerance figures "
                             "(default: %(default)s)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="(default: all)")
    parser.add_argument("--eps", type=_common.eps_value, default=8 / 255,
                        help="L-inf PGD budget in pixels for the adversarial rows, e.g. 8/255; "
                             "0 skips them (default: 8/255)")
    parser.add_argument("--pgd-steps", type=_common.positive_int, default=10,
                        help="(default: %(default)s)")
    parser.add_argument("--tolerance-images", type=_common.positive_int, default=100,
                        help="first test images used in the tolerance study (default: %(default)s)")
    parser.add_argument("--fill", choices=choices.TOLERANCE_FILLS, default="zero",
                        help="value of removed pixels: 0, or the image's per-channel mean "
                             "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="PGD start and removal-mask seed")
    parser.add_argument("--output-dir", default="runs/explain", help="(default: %(default)s)")
    parser.add_argument("--verbose", type=int, choices=(0, 1), default=1)
    parser.set_defaults(run=run)
    return parser


def run(args):
    names = args.names or [_common.default_name(path) for path in args.models]
    if len(names) != len(args.models):
        raise ValueError(
            f"--names must give one name per model ({len(args.models)}); received {len(names)}."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"Model names must be distinct; received {names}. Pass --names.")
    from keras_equivariant import data
    from keras_equivariant.visualize.report import write_explanations

    models = [_common.load_model(path) for path in args.models]
    count = max(args.num_images, args.tolerance_images)
    images, labels, info = data.load_arrays(args.dataset, "test", data_dir=args.data_dir,
                                            with_info=True)
    images, labels = images[:count] / 255.0, labels[:count]
    written = write_explanations(
        models, images, labels, args.output_dir, model_names=names, num_images=args.num_images,
        class_names=info.class_names, methods=args.methods, eps=args.eps,
        pgd_steps=args.pgd_steps, num_tolerance_images=args.tolerance_images, fill=args.fill,
        seed=args.seed, verbose=args.verbose)
    print(f"explanations written to {Path(args.output_dir)} "
          f"({len(written['tolerance_examples'])} tolerance examples, "
          f"{len(written['equivariance'])} equivariance figures)")
    return written
