"""Throughput of robustness evaluations (images/s) against peers measured in the same process.

Each benchmark *case* times one of our functions and its peers on the same model and batch, in
interleaved rounds (every side once per round, so that a shared machine's load hits all alike),
and prints images/s of each and the ratios (ours / peer, > 1 = faster). Cases are produced by
*case factories* registered with ``@case_factory``; to add rows, write a factory
``def my_cases(context) -> list[Case]`` next to the existing ones.

Attack cases (PGD-10 and PGD-40, L-inf 8/255, step 2.5 eps / steps, random start):

* ours: ``keras_equivariant.attacks.pgd`` (whole loop compiled, best iterate kept).
* TF peer: ART's ``ProjectedGradientDescent`` on a ``TensorFlowV2Classifier`` (its TF2
  implementation) around the same Keras model, when ``adversarial-robustness-toolbox`` is
  importable (it is NOT a project dependency: install it into a throwaway directory and pass
  ``--art-path DIR``, see ``_art.py``); otherwise a naive eager GradientTape PGD loop.
* PyTorch peer: a hand-written eager PGD (``_torch_twins.pgd``, same eps, step, steps and random
  start, last iterate) on the PyTorch twin of ``BaselineCNN(depth=10)``
  (``benchmarks/_torch_twins.py``), same batch, ``torch.set_num_threads`` = TensorFlow's intra-op
  thread count, when ``torch`` is importable (NOT a dependency: ``pip install --target
  /tmp/peers torch --index-url https://download.pytorch.org/whl/cpu`` and ``--torch-path
  /tmp/peers``, or torch already on ``sys.path``).

PGD rows also print the *input-gradient limit*: PGD-k images/s x k / images/s of one plain
forward + backward pass to the input of the same model (timed in the same rounds). PGD is k
such passes plus projections, so 1.0 means no overhead beyond the gradients (issue 12's goal
for ours: >= 0.8). ART's is relative to our Keras model's pass, PyTorch's to its twin's.

AutoAttack cases (only with ART): ``apgd-ce-100`` (our ``apgd`` vs ART's
``AutoProjectedGradientDescent``), ``square-5000`` (``square`` vs ART's ``SquareAttack``) and
``autoattack`` (our standard ensemble vs ART's ``AutoAttack`` with its default attacks), L-inf
8/255, labels = the clean predictions so that every point is attacked. (Whether the attacks
find as much as ART's is ``attack_agreement.py``'s question; this script only times them.)

Model: ``keras_equivariant.BaselineCNN(depth=10)`` (32x32x3 inputs, 10 classes, random weights;
throughput does not depend on the weights). Runs on whatever device TensorFlow picks (CPU here).
``TF_ENABLE_ONEDNN_OPTS=1`` unless already set (docs/performance.md); the table names the CPU,
its instruction set, the oneDNN state and which peers ran.

Usage::

    python benchmarks/attack_throughput.py --art-path /tmp/peers-art --torch-path /tmp/peers
        [--batch-size 128] [--repeats 3] [--only pgd-10,pgd-40]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # unless set: docs/performance.md

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_equivariant  # noqa: E402
from _timing import input_gradient_step, load_torch_twins, time_interleaved  # noqa: E402
from keras_equivariant.attacks import apgd, autoattack, pgd, square  # noqa: E402
from keras_equivariant.utils.platform import describe  # noqa: E402
from _art import art_autoattack_family, art_classifier, import_art  # noqa: E402  (sibling module)

EPS = 8 / 255


@dataclasses.dataclass
class TorchPeer:
    """The PyTorch twin of the model, the same batch as NCHW tensors, and ``_torch_twins``."""

    twins: object
    model: object
    images: object
    labels: object


@dataclasses.dataclass
class Context:
    """What every case factory gets: the model, one batch, and the optional peers."""

    model: keras.Model
    images: np.ndarray
    labels: np.ndarray
    art_classifier: object | None
    torch_peer: TorchPeer | None
    args: argparse.Namespace


# Peer columns of the table, in order: the TensorFlow peer (ART, else a naive eager loop) and
# the PyTorch one.
PEERS = ("tf", "torch")


@dataclasses.dataclass
class Case:
    """One benchmark row: ``ours`` and each of ``peers`` process ``num_images`` images per call.

    ``peers`` maps a column of ``PEERS`` to ``(callable, name)``. ``gradient_steps`` (k of
    PGD-k) adds the input-gradient limit, ``gradients`` mapping "ours" (our Keras model, which
    the TF peer attacks too) and "torch" (the PyTorch twin) to a plain input-gradient pass.
    """

    name: str
    ours: Callable[[], object]
    peers: dict[str, tuple[Callable[[], object], str]]
    num_images: int
    gradient_steps: int | None = None
    gradients: dict[str, Callable[[], object]] = dataclasses.field(default_factory=dict)


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
        print("The TF peer is the naive eager PGD loop.")
        return None
    return art_classifier(model, input_shape, num_classes)


def load_torch_peer(torch_path, images, labels):
    """The PyTorch twin of BaselineCNN(depth=10) on the same batch, or None without torch."""
    twins = load_torch_twins(torch_path)
    if twins is None:
        return None
    torch = twins.torch
    return TorchPeer(twins, twins.BaselineCNN10(num_classes=10).eval(),
                     torch.from_numpy(images.transpose(0, 3, 1, 2).copy()),
                     torch.from_numpy(labels.astype(np.int64)))


@case_factory
def pgd_cases(context: Context) -> list[Case]:
    model, images, labels, peer = (context.model, context.images, context.labels,
                                   context.torch_peer)
    gradients = {"ours": input_gradient_step(model, tf.constant(images), tf.constant(labels))}
    if peer is not None:
        gradients["torch"] = peer.twins.input_gradient_step(peer.model, peer.images,
                                                            peer.labels)
    cases = []
    for steps in (10, 40):
        step_size = 2.5 * EPS / steps

        def ours(steps=steps, step_size=step_size):
            return pgd(model, images, labels, EPS, steps=steps, step_size=step_size, seed=0)

        if context.art_classifier is not None:
            from art.attacks.evasion import ProjectedGradientDescent

            attack = ProjectedGradientDescent(
                context.art_classifier, norm=np.inf, eps=EPS, eps_step=step_size,
                max_iter=steps, num_random_init=1, batch_size=len(images), verbose=False)
            peers = {"tf": (lambda attack=attack: attack.generate(images, y=labels),
                            f"ART {_art_version()} TF2 PGD")}
        else:
            peers = {"tf": (lambda steps=steps, step_size=step_size: naive_eager_pgd(
                model, images, labels, EPS, steps, step_size), "naive eager TF PGD loop")}
        if peer is not None:
            peers["torch"] = (
                lambda steps=steps, step_size=step_size: peer.twins.pgd(
                    peer.model, peer.images, peer.labels, EPS, steps, step_size),
                f"PyTorch {peer.twins.torch.__version__} eager PGD, BaselineCNN(10) twin")
        cases.append(Case(f"pgd-{steps}", ours, peers, len(images), steps, gradients))
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
             {"tf": (lambda: art["apgd-ce"].generate(images, y=labels), f"ART {version} AutoPGD")},
             batch),
        Case("square-5000", lambda: square(model, images, labels, EPS, queries=5000, seed=0),
             {"tf": (lambda: art["square"].generate(images, y=labels),
                     f"ART {version} SquareAttack")}, batch),
        Case("autoattack", lambda: autoattack(model, images, labels, EPS, verbose=0),
             {"tf": (lambda: art["autoattack"].generate(images, y=labels),
                     f"ART {version} AutoAttack")}, batch),
    ]


def _art_version():
    import art

    return art.__version__


def measure(case: Case, rounds: int) -> dict[str, float]:
    """Median images/s of ``case.ours``, each peer and each input-gradient pass.

    Every side gets one untimed warm-up call (compilation), then ``rounds`` interleaved rounds
    call each side once, so that load changes on a shared machine hit all sides alike. Keys:
    "ours", the peer columns, and "gradient ours" / "gradient <column>".
    """
    steps = {"ours": case.ours, **{column: function for column, (function, _) in
                                   case.peers.items()}}
    if case.gradient_steps is not None:
        steps.update({f"gradient {side}": function for side, function in case.gradients.items()
                      if side == "ours" or side in case.peers})
    for function in steps.values():
        function()
    seconds = time_interleaved(steps, rounds, 1, progress=False)
    return {side: case.num_images / value for side, value in seconds.items()}


def _cell(value, width, digits=3, suffix=""):
    """``value`` to ``digits`` significant digits (ART's AutoAttack rows run far below 1 img/s)."""
    return f"{value:>{width - len(suffix)}.{digits}g}{suffix}" if value is not None \
        else f"{'-':>{width}}"


def print_row(case: Case, rates: dict[str, float]):
    """One table row: images/s of each side, ours / peer, and the input-gradient limits."""
    cells = [f"{case.name:<12}", _cell(rates["ours"], 10)]
    for column in PEERS:
        rate = rates.get(column)
        cells += [_cell(rate, 10), _cell(rates["ours"] / rate if rate else None, 7, 3, "x")]
    for side in ("ours",) + PEERS:
        limit = None
        gradient = f"gradient {'ours' if side == 'tf' else side}"  # TF peer: our Keras model
        if case.gradient_steps is not None and gradient in rates and side in rates:
            limit = rates[side] * case.gradient_steps / rates[gradient]
        cells.append(_cell(limit, 10, 2))
    print(" ".join(cells), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved timed rounds (each side called once per round)")
    parser.add_argument("--art-path", default=None,
                        help="directory holding a throwaway install of adversarial-robustness-toolbox")
    parser.add_argument("--torch-path", default=None,
                        help="directory holding a throwaway install of torch (the PyTorch peer); "
                             "without it torch is used if already importable")
    parser.add_argument("--only", default=None, help="comma-separated case names to run")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    input_shape, num_classes = (32, 32, 3), 10
    model = keras_equivariant.BaselineCNN(num_classes=num_classes, depth=10,
                                          input_shape=input_shape)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (args.batch_size,) + input_shape).astype(np.float32)
    labels = rng.integers(0, num_classes, args.batch_size).astype(np.int32)
    torch_peer = load_torch_peer(args.torch_path, images, labels)  # first: ART probes torch
    context = Context(model, images, labels,
                      load_art_classifier(model, args.art_path, input_shape, num_classes),
                      torch_peer, args)
    selected = None if args.only is None else set(args.only.split(","))
    cases = [case for factory in CASE_FACTORIES for case in factory(context)
             if selected is None or case.name in selected]

    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"model: BaselineCNN(depth=10), {model.count_params():,} parameters; batch "
          f"{args.batch_size}; device {device}; TF {tf.__version__}, Keras {keras.__version__}; "
          f"median of {args.repeats} interleaved rounds after a warm-up\nmachine: {describe()}; "
          f"load average {load}")
    peer_names = dict.fromkeys(name for case in cases for _, name in case.peers.values())
    print(f"peers that ran: {'; '.join(peer_names) or 'none'}"
          + ("" if context.torch_peer is not None else " (no PyTorch peer: torch not importable)"))
    print("img/s = images/s; x = ours / peer; limit = PGD-k img/s x k / input-gradient img/s "
          "of the model it attacks")
    header = (f"{'case':<12} {'ours img/s':>10} {'TF peer':>10} {'x':>7} {'PyTorch':>10} "
              f"{'x':>7} {'lim. ours':>10} {'lim. TF':>10} {'lim. torch':>10}")
    print(header)
    print("-" * len(header))
    for case in cases:
        print_row(case, measure(case, args.repeats))


if __name__ == "__main__":
    main()
