"""Do our APGD-CE, Square and AutoAttack find as many adversarial points as ART's? Same run.

Our ``apgd`` (APGD-CE, 100 steps), ``square`` (5000 queries) and ``autoattack`` (standard
ensemble) run against ART's ``AutoProjectedGradientDescent``, ``SquareAttack`` and ``AutoAttack``
(through ``TensorFlowV2Classifier``, see ``_art.py``) on the same Keras model, the same images and
the same true labels, at each L-inf eps (default 1/255 and 2/255). For every pair the table gives
both robust accuracies, their difference in percentage points, how many points each side left
robust that the other broke, whether ours <= ART + 1 point (the acceptance criterion: ours equal
or lower within 1 point, on >= 500 images; smaller runs are marked as not conclusive), and the
time of each side with their ratio (ours / ART, < 1 = ours faster). Our attacks are traced once
before the timed calls (the tracing time is reported apart); ART has no tracing step.

ART's ``AutoAttack`` runs its own default ensemble (APGD-CE and APGD-DLR with 5 restarts each,
DeepFool, Square with 5 restarts), not exactly the standard one (APGD-CE, APGD-T, FAB-T, Square).

Images: the first ``--num-images`` (class-balanced) of the CIFAR-10 test subset shipped in the
repository's ``data/`` folder. Model: ``--model PATH`` (a saved Keras model returning logits), or
a depth-4 ``--architecture`` (BaselineCNN or ParallelGCNN) trained here for ``--epochs`` epochs on
the shipped training subset with ``--seed`` (Adam 1e-3, batch 128). Writes
``attack_agreement.md`` and ``.json`` to ``--output-dir`` (default ``benchmarks/results``), with
the CPU model, oneDNN state and load average.

ART is NOT a project dependency (see ``_art.py`` for the throwaway install). Usage::

    python benchmarks/attack_agreement.py --art-path /tmp/peers-art [--num-images 500]
        [--eps 1/255,2/255] [--attacks apgd-ce,square,autoattack] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_equivariant.attacks import apgd, autoattack, fab, square  # noqa: E402
from keras_equivariant.cli._common import eps_value, positive_int  # noqa: E402
from keras_equivariant.data import load_arrays, sample_data_dir  # noqa: E402
from keras_equivariant.training import build_model  # noqa: E402
from keras_equivariant.utils.platform import describe  # noqa: E402
from _art import INSTALL_HINT, art_autoattack_family, art_classifier, import_art  # noqa: E402

ATTACKS = ("apgd-ce", "square", "autoattack")
ARCHITECTURES = ("BaselineCNN", "ParallelGCNN")
CRITERION_POINTS = 1.0  # ours may exceed ART's robust accuracy by at most this many points
CRITERION_IMAGES = 500  # ... on at least this many images
RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"


def parse_eps_list(text):
    """``"1/255,2/255"`` -> ``[1/255, 2/255]``; each value a fraction or decimal in (0, 1]."""
    values = []
    for item in text.split(","):
        value = eps_value(item.strip())
        if not 0 < value <= 1:
            raise argparse.ArgumentTypeError(
                f"every --eps value must be in (0, 1] (pixels are in [0, 1]); received {item!r}.")
        values.append(value)
    return values


def parse_attacks(text):
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in ATTACKS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown attack(s) {unknown} in --attacks; choose among {list(ATTACKS)}.")
    return names


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--art-path", default=None,
                        help="directory holding a throwaway install of adversarial-robustness-"
                             "toolbox (appended to sys.path)")
    parser.add_argument("--num-images", type=positive_int, default=CRITERION_IMAGES,
                        help="test images (class-balanced, from the shipped subset; default "
                             "%(default)s)")
    parser.add_argument("--eps", type=parse_eps_list, default=parse_eps_list("1/255,2/255"),
                        help="comma-separated L-inf budgets (default 1/255,2/255)")
    parser.add_argument("--attacks", type=parse_attacks, default=list(ATTACKS),
                        help="comma-separated subset of " + ",".join(ATTACKS))
    parser.add_argument("--model", default=None,
                        help="saved Keras model (logits, pixels in [0, 1]); default: train one")
    parser.add_argument("--architecture", choices=ARCHITECTURES, default="BaselineCNN",
                        help="depth-4 model trained when --model is not given")
    parser.add_argument("--epochs", type=positive_int, default=5,
                        help="training epochs when --model is not given (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="training and attack seed")
    parser.add_argument("--batch-size", type=positive_int, default=500,
                        help="images per attack call, both libraries (default %(default)s)")
    parser.add_argument("--output-dir", default=str(RESULTS_DIR),
                        help="where attack_agreement.md/.json go (default benchmarks/results)")
    args = parser.parse_args(argv)
    if args.model is not None and not os.path.exists(args.model):
        parser.error(f"--model {args.model!r} does not exist; pass a saved Keras model file, or "
                     "omit --model to train one here.")
    if sample_data_dir() is None:
        parser.error("the CIFAR-10 subset of the repository's data/ folder was not found; run "
                     "from a clone of the repository (the subset is not in the wheel).")
    return args


def load_images(num_images):
    images, labels = load_arrays("cifar10", "test", data_dir=sample_data_dir(),
                                 max_examples=num_images)
    return images.astype(np.float32) / 255.0, labels.astype(np.int32)


def load_or_train_model(args):
    """``(model, description)``: the ``--model`` file, or a depth-4 model trained here."""
    if args.model is not None:
        return keras.models.load_model(args.model), f"loaded from {args.model}"
    keras.utils.set_random_seed(args.seed)
    images, labels = load_arrays("cifar10", "train", data_dir=sample_data_dir())
    model = build_model(args.architecture, depth=4)
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images.astype(np.float32) / 255.0, labels, epochs=args.epochs, batch_size=128,
              verbose=0)
    epochs = f"{args.epochs} epoch" + ("s" if args.epochs > 1 else "")
    return model, (f"{args.architecture}(depth=4) trained here: {epochs} on the "
                   f"{len(labels)}-image CIFAR-10 training subset, Adam 1e-3, seed {args.seed}")


def our_attack(name, model, images, labels, eps, seed):
    if name == "apgd-ce":
        return apgd(model, images, labels, eps, steps=100, seed=seed)
    if name == "square":
        return square(model, images, labels, eps, queries=5000, seed=seed)
    adversarial, _ = autoattack(model, images, labels, eps, seed=seed, verbose=0)
    return adversarial


def trace_our_attacks(model, images, labels, eps):
    """Runs every compiled loop our attacks use once on two images with tiny budgets (budgets
    and eps are tensors, so the timed calls reuse these traces); returns the seconds spent."""
    start = time.perf_counter()
    images, labels = images[:2], labels[:2]
    apgd(model, images, labels, eps, steps=2)
    apgd(model, images, labels, eps, loss="dlr", targeted=True, steps=2)
    fab(model, images, labels, eps, targeted=True, steps=2)
    square(model, images, labels, eps, queries=2)
    return time.perf_counter() - start


def robust_flags(model, adversarial, labels, batch_size):
    logits = model.predict(np.asarray(adversarial, np.float32), batch_size=batch_size, verbose=0)
    return np.argmax(logits, axis=-1) == labels


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def in_batches(function, images, labels, batch_size):
    return np.concatenate([function(images[first:first + batch_size],
                                    labels[first:first + batch_size])
                           for first in range(0, len(labels), batch_size)])


def compare(name, model, art_attack, images, labels, eps, args):
    """One row: both robust accuracies, the per-point disagreements, the criterion, the times."""
    ours, our_seconds = timed(lambda: in_batches(
        lambda x, y: np.asarray(our_attack(name, model, x, y, eps, args.seed)),
        images, labels, args.batch_size))
    theirs, art_seconds = timed(lambda: art_attack.generate(images, y=labels))
    ours_robust = robust_flags(model, ours, labels, args.batch_size)
    art_robust = robust_flags(model, theirs, labels, args.batch_size)
    difference = 100.0 * (ours_robust.mean() - art_robust.mean())
    return {
        "attack": name, "eps": eps, "eps_255": eps * 255,
        "robust_accuracy_ours": float(ours_robust.mean()),
        "robust_accuracy_art": float(art_robust.mean()),
        "difference_points": float(difference),
        "robust_only_in_ours": int((ours_robust & ~art_robust).sum()),
        "robust_only_in_art": int((art_robust & ~ours_robust).sum()),
        "ours_within_criterion": bool(difference <= CRITERION_POINTS),
        "seconds_ours": our_seconds, "seconds_art": art_seconds,
        "time_ratio_ours_over_art": our_seconds / art_seconds,
    }


def render_markdown(result):
    conclusive = result["num_images"] >= CRITERION_IMAGES
    lines = [
        "# Attack agreement with ART",
        "",
        f"- model: {result['model']}; clean accuracy {100 * result['clean_accuracy']:.2f}% on "
        f"{result['num_images']} CIFAR-10 test images (shipped subset, class-balanced)",
        f"- machine: {result['machine']}; load average {result['load_average_start']} at the "
        f"start, {result['load_average_end']} at the end",
        f"- TF {result['tensorflow']}, Keras {result['keras']}, ART {result['art']}; our tracing "
        f"(once, excluded from the times): {result['tracing_seconds']:.1f} s",
        f"- criterion: ours <= ART + {CRITERION_POINTS:g} point on >= {CRITERION_IMAGES} images"
        + ("" if conclusive else
           f" (NOT conclusive here: only {result['num_images']} images)"),
        "- ART's AutoAttack is its default ensemble (APGD-CE x5, APGD-DLR x5, DeepFool, "
        "Square x5); ours is the standard one (APGD-CE, APGD-T, FAB-T, Square)",
        "",
        "| attack | eps | robust ours | robust ART | ours - ART (points) | robust only in ours "
        "/ only in ART | ours <= ART + 1 | time ours (s) | time ART (s) | ours / ART |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['attack']} | {row['eps_255']:g}/255 | "
            f"{100 * row['robust_accuracy_ours']:.2f}% | {100 * row['robust_accuracy_art']:.2f}% | "
            f"{row['difference_points']:+.2f} | {row['robust_only_in_ours']} / "
            f"{row['robust_only_in_art']} | {'yes' if row['ours_within_criterion'] else 'NO'} | "
            f"{row['seconds_ours']:.1f} | {row['seconds_art']:.1f} | "
            f"{row['time_ratio_ours_over_art']:.2f} |")
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def load_average():
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def main(argv=None):
    args = parse_arguments(argv)
    art_version = import_art(args.art_path)
    if art_version is None:
        raise SystemExit(f"attack_agreement.py compares against ART, which is not importable; "
                         f"{INSTALL_HINT}.")
    start_load = load_average()
    images, labels = load_images(args.num_images)
    model, model_description = load_or_train_model(args)
    clean = robust_flags(model, images, labels, args.batch_size)
    num_classes = int(model.output_shape[-1])
    classifier = art_classifier(model, images.shape[1:], num_classes)
    print(f"model: {model_description}; clean accuracy {100 * clean.mean():.2f}% on "
          f"{len(labels)} images; machine: {describe()}; load average {start_load}", flush=True)
    tracing_seconds = trace_our_attacks(model, images, labels, args.eps[0])
    rows = []
    for eps in args.eps:
        family = art_autoattack_family(classifier, eps, args.batch_size)
        for name in args.attacks:
            row = compare(name, model, family[name], images, labels, eps, args)
            rows.append(row)
            print(f"{name:<11} eps {eps * 255:g}/255: robust ours "
                  f"{100 * row['robust_accuracy_ours']:6.2f}%  ART "
                  f"{100 * row['robust_accuracy_art']:6.2f}%  "
                  f"({row['difference_points']:+.2f} points, "
                  f"{'ok' if row['ours_within_criterion'] else 'ABOVE ART + 1'}); time ours "
                  f"{row['seconds_ours']:.1f} s, ART {row['seconds_art']:.1f} s "
                  f"(ratio {row['time_ratio_ours_over_art']:.2f})", flush=True)
    result = {
        "model": model_description, "num_images": int(len(labels)),
        "clean_accuracy": float(clean.mean()), "machine": describe(),
        "load_average_start": start_load, "load_average_end": load_average(),
        "tensorflow": tf.__version__, "keras": keras.__version__, "art": art_version,
        "tracing_seconds": tracing_seconds, "seed": args.seed,
        "criterion": {"points": CRITERION_POINTS, "min_images": CRITERION_IMAGES,
                      "conclusive": len(labels) >= CRITERION_IMAGES},
        "command": "python " + " ".join(sys.argv),
        "rows": rows,
    }
    output_dir = pathlib.Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "attack_agreement.json").write_text(json.dumps(result, indent=2) + "\n")
    markdown = render_markdown(result)
    (output_dir / "attack_agreement.md").write_text(markdown)
    print("\n" + markdown)
    print(f"written: {output_dir / 'attack_agreement.md'} and .json")


if __name__ == "__main__":
    main()
