"""``keras-equivariant clever``: CLEVER robustness scores of test images (resumable); the
pipeline is ``keras_equivariant.evaluation.clever_summary``."""

from __future__ import annotations

from pathlib import Path

from keras_equivariant import choices
from keras_equivariant.cli import _common

HELP = "CLEVER scores (Weng et al. 2018) of the first test images of each class"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "clever", help=HELP, description=HELP + ". Scores are estimates of the minimal "
        "adversarial distortion, not certificates. Written after every image; rerunning "
        "resumes.")
    parser.add_argument("model_path", help="the .keras file written by `keras-equivariant train`")
    parser.add_argument("--num-images", type=_common.positive_int, default=10,
                        help="class-balanced test images to score (default: %(default)s)")
    parser.add_argument("--preset", choices=choices.CLEVER_PRESETS, default="fast",
                        help="sampling budget: 'fast' 100x256, 'paper' 500x1024 gradient "
                             "samples per target class (default: %(default)s)")
    parser.add_argument("--num-batches", type=_common.positive_int, default=None,
                        help="override the preset's number of batches")
    parser.add_argument("--num-samples-per-batch", type=_common.positive_int, default=None,
                        help="override the preset's samples per batch")
    parser.add_argument("--norm", choices=choices.NORMS, default="2",
                        help="perturbation norm (default: %(default)s)")
    parser.add_argument("--radius", type=float, default=None,
                        help="sampling radius (default: 2.0 for L2, 0.1 for Linf, 40 for L1)")
    parser.add_argument("--seed", type=int, default=0)
    _common.add_data_arguments(parser)
    parser.add_argument("--output", default=None,
                        help="JSON file (default: <model directory>/evaluation/clever_<norm>.json)")
    parser.set_defaults(run=run)
    return parser


def run(args):
    from keras_equivariant.evaluation import clever_summary

    model = _common.load_model(args.model_path)
    output = Path(args.output or Path(args.model_path).parent / "evaluation"
                  / f"clever_{args.norm}.json")
    summary = clever_summary(
        model, output, num_images=args.num_images, preset=args.preset, norm=args.norm,
        radius=args.radius, num_batches=args.num_batches,
        num_samples_per_batch=args.num_samples_per_batch, seed=args.seed, dataset=args.dataset,
        data_dir=args.data_dir)
    print(f"CLEVER-L{args.norm} median {summary['median']:.4g} (mean {summary['mean']:.4g}) over "
          f"{summary['num_images']} images; results in {output}")
    return summary
