"""``keras-equivariant evaluate``: FGSM/PGD accuracy sweeps and a CIFAR-10-C sweep (resumable)."""

from __future__ import annotations

from pathlib import Path

from keras_equivariant.cli import _common

HELP = "adversarial accuracy (FGSM/PGD eps sweep) and CIFAR-10-C accuracy of a saved model"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate", help=HELP, description=HELP + ". Results are written after every eps / "
        "corruption cell; rerunning the command skips what is done.")
    parser.add_argument("model_path", help="the .keras file written by `keras-equivariant train`")
    parser.add_argument("--attack", nargs="+", choices=_common.ATTACKS, default=["fgsm", "pgd"],
                        help="attacks to sweep (default: fgsm pgd)")
    parser.add_argument("--eps", nargs="+", type=_common.eps_value, default=None,
                        help="budgets, e.g. 0 1/255 8/255 (default: the protocol's grid; in "
                             "pixel units for 'default', normalized units for 'paper')")
    parser.add_argument("--protocol", choices=("default", "paper"), default="default",
                        help="'default': pixel-space eps, PGD-10 with random start; 'paper': "
                             "the official code's protocol (default: %(default)s)")
    parser.add_argument("--steps", type=_common.positive_int, default=None,
                        help="PGD steps (default: the protocol's)")
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
                        help="only run the CIFAR-10-C sweep")
    parser.add_argument("--output-dir", default=None,
                        help="default: <model directory>/evaluation")
    parser.set_defaults(run=run)
    return parser


def run(args):
    if args.skip_attacks and not args.corruptions:
        raise ValueError("--skip-attacks leaves nothing to evaluate: add --corruptions (names or "
                         "'all') for the CIFAR-10-C sweep, or drop --skip-attacks.")
    model = _common.load_model(args.model_path)
    output_dir = Path(args.output_dir or Path(args.model_path).parent / "evaluation")
    corruptions = _corruption_names(args.corruptions) if args.corruptions else None
    results = {}
    if not args.skip_attacks:
        results["attacks"] = attack_sweeps(
            model, output_dir, attacks=args.attack, eps=args.eps, protocol=args.protocol,
            steps=args.steps, dataset=args.dataset, data_dir=args.data_dir,
            max_examples=args.max_examples, batch_size=args.batch_size)
        for report in results["attacks"].values():
            print(report)
    if corruptions:
        results["corruptions"] = corruption_sweep(
            model, output_dir / "corruptions", corruptions=corruptions,
            severities=args.severities, data_dir=args.data_dir, max_examples=args.max_examples,
            batch_size=args.batch_size)
    print(f"results in {output_dir}")
    return results


def _corruption_names(requested):
    """``--corruptions`` as a list of CIFAR-10-C names (``all`` expanded), validated before the
    attack sweeps so that a typo does not surface only after them."""
    from keras_equivariant import data

    names = list(data.CORRUPTIONS) if requested == ["all"] else list(requested)
    for name in names:
        data.dataset_info("cifar10_corrupted", "test", corruption=name, severity=1)
    return names


def attack_sweeps(model, output_dir, attacks=("fgsm", "pgd"), eps=None, protocol="default",
                  steps=None, dataset="cifar10", data_dir=None, max_examples=None,
                  batch_size=128, model_name=None):
    """Runs ``metrics.robust_accuracy`` for each attack, writing CSV/JSON into ``output_dir``
    after every budget (a rerun reuses finished budgets), and plots all attacks in
    ``output_dir/robust_accuracy.png``. Returns ``{attack: RobustAccuracyReport}``."""
    from keras_equivariant import attacks as attack_module
    from keras_equivariant import data, metrics

    for attack in attacks:  # settings the protocol forbids fail before the first sweep
        attack_module.get_protocol(protocol).resolve(attack, steps=steps if attack == "pgd"
                                                     else None)
    test_data = data.load_dataset(dataset, "test", data_dir=data_dir, batch_size=batch_size,
                                  shuffle=False, max_examples=max_examples)
    reports = {}
    for attack in attacks:
        print(f"{attack.upper()} sweep ({protocol} protocol)")
        reports[attack] = metrics.robust_accuracy(
            model, test_data, attack=attack, eps=eps, protocol=protocol,
            steps=steps if attack == "pgd" else None, output_dir=output_dir,
            model_name=model_name)
    metrics.plot_robust_accuracy(list(reports.values()),
                                 path=Path(output_dir) / "robust_accuracy.png")
    return reports


