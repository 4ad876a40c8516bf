"""The trivial feasible baseline: the componentwise-minimal QoS power ``P_min``."""

from __future__ import annotations

import time

import torch

from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances
from feasnet.solvers.result import AllocationResult


def solve(instances: PowerControlInstances, workers: int | None = None) -> AllocationResult:
    """``P_min`` of eqs. (25)-(26) for every instance, batched (``workers`` is unused)."""
    del workers
    start = time.perf_counter()
    mp = pc.minimum_power(instances.to(torch.float64))
    elapsed = (time.perf_counter() - start) / max(1, len(instances))
    power = torch.where(
        mp.feasible[:, None, None], mp.power, torch.full_like(mp.power, float("nan"))
    )
    return AllocationResult.checked("min-power", power, instances, elapsed, mp.reasons())
