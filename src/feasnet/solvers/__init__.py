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

CLASSICAL: dict[str, dict[str, tuple[str, str, str]]] = {
    "power-control": {
        "min-power": (
            "feasnet.solvers.min_power",
            "solve",
            "componentwise-minimal QoS power P_min (eqs. 25-26)",
        ),
        "gp": ("feasnet.solvers.gp", "solve", "high-SINR geometric program (cvxpy, gp=True)"),
        "sca": (
            "feasnet.solvers.sca",
            "solve",
            "successive convex approximation of the exact sum rate from the GP point (reference)",
        ),
        "fw": (
            "feasnet.solvers.frank_wolfe",
            "solve",
            "Frank-Wolfe with away steps from the interior anchor (HiGHS LP per step)",
        ),
        "ga": (
            "feasnet.solvers.genetic",
            "solve",
            "genetic algorithm, batched in torch, feasible by repair",
        ),
        "global": (
            "feasnet.solvers.global_power_control",
            "solve",
            "certified global optimum: branch and bound over power boxes (gap 1e-3)",
        ),
    },
    "miso": {
        "min-power": (
            "feasnet.solvers.miso_min_power",
            "solve",
            "minimum-power QoS beamformers (SOCP, cvxpy + Clarabel)",
        ),
        "wmmse": (
            "feasnet.solvers.wmmse",
            "solve",
            "WMMSE with QoS from the interior anchor, SOCP beamformer updates "
            "(upper-bound baseline)",
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
    },
}
"""Family -> solver name -> (module, function, one-line description): the one registry of
classical solvers. A family defined outside the package adds its own entry."""

SOLVERS = CLASSICAL["power-control"]
"""The power-control solvers (a view of :data:`CLASSICAL`)."""
MISO_SOLVERS = CLASSICAL["miso"]
"""The MISO solvers (a view of :data:`CLASSICAL`)."""
FAMILIES = tuple(CLASSICAL)
"""Problem families with classical solvers."""


def available(family: str = "power-control") -> dict[str, str]:
    """Solver names and their descriptions for ``family`` (one of :data:`FAMILIES`)."""
    if family not in CLASSICAL:
        raise ValueError(f"family: expected one of {', '.join(CLASSICAL)}, got {family!r}")
    return {name: desc for name, (_, _, desc) in CLASSICAL[family].items()}


def family_of(instances: Any) -> str:
    """The registry name of the family of ``instances`` (TypeError for anything else)."""
    from feasnet.problems.registry import FAMILIES as _FAMILIES
    from feasnet.problems.registry import family_of as _family_of

    if not any(isinstance(instances, c.instances_type) for c in _FAMILIES.values()):
        raise TypeError(
            "instances: expected the instances of a registered family "
            f"({', '.join(_FAMILIES)}), got {type(instances).__name__}"
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

    The solver is looked up in :data:`CLASSICAL` under the family of ``instances`` (power
    control returns :class:`AllocationResult`, MISO beamforming :class:`BeamformingResult`).

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
    family = family_of(instances)
    registry = CLASSICAL.get(family, {})
    if key not in registry:
        raise KeyError(
            f"method: unknown {family} solver {name!r}; choose one of {', '.join(registry)}"
        )
    module_name, function, _ = registry[key]
    run = getattr(importlib.import_module(module_name), function)
    with executor_scope(executor, address, workers, checkpoint_dir):
        result: Result = run(instances, workers=workers, **options)
    return result


__all__ = [
    "CLASSICAL",
    "FAMILIES",
    "MISO_SOLVERS",
    "SOLVERS",
    "AllocationResult",
    "BeamformingResult",
    "available",
    "family_of",
    "solve",
]
