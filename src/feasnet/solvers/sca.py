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

Stopping rule and final polish (float64). Every new iterate is polished toward the interior
anchor (:func:`feasnet.solvers.gp.polish`) and accepted only if the true sum rate increased.
MM converges only linearly, and near a point where a low-power user's rate is steeply curved it
stalls at the conic solver's accuracy (about 1e-9 relative), well short of stationarity. So
once an MM step gains less than :data:`SQP_SWITCH`, the point is handed to a sequential
quadratic programming method (scipy SLSQP) on the *exact* sum rate with the same linear
constraints, started there and accepted only if it is better; the next MM step then verifies
it. An instance has converged when

* the relative sum-rate gain of the last MM step is below ``tolerance``, and
* the relative Frank-Wolfe gap ``max_{s in polytope} <grad R(x), s - x> / R(x)`` is at most
  ``gap_tolerance``. It is zero exactly at a first-order stationary (KKT) point of the
  polytope-constrained problem and bounds the sum-rate gain any first-order move could
  promise, relative to the objective; it costs one LP (HiGHS).

A subproblem that the solver fails on is retried with the solvers of
:data:`FALLBACK_SOLVERS` from the same iterate. The loop is capped at ``max_iterations`` MM
steps; an instance that stops at the cap, or stalls (neither MM nor SQP improves while the gap
is still above its tolerance), gets a message starting with :data:`NOT_CONVERGED` with the last
gain and gap, and ``converged=False`` in the result.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import torch
from scipy.optimize import linprog, minimize

from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances
from feasnet.solvers import gp
from feasnet.solvers.parallel import solve_each
from feasnet.solvers.result import AllocationResult

DEFAULT_MAX_ITERATIONS = 200
"""Most MM subproblems per start (a hard cap; converged instances stop far earlier)."""
DEFAULT_TOLERANCE = 1e-6
"""Relative sum-rate gain of an MM step below which the MM part has converged."""
DEFAULT_GAP_TOLERANCE = 1e-6
"""Relative Frank-Wolfe gap at or below which a point counts as stationary."""
DEFAULT_SOLVER = "CLARABEL"
FALLBACK_SOLVERS = ("ECOS", "SCS")
"""Tried in turn on the same subproblem when the main solver fails on it."""
SQP_MAX_ITERATIONS = 200
"""Iteration cap of one SLSQP run."""
SQP_SWITCH = 1e-4
"""An MM step gaining less than this (relative) hands the point to the SQP polish. Earlier
SQP is faster but can leave MM's basin: on ``table2-8`` test instances, SQP after the first
MM step ended up to 1.7% below the 30-step MM point on 5 of 500 instances."""
FRANK_WOLFE_STEPS = 20
"""Most Frank-Wolfe steps that close the gap once MM and SQP no longer improve."""
NOT_CONVERGED = "sca: not converged"
"""Start of the message of an instance that did not meet both tolerances."""

_ACCEPTED_STATUSES = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
_STEP_SIZES = 2.0 ** -np.arange(53)


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


