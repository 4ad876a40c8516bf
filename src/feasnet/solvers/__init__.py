"""Classical power-control solvers, one module each, all returning :class:`AllocationResult`.

``solve(name, instances, workers=None, **options)`` dispatches by name; modules are imported
on first use so that ``import feasnet`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from feasnet.problems.instances import PowerControlInstances
from feasnet.solvers.result import AllocationResult

SOLVERS: dict[str, tuple[str, str]] = {
    "min-power": (
        "feasnet.solvers.min_power",
        "componentwise-minimal QoS power P_min (eqs. 25-26)",
    ),
    "gp": ("feasnet.solvers.gp", "high-SINR geometric program (cvxpy, gp=True)"),
    "sca": (
        "feasnet.solvers.sca",
        "successive convex approximation of the exact sum rate from the GP point (reference)",
    ),
    "fw": (
        "feasnet.solvers.frank_wolfe",
        "Frank-Wolfe with away steps from the interior anchor (HiGHS LP per step)",
    ),
    "ga": ("feasnet.solvers.genetic", "genetic algorithm, batched in torch, feasible by repair"),
}
"""Solver name -> (module, one-line description)."""


def available() -> dict[str, str]:
    """Solver names and their descriptions."""
    return {name: desc for name, (_, desc) in SOLVERS.items()}


def solve(
    name: str, instances: PowerControlInstances, workers: int | None = None, **options: Any
) -> AllocationResult:
    """Run the classical solver ``name`` (case-insensitive) on ``instances``."""
    key = name.lower()
    if key not in SOLVERS:
        raise KeyError(f"method: unknown solver {name!r}; choose one of {', '.join(SOLVERS)}")
    module = importlib.import_module(SOLVERS[key][0])
    result: AllocationResult = module.solve(instances, workers=workers, **options)
    return result


__all__ = ["SOLVERS", "AllocationResult", "available", "solve"]
