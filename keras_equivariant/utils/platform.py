"""Facts about the machine that decide which CPU kernels TensorFlow runs (for reports and tests).

TensorFlow enables its oneDNN kernels by default only on x86 CPUs with neural-network
extensions (AVX-512 VNNI/BF16, AMX: recent Intel and AMD EPYC Zen 4 and later); on others, e.g.
AVX2-only EPYCs, it runs its Eigen kernels unless ``TF_ENABLE_ONEDNN_OPTS=1`` is set *before*
TensorFlow is imported (the command line and the benchmarks set it; a library import leaves it
alone, see docs/performance.md). The two give results that differ by float round-off (and, for
saturated softmaxes, by whether a gradient is exactly zero), and speeds that differ by up to
several times, so every benchmark table and numerical report records the facts below.
"""

from __future__ import annotations

import functools
import os
import platform


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


# Vector extensions that decide which oneDNN/Eigen kernels run, widest first (Linux flag names).
_INSTRUCTION_SETS = (
    ("amx_tile", "AMX"), ("avx512_bf16", "AVX-512 with BF16"), ("avx512f", "AVX-512"),
    ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2"),
)


@functools.lru_cache(maxsize=None)
def instruction_set() -> str:
    """The widest vector instruction set the CPU reports (``/proc/cpuinfo`` flags on Linux).

    Returns e.g. ``"AVX-512 with BF16"`` or ``"AVX2"``; ``"unknown instruction set"`` where the
    flags cannot be read (not Linux) or none of the known ones is present.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((set(line.split(":", 1)[1].split()) for line in handle
                          if line.lower().startswith("flags")), set())
    except OSError:
        flags = set()
    return next((name for flag, name in _INSTRUCTION_SETS if flag in flags),
                "unknown instruction set")


def onednn_enabled() -> bool:
    """Whether the running TensorFlow uses its oneDNN CPU kernels (imports TensorFlow).

    The state is fixed when TensorFlow is imported: the default for this CPU, or
    ``TF_ENABLE_ONEDNN_OPTS`` (``0``/``1``) if it was set before the import.
    """
    from tensorflow.python.util import _pywrap_util_port  # noqa: PLC0415 (TF loaded lazily)

    return bool(_pywrap_util_port.IsMklEnabled())


def describe() -> str:
    """One line for a report: CPU model, instruction set, core count and oneDNN state."""
    requested = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    source = f"TF_ENABLE_ONEDNN_OPTS={requested}" if requested else "TensorFlow's default"
    state = "on" if onednn_enabled() else "off"
    return (f"{cpu_model()} ({instruction_set()}), {os.cpu_count()} cores, oneDNN {state} "
            f"({source})")
