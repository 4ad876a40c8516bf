"""Classical solvers, one module each, for both problem families.

Power control (:class:`~feasnet.problems.instances.PowerControlInstances`) solvers return an
:class:`AllocationResult`; MISO beamforming (:class:`~feasnet.problems.miso.MisoInstances`)
solvers return a :class:`BeamformingResult`. ``solve(name, instances, workers=None, **options)``
dispatches on the type of ``instances`` and then by name (``min-power`` exists in both
families); modules are imported on first use so that ``import feasnet`` stays light.
``executor=``, ``address=`` and ``checkpoint_dir=`` choose where per-instance solves run (see
:mod:`feasnet.solvers.executor`).
"""

from __future__ import annotations

import importlib
import os
from typing import Any, overload

from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.miso import MisoInstances
from feasnet.solvers.executor import executor_scope
from feasnet.solvers.result import AllocationResult, BeamformingResult, Result

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
    "global": (
        "feasnet.solvers.global_power_control",
        "certified global optimum: branch and bound over power boxes (gap 1e-3)",
    ),
}
"""Power-control solver name -> (module, one-line description); the module's ``solve``."""

MISO_SOLVERS: dict[str, tuple[str, str, str]] = {
    "min-power": (
        "feasnet.solvers.miso_min_power",
        "solve",
        "minimum-power QoS beamformers (SOCP, cvxpy + Clarabel)",
    ),
    "wmmse": (
        "feasnet.solvers.wmmse",
        "solve",
        "WMMSE with QoS from the interior anchor, SOCP beamformer updates (upper-bound baseline)",
    ),
    "wmmse-sdr": (
        "feasnet.solvers.wmmse",
        "solve_sdr",
        "WMMSE with QoS, beamformer updates by semidefinite relaxation (SOCP fallback)",
    ),
    "global": (
        "feasnet.solvers.global_miso",
        "solve",
        "certified global optimum: branch-reduce-and-bound over the rate region (gap 1e-3)",
    ),
}
"""MISO solver name -> (module, function, one-line description)."""

FAMILIES = ("power-control", "miso")
"""Problem families :func:`available` and :func:`solve` know."""


def available(family: str = "power-control") -> dict[str, str]:
    """Solver names and their descriptions for ``family`` (one of :data:`FAMILIES`)."""
    if family == "power-control":
        return {name: desc for name, (_, desc) in SOLVERS.items()}
    if family == "miso":
        return {name: desc for name, (_, _, desc) in MISO_SOLVERS.items()}
    raise ValueError(f"family: expected one of {', '.join(FAMILIES)}, got {family!r}")


def family_of(instances: Any) -> str:
    """``"power-control"`` or ``"miso"`` for a batch of instances (TypeError otherwise)."""
    from feasnet.problems.registry import FAMILIES as _FAMILIES
    from feasnet.problems.registry import family_of as _family_of

    if not any(isinstance(instances, c.instances_type) for c in _FAMILIES.values()):
        raise TypeError(
            "instances: expected PowerControlInstances or MisoInstances, got "
            f"{type(instances).__name__}"
        )
    return _family_of(instances).family


@overload
def solve(
    name: str,
    instances: PowerControlInstances,
    workers: int | None = None,
    executor: str | None = None,
    address: str | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> AllocationResult: ...


@overload
def solve(
    name: str,
    instances: MisoInstances,
    workers: int | None = None,
    executor: str | None = None,
    address: str | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> BeamformingResult: ...


def solve(
    name: str,
    instances: PowerControlInstances | MisoInstances,
    workers: int | None = None,
    executor: str | None = None,
    address: str | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Result:
    """Run the classical solver ``name`` (case-insensitive) on ``instances``.

    The registry is chosen by the type of ``instances``: :data:`SOLVERS` for power control
    (returns :class:`AllocationResult`), :data:`MISO_SOLVERS` for MISO beamforming (returns
    :class:`BeamformingResult`).

    Per-instance solvers (``gp``, ``sca``, MISO ``min-power``, ``wmmse``, ``wmmse-sdr``) run
    through :func:`~feasnet.solvers.parallel.solve_each`:

    * ``workers``: worker processes; ``None`` (the library default) or 1 solves in this
      process. From a script, ``workers > 1`` needs ``if __name__ == "__main__":`` around the
      calls (spawned workers re-import the main script); without it a
      :class:`~feasnet.solvers.parallel.WorkerStartError` says so. With ``executor="ray"``
      and no ``address``: the CPUs of the local Ray instance (default: all cores).
    * ``executor``: ``"process"`` or ``"ray"``; ``None`` keeps the enclosing
      :func:`~feasnet.solvers.executor.executor_scope` (default: local processes).
    * ``address``: Ray cluster to join (``"host:port"`` or ``"auto"``; implies ``"ray"``).
    * ``checkpoint_dir``: save finished chunks there and skip them on a rerun.

    Batched solvers (power-control ``min-power``, ``fw``, ``ga``) ignore ``executor``,
    ``address`` and ``checkpoint_dir``.
    """
    key = name.lower()
    if family_of(instances) == "miso":
        if key not in MISO_SOLVERS:
            raise KeyError(
                f"method: unknown MISO solver {name!r}; choose one of {', '.join(MISO_SOLVERS)}"
            )
        module_name, function, _ = MISO_SOLVERS[key]
        run = getattr(importlib.import_module(module_name), function)
    else:
        if key not in SOLVERS:
            raise KeyError(f"method: unknown solver {name!r}; choose one of {', '.join(SOLVERS)}")
        run = importlib.import_module(SOLVERS[key][0]).solve
    with executor_scope(executor, address, workers, checkpoint_dir):
        result: Result = run(instances, workers=workers, **options)
    return result


__all__ = [
    "FAMILIES",
    "MISO_SOLVERS",
    "SOLVERS",
    "AllocationResult",
    "BeamformingResult",
    "available",
    "family_of",
    "solve",
]
