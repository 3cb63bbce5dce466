"""AutoAttack (Croce & Hein, ICML 2020), the standard ensemble for robustness claims, in TF.

The attacks run in a fixed order, each only on the points every earlier attack left robust; a
point's adversarial image is the first one that fooled the model. Versions (as in the reference
implementation):

``"standard"``
    APGD-CE (100 steps, 1 restart), APGD-T (100 steps, targeted DLR over the 9 runner-up classes),
    FAB-T (100 steps, 9 target classes), Square (5000 queries).
``"plus"``
    APGD-CE and APGD-DLR (5 restarts each), FAB (untargeted, 5 restarts), Square (5000 queries),
    APGD-T, FAB-T.
``"rand"``
    For randomized models: APGD-CE and APGD-DLR with the gradient averaged over 20 model calls
    (expectation over transformation), 1 restart.

:func:`autoattack` returns the worst-case images and an :class:`AutoAttackReport` (clean
accuracy, robust accuracy after each attack, which attack broke each point, times); a report in
which Square breaks points the white-box attacks missed flags likely gradient masking.
"""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from keras_equivariant.attacks.apgd import ApgdConfig, run_apgd, target_ranks
from keras_equivariant.attacks.fab import FabConfig, run_fab
from keras_equivariant.attacks.gradient import (
    _check_scalar_eps,
    _prepare,
    compiled_logits,
    count_classes,
    normalize_norm,
)
from keras_equivariant.attacks.square import run_square
from keras_equivariant.utils.validation import (
    check_choice,
    check_positive_int,
    require_backend,
)

# the attacks of the ensemble, by their AutoAttack names
ATTACK_NAMES = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
VERSIONS = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"),
    "rand": ("apgd-ce", "apgd-dlr"),
}
STEPS = 100
QUERIES = 5000
P_INIT = 0.8
RHO = 0.75


def version_settings(version: str, name: str) -> dict:
    """``{"restarts": ..., "eot_samples": ...}`` of attack ``name`` in ``version``.

    The targeted attacks and Square run once (per target class); "plus" restarts the untargeted
    APGD and FAB 5 times; "rand" averages 20 gradients per APGD step.
    """
    check_choice(version, VERSIONS, "version")
    untargeted = name in ("apgd-ce", "apgd-dlr", "fab")
    return {"restarts": 5 if version == "plus" and untargeted else 1,
            "eot_samples": 20 if version == "rand" else 1}


def run_named_attack(name, model, images, labels, norm, eps, seed=0, restarts=1, eot_samples=1,
                     steps=None):
    """Runs one AutoAttack component on a validated batch; returns ``(adversarial, success)``.

    ``restarts`` counts the runs of APGD and FAB (per target class for APGD-T and FAB-T; Square
    runs once) and ``eot_samples`` the gradient samples of APGD. ``steps`` is the number of
    iterations (APGD, FAB; default 100) or of queries (Square; default 5000).
    """
    check_choice(name, ATTACK_NAMES, "attack")
    iterations = STEPS if steps is None else steps
    num_classes = count_classes(model, images)
    if name.startswith("apgd"):
        targeted = name == "apgd-t"
        loss = "cross_entropy" if name == "apgd-ce" else "dlr"
        config = ApgdConfig(norm, loss, targeted, eot_samples)
        adversarial, success, _ = run_apgd(
            model, images, labels, config, eps, iterations, restarts, RHO, seed,
            target_ranks(num_classes) if targeted else None)
    elif name.startswith("fab"):
        targeted = name == "fab-t"
        adversarial, success, _ = run_fab(
            model, images, labels, FabConfig(norm, targeted), eps, iterations, restarts, seed,
            target_ranks(num_classes) if targeted else None)
    else:
        queries = QUERIES if steps is None else steps
        adversarial, success, _ = run_square(model, images, labels, norm, eps, queries, P_INIT,
                                             seed)
    return adversarial, success


@dataclasses.dataclass
class AutoAttackReport:
    """What :func:`autoattack` did to each point and how accuracy fell attack by attack.

    Attributes:
        version: ``"standard"``, ``"plus"`` or ``"rand"``.
        norm: ``"inf"`` or ``"2"``; ``eps``: the budget in pixel units.
        num_examples: evaluated points.
        clean_accuracy: accuracy on the clean points.
        robust_accuracy: ``{attack: accuracy}`` after each attack, in the order they ran
            (attacks skipped because nothing was left robust repeat the last value).
        broken_by: per point, the attack that first fooled the model, ``"clean"`` for points
            misclassified already, ``""`` for points still robust.
        attack_seconds: ``{attack: seconds}``; ``seconds``: total time.
    """

    version: str
    norm: str
    eps: float
    num_examples: int
    clean_accuracy: float
    robust_accuracy: dict = dataclasses.field(default_factory=dict)
    broken_by: list = dataclasses.field(default_factory=list)
    attack_seconds: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    @property
    def final_robust_accuracy(self) -> float:
        """Robust accuracy after all attacks (the AutoAttack number)."""
        values = list(self.robust_accuracy.values())
        return values[-1] if values else self.clean_accuracy

    @property
    def black_box_gap(self) -> float:
        """Fraction of points only Square (black-box) broke after the white-box attacks failed.

        Clearly above 0 is the signature of gradient masking: the white-box numbers of such a
        model overstate its robustness.
        """
        return float(np.mean(np.asarray(self.broken_by) == "square")) if self.broken_by else 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        lines = [f"AutoAttack ({self.version}, L{self.norm}, eps={self.eps:.5g}) on "
                 f"{self.num_examples} points",
                 f"  clean accuracy: {100 * self.clean_accuracy:6.2f}%"]
        for attack, accuracy in self.robust_accuracy.items():
            seconds = self.attack_seconds.get(attack, 0.0)
            lines.append(f"  after {attack:<9} {100 * accuracy:6.2f}%   ({seconds:.1f} s)")
        lines.append(f"  robust accuracy: {100 * self.final_robust_accuracy:.2f}% "
                     f"(total {self.seconds:.1f} s)")
        if self.black_box_gap > 0:
            lines.append(
                f"  warning: Square (black-box) broke {100 * self.black_box_gap:.2f}% of the "
                "points every white-box attack missed: the gradients are likely masked.")
        return "\n".join(lines)