def corruption_sweep(model, output_dir, corruptions, severities=(1, 2, 3, 4, 5), data_dir=None,
                     max_examples=None, batch_size=128):
    """Clean accuracy on every (corruption, severity) of CIFAR-10-C, resumable.

    After each cell the results are rewritten atomically to ``output_dir/corruptions.json`` and
    ``corruptions.csv`` (``corruption,severity,accuracy,num_examples``); cells already in the JSON
    are not recomputed. At the end ``corruptions.png`` shows accuracy per corruption and severity.

    Returns:
        ``{corruption: {severity: accuracy}}`` with integer severities.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_equivariant import data
    from keras_equivariant.utils import io

    output_dir = Path(output_dir)
    json_path = output_dir / "corruptions.json"
    stored = io.read_json(json_path, default={"cells": []})
    done = {(cell["corruption"], cell["severity"]): cell for cell in stored["cells"]}
    todo = [(name, int(level)) for name in corruptions for level in severities
            if (name, int(level)) not in done]
    for name in corruptions:  # validate every name before the first expensive cell
        data.dataset_info("cifar10_corrupted", "test", corruption=name, severity=1)

    predict = tf.function(lambda images: tf.argmax(model(images, training=False), axis=-1,
                                                   output_type=tf.int32))
    progress = keras.utils.Progbar(len(todo), unit_name="cell") if todo else None
    for index, (name, level) in enumerate(todo):
        dataset = data.load_dataset("cifar10_corrupted", "test", data_dir=data_dir,
                                    batch_size=batch_size, shuffle=False,
                                    max_examples=max_examples, corruption=name, severity=level)
        correct = total = 0
        for images, labels in dataset:
            correct += int(np.sum(predict(images).numpy() == labels.numpy()))
            total += int(labels.shape[0])
        done[(name, level)] = {"corruption": name, "severity": level,
                               "accuracy": correct / total, "num_examples": total}
        _write_corruption_results(output_dir, done)
        progress.update(index + 1, values=[("accuracy", correct / total)])
    _write_corruption_results(output_dir, done)
    _plot_corruptions(done, output_dir / "corruptions.png")
    table = {}
    for (name, level), cell in done.items():
        table.setdefault(name, {})[level] = cell["accuracy"]
    return table


def _write_corruption_results(output_dir, done):
    from keras_equivariant.utils import io

    cells = [done[key] for key in sorted(done)]
    io.atomic_write_json(output_dir / "corruptions.json", {"cells": cells})
    lines = ["corruption,severity,accuracy,num_examples"] + [
        f"{cell['corruption']},{cell['severity']},{cell['accuracy']:.6f},{cell['num_examples']}"
        for cell in cells]
    io.atomic_write_text(output_dir / "corruptions.csv", "\n".join(lines) + "\n")


def _plot_corruptions(done, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({name for name, _ in done})
    levels = sorted({level for _, level in done})
    figure, axis = plt.subplots(figsize=(1.2 + 0.55 * len(names), 4))
    width = 0.8 / len(levels)
    for offset, level in enumerate(levels):
        values = [100 * done[(name, level)]["accuracy"] if (name, level) in done else 0.0
                  for name in names]
        axis.bar([index + offset * width for index in range(len(names))], values, width,
                 label=f"severity {level}")
    axis.set_xticks([index + 0.4 - width / 2 for index in range(len(names))])
    axis.set_xticklabels(names, rotation=45, ha="right")
    axis.set_ylabel("accuracy (%)")
    axis.set_title("CIFAR-10-C accuracy")
    axis.legend(fontsize="small")
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
