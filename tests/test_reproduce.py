"""The reproduce pipeline's presets and report helpers (the end-to-end run:
tests/cli/test_reproduce.py)."""

from keras_equivariant import reproduce
from keras_equivariant.choices import MODEL_NAMES


def test_presets_are_consistent():
    quick, paper = reproduce.PRESETS["quick"], reproduce.PRESETS["paper"]
    assert quick.depth == 4 and quick.protocol == "default" and quick.pgd_steps == 10
    assert quick.eps == (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255)
    # The quick preset shows the library's headline: one end-to-end C4-invariant model.
    assert "CascadedGCNN" in quick.models and quick.variant == "equivariant"
    assert [name for name in quick.models if reproduce.claims_c4_invariance(name, quick.variant)] \
        == ["CascadedGCNN"]
    # The paper's grid in normalized units (pixel eps = eps / 2), plus 0 for clean accuracy.
    assert paper.eps[0] == 0.0 and paper.eps[1] == 0.01 and paper.eps[-1] == 0.15
    assert len(paper.eps) == 16 and paper.epochs == 200 and paper.protocol == "paper"
    assert set(paper.models) == set(MODEL_NAMES)


def test_invariance_claims_and_error_format():
    assert reproduce.claims_c4_invariance("CascadedGCNN", "equivariant")
    assert not reproduce.claims_c4_invariance("CascadedGCNN", "paper")
    assert not reproduce.claims_c4_invariance("ParallelGCNN", "equivariant")
    # An exact invariance at float32 round-off must not print as 0.0.
    assert reproduce._format_error(8.1e-7) == "8.1e-07"
    assert reproduce._format_error(1.4523) == "1.45"
    assert reproduce._format_error(0.0) == "0.0e+00"
