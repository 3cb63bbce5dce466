"""``keras-equivariant evaluate``: FGSM/PGD accuracy sweeps and a CIFAR-10-C sweep (resumable,
shardable); the pipeline is ``keras_equivariant.evaluation``."""

from __future__ import annotations

from pathlib import Path

from keras_equivariant import choices
from keras_equivariant.cli import _common

HELP = "adversarial accuracy (FGSM/PGD eps sweep) and CIFAR-10-C accuracy of a saved model"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate", help=HELP, description=HELP + ". Results are written after every eps / "
        "corruption cell; rerunning the command skips what is done. Split the test set over N "
        "machines with --shard 0/N ... --shard N-1/N (same --output-dir, e.g. a shared file "
        "system), then combine the shards with --merge.")
    parser.add_argument("model_path", help="the .keras file written by `keras-equivariant train`")
    parser.add_argument("--attack", nargs="+", choices=choices.ATTACKS,
                        default=["fgsm", "pgd"],
                        help="attacks to sweep (default: fgsm pgd); 'autoattack' is the standard "
                             "AutoAttack ensemble (APGD-CE, APGD-T, FAB-T, Square), the strongest "
                             "evidence for a robustness claim")
    parser.add_argument("--eps", nargs="+", type=_common.eps_value, default=None,
                        help="budgets, e.g. 0 1/255 8/255 (default: the protocol's grid; in "
                             "pixel units for 'default', normalized units for 'paper')")
    parser.add_argument("--protocol", choices=choices.PROTOCOLS, default="default",
                        help="'default': pixel-space eps, PGD-10 with random start; 'paper': "
                             "the official code's protocol (default: %(default)s)")
    parser.add_argument("--steps", type=_common.positive_int, default=None,
                        help="iterations of PGD / APGD / FAB, queries of Square (default: the "
                             "protocol's PGD steps; 100 for APGD and FAB, 5000 for Square; "
                             "autoattack always runs its standard settings)")
    _common.add_data_arguments(parser)
    parser.add_argument("--max-examples", type=_common.positive_int, default=None,
                        help="evaluate on a class-balanced subset of N test images")
    parser.add_argument("--batch-size", type=_common.positive_int, default=128)
    parser.add_argument("--corruptions", nargs="+", default=None, metavar="CORRUPTION",
                        help="also sweep CIFAR-10-C: corruption names, or 'all' (needs "
                             "--data-dir with CIFAR-10-C/<corruption>.npy, or tfds)")
    parser.add_argument("--severities", nargs="+", type=int, choices=(1, 2, 3, 4, 5),
                        default=[1, 2, 3, 4, 5])
    parser.add_argument("--skip-attacks", action="store_true",
                        help="only run the CIFAR-10-C and/or spatial sweeps")
    parser.add_argument("--spatial", action="store_true",
                        help="also measure spatial robustness: accuracy under the worst of "
                             "rotations -30..30 deg (step 3) x translations -3..3 px, and the "
                             "accuracy / consistency curves over 0..355 deg and zooms "
                             "0.8..1.25 (results in <output-dir>/spatial/)")
    parser.add_argument("--spatial-eps", type=_common.eps_value, default=None,
                        help="with --spatial: also the worst transformation followed by L-inf "
                             "PGD at this pixel budget, e.g. 2/255")
    parser.add_argument("--shard", type=_common.shard_value, default=None, metavar="I/N",
                        help="evaluate only shard I (from 0) of N: every N-th test batch, "
                             "starting at batch I; results in <output-dir>/shard-I-of-N/")
    parser.add_argument("--merge", action="store_true",
                        help="combine the shard-I-of-N results under --output-dir (or the "
                             "default output folder) into one report, then stop")
    parser.add_argument("--output-dir", default=None,
                        help="default: <model directory>/evaluation")
    parser.set_defaults(run=run)
    return parser


def run(args):
    from keras_equivariant import evaluation

    output_dir = Path(args.output_dir or Path(args.model_path).parent / "evaluation")
    if args.merge:
        if args.shard is not None:
            raise ValueError("--merge combines finished shards: drop --shard.")
        evaluation.merge_shards(output_dir)
        print(f"merged results in {output_dir}")
        return output_dir
    results = evaluation.evaluate(
        _common.load_model(args.model_path), output_dir, attacks=args.attack, eps=args.eps,
        protocol=args.protocol, steps=args.steps, dataset=args.dataset, data_dir=args.data_dir,
        max_examples=args.max_examples, batch_size=args.batch_size,
        corruptions=args.corruptions, severities=args.severities,
        skip_attacks=args.skip_attacks, spatial=args.spatial, spatial_eps=args.spatial_eps,
        shard=args.shard)
    print(f"results in {evaluation.shard_directory(output_dir, args.shard)}")
    return results