def run_autoattack(model, images, labels, norm, eps, version="standard", seed=0,
                   batch_size=256, verbose=0):
    """AutoAttack on validated tensors; returns ``(adversarial tensor, AutoAttackReport)``."""
    start = time.perf_counter()
    attacks = VERSIONS[version]
    predictions = tf.argmax(compiled_logits(model, images.shape[1:])(images), axis=-1,
                            output_type=tf.int32).numpy()
    labels_array = labels.numpy()
    robust = predictions == labels_array
    broken_by = np.where(robust, "", "clean").astype(object)
    num_examples = len(labels_array)
    report = AutoAttackReport(version, norm, float(eps), num_examples,
                              float(robust.mean()) if num_examples else 0.0)
    adversarial = images.numpy().copy()
    progress = keras.utils.Progbar(len(attacks), verbose=verbose, unit_name="attack",
                                   stateful_metrics=["robust_accuracy"])
    for position, name in enumerate(attacks):
        attack_start = time.perf_counter()
        remaining = np.flatnonzero(robust)
        for first in range(0, remaining.size, batch_size):
            chunk = remaining[first:first + batch_size]
            candidate, _ = run_named_attack(
                name, model, tf.gather(images, chunk), tf.gather(labels, chunk), norm, eps,
                seed, **version_settings(version, name))
            fooled = tf.argmax(compiled_logits(model, images.shape[1:])(candidate), axis=-1,
                               output_type=tf.int32).numpy() != labels_array[chunk]
            adversarial[chunk[fooled]] = candidate.numpy()[fooled]
            robust[chunk[fooled]] = False
            broken_by[chunk[fooled]] = name
        report.robust_accuracy[name] = float(robust.mean()) if num_examples else 0.0
        report.attack_seconds[name] = time.perf_counter() - attack_start
        progress.update(position + 1, [("robust_accuracy", report.robust_accuracy[name])])
    report.broken_by = [str(value) for value in broken_by]
    report.seconds = time.perf_counter() - start
    return tf.constant(adversarial), report


def autoattack(model, images, labels=None, eps=8 / 255, norm="inf", version="standard", seed=0,
               batch_size=256, verbose=1):
    """AutoAttack: APGD-CE, APGD-T, FAB-T and Square, each on the points still robust.

    Args:
        model: Keras classifier returning logits; called with ``training=False``.
        images: ``(batch, height, width, channels)`` pixels in [0, 1] (NumPy array or tensor).
        labels: true integer labels ``(batch,)`` (or one-hot); ``None`` uses the predictions.
        eps: radius of the perturbation ball in pixel units (default 8/255).
        norm: ``"inf"`` or ``"2"``.
        version: ``"standard"`` (APGD-CE, APGD-T, FAB-T, Square), ``"plus"`` (adds APGD-DLR and
            untargeted FAB, 5 restarts) or ``"rand"`` (APGD-CE and APGD-DLR with 20-sample
            expectation over transformation, for randomized models); see the module docstring.
        seed: integer seed of every random start and of Square.
        batch_size: points per attack call.
        verbose: 1 shows a progress bar over the attacks, 0 is silent.

    Returns:
        ``(adversarial, report)``: the worst-case images (the first fooling image found per
        point, the clean image where none was), same shape and floating dtype as ``images``,
        within ``eps`` and in [0, 1]; and an :class:`AutoAttackReport` (``print(report)``).

    Example:

    >>> adversarial, report = autoattack(model, images, labels, eps=8 / 255)
    >>> print(report)
    """
    require_backend("keras_equivariant.attacks.autoattack")
    norm = normalize_norm(norm)
    eps = _check_scalar_eps(eps, norm=norm)
    check_choice(version, VERSIONS, "version")
    batch_size = check_positive_int(batch_size, "batch_size")
    images, labels, restore = _prepare(model, images, labels, False, None)
    num_classes = count_classes(model, images)
    if num_classes < 3:
        raise ValueError(
            f"AutoAttack needs a model with at least 3 classes (its DLR losses divide by the gap "
            f"between the largest and third-largest logit); the model returns {num_classes} "
            "logits. Use `apgd(..., loss='cross_entropy')`, `fab` and `square` separately."
        )
    adversarial, report = run_autoattack(model, images, labels, norm, eps, version, int(seed),
                                         batch_size, verbose)
    return restore(adversarial), report
