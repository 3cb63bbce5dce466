"""ART (adversarial-robustness-toolbox) as a same-run peer (imported as a sibling module).

ART is NOT a project dependency: install it into a throwaway directory with ``INSTALL_HINT``
below (``--no-deps`` so that pip does not pull a second NumPy/SciPy; the listed packages are the
rest of what ART 1.20 imports) and pass that directory as ``--art-path``. It is appended to
``sys.path``, so the project's own NumPy, SciPy and TensorFlow keep precedence.
"""

from __future__ import annotations

import sys

import keras
import numpy as np

INSTALL_HINT = ("pip install --no-deps --target /tmp/peers-art adversarial-robustness-toolbox "
                "multiprocess dill scikit-learn joblib threadpoolctl narwhals, then pass "
                "--art-path /tmp/peers-art")


def import_art(art_path):
    """Appends ``art_path`` (if given) to ``sys.path``; returns ART's version, or None with the
    import error printed when ART cannot be imported."""
    if art_path:
        sys.path.append(art_path)
    try:
        import art
        from art.estimators.classification import TensorFlowV2Classifier  # noqa: F401
    except ImportError as error:
        print(f"ART not importable from sys.path + {art_path!r} ({error}); to install it: "
              f"{INSTALL_HINT}.")
        return None
    return art.__version__


def art_classifier(model, input_shape, num_classes):
    """ART's ``TensorFlowV2Classifier`` around the Keras ``model`` (logits, pixels in [0, 1])."""
    from art.estimators.classification import TensorFlowV2Classifier

    return TensorFlowV2Classifier(
        model=model, nb_classes=num_classes, input_shape=tuple(input_shape),
        loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        clip_values=(0.0, 1.0))


def art_autoattack_family(classifier, eps, batch_size):
    """ART's counterparts of our AutoAttack pieces at L-inf ``eps``, by our attack names.

    ``"apgd-ce"``: ``AutoProjectedGradientDescent`` (cross-entropy, 100 steps, first step
    ``2 * eps``, 1 run); ``"square"``: ``SquareAttack`` (5000 queries, ``p_init`` 0.8, 1 run);
    ``"autoattack"``: ART's ``AutoAttack`` with its default ensemble (APGD-CE and APGD-DLR with 5
    restarts each, DeepFool, Square with 5 restarts), which is not exactly the standard one
    (APGD-CE, APGD-T, FAB-T, Square): the two libraries' "AutoAttack" entry points as shipped.
    """
    from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent, SquareAttack

    autoattack = AutoAttack(classifier, norm=np.inf, eps=eps, eps_step=2 * eps,
                            batch_size=batch_size)
    for attack in autoattack.attacks:  # its default attacks show progress bars
        attack.set_params(verbose=False)
    return {
        "apgd-ce": AutoProjectedGradientDescent(
            classifier, norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=100, nb_random_init=1,
            batch_size=batch_size, loss_type="cross_entropy", verbose=False),
        "square": SquareAttack(classifier, norm=np.inf, eps=eps, max_iter=5000, p_init=0.8,
                               nb_restarts=1, batch_size=batch_size, verbose=False),
        "autoattack": autoattack,
    }
