"""``keras-equivariant reproduce``: train and evaluate a set of models, write ``report.md``
(the pipeline and its presets are ``keras_equivariant.reproduce``)."""

from __future__ import annotations

import dataclasses

from keras_equivariant import choices
from keras_equivariant import reproduce as pipeline
from keras_equivariant.cli import _common

HELP = "train + evaluate several models with one protocol and write report.md"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "reproduce", help=HELP, description=HELP + ". Resumable: rerun the same command after "
        "an interruption. Presets: " + " ".join(
            f"'{preset.name}': {preset.description}" for preset in pipeline.PRESETS.values()))
    parser.add_argument("--preset", choices=tuple(pipeline.PRESETS), default="quick",
                        help="(default: %(default)s)")
    _common.add_data_arguments(parser)
    parser.add_argument("--output-dir", default=None,
                        help="default: runs/reproduce-<preset>")
    parser.add_argument("--models", nargs="+", choices=choices.MODEL_NAMES, default=None,
                        help="override the preset's models")
    parser.add_argument("--depth", type=int, choices=choices.DEPTHS, default=None)
    parser.add_argument("--epochs", type=_common.positive_int, default=None)
    parser.add_argument("--max-train-examples", type=_common.positive_int, default=None)
    parser.add_argument("--max-test-examples", type=_common.positive_int, default=None)
    parser.add_argument("--clever-images", type=int, default=None,
                        help="images for CLEVER; 0 skips CLEVER")
    parser.add_argument("--clever-num-batches", type=_common.positive_int, default=None)
    parser.add_argument("--clever-num-samples-per-batch", type=_common.positive_int,
                        default=None)
    parser.add_argument("--seed", type=int, default=0,
                        help="first seed (a preset with N seeds runs seed .. seed + N - 1)")
    parser.add_argument("--num-seeds", type=_common.positive_int, default=None,
                        help="override the preset's number of seeds (the study: 3)")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="Keras fit verbosity (1: progress bars)")
    parser.set_defaults(run=run)
    return parser


def run(args):
    preset = pipeline.PRESETS[args.preset]
    overrides = {
        "models": None if args.models is None else tuple(args.models),
        "depth": args.depth, "epochs": args.epochs,
        "max_train_examples": args.max_train_examples,
        "max_test_examples": args.max_test_examples, "clever_images": args.clever_images,
        "clever_num_batches": args.clever_num_batches,
        "clever_num_samples_per_batch": args.clever_num_samples_per_batch,
        "seeds": None if args.num_seeds is None else tuple(range(args.num_seeds)),
    }
    overrides = {key: value for key, value in overrides.items() if value is not None}
    if overrides:  # the report quotes the preset's description: say that it was changed
        options = ", ".join("--num-seeds" if key == "seeds" else f"--{key.replace('_', '-')}"
                            for key in overrides)
        overrides["description"] = (f"{preset.description} Overridden on the command line: "
                                    f"{options}; the settings listed below are the ones that ran.")
    preset = dataclasses.replace(preset, **overrides)
    from keras_equivariant import data

    # The CPU presets' embedded default: the real CIFAR-10 subset shipped in the repository.
    data_dir = (args.data_dir if args.data_dir or not preset.uses_shipped_data
                else data.sample_data_dir(args.dataset))
    return pipeline.reproduce(preset, args.output_dir, dataset=args.dataset,
                              data_dir=data_dir, seed=args.seed, verbose=args.verbose)
