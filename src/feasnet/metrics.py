"""Metrics computed the same way for every method (classical solver or learned model).

Every mean comes with its standard error over the ``N`` instances it averages, so a table can
say how far apart two methods must be before the difference means something. Standard errors
use the sample standard deviation (``ddof=1``) and are NaN below two instances.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from feasnet.solvers.result import Result


@dataclass(frozen=True)
class MethodMetrics:
    """Summary of one method on one instance set.

    Attributes:
        method: method name.
        num_instances: instances evaluated (the ``n`` behind every mean below).
        mean_objective: mean objective (sum rate [bit/s] for power control, weighted sum rate
            [bit/s/Hz] for MISO) with every violating (or missing) allocation counted as zero,
            as the power-control paper does.
        mean_objective_feasible: mean objective over the feasible allocations only (NaN if
            there are none).
        violation_probability: fraction of instances whose allocation fails the float64 check.
        rtol: relative tolerance of that check.
        time_per_sample: mean wall time per instance [s].
        ratio_to_reference: ``mean_objective / reference.mean_objective`` (NaN without reference).
        speedup_over_baseline: ``baseline time / time`` (NaN without baseline).
        objective_standard_error: standard error of ``mean_objective``.
        ratio_standard_error: standard error of ``ratio_to_reference`` by the delta method for a
            ratio of two paired means: with ``x`` this method's and ``y`` the reference's
            per-instance objectives and ``R = mean(x) / mean(y)``,
            ``se = std(x - R y) / (sqrt(N) mean(y))``.
        time_standard_error: standard error of ``time_per_sample``. Zero for a batched method,
            which reports one batch time divided by the batch size for every instance (see
            ``batched_timing``): the spread of its time is not measured.
        violation_standard_error: binomial standard error of ``violation_probability``,
            ``sqrt(p (1 - p) / N)`` (zero when no or every instance violates).
        batched_timing: True when every instance reports the same time (up to rounding, a
            relative spread below 1e-9), i.e. the method was timed once per batch
            (``batch time / N``), not per instance.
        num_not_converged: instances whose ``result.converged`` is False; None when the result
            does not report convergence.
        ratio_to_upper_bound: ``mean_objective / mean(upper_bound)`` for per-instance upper
            bounds on the optimum (e.g. from a global solver's certificate); NaN without.
        upper_bound_ratio_standard_error: its standard error (delta method, as above).
    """

    method: str
    num_instances: int
    mean_objective: float
    mean_objective_feasible: float
    violation_probability: float
    rtol: float
    time_per_sample: float
    ratio_to_reference: float = math.nan
    speedup_over_baseline: float = math.nan
    objective_standard_error: float = math.nan
    ratio_standard_error: float = math.nan
    time_standard_error: float = math.nan
    violation_standard_error: float = math.nan
    batched_timing: bool = False
    num_not_converged: int | None = None
    ratio_to_upper_bound: float = math.nan
    upper_bound_ratio_standard_error: float = math.nan

    def as_dict(self) -> dict[str, float | int | str | bool | None]:
        return asdict(self)


def counted_objective(result: Result) -> np.ndarray:
    """Per-instance objective ``(N,)``, zero where the allocation is infeasible."""
    rates = np.where(np.isfinite(result.objective), result.objective, 0.0)
    return np.where(result.feasible, rates, 0.0)


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of ``values`` (``std(ddof=1) / sqrt(N)``; NaN if N < 2)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return math.nan
    return float(np.std(values, ddof=1) / math.sqrt(values.size))


def ratio_of_means(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``mean(x) / mean(y)`` for paired samples and its delta-method standard error.

    Returns ``(NaN, NaN)`` when ``mean(y)`` is not positive; the error is NaN below two pairs.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mean_y = float(np.mean(y)) if y.size else math.nan
    if not mean_y > 0:
        return math.nan, math.nan
    ratio = float(np.mean(x)) / mean_y
    return ratio, standard_error(x - ratio * y) / mean_y


def not_converged(result: Result) -> int | None:
    """Instances whose ``result.converged`` is False; None if the result has no such field."""
    converged = getattr(result, "converged", None)
    if converged is None:
        return None
    return int(np.sum(~np.asarray(converged, dtype=bool)))


def tightest_upper_bound(results: Iterable[Result]) -> np.ndarray | None:
    """Per-instance minimum of the ``upper_bound`` arrays the results carry (None if none do).

    Non-finite entries are ignored; an instance without any finite bound gets NaN.
    """
    bounds = [
        np.asarray(b, dtype=np.float64)
        for b in (getattr(r, "upper_bound", None) for r in results)
        if b is not None
    ]
    if not bounds:
        return None
    stacked = np.stack([np.where(np.isfinite(b), b, np.inf) for b in bounds])
    tightest = stacked.min(axis=0)
    return np.where(np.isfinite(tightest), tightest, np.nan)


def evaluate(
    result: Result,
    reference: Result | None = None,
    baseline: Result | None = None,
    upper_bound: np.ndarray | None = None,
) -> MethodMetrics:
    """Summarize ``result``; ``reference`` sets the objective ratio, ``baseline`` the speed-up.

    ``upper_bound`` (``(N,)``, same units as the objective) gives ``ratio_to_upper_bound``; use
    :func:`tightest_upper_bound` to take it from the results of a comparison. Instances whose
    bound is NaN are left out of that ratio. ``reference``, ``baseline`` and ``upper_bound``
    must cover the same instances as ``result``.
    """
    n = len(result)
    for other, name in ((reference, "reference"), (baseline, "baseline")):
        if other is not None and len(other) != n:
            raise ValueError(f"{name}: covers {len(other)} instances, expected {n}")
    if upper_bound is not None and np.shape(upper_bound) != (n,):
        raise ValueError(f"upper_bound: expected shape ({n},), got {np.shape(upper_bound)}")
    counted = counted_objective(result)
    feasible_rates = result.objective[result.feasible]
    seconds = np.asarray(result.seconds, dtype=np.float64)
    time_per_sample = float(np.mean(seconds)) if n else math.nan
    ratio = ratio_se = math.nan
    if reference is not None:
        ratio, ratio_se = ratio_of_means(counted, counted_objective(reference))
    bound_ratio = bound_se = math.nan
    if upper_bound is not None:
        known = np.isfinite(upper_bound)
        bound_ratio, bound_se = ratio_of_means(counted[known], np.asarray(upper_bound)[known])
    speedup = math.nan
    if baseline is not None and time_per_sample > 0:
        speedup = float(np.mean(baseline.seconds)) / time_per_sample
    violation = float(1.0 - np.mean(result.feasible)) if n else math.nan
    # a batched method reports batch time / N for every instance (equal up to rounding)
    batched = bool(n > 1 and np.ptp(seconds) <= 1e-9 * abs(time_per_sample))
    return MethodMetrics(
        method=result.method,
        num_instances=n,
        mean_objective=float(np.mean(counted)) if n else math.nan,
        mean_objective_feasible=float(np.mean(feasible_rates)) if feasible_rates.size else math.nan,
        violation_probability=violation,
        rtol=result.rtol,
        time_per_sample=time_per_sample,
        ratio_to_reference=ratio,
        speedup_over_baseline=speedup,
        objective_standard_error=standard_error(counted),
        ratio_standard_error=ratio_se,
        time_standard_error=0.0 if batched else standard_error(seconds),
        violation_standard_error=math.sqrt(violation * (1 - violation) / n) if n else math.nan,
        batched_timing=batched,
        num_not_converged=not_converged(result),
        ratio_to_upper_bound=bound_ratio,
        upper_bound_ratio_standard_error=bound_se,
    )
