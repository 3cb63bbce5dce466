"""Throughput of robustness evaluations (images/s) against a reference measured in the same process.

Each benchmark *case* times one of our functions and a straightforward reference on the same
model and batch, and prints images/s for both and their ratio (ours / reference, > 1 = faster).
Cases are produced by *case factories* registered with ``@case_factory``; to add rows (e.g.
CLEVER), write a factory ``def my_cases(context) -> list[Case]`` next to the existing ones.

Attack cases (PGD-10 and PGD-40, L-inf 8/255, step 2/255 resp. 2.5*eps/40, random start):

* ours: ``keras_equivariant.attacks.pgd`` (whole loop compiled, best iterate kept).
* reference: ART's ``ProjectedGradientDescent`` on a ``TensorFlowV2Classifier`` (its TF2
  implementation) when ``adversarial-robustness-toolbox`` is importable (it is NOT a project
  dependency: install it into a throwaway directory and pass ``--art-path DIR``, see
  ``_art.py``); otherwise a naive eager GradientTape PGD loop, and the table says which
  reference ran.

AutoAttack cases (only with ART): ``apgd-ce-100`` (our ``apgd`` vs ART's
``AutoProjectedGradientDescent``), ``square-5000`` (``square`` vs ART's ``SquareAttack``) and
``autoattack`` (our standard ensemble vs ART's ``AutoAttack`` with its default attacks), L-inf
8/255, labels = the clean predictions so that every point is attacked. (Whether the attacks
find as much as ART's is ``attack_agreement.py``'s question; this script only times them.)

Model: ``keras_equivariant.BaselineCNN(depth=10)`` (32x32x3 inputs, 10 classes, random weights;
throughput does not depend on the weights). Runs on whatever device TensorFlow picks (CPU here).

Usage::

    python benchmarks/attack_throughput.py --art-path /tmp/peers-art [--batch-size 128]
        [--repeats 3] [--only pgd-10,pgd-40]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_equivariant  # noqa: E402
from keras_equivariant.attacks import apgd, autoattack, pgd, square  # noqa: E402
from _art import art_autoattack_family, art_classifier, import_art  # noqa: E402  (sibling module)

EPS = 8 / 255


@dataclasses.dataclass
class Context:
    """What every case factory gets: the model, one batch, and the optional ART classifier."""

    model: keras.Model
    images: np.ndarray
    labels: np.ndarray
    art_classifier: object | None
    args: argparse.Namespace


@dataclasses.dataclass
class Case:
    """One benchmark row: ``ours`` and ``reference`` each process ``num_images`` images per call."""

    name: str
    ours: Callable[[], object]
    reference: Callable[[], object]
    reference_name: str
    num_images: int


CASE_FACTORIES: list[Callable[[Context], list[Case]]] = []


def case_factory(factory):
    """Registers ``factory(context) -> list[Case]``; rows are printed in registration order."""
    CASE_FACTORIES.append(factory)
    return factory


def naive_eager_pgd(model, images, labels, eps, steps, step_size):
    """Reference: the textbook PGD loop, eager, one GradientTape per step, random start."""
    images = tf.convert_to_tensor(images)
    loss_object = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    adversarial = tf.clip_by_value(images + tf.random.uniform(images.shape, -eps, eps), 0, 1)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(adversarial)
            loss = loss_object(labels, model(adversarial, training=False))
        adversarial = adversarial + step_size * tf.sign(tape.gradient(loss, adversarial))
        adversarial = tf.clip_by_value(tf.clip_by_value(adversarial, images - eps, images + eps),
                                       0, 1)
    return adversarial.numpy()


def load_art_classifier(model, art_path, input_shape, num_classes):
    """ART's TensorFlowV2Classifier around ``model``, or None if ART cannot be imported."""
    if import_art(art_path) is None:
        print("Using the naive eager PGD loop as reference.")
        return None
    return art_classifier(model, input_shape, num_classes)


