"""Successive convex approximation (SCA) of the exact sum rate, started from the GP point.

This is feasnet's strongest classical reference. In normalized units ``x = P / Pmax`` and
gains ``Hn = H Pmax / sigma^2`` (noise becomes 1), the rate of user ``u = (b, q)`` is a
difference of two concave functions of ``x``:

    R_u / W = log2(1 + s_u(x) + i_u(x)) - log2(1 + i_u(x)),
    s_u(x) = Hn[b, q, b] x[b, q],    i_u(x) = sum_{c != b} Hn[b, q, c] x[c, q].

At the iterate ``x^k`` the subtracted term is replaced by its tangent, which lies above it
everywhere (it is concave), so

    f_k(x) = sum_u [ log(1 + s_u + i_u) - i_u(x) / (1 + i_u(x^k)) ] + const

is a global lower bound of the true objective (times ``ln 2 / W``) that touches it at ``x^k``
(minorize-maximize). Maximizing ``f_k`` over the same linear constraints as the original
problem (``x >= 0``, ``sum_q x[b, q] <= 1``, the normalized QoS rows
``(I - B_q) x_q >= u_q / Pmax``) is a concave program (cvxpy ``log`` of an affine expression,
exponential cones, Clarabel), every iterate is feasible, and the true sum rate cannot
decrease. The tangent's slope enters only as the linear term ``g . x`` with

    g[c, q] = sum_{b != c} Hn[b, q, c] / (1 + i_{(b, q)}(x^k)),

so the subproblem is parametrized (DPP) by ``Hn`` per channel, ``g`` and the QoS data; it is
built once per ``(B, Q)`` and cached in the worker process.

Safeguards, all in float64: every new iterate is polished toward the interior anchor
(:func:`feasnet.solvers.gp.polish`) and accepted only if the true sum rate did not decrease;
the loop stops on a relative improvement below ``tolerance``, after ``max_iterations``
subproblems, or when a subproblem fails, and the best point is returned.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np

from feasnet.problems.instances import PowerControlInstances
from feasnet.solvers import gp
from feasnet.solvers.parallel import solve_each
from feasnet.solvers.result import AllocationResult

DEFAULT_MAX_ITERATIONS = 30
DEFAULT_TOLERANCE = 1e-6
DEFAULT_SOLVER = "CLARABEL"

_ACCEPTED_STATUSES = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)


@dataclass
class _Surrogate:
    problem: cp.Problem
    x: cp.Variable  # (B, Q) normalized powers
    gains: list[cp.Parameter]  # Q x (B, B): Hn[b, q, c] for channel q
    slope: cp.Parameter  # (B, Q): g
    qos_matrix: list[cp.Parameter]  # Q x (B, B): I - B_q
    qos_rhs: cp.Parameter  # (B, Q): u / Pmax


_SCA_CACHE: dict[tuple[int, int], _Surrogate] = {}


def _build_surrogate(num_bs: int, num_channels: int) -> _Surrogate:
    """The parametrized concave subproblem for one size (see the module docstring)."""
    x = cp.Variable((num_bs, num_channels), nonneg=True, name="x")
    gains = [
        cp.Parameter((num_bs, num_bs), nonneg=True, name=f"Hn{q}") for q in range(num_channels)
    ]
    qos_matrix = [cp.Parameter((num_bs, num_bs), name=f"M{q}") for q in range(num_channels)]
    slope = cp.Parameter((num_bs, num_channels), nonneg=True, name="g")
    qos_rhs = cp.Parameter((num_bs, num_channels), nonneg=True, name="v")
    received = cp.hstack([gains[q] @ x[:, q] for q in range(num_channels)])  # (U,) vector layout
    objective = cp.sum(cp.log(1.0 + received)) - cp.sum(cp.multiply(slope, x))
    constraints = [cp.sum(x, axis=1) <= 1.0]
    constraints += [qos_matrix[q] @ x[:, q] >= qos_rhs[:, q] for q in range(num_channels)]
    problem = cp.Problem(cp.Maximize(objective), constraints)
    return _Surrogate(problem, x, gains, slope, qos_matrix, qos_rhs)


def _surrogate(num_bs: int, num_channels: int) -> _Surrogate:
    key = (num_bs, num_channels)
    if key not in _SCA_CACHE:
        _SCA_CACHE[key] = _build_surrogate(num_bs, num_channels)
    return _SCA_CACHE[key]


@dataclass(frozen=True)
class Refinement:
    """Outcome of :func:`refine` on one instance.

    Attributes:
        power: ``(B, Q)`` best feasible allocation found [W].
        sum_rate: its float64 sum rate [bit/s].
        start_sum_rate: sum rate of the starting point [bit/s].
        iterations: subproblems solved.
        message: "" when the loop converged normally, else why it stopped.
    """

    power: np.ndarray
    sum_rate: float
    start_sum_rate: float
    iterations: int
    message: str


def refine(
    prepared: gp.PreparedInstance,
    start: np.ndarray,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    tolerance: float = DEFAULT_TOLERANCE,
    solver: str = DEFAULT_SOLVER,
) -> Refinement:
    """Minorize-maximize iterations from a feasible point of one feasible instance.

    Args:
        prepared: the instance (:func:`feasnet.solvers.gp.prepare_instance`), feasible.
        start: ``(B, Q)`` starting allocation [W]; polished toward the anchor first.
        max_iterations: most subproblems to solve.
        tolerance: stop when the relative sum-rate gain of an iteration is below this.
        solver: cvxpy solver for the concave subproblems.

    Returns:
        The best point found; its sum rate is never below the (polished) start's.
    """
    b, q = prepared.num_bs, prepared.num_channels
    arrays = prepared.instance.as_numpy()
    gain = arrays["H"][0]  # (B, Q, B)
    pmax, noise = float(arrays["pmax"][0]), float(arrays["noise"][0])
    hn = gain * (pmax / noise)  # (B, Q, B), dimensionless
    direct = np.einsum("bqb->bq", hn)  # (B, Q)
    off = ~np.eye(b, dtype=bool)
    interference_gain = hn * off[:, None, :]  # (B, Q, B), zero diagonal

    sub = _surrogate(b, q)
    for k in range(q):
        sub.gains[k].value = hn[:, k, :]
        ratio = prepared.beta[:, k, None] * interference_gain[:, k, :] / direct[:, k, None]
        sub.qos_matrix[k].value = np.eye(b) - ratio
    sub.qos_rhs.value = prepared.beta / direct  # u / Pmax = beta sigma^2 / (H_bb Pmax)

    best, _ = gp.polish(start, prepared)
    best_rate = start_rate = gp.true_sum_rate(best, prepared)
    message = ""
    iterations = 0
    for iterations in range(1, max_iterations + 1):
        x_k = best / pmax
        interference = np.einsum("bqc,cq->bq", interference_gain, x_k)  # (B, Q)
        sub.slope.value = np.einsum("bqc,bq->cq", interference_gain, 1.0 / (1.0 + interference))
        status = "not run"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # inaccurate: handled by the checks
                sub.problem.solve(solver=solver)
            status = str(sub.problem.status)
        except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
            status = f"error ({type(exc).__name__}: {exc})"
        x = sub.x.value
        if status not in _ACCEPTED_STATUSES or x is None or not np.all(np.isfinite(x)):
            message = f"sca: subproblem {iterations} failed (status {status}); kept the best point"
            break
        candidate, _ = gp.polish(np.asarray(x, dtype=np.float64) * pmax, prepared)
        rate = gp.true_sum_rate(candidate, prepared)
        if not rate >= best_rate:  # solver noise can only cost a rounding-level amount
            break
        gain_rel = (rate - best_rate) / max(abs(best_rate), 1e-300)
        best, best_rate = candidate, rate
        if gain_rel < tolerance:
            break
    else:
        message = f"sca: stopped after max_iterations={max_iterations}"
    return Refinement(best, best_rate, start_rate, iterations, message)


STARTS = ("gp", "multi")
"""Start modes: ``"gp"`` refines the GP point only; ``"multi"`` also refines the interior
anchor and one "dominant BS" point per BS (see :func:`starting_points`) and keeps the best."""


def starting_points(prepared: gp.PreparedInstance) -> dict[str, np.ndarray]:
    """Extra starting points for ``starts="multi"`` (not yet polished), each ``(B, Q)`` [W].

    * ``"anchor"``: the interior anchor.
    * ``"bs<b>"``: every BS at its minimal QoS power ``P_min`` except BS ``b``, which spends its
      whole budget (split like its anchor row, or evenly when that row is zero). Sum-rate
      optima with strong interference often sit near such points (one BS loud, the others at
      their QoS minimum), which a start at the balanced GP point does not reach.
    """
    num_bs, num_channels = prepared.num_bs, prepared.num_channels
    points = {"anchor": prepared.anchor.copy()}
    for b in range(num_bs):
        point = prepared.min_power.copy()
        row = prepared.anchor[b]
        total = float(row.sum())
        if total > 0:
            point[b] = row / total * prepared.pmax
        else:
            point[b] = prepared.pmax / num_channels
        points[f"bs{b}"] = point
    return points


def solve_instance(instance: dict[str, Any], options: dict[str, Any]) -> tuple[np.ndarray, str]:
    """Per-instance SCA (the :data:`~feasnet.solvers.parallel.InstanceSolver` signature).

    Starts from the GP point (:func:`feasnet.solvers.gp.gp_point`), or from the interior anchor
    when the GP fails; with ``starts="multi"`` also from :func:`starting_points`, keeping the
    best result.

    Args:
        instance: one instance's float64 arrays (see :func:`feasnet.solvers.gp.prepare_instance`).
        options: ``max_iterations``, ``tolerance``, ``solver`` (subproblems), ``gp_solver``,
            ``gp_formulation`` (see :data:`feasnet.solvers.gp.FORMULATIONS`) and ``starts``
            (one of :data:`STARTS`).

    Returns:
        ``(power (B, Q) [W], message)``; NaN power and the reason for an infeasible instance.
    """
    starts = options.get("starts", "gp")
    if starts not in STARTS:
        raise ValueError(f"starts: expected one of {STARTS}, got {starts!r}")
    prepared = gp.prepare_instance(instance)
    if not prepared.feasible:
        return np.full((prepared.num_bs, prepared.num_channels), math.nan), prepared.reason
    start, gp_message = gp.gp_point(
        prepared,
        solver=options.get("gp_solver", gp.DEFAULT_SOLVER),
        formulation=options.get("gp_formulation", "dgp"),
    )
    settings = {
        "max_iterations": int(options.get("max_iterations", DEFAULT_MAX_ITERATIONS)),
        "tolerance": float(options.get("tolerance", DEFAULT_TOLERANCE)),
        "solver": options.get("solver", DEFAULT_SOLVER),
    }
    best = refine(prepared, start, **settings)
    if starts == "multi":
        for point in starting_points(prepared).values():
            other = refine(prepared, point, **settings)
            if other.sum_rate > best.sum_rate:
                best = other
    return best.power, gp.join_messages(gp_message, best.message)


def solve(
    instances: PowerControlInstances,
    workers: int | None = None,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    tolerance: float = DEFAULT_TOLERANCE,
    solver: str = DEFAULT_SOLVER,
    gp_solver: str = gp.DEFAULT_SOLVER,
    starts: str = "gp",
    gp_formulation: str = "dgp",
) -> AllocationResult:
    """SCA from the GP point for every instance, one worker process per core (one thread each).

    Args:
        instances: the batch.
        workers: worker processes (default: the available cores; 1 runs in-process).
        max_iterations: most concave subproblems per instance.
        tolerance: relative sum-rate improvement below which an instance stops.
        solver: cvxpy solver for the subproblems (needs exponential cones).
        gp_solver: cvxpy solver for the starting GP.
        gp_formulation: ``"dgp"`` or ``"log"`` (see :data:`feasnet.solvers.gp.FORMULATIONS`).
        starts: ``"gp"`` (refine the GP point) or ``"multi"`` (also ``B + 1`` more starts, see
            :func:`starting_points`; about ``B + 2`` times slower, better on strong
            interference, where single-start SCA can stop at a local optimum).

    Returns:
        An :class:`AllocationResult` named ``"sca"``; ``seconds`` includes the starting GP.
    """
    if starts not in STARTS:
        raise ValueError(f"starts: expected one of {STARTS}, got {starts!r}")
    if gp_formulation not in gp.FORMULATIONS:
        raise ValueError(
            f"gp_formulation: expected one of {gp.FORMULATIONS}, got {gp_formulation!r}"
        )
    options = {
        "max_iterations": max_iterations,
        "tolerance": tolerance,
        "solver": solver,
        "gp_solver": gp_solver,
        "starts": starts,
        "gp_formulation": gp_formulation,
    }
    power, seconds, messages = solve_each(
        solve_instance, instances, options, workers=workers, label="sca"
    )
    return AllocationResult.from_power("sca", power, instances, seconds, messages)


__all__ = [
    "DEFAULT_MAX_ITERATIONS",
    "DEFAULT_TOLERANCE",
    "STARTS",
    "Refinement",
    "refine",
    "solve",
    "solve_instance",
    "starting_points",
]
