"""``keras-equivariant train``: train one model with the paper's protocol (resumable)."""

from __future__ import annotations

from keras_equivariant import choices
from keras_equivariant.cli import _common

HELP = "train a model (Adam 1e-3, batch 128, no augmentation by default; resumable)"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train", help=HELP, description=HELP + ". Rerunning the same command resumes a killed "
        "run from its last backup and skips a finished one. Output: <output-dir>/<run-name>/ "
        "with model.keras, checkpoints/, backup/, logs/ (TensorBoard), history.csv, summary.json.")
    parser.add_argument("model", choices=choices.MODEL_NAMES, help="model builder name")
    parser.add_argument("--depth", type=int, choices=choices.DEPTHS, default=10,
                        help="number of convolutional layers (default: %(default)s)")
    parser.add_argument("--variant", choices=choices.VARIANTS, default="equivariant",
                        help="'paper' reproduces the official code's architecture quirks "
                             "(default: %(default)s)")
    _common.add_data_arguments(parser)
    parser.add_argument("--epochs", type=_common.positive_int, default=200,
                        help="(default: %(default)s, the paper's)")
    parser.add_argument("--batch-size", type=_common.positive_int, default=128,
                        help="global batch size (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=1e-3,
                        help="Adam learning rate (default: %(default)s)")
    parser.add_argument("--lr-schedule", choices=(*choices.LR_SCHEDULES, "paper"),
                        default="constant",
                        help="'step': x lr-decay-rate every lr-step-epochs; 'paper': the "
                             "official code's schedule for this model (default: %(default)s)")
    parser.add_argument("--lr-step-epochs", type=_common.positive_int, default=50,
                        help="epochs between decays of the 'step' schedule "
                             "(default: %(default)s)")
    parser.add_argument("--lr-decay-rate", type=float, default=0.1,
                        help="learning-rate factor of each 'step' decay (default: %(default)s)")
    parser.add_argument("--augment", action="store_true",
                        help="random crops and flips (off in the paper)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds Python, NumPy, TensorFlow and the data shuffling; part of the "
                             "default run name (default: %(default)s)")
    parser.add_argument("--max-train-examples", type=_common.positive_int, default=None,
                        help="train on a class-balanced subset of N training images")
    parser.add_argument("--max-test-examples", type=_common.positive_int, default=None,
                        help="report accuracy on a class-balanced subset of N test images")
    parser.add_argument("--save-freq", type=_common.save_freq_value, default="epoch",
                        help="'epoch' or a number of batches between resumable backups "
                             "(default: %(default)s)")
    parser.add_argument("--distribution", choices=choices.DISTRIBUTIONS,
                        default="auto",
                        help="'auto': MirroredStrategy when there are several GPUs; "
                             "'multi_worker': MultiWorkerMirroredStrategy configured by TF_CONFIG "
                             "on every machine, --output-dir on a shared file system, only the "
                             "chief writes (default: %(default)s)")
    parser.add_argument("--output-dir", default="runs", help="(default: %(default)s)")
    parser.add_argument("--run-name", default=None,
                        help="default: <model>-d<depth>-<variant>-<dataset>-s<seed>")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="Keras fit verbosity: 1 = progress bar (default: %(default)s)")
    parser.set_defaults(run=run)
    return parser


def run(args):
    from keras_equivariant import training

    lr_schedule = args.lr_schedule
    if lr_schedule == "paper":
        lr_schedule = training.PAPER_LR_SCHEDULES[args.model]
    summary = training.train(
        args.model, depth=args.depth, variant=args.variant, dataset=args.dataset,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        lr_schedule=lr_schedule, lr_step_epochs=args.lr_step_epochs,
        lr_decay_rate=args.lr_decay_rate, augment=args.augment, data_dir=args.data_dir,
        output_dir=args.output_dir, run_name=args.run_name, seed=args.seed,
        max_train_examples=args.max_train_examples, max_test_examples=args.max_test_examples,
        save_freq=args.save_freq, distribution=args.distribution, verbose=args.verbose,
    )
    print(f"test accuracy {summary['test_accuracy']:.4f} after {summary['epochs_completed']} "
          f"epochs ({summary['train_seconds']:.0f} s); model: {summary['model_path']}")
    return summary