@case_factory
def pgd_cases(context: Context) -> list[Case]:
    cases = []
    for steps in (10, 40):
        step_size = 2.5 * EPS / steps

        def ours(steps=steps, step_size=step_size):
            return pgd(context.model, context.images, context.labels, EPS, steps=steps,
                       step_size=step_size, seed=0)

        if context.art_classifier is not None:
            from art.attacks.evasion import ProjectedGradientDescent

            attack = ProjectedGradientDescent(
                context.art_classifier, norm=np.inf, eps=EPS, eps_step=step_size,
                max_iter=steps, num_random_init=1, batch_size=len(context.images), verbose=False)
            reference = (lambda attack=attack: attack.generate(context.images, y=context.labels))
            reference_name = f"ART {_art_version()} TF2 PGD"
        else:
            reference = (lambda steps=steps, step_size=step_size: naive_eager_pgd(
                context.model, context.images, context.labels, EPS, steps, step_size))
            reference_name = "naive eager PGD loop"
        cases.append(Case(f"pgd-{steps}", ours, reference, reference_name, len(context.images)))
    return cases


@case_factory
def autoattack_cases(context: Context) -> list[Case]:
    """APGD-CE-100, Square-5000 and AutoAttack-standard against ART (only when importable).

    ART's ``AutoAttack`` runs its own default ensemble (APGD-CE, APGD-DLR, DeepFool, Square), not
    exactly the standard one; the row compares the two "AutoAttack" entry points as shipped.
    """
    if context.art_classifier is None:
        print("AutoAttack rows skipped: they compare against ART, which is not importable.")
        return []
    batch = len(context.images)
    model, images = context.model, context.images
    # labels = the clean predictions: every point is attacked (both sides skip clean errors)
    labels = np.argmax(model.predict(images, verbose=0), axis=-1).astype(np.int32)
    version = _art_version()
    art = art_autoattack_family(context.art_classifier, EPS, batch)
    return [
        Case("apgd-ce-100", lambda: apgd(model, images, labels, EPS, steps=100, seed=0),
             lambda: art["apgd-ce"].generate(images, y=labels), f"ART {version} AutoPGD", batch),
        Case("square-5000", lambda: square(model, images, labels, EPS, queries=5000, seed=0),
             lambda: art["square"].generate(images, y=labels), f"ART {version} SquareAttack",
             batch),
        Case("autoattack", lambda: autoattack(model, images, labels, EPS, verbose=0),
             lambda: art["autoattack"].generate(images, y=labels), f"ART {version} AutoAttack",
             batch),
    ]


def _art_version():
    import art

    return art.__version__


def images_per_second(case: Case, repeats: int) -> tuple[float, float]:
    """Median images/s of ``case.ours`` and ``case.reference`` over ``repeats`` timed calls each.

    Both get one untimed warm-up call (compilation), then the timed calls alternate between them
    so that load changes on a shared machine hit both sides alike.
    """
    case.ours()
    case.reference()
    timings = {"ours": [], "reference": []}
    for _ in range(repeats):
        for side, function in (("ours", case.ours), ("reference", case.reference)):
            start = time.perf_counter()
            function()
            timings[side].append(time.perf_counter() - start)
    return tuple(case.num_images / float(np.median(timings[side]))
                 for side in ("ours", "reference"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--art-path", default=None,
                        help="directory holding a throwaway install of adversarial-robustness-toolbox")
    parser.add_argument("--only", default=None, help="comma-separated case names to run")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    input_shape, num_classes = (32, 32, 3), 10
    model = keras_equivariant.BaselineCNN(num_classes=num_classes, depth=10,
                                          input_shape=input_shape)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (args.batch_size,) + input_shape).astype(np.float32)
    labels = rng.integers(0, num_classes, args.batch_size).astype(np.int32)
    context = Context(model, images, labels,
                      load_art_classifier(model, args.art_path, input_shape, num_classes), args)
    selected = None if args.only is None else set(args.only.split(","))

    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    print(f"model: BaselineCNN(depth=10), {model.count_params():,} parameters; batch "
          f"{args.batch_size}; device {device}; TF {tf.__version__}, Keras {keras.__version__}; "
          f"median of {args.repeats} alternating runs after a warm-up")
    header = f"{'case':<12} {'ours img/s':>11} {'reference img/s':>16} {'ratio':>6}  reference"
    print(header)
    print("-" * len(header))
    for factory in CASE_FACTORIES:
        for case in factory(context):
            if selected is not None and case.name not in selected:
                continue
            ours, reference = images_per_second(case, args.repeats)
            print(f"{case.name:<12} {ours:>11.3g} {reference:>16.3g} {ours / reference:>5.2f}x  "
                  f"{case.reference_name}", flush=True)


if __name__ == "__main__":
    main()
