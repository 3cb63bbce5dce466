"""One cache of compiled per-model functions (attack loops, logits, CLEVER samplers).

Keys are weak references to the models, so the cache never keeps a model alive; a compiled
function must reach its model only through a ``weakref`` for the same reason.
"""

from __future__ import annotations

import weakref

_CACHE = weakref.WeakKeyDictionary()


def cached_for_model(model, key, build):
    """The object ``build()`` returns for ``(model, key)``, built on the first call only.

    ``key`` must be hashable and describe everything that shapes the compiled graph (the
    configuration and the per-example input shape), never numeric settings passed as tensors.
    """
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        per_model[key] = build()
    return per_model[key]
