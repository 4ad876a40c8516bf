"""Metrics computed the same way for every method (classical solver or learned model)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from feasnet.solvers.result import Result


@dataclass(frozen=True)
class MethodMetrics:
    """Summary of one method on one instance set.

    Attributes:
        method: method name.
        num_instances: instances evaluated.
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

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def counted_objective(result: Result) -> np.ndarray:
    """Per-instance objective ``(N,)``, zero where the allocation is infeasible."""
    rates = np.where(np.isfinite(result.objective), result.objective, 0.0)
    return np.where(result.feasible, rates, 0.0)


def evaluate(
    result: Result,
    reference: Result | None = None,
    baseline: Result | None = None,
) -> MethodMetrics:
    """Summarize ``result``; ``reference`` sets the sum-rate ratio, ``baseline`` the speed-up.

    ``reference`` and ``baseline`` must cover the same instances as ``result``.
    """
    n = len(result)
    for other, name in ((reference, "reference"), (baseline, "baseline")):
        if other is not None and len(other) != n:
            raise ValueError(f"{name}: covers {len(other)} instances, expected {n}")
    counted = counted_objective(result)
    feasible_rates = result.objective[result.feasible]
    time_per_sample = float(np.mean(result.seconds)) if n else math.nan
    ratio = math.nan
    if reference is not None:
        ref_mean = float(np.mean(counted_objective(reference)))
        ratio = float(np.mean(counted)) / ref_mean if ref_mean > 0 else math.nan
    speedup = math.nan
    if baseline is not None and time_per_sample > 0:
        speedup = float(np.mean(baseline.seconds)) / time_per_sample
    return MethodMetrics(
        method=result.method,
        num_instances=n,
        mean_objective=float(np.mean(counted)) if n else math.nan,
        mean_objective_feasible=float(np.mean(feasible_rates)) if feasible_rates.size else math.nan,
        violation_probability=float(1.0 - np.mean(result.feasible)) if n else math.nan,
        rtol=result.rtol,
        time_per_sample=time_per_sample,
        ratio_to_reference=ratio,
        speedup_over_baseline=speedup,
    )
