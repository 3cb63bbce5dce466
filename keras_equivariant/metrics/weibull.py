"""Reverse-Weibull (extreme-value type III) fit of batch maxima, as used by CLEVER.

CLEVER (Weng et al., ICLR 2018) estimates the local Lipschitz constant of a margin function
as the *location* of a reverse Weibull distribution fitted to per-batch maxima of sampled
gradient norms. This module implements the fit of the official CLEVER code (``mle_reg``):

1. rescale the maxima ``S`` to ``y = (max(S) - S) / (max(S) - min(S))`` (values in [0, 1]);
2. fit ``scipy.stats.weibull_min`` to ``y`` by maximum likelihood from several initial shapes
   (``y`` is the mirror image of ``S``, so this is ``weibull_max`` on ``S`` with the
   location started above ``max(S)``), with Nelder-Mead on the negative log-likelihood plus
   ``regularization * scale**2`` (``scale`` of the rescaled data; the official code's comment
   says "shape" but it penalizes ``theta[2]``, the scale);
3. keep the initialization whose fit has the highest Kolmogorov-Smirnov p-value;
4. map location and scale back to the units of ``S``.

Guards (the plain MLE can diverge to shape -> inf, location -> inf with a good K-S p-value)
fall back to the empirical maximum ``max(S)`` and say why in ``status``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import scipy.optimize
import scipy.stats

#: Initial shape parameters tried by the official CLEVER code.
DEFAULT_SHAPE_INITIALIZATIONS = (0.1, 1.0, 5.0, 10.0, 20.0, 50.0, 100.0)

#: Possible values of ``ReverseWeibullFit.status``.
FIT_STATUSES = ("fit", "constant", "zero", "ill_conditioned", "diverged")


@dataclasses.dataclass(frozen=True)
class ReverseWeibullFit:
    """Result of ``fit_reverse_weibull``.

    Attributes:
        estimate: the upper end-point estimate that CLEVER uses as the Lipschitz constant:
            ``location`` when ``status == "fit"``, otherwise the empirical maximum.
        location: fitted location (upper end point), in the units of the samples; NaN when
            no fit was attempted.
        shape: fitted shape ``c``; NaN when no fit was attempted.
        scale: fitted scale, in the units of the samples; NaN when no fit was attempted.
        ks_pvalue: Kolmogorov-Smirnov p-value of the chosen fit; NaN when no fit was attempted.
        max_sample: the largest sample, ``max(S)``.
        status: ``"fit"`` (the fit is used), ``"constant"`` (all samples equal up to a relative
            tolerance: nothing to fit, e.g. a linear model), ``"zero"`` (all samples are 0),
            ``"ill_conditioned"`` (best K-S p-value below the threshold or NaN) or
            ``"diverged"`` (location or shape beyond the sanity bounds).
    """

    estimate: float
    location: float
    shape: float
    scale: float
    ks_pvalue: float
    max_sample: float
    status: str

    @property
    def fallback(self) -> bool:
        """Whether ``estimate`` is the empirical maximum instead of the fitted location."""
        return self.status != "fit"

    def to_dict(self) -> dict:
        """Plain-Python dict (NaN becomes ``None``) for JSON."""
        return {
            field.name: _nan_to_none(getattr(self, field.name))
            for field in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, payload: dict) -> "ReverseWeibullFit":
        """Inverse of ``to_dict``."""
        values = dict(payload)
        for name in ("estimate", "location", "shape", "scale", "ks_pvalue", "max_sample"):
            values[name] = math.nan if values[name] is None else float(values[name])
        return cls(**values)


def fit_reverse_weibull(
    samples,
    shape_initializations=DEFAULT_SHAPE_INITIALIZATIONS,
    regularization: float = 0.01,
    min_pvalue: float = 1e-3,
    max_location_ratio: float = 2.0,
    max_shape: float = 1e3,
    relative_tolerance: float = 1e-6,
) -> ReverseWeibullFit:
    """Fits a reverse Weibull distribution to samples of a maximum (CLEVER's batch maxima).

    Args:
        samples: 1-D array of finite, non-negative values (at least 2).
        shape_initializations: initial shape parameters, one fit each (official CLEVER:
            ``(0.1, 1, 5, 10, 20, 50, 100)``).
        regularization: weight of the ``scale**2`` penalty added to the negative
            log-likelihood of the rescaled data (official ``--shape_reg 0.01``). 0 gives the
            plain MLE.
        min_pvalue: fits whose best K-S p-value is below this (or NaN) are rejected and the
            empirical maximum is used (official: 0.001).
        max_location_ratio: a fitted location above ``max_location_ratio * max(samples)`` is
            treated as divergence (fallback to the maximum).
        max_shape: a fitted shape above this is treated as divergence.
        relative_tolerance: samples whose range is at most ``relative_tolerance * max`` are
            treated as constant (fallback to the maximum, which is then exact).

    Returns:
        A ``ReverseWeibullFit``.
    """
    values = np.asarray(samples, dtype=np.float64)
    if values.ndim != 1 or values.size < 2:
        raise ValueError(
            f"`samples` must be a 1-D array with at least 2 values; received shape {values.shape}."
        )
    if not np.all(np.isfinite(values)) or values.min() < 0:
        raise ValueError(
            "`samples` must be finite and >= 0 (gradient norms); received values in "
            f"[{np.nanmin(values):.4g}, {np.nanmax(values):.4g}] with "
            f"{int(np.sum(~np.isfinite(values)))} non-finite."
        )
    if len(shape_initializations) == 0:
        raise ValueError("`shape_initializations` must hold at least one initial shape.")
    maximum = float(values.max())
    spread = maximum - float(values.min())
    nan = math.nan
    if maximum == 0.0:
        return ReverseWeibullFit(0.0, nan, nan, nan, nan, 0.0, "zero")
    if spread <= relative_tolerance * maximum:
        return ReverseWeibullFit(maximum, nan, nan, nan, nan, maximum, "constant")

    mirrored = (maximum - values) / spread  # in [0, 1]; weibull_min on this = weibull_max on S

    def regularized_fmin(func, x0, args=(), disp=0):
        def objective(theta, *objective_args):
            return func(theta, *objective_args) + regularization * theta[2] ** 2

        return scipy.optimize.fmin(objective, x0, args=args, disp=disp)

    best = None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # scipy warns freely while exploring bad parameters
        for initial_shape in shape_initializations:
            try:
                shape, loc, scale = scipy.stats.weibull_min.fit(
                    mirrored, float(initial_shape), optimizer=regularized_fmin
                )
            except (scipy.stats.FitError, ValueError, FloatingPointError):
                continue
            pvalue = scipy.stats.kstest(
                mirrored, "weibull_min", args=(shape, loc, scale)
            ).pvalue
            if np.isfinite(pvalue) and (best is None or pvalue > best[3]):
                best = (shape, loc, scale, pvalue)

    if best is None:
        return ReverseWeibullFit(maximum, nan, nan, nan, nan, maximum, "ill_conditioned")
    shape, loc, scale, pvalue = (float(v) for v in best)
    location = maximum - spread * loc
    scale = spread * scale
    if pvalue < min_pvalue:
        status = "ill_conditioned"
    elif not (np.isfinite(location) and location <= max_location_ratio * maximum
              and np.isfinite(shape) and shape <= max_shape):
        status = "diverged"
    else:
        status = "fit"
    estimate = location if status == "fit" else maximum
    return ReverseWeibullFit(estimate, location, shape, scale, pvalue, maximum, status)


def _nan_to_none(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
