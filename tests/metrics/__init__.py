"""Package marker: test modules here import as ``metrics.test_*``, so their basenames may
repeat in other test folders (e.g. tests/cli/test_clever.py) under pytest's default import mode."""
