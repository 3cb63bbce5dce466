"""The named choices of the library, defined once (and free of TensorFlow imports, so that the
command line builds its parser and answers ``--help`` without starting TensorFlow).

Every function that takes one of these names validates it against the tuple here, and every
``keras-equivariant`` option offers exactly these choices.
"""

#: Model builders of ``keras_equivariant.models`` (``keras_equivariant.training.build_model``).
MODEL_NAMES = (
    "BaselineCNN",
    "ParallelGCNN",
    "ParallelRotScaleGCNN",
    "CascadedGCNN",
    "WeightedParallelGCNN",
)
#: Numbers of convolutional layers of the builders (the paper's 4- and 10-layer plans).
DEPTHS = (4, 10)
#: ``"equivariant"``: exactly equivariant architectures; ``"paper"``: the official code's quirks.
VARIANTS = ("equivariant", "paper")
#: Learning-rate schedules of ``training.train`` (``"paper"`` on the command line picks the
#: official per-model one of ``training.PAPER_LR_SCHEDULES``).
LR_SCHEDULES = ("constant", "step", "cosine")
#: ``tf.distribute`` strategies of ``training.select_strategy``.
DISTRIBUTIONS = ("auto", "mirrored", "multi_worker", "none")

#: Attacks a robustness sweep can run (``keras_equivariant.attacks.protocols.AttackSpec``):
#: FGSM / PGD / uniform noise, the AutoAttack components and the whole standard ensemble.
ATTACKS = ("fgsm", "pgd", "random_noise", "apgd-ce", "apgd-t", "fab-t", "square", "autoattack")
#: Evaluation protocols (``keras_equivariant.attacks.protocols.PROTOCOLS``).
PROTOCOLS = ("default", "paper")
#: Perturbation norms, canonical spellings (``keras_equivariant.utils.validation.check_norm``).
NORMS = ("1", "2", "inf")
#: CLEVER sampling budgets (``keras_equivariant.metrics.clever.PRESETS``).
CLEVER_PRESETS = ("paper", "fast")

#: Explanation methods of ``keras_equivariant.visualize.saliency_maps``.
EXPLANATION_METHODS = ("saliency", "smoothgrad", "gradcam++")
#: Values of removed pixels in the perturbation-tolerance study.
TOLERANCE_FILLS = ("zero", "mean")