class _ExactRate:
    """The exact objective of one instance in normalized units, for the SQP and the gap.

    ``value(x)`` is ``sum_u [log(1 + s_u + i_u) - log(1 + i_u)]`` (the sum rate divided by
    ``W / ln 2``, in nats) for ``x = P / Pmax`` of shape ``(B, Q)``; the constraints are the
    budget and QoS rows ``G x <= h`` of :func:`~feasnet.problems.power_control.
    linear_constraints` (vector layout ``x[q * B + b]``) plus ``x >= 0``.
    """

    def __init__(self, prepared: gp.PreparedInstance, hn: np.ndarray) -> None:
        b, q = prepared.num_bs, prepared.num_channels
        self.shape = (b, q)
        self.hn = hn  # (B, Q, B)
        self.cross = hn * (~np.eye(b, dtype=bool))[:, None, :]  # (B, Q, B), zero diagonal
        cons = pc.linear_constraints(prepared.instance)
        u = b * q
        self.G = cons.G[0, u:].numpy()  # (B + U, U): budget and QoS rows
        self.h = cons.h[0, u:].numpy()

    def to_vector(self, x: np.ndarray) -> np.ndarray:
        return x.T.reshape(-1)

    def to_matrix(self, v: np.ndarray) -> np.ndarray:
        b, q = self.shape
        return v.reshape(q, b).T

    def value_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective [nats] and its gradient ``(B, Q)`` at ``x (B, Q)``."""
        total = np.einsum("bqc,cq->bq", self.hn, x)
        interference = np.einsum("bqc,cq->bq", self.cross, x)
        value = float(np.sum(np.log1p(total) - np.log1p(interference)))
        grad = np.einsum("bqc,bq->cq", self.hn, 1.0 / (1.0 + total))
        grad -= np.einsum("bqc,bq->cq", self.cross, 1.0 / (1.0 + interference))
        return value, grad

    def frank_wolfe_vertex(self, x: np.ndarray) -> tuple[float, np.ndarray | None]:
        """Relative Frank-Wolfe gap at ``x (B, Q)`` and the LP vertex attaining it.

        Returns:
            ``(gap, s)``: ``max_s <grad, s - x> / value`` over the polytope (one LP) and the
            maximizer ``s (B, Q)``; ``(inf, None)`` when the gradient is not finite or the LP
            fails.
        """
        value, grad = self.value_and_gradient(x)
        g = self.to_vector(grad)
        if not (math.isfinite(value) and np.isfinite(g).all()):
            return math.inf, None
        scale = max(float(np.abs(g).max()), 1e-300)
        res = linprog(-g / scale, A_ub=self.G, b_ub=self.h, bounds=(0, None), method="highs")
        if res.status != 0 or res.x is None or not np.isfinite(res.x).all():
            return math.inf, None
        gap = max(float(g @ (res.x - self.to_vector(x))), 0.0)
        return gap / max(abs(value), 1e-300), self.to_matrix(np.clip(res.x, 0.0, None))

    def frank_wolfe_gap(self, x: np.ndarray) -> float:
        """The relative Frank-Wolfe gap of :meth:`frank_wolfe_vertex`."""
        return self.frank_wolfe_vertex(x)[0]

    def frank_wolfe_steps(
        self, x: np.ndarray, gap_tolerance: float, steps: int
    ) -> tuple[np.ndarray, float]:
        """Up to ``steps`` Frank-Wolfe steps on the exact objective from ``x (B, Q)``.

        Each step moves toward the LP vertex by the best of the step sizes ``2^-k``,
        ``k = 0..52`` (near-active rows make the useful step tiny), and only if the objective
        increases; it stops once the gap is within ``gap_tolerance``.

        Returns:
            ``(x, gap)``: the last point (a convex combination of feasible points) and its gap.
        """
        gap, vertex = self.frank_wolfe_vertex(x)
        for _ in range(steps):
            if gap <= gap_tolerance or vertex is None:
                break
            value, _ = self.value_and_gradient(x)
            trials = [np.clip(x + step * (vertex - x), 0.0, None) for step in _STEP_SIZES]
            values = np.array([self.value_and_gradient(t)[0] for t in trials])
            values[~np.isfinite(values)] = -math.inf
            best = int(np.argmax(values))
            if not values[best] > value:
                break
            x = trials[best]
            gap, vertex = self.frank_wolfe_vertex(x)
        return x, gap

    def sqp(self, x: np.ndarray) -> np.ndarray | None:
        """SLSQP on the exact objective from ``x (B, Q)``; its last point or None."""
        value0, _ = self.value_and_gradient(x)
        scale = 1.0 / max(abs(value0), 1e-300)

        def fun(v: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = self.value_and_gradient(self.to_matrix(np.clip(v, 0.0, None)))
            return -value * scale, -self.to_vector(grad) * scale

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = minimize(
                fun,
                self.to_vector(x),
                jac=True,
                method="SLSQP",
                bounds=[(0.0, None)] * x.size,
                constraints=[{"type": "ineq", "fun": lambda v: self.h - self.G @ v}],
                options={"ftol": 1e-14, "maxiter": SQP_MAX_ITERATIONS},
            )
        if res.x is None or not np.isfinite(res.x).all():
            return None
        return self.to_matrix(np.asarray(res.x, dtype=np.float64))


@dataclass(frozen=True)
class Refinement:
    """Outcome of :func:`refine` on one instance.

    Attributes:
        power: ``(B, Q)`` best feasible allocation found [W].
        sum_rate: its float64 sum rate [bit/s].
        start_sum_rate: sum rate of the starting point [bit/s].
        iterations: MM subproblems solved.
        message: "" when the loop converged without incident, else what happened; starts with
            :data:`NOT_CONVERGED` when the tolerances were not met.
        converged: last MM gain below ``tolerance`` and Frank-Wolfe gap within
            ``gap_tolerance``.
        gap: relative Frank-Wolfe gap at ``power`` (inf if not computed).
    """

    power: np.ndarray
    sum_rate: float
    start_sum_rate: float
    iterations: int
    message: str
    converged: bool = False
    gap: float = math.inf


def _solve_subproblem(sub: _Surrogate, solvers: tuple[str, ...]) -> tuple[np.ndarray | None, str]:
    """Solve the surrogate with the first of ``solvers`` that succeeds.

    Returns:
        ``(x, note)``: the normalized solution ``(B, Q)`` (None if every solver failed) and
        "" or which solvers failed with which status.
    """
    failures: list[str] = []
    for name in solvers:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # inaccurate: handled by the checks
                sub.problem.solve(solver=name, warm_start=False)
            status = str(sub.problem.status)
        except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
            status = f"error ({type(exc).__name__}: {exc})"
        x = sub.x.value
        if status in _ACCEPTED_STATUSES and x is not None and np.all(np.isfinite(x)):
            return np.asarray(x, dtype=np.float64), "; ".join(failures)
        failures.append(f"{name}: {status}")
    return None, "; ".join(failures)


def _set_gains_and_qos(
    sub: _Surrogate | _EfficientSurrogate,
    hn: np.ndarray,
    constraint_gain: np.ndarray,
    beta: np.ndarray,
    scale: float,
) -> None:
    """Fill the gain parameters ``hn`` ``(B, Q, B)`` of a subproblem and its QoS rows, which
    use the constraint-side gains ``constraint_gain * scale`` (``scale = pmax / noise``; the
    robust corner under imperfect CSI) and the minimum SINRs ``beta`` ``(B, Q)``."""
    b, q = beta.shape
    chn = constraint_gain * scale  # (B, Q, B)
    c_direct = np.einsum("bqb->bq", chn)
    c_cross = chn * (~np.eye(b, dtype=bool))[:, None, :]
    for k in range(q):
        sub.gains[k].value = hn[:, k, :]
        ratio = beta[:, k, None] * c_cross[:, k, :] / c_direct[:, k, None]
        sub.qos_matrix[k].value = np.eye(b) - ratio
    sub.qos_rhs.value = beta / c_direct  # u / Pmax = beta sigma^2 / (H_bb Pmax)


def refine(
    prepared: gp.PreparedInstance,
    start: np.ndarray,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    tolerance: float = DEFAULT_TOLERANCE,
    solver: str = DEFAULT_SOLVER,
    gap_tolerance: float = DEFAULT_GAP_TOLERANCE,
) -> Refinement:
    """Minorize-maximize iterations plus SQP polish from a feasible point of one instance.

    Args:
        prepared: the instance (:func:`feasnet.solvers.gp.prepare_instance`), feasible.
        start: ``(B, Q)`` starting allocation [W]; polished toward the anchor first.
        max_iterations: most MM subproblems to solve.
        tolerance: the MM part has converged when an MM step gains less than this (relative).
        solver: cvxpy solver for the concave subproblems (:data:`FALLBACK_SOLVERS` are tried
            when it fails).
        gap_tolerance: stationarity tolerance on the relative Frank-Wolfe gap.

    Returns:
        The best point found; its sum rate is never below the (polished) start's.
    """
    if max_iterations < 1:
        raise ValueError(f"max_iterations: expected >= 1, got {max_iterations}")
    b, q = prepared.num_bs, prepared.num_channels
    arrays = prepared.instance.as_numpy()
    gain = arrays["H"][0]  # (B, Q, B)
    pmax, noise = float(arrays["pmax"][0]), float(arrays["noise"][0])
    hn = gain * (pmax / noise)  # (B, Q, B), dimensionless
    exact = _ExactRate(prepared, hn)

    sub = _surrogate(b, q)
    constraint_gain = prepared.instance.constraint_gain[0].numpy()
    _set_gains_and_qos(sub, hn, constraint_gain, prepared.beta, pmax / noise)
    solvers = tuple(dict.fromkeys((solver, *FALLBACK_SOLVERS)))

    best, _ = gp.polish(start, prepared)
    best_rate = start_rate = gp.true_sum_rate(best, prepared)
    notes: list[str] = []
    gain_rel = gap = math.inf
    sqp_from: np.ndarray | None = None  # the point the last SQP run started from
    converged = stalled = False
    iterations = 0
    for iterations in range(1, max_iterations + 1):
        x_k = best / pmax
        interference = np.einsum("bqc,cq->bq", exact.cross, x_k)  # (B, Q)
        sub.slope.value = np.einsum("bqc,bq->cq", exact.cross, 1.0 / (1.0 + interference))
        x, failure = _solve_subproblem(sub, solvers)
        if failure:
            verdict = "all solvers failed" if x is None else "retried"
            notes.append(f"sca: subproblem {iterations} failed ({failure}); {verdict}")
        gain_rel = 0.0
        if x is not None:
            candidate, _ = gp.polish(x * pmax, prepared)
            rate = gp.true_sum_rate(candidate, prepared)
            gain_rel = (rate - best_rate) / max(abs(best_rate), 1e-300)
            if rate > best_rate:
                best, best_rate = candidate, rate
        if gain_rel >= SQP_SWITCH:
            continue
        if gain_rel < tolerance:
            gap = exact.frank_wolfe_gap(best / pmax)
            if gap <= gap_tolerance:
                converged = True
                break
        if sqp_from is None or not np.array_equal(sqp_from, best):
            sqp_from = best
            y = exact.sqp(best / pmax)
            if y is not None:
                candidate, _ = gp.polish(y * pmax, prepared)
                rate = gp.true_sum_rate(candidate, prepared)
                if rate > best_rate:
                    best, best_rate = candidate, rate
            continue
        if gain_rel >= tolerance:
            continue  # slow MM progress after a fruitless SQP: keep iterating
        # Here MM gains less than the tolerance and SQP has already run from this point, yet
        # the gap is above its tolerance: close it with Frank-Wolfe steps.
        y, _ = exact.frank_wolfe_steps(best / pmax, gap_tolerance, FRANK_WOLFE_STEPS)
        candidate, _ = gp.polish(y * pmax, prepared)
        rate = gp.true_sum_rate(candidate, prepared)
        if rate >= best_rate:
            best, best_rate = candidate, rate
        gap = exact.frank_wolfe_gap(best / pmax)
        converged = gap <= gap_tolerance
        stalled = not converged
        break
    if not converged:
        if not math.isfinite(gap):
            gap = exact.frank_wolfe_gap(best / pmax)
        why = "stalled" if stalled else f"iteration cap {max_iterations} reached"
        notes.append(
            f"{NOT_CONVERGED}: {why}, rel. improvement {gain_rel:.2g}, FW gap {gap:.2g} "
            f"(tolerances {tolerance:g}, {gap_tolerance:g})"
        )
    message = gp.join_messages(*_summarize(notes))
    return Refinement(best, best_rate, start_rate, iterations, message, converged, gap)


def _summarize(notes: list[str]) -> list[str]:
    """Keep the first subproblem-failure note and count the others."""
    failures = [n for n in notes if n.startswith("sca: subproblem")]
    rest = [n for n in notes if not n.startswith("sca: subproblem")]
    if len(failures) > 1:
        failures = [f"{failures[0]} (and {len(failures) - 1} more subproblems)"]
    return failures + rest


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


# ---------------------------------------------------------------------------- energy efficiency
EE_MARGIN = 1e-7
"""Relative margin on the energy-efficiency rows of the EE subproblem (keeps the conic
solver's answer inside the true set in float64)."""


@dataclass
class _EfficientSurrogate:
    problem: cp.Problem
    x: cp.Variable  # (B, Q) normalized powers
    gains: list[cp.Parameter]  # Q x (B, B): Hn[b, q, c]
    weighted_cross: list[cp.Parameter]  # Q x (B, B): Hn[b, q, c] / (1 + i_bq(x^k)), c != b
    slope: cp.Parameter  # (B, Q): g of the MM objective
    qos_matrix: list[cp.Parameter]
    qos_rhs: cp.Parameter
    offset: cp.Parameter  # (B, Q): log(1 + i^k) - i^k / (1 + i^k)
    efficiency: cp.Parameter  # (B, Q): ee * pmax * ln 2 / W * (1 + margin)


_EE_CACHE: dict[tuple[int, int, tuple[bool, ...]], _EfficientSurrogate] = {}


def _build_efficient_surrogate(
    num_bs: int, num_channels: int, rows: tuple[bool, ...]
) -> _EfficientSurrogate:
    """The MM subproblem with the energy-efficiency rows of the users in ``rows`` (flattened
    ``(B, Q)``) as the convex inner approximations ``ee pmax x_u <= R_lower_u(x)`` (nats per
    ``W / ln 2``), where ``R_lower`` replaces ``log(1 + i_u)`` by its tangent at ``x^k``."""
    x = cp.Variable((num_bs, num_channels), nonneg=True, name="x")
    shape = (num_bs, num_bs)
    gains = [cp.Parameter(shape, nonneg=True, name=f"Hn{q}") for q in range(num_channels)]
    weighted = [cp.Parameter(shape, nonneg=True, name=f"Wc{q}") for q in range(num_channels)]
    qos_matrix = [cp.Parameter(shape, name=f"M{q}") for q in range(num_channels)]
    slope = cp.Parameter((num_bs, num_channels), nonneg=True, name="g")
    qos_rhs = cp.Parameter((num_bs, num_channels), nonneg=True, name="v")
    offset = cp.Parameter((num_bs, num_channels), name="c")
    efficiency = cp.Parameter((num_bs, num_channels), nonneg=True, name="e")
    received = [gains[q] @ x[:, q] for q in range(num_channels)]
    objective = cp.sum(cp.log(1.0 + cp.hstack(received))) - cp.sum(cp.multiply(slope, x))
    constraints = [cp.sum(x, axis=1) <= 1.0]
    constraints += [qos_matrix[q] @ x[:, q] >= qos_rhs[:, q] for q in range(num_channels)]
    for q in range(num_channels):
        lower = cp.log(1.0 + received[q]) - weighted[q] @ x[:, q] - offset[:, q]
        active = [b for b in range(num_bs) if rows[b * num_channels + q]]
        if active:
            constraints.append(cp.multiply(efficiency[active, q], x[active, q]) <= lower[active])
    problem = cp.Problem(cp.Maximize(objective), constraints)
    return _EfficientSurrogate(
        problem, x, gains, weighted, slope, qos_matrix, qos_rhs, offset, efficiency
    )


def refine_energy_efficient(
    batch: PowerControlInstances,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    tolerance: float = DEFAULT_TOLERANCE,
    solver: str = DEFAULT_SOLVER,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, str, bool]:
    """Inner convex approximation of one feasible instance with energy-efficiency rows.

    From the interior anchor, every step maximizes the MM surrogate of the sum rate subject to
    the budget, the linear QoS rows and ``ee_u pmax x_u (1 + margin) <= R_lower_u(x)``, where
    ``R_lower_u <= R_u`` is the rate with the subtracted ``log(1 + i_u)`` replaced by its
    tangent at the iterate (concave in ``x``). The iterate satisfies the approximation with
    equality, so each subproblem is feasible, its solution is feasible for the true problem,
    and the true sum rate cannot decrease. A candidate that fails the float64 check (solver
    tolerance) is pulled back toward the iterate until it passes; it is kept only if it is
    better. Stops when a step gains less than ``tolerance`` (relative).

    Args:
        batch: one instance (``N = 1``, float64) with ``min_energy_efficiency``.
        start: a feasible ``(B, Q)`` starting point [W] (default: the interior anchor).

    Returns:
        ``(power (B, Q) [W], message, converged)``.
    """
    arrays = batch.as_numpy()
    b, q = batch.num_bs, batch.num_channels
    pmax, noise = float(arrays["pmax"][0]), float(arrays["noise"][0])
    bandwidth = float(arrays["bandwidth"][0])
    hn = arrays["H"][0] * (pmax / noise)  # (B, Q, B)
    cross = hn.copy()
    for k in range(b):
        cross[k, :, k] = 0.0
    ee = arrays["min_energy_efficiency"][0]  # (B, Q) bit/J
    beta = pc.min_sinr(batch)[0].numpy()
    rows = tuple(bool(v) for v in (ee > 0).reshape(-1))
    key = (b, q, rows)
    if key not in _EE_CACHE:
        _EE_CACHE[key] = _build_efficient_surrogate(b, q, rows)
    sub = _EE_CACHE[key]
    _set_gains_and_qos(sub, hn, batch.constraint_gain[0].numpy(), beta, pmax / noise)
    sub.efficiency.value = ee * pmax * math.log(2.0) / bandwidth * (1.0 + EE_MARGIN)
    solvers = tuple(dict.fromkeys((solver, *FALLBACK_SOLVERS)))

    def rate_of(x: np.ndarray) -> float:
        return float(pc.sum_rate(torch.as_tensor(x * pmax)[None], batch)[0])

    def feasible(x: np.ndarray) -> bool:
        return bool(pc.is_feasible(torch.as_tensor(x * pmax)[None], batch, rtol=0.0)[0])

    best = (pc.interior_anchor(batch)[0].numpy() if start is None else start) / pmax
    best_rate = rate_of(best)
    converged = False
    notes: list[str] = []
    for iteration in range(1, max_iterations + 1):
        interference = np.einsum("bqc,cq->bq", cross, best)
        weight = 1.0 / (1.0 + interference)
        sub.slope.value = np.einsum("bqc,bq->cq", cross, weight)
        for k in range(q):
            sub.weighted_cross[k].value = cross[:, k, :] * weight[:, k, None]
        sub.offset.value = np.log1p(interference) - interference * weight
        x, failure = _solve_subproblem(sub, solvers)  # type: ignore[arg-type]
        if x is None:
            notes.append(f"sca: subproblem {iteration} failed ({failure})")
            break
        x = np.clip(x, 0.0, None)
        for step in _STEP_SIZES:  # pull back toward the feasible iterate if needed
            candidate = best + step * (x - best)
            if feasible(candidate):
                break
        else:
            candidate = best
        rate = rate_of(candidate)
        gain_rel = (rate - best_rate) / max(abs(best_rate), 1e-300)
        if rate > best_rate:
            best, best_rate = candidate, rate
        if gain_rel < tolerance:
            converged = True
            break
    if not converged:
        notes.append(f"{NOT_CONVERGED}: iteration cap {max_iterations} reached")
    return best * pmax, gp.join_messages(*_summarize(notes)), converged


def _solve_energy_efficient(
    instance: dict[str, Any], options: dict[str, Any]
) -> tuple[np.ndarray, str]:
    """Per-instance SCA for instances carrying ``min_energy_efficiency``."""
    batch = PowerControlInstances.from_arrays(
        np.asarray(instance["H"], dtype=np.float64)[None],
        instance["pmax"],
        instance["noise"],
        instance["bandwidth"],
        np.asarray(instance["min_rate"], dtype=np.float64)[None],
        min_energy_efficiency=np.asarray(instance["min_energy_efficiency"], dtype=np.float64)[None],
        csi_error=instance.get("csi_error"),
        csi_corner=instance.get("csi_corner"),
    )
    mp = pc.minimum_power(batch)
    if not bool(mp.feasible[0]):
        return np.full((batch.num_bs, batch.num_channels), math.nan), mp.reasons()[0]
    settings = {
        "max_iterations": int(options.get("max_iterations", DEFAULT_MAX_ITERATIONS)),
        "tolerance": float(options.get("tolerance", DEFAULT_TOLERANCE)),
        "solver": options.get("solver", DEFAULT_SOLVER),
    }
    power, message, _ = refine_energy_efficient(batch, **settings)
    if options.get("starts", "gp") == "multi":
        # one start per BS: the anchor with every other BS turned down (EE ratios only grow
        # when powers drop; kept only where the float64 check passes, i.e. rate rows hold)
        anchor = pc.interior_anchor(batch)[0].numpy()
        rate = float(pc.sum_rate(torch.as_tensor(power)[None], batch)[0])
        for b in range(batch.num_bs):
            point = anchor * 0.01
            point[b] = anchor[b]
            if not bool(pc.is_feasible(torch.as_tensor(point)[None], batch, rtol=0.0)[0]):
                continue
            other, note, _ = refine_energy_efficient(batch, start=point, **settings)
            other_rate = float(pc.sum_rate(torch.as_tensor(other)[None], batch)[0])
            if other_rate > rate:
                power, message, rate = other, note, other_rate
    return power, message


def solve_instance(instance: dict[str, Any], options: dict[str, Any]) -> tuple[np.ndarray, str]:
    """Per-instance SCA (the :data:`~feasnet.solvers.parallel.InstanceSolver` signature).

    Instances carrying ``min_energy_efficiency`` take the inner-approximation path
    (:func:`refine_energy_efficient`, from the interior anchor, plus with ``starts="multi"``
    one start per BS with the other BSs turned down; the GP options do not apply).

    Starts from the GP point (:func:`feasnet.solvers.gp.gp_point`), or from the interior anchor
    when the GP fails; with ``starts="multi"`` also from :func:`starting_points`, keeping the
    best result.

    Args:
        instance: one instance's float64 arrays (see :func:`feasnet.solvers.gp.prepare_instance`).
        options: ``max_iterations``, ``tolerance``, ``gap_tolerance``, ``solver``
            (subproblems), ``gp_solver``,
            ``gp_formulation`` (see :data:`feasnet.solvers.gp.FORMULATIONS`) and ``starts``
            (one of :data:`STARTS`).

    Returns:
        ``(power (B, Q) [W], message)``; NaN power and the reason for an infeasible instance.
    """
    starts = options.get("starts", "gp")
    if starts not in STARTS:
        raise ValueError(f"starts: expected one of {STARTS}, got {starts!r}")
    if "min_energy_efficiency" in instance:
        return _solve_energy_efficient(instance, options)
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
        "gap_tolerance": float(options.get("gap_tolerance", DEFAULT_GAP_TOLERANCE)),
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
    gap_tolerance: float = DEFAULT_GAP_TOLERANCE,
) -> AllocationResult:
    """SCA from the GP point for every instance, one worker process per core (one thread each).

    Args:
        instances: the batch.
        workers: worker processes (default: the available cores; 1 runs in-process).
        max_iterations: most concave (MM) subproblems per start.
        tolerance: relative sum-rate gain of an MM step below which the MM part has converged.
        gap_tolerance: relative Frank-Wolfe gap at or below which a point is stationary; an
            instance converged when both tests pass (see the module docstring).
        solver: cvxpy solver for the subproblems (needs exponential cones).
        gp_solver: cvxpy solver for the starting GP.
        gp_formulation: ``"dgp"`` or ``"log"`` (see :data:`feasnet.solvers.gp.FORMULATIONS`).
        starts: ``"gp"`` (refine the GP point) or ``"multi"`` (also ``B + 1`` more starts, see
            :func:`starting_points`; about ``B + 2`` times slower, better on strong
            interference, where single-start SCA can stop at a local optimum).

    Returns:
        An :class:`AllocationResult` named ``"sca"``; ``seconds`` includes the starting GP;
        ``converged`` is False for infeasible instances and for those whose message starts
        with :data:`NOT_CONVERGED`.
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
        "gap_tolerance": gap_tolerance,
        "solver": solver,
        "gp_solver": gp_solver,
        "starts": starts,
        "gp_formulation": gp_formulation,
    }
    power, seconds, messages = solve_each(
        solve_instance, instances, options, workers=workers, label="sca"
    )
    result = AllocationResult.checked("sca", power, instances, seconds, messages)
    result.converged = converged_from_messages(messages, result.feasible)
    return result


def converged_from_messages(messages: list[str], feasible: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: feasible output and no :data:`NOT_CONVERGED` in the message."""
    flags = np.array([NOT_CONVERGED not in m for m in messages], dtype=bool)
    return flags & np.asarray(feasible, dtype=bool)


__all__ = [
    "DEFAULT_GAP_TOLERANCE",
    "DEFAULT_MAX_ITERATIONS",
    "DEFAULT_TOLERANCE",
    "FALLBACK_SOLVERS",
    "NOT_CONVERGED",
    "STARTS",
    "Refinement",
    "converged_from_messages",
    "refine",
    "solve",
    "solve_instance",
    "starting_points",
]
