"""Facts about the machine that decide which CPU kernels TensorFlow runs (for reports and tests).

TensorFlow enables its oneDNN kernels by default only on some x86 CPUs (recent Intel ones); on
others, AMD EPYC included, it runs its Eigen kernels unless ``TF_ENABLE_ONEDNN_OPTS=1`` is set
*before* TensorFlow is imported. The two give results that differ by float round-off (and, for
saturated softmaxes, by whether a gradient is exactly zero), and speeds that differ by up to
several times, so every benchmark table and numerical report records both facts below.
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


def onednn_enabled() -> bool:
    """Whether the running TensorFlow uses its oneDNN CPU kernels (imports TensorFlow).

    The state is fixed when TensorFlow is imported: the default for this CPU, or
    ``TF_ENABLE_ONEDNN_OPTS`` (``0``/``1``) if it was set before the import.
    """
    from tensorflow.python.util import _pywrap_util_port  # noqa: PLC0415 (TF loaded lazily)

    return bool(_pywrap_util_port.IsMklEnabled())


def describe() -> str:
    """One line for a report: CPU model, core count and oneDNN state."""
    requested = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    source = f"TF_ENABLE_ONEDNN_OPTS={requested}" if requested else "TensorFlow's default"
    state = "on" if onednn_enabled() else "off"
    return f"{cpu_model()}, {os.cpu_count()} cores, oneDNN {state} ({source})"
