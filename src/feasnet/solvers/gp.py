"""High-SINR geometric-programming baseline (the paper's GP benchmark, section VII).

At high SINR ``log(1 + SINR) ~ log(SINR)``, so maximizing the sum rate becomes maximizing the
product of the SINRs, i.e. minimizing the product over users of
``(interference + noise) / signal``. In normalized units (``x = P / Pmax``, every ratio divided
by the user's direct gain) user ``u = (b, q)`` contributes the posynomial-over-monomial

    r_u(x) = ( sum_{c != b} K[b, q, c] x[c, q] + n[b, q] ) / x[b, q],
    K[b, q, c] = H[b, q, c] / H[b, q, b],      n[b, q] = sigma^2 / (H[b, q, b] Pmax),

(``n = 1 / Hn[b, q, b]`` with ``Hn = H Pmax / sigma^2``), and the geometric program is

    minimize    prod_u r_u(x)
    subject to  sum_q x[b, q] <= 1             (budget, every BS b)
                beta_u r_u(x) <= 1             (QoS, every user with beta_u > 0)
                x > 0.

The QoS row is exactly ``SINR_u >= beta_u``; a user with ``beta_u = 0`` would give the
degenerate row ``0 <= 1`` and is left out. Coefficients are dimensionless and, for path-loss
gains, lie within roughly ``1e-6 .. 1e6`` instead of the ``1e-13`` of raw watts and gains.

The problem is written once per ``(B, Q, set of QoS rows)`` with cvxpy parameters (it is DPP
under ``gp=True``; a hand-written log-domain variant compiles faster, see
:data:`FORMULATIONS`), cached in the worker process, and re-solved per instance by updating the
parameter values. Solver output is polished in float64 with
:func:`feasnet.problems.power_control.scale_toward_anchor` toward the closed-form interior
anchor, so every returned allocation passes the exact linear constraints (up to rounding).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import torch

from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.power_control_problem import LINEAR_RATE_SETS
from feasnet.problems.registry import problem_of, require_supported
from feasnet.solvers.parallel import solve_each
from feasnet.solvers.result import AllocationResult

DEFAULT_SOLVER = "CLARABEL"
"""Conic solver cvxpy hands the (log-transformed) GP to."""

COEFFICIENT_FLOOR = 1e-30
"""Zero interference ratios are raised to this value: DGP parameters must be positive. The
extra term only tightens a QoS row by a negligible amount, so GP points stay feasible."""

POLISH_REPORT = 1e-6
"""A polish step that moves a point by more than this fraction of the way back toward the
anchor is mentioned in the instance's message."""

_ACCEPTED_STATUSES = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
_CACHE_SIZE = 32


# ---------------------------------------------------------------------------- per-instance data
@dataclass(frozen=True)
class PreparedInstance:
    """One instance in the forms the per-instance solvers need.

    Attributes:
        instance: the batch of one (float64, CPU).
        feasible: result of the exact test :func:`~feasnet.problems.power_control.minimum_power`.
        reason: "" when feasible, else the human-readable reason.
        anchor: ``(B, Q)`` interior anchor [W] (NaN when infeasible).
        min_power: ``(B, Q)`` componentwise-minimal QoS power ``P_min`` [W] (NaN when the
            targets are unreachable).
        beta: ``(B, Q)`` minimum SINR of every user (linear).
    """

    instance: PowerControlInstances
    feasible: bool
    reason: str
    anchor: np.ndarray
    min_power: np.ndarray
    beta: np.ndarray

    @property
    def num_bs(self) -> int:
        return self.instance.num_bs

    @property
    def num_channels(self) -> int:
        return self.instance.num_channels

    @property
    def pmax(self) -> float:
        return float(self.instance.pmax[0])


def prepare_instance(instance: dict[str, Any]) -> PreparedInstance:
    """Wrap one instance dict (as passed by :func:`~feasnet.solvers.parallel.solve_each`).

    Args:
        instance: ``H`` ``(B, Q, B)``, ``pmax`` [W], ``noise`` [W], ``bandwidth`` [Hz] and
            ``min_rate`` ``(B, Q)`` [bit/s].
    """
    batch = PowerControlInstances.from_arrays(
        np.asarray(instance["H"], dtype=np.float64)[None],
        instance["pmax"],
        instance["noise"],
        instance["bandwidth"],
        np.asarray(instance["min_rate"], dtype=np.float64)[None],
        csi_error=instance.get("csi_error"),
        csi_corner=instance.get("csi_corner"),
    )
    mp = pc.minimum_power(batch)
    anchor = pc.interior_anchor(batch, min_power=mp)
    return PreparedInstance(
        instance=batch,
        feasible=bool(mp.feasible[0]),
        reason=mp.reasons()[0],
        anchor=anchor[0].numpy(),
        min_power=mp.power[0].numpy(),
        beta=pc.min_sinr(batch)[0].numpy(),
    )


def true_sum_rate(power: np.ndarray, prepared: PreparedInstance) -> float:
    """Float64 sum rate [bit/s] of one allocation ``(B, Q)`` [W]."""
    return float(pc.sum_rate(torch.as_tensor(power)[None], prepared.instance)[0])


def polish(power: np.ndarray, prepared: PreparedInstance) -> tuple[np.ndarray, float]:
    """Make a solver point exactly feasible.

    Tiny negative entries (solver round-off) are set to 0, then the point is moved along the
    segment toward the interior anchor just far enough to satisfy every linear constraint
    (:func:`~feasnet.problems.power_control.scale_toward_anchor`; feasible points are kept).

    Args:
        power: ``(B, Q)`` candidate [W].
        prepared: the instance (must be feasible).

    Returns:
        ``(power, t)``: the polished ``(B, Q)`` point [W] and the kept fraction ``t`` of the
        step from the anchor (1 = unchanged, 0 = the anchor itself).
    """
    candidate = torch.as_tensor(np.clip(power, 0.0, None), dtype=torch.float64)[None]
    anchor = torch.as_tensor(prepared.anchor, dtype=torch.float64)[None]
    scaled, t = pc.scale_toward_anchor(candidate, anchor, prepared.instance)
    return scaled[0].numpy(), float(t[0])


def polish_note(t: float, who: str) -> str:
    """Message fragment for a polish step that moved the point noticeably ("" otherwise)."""
    if t >= 1.0 - POLISH_REPORT:
        return ""
    return f"{who}: solver point missed a constraint; scaled toward the anchor (t={t:.6g})"


def join_messages(*parts: str) -> str:
    """Join non-empty message fragments with '; '."""
    return "; ".join(p for p in parts if p)


# ---------------------------------------------------------------------------- the GP
FORMULATIONS = ("dgp", "log")
"""``"dgp"``: the posynomial form above, solved by cvxpy with ``gp=True`` (default).
``"log"``: the same program after the change of variables ``y = log x``, written by hand as a
DCP problem with ``log_sum_exp`` (what ``gp=True`` produces internally, but vectorized). Both
give the same point; ``"log"`` compiles far faster for large ``B * Q`` (cvxpy's DGP
canonicalization expands every posynomial into scalar subexpressions: about 0.3 s at
``B, Q = 4, 5`` but ~20 s at ``10, 10``, against ~0.1 s for ``"log"``)."""


@dataclass
class _GPProblem:
    """A cached parametrized GP; parameters are set through :meth:`set_data`."""

    formulation: str
    problem: cp.Problem
    variable: cp.Variable  # "dgp": x (B, Q); "log": y = log x (U,) in vector layout
    ratio_coeff: cp.Parameter | None  # (U, B-1): K (or log K) for c != b; None when B = 1
    noise_coeff: cp.Parameter  # (U,) n, or (U, 1) log n
    qos_beta: cp.Parameter | None  # (k,) beta (or log beta) of the users with a QoS row
    qos_users: np.ndarray  # (k,) vector indices of those users

    def set_data(self, ratio: np.ndarray | None, noise: np.ndarray, beta: np.ndarray) -> None:
        """``ratio (U, B-1)``, ``noise (U,)``, ``beta (k,)``: positive, linear scale."""
        take_log = self.formulation == "log"
        convert = np.log if take_log else (lambda a: a)
        if self.ratio_coeff is not None and ratio is not None:
            self.ratio_coeff.value = convert(np.maximum(ratio, COEFFICIENT_FLOOR))
        self.noise_coeff.value = convert(noise).reshape(self.noise_coeff.shape)
        if self.qos_beta is not None:
            self.qos_beta.value = convert(beta)

    def solve(self, solver: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "too many subexpressions" on 1st build
            self.problem.solve(gp=self.formulation == "dgp", solver=solver, warm_start=False)

    def normalized_power(self, num_bs: int, num_channels: int) -> np.ndarray | None:
        """The solution as ``x = P / Pmax`` ``(B, Q)``, or None when there is none."""
        value = self.variable.value
        if value is None:
            return None
        value = np.asarray(value, dtype=np.float64)
        if self.formulation == "log":
            return np.exp(value).reshape(num_channels, num_bs).T
        return value


_GP_CACHE: dict[tuple[str, int, int, bytes], _GPProblem] = {}


def _other_columns(num_bs: int, num_channels: int) -> np.ndarray:
    """``(U, B-1)`` vector indices of the interferers of every user (same channel, c != b)."""
    return np.array(
        [
            [q * num_bs + c for c in range(num_bs) if c != b]
            for q in range(num_channels)
            for b in range(num_bs)
        ],
        dtype=np.int64,
    ).reshape(num_bs * num_channels, num_bs - 1)


def _build_dgp(num_bs: int, num_channels: int, qos_users: np.ndarray) -> _GPProblem:
    """The parametrized GP in posynomial form, for cvxpy's ``gp=True``."""
    u = num_bs * num_channels
    x = cp.Variable((num_bs, num_channels), pos=True, name="x")
    x_vec = cp.vec(x, order="F")  # x_vec[q*B + b] = x[b, q]
    noise_coeff = cp.Parameter(u, pos=True, name="n")
    ratio_coeff = None
    if num_bs > 1:
        ratio_coeff = cp.Parameter((u, num_bs - 1), pos=True, name="K")
        others = x_vec[_other_columns(num_bs, num_channels)]  # (U, B-1)
        numerator = cp.sum(cp.multiply(ratio_coeff, others), axis=1) + noise_coeff
    else:
        numerator = noise_coeff
    ratio = numerator / x_vec  # (U,) posynomials: (interference + noise) / signal
    constraints = [cp.sum(x, axis=1) <= 1.0]
    qos_beta = None
    if qos_users.size:
        qos_beta = cp.Parameter(qos_users.size, pos=True, name="beta")
        constraints.append(cp.multiply(qos_beta, ratio[qos_users]) <= 1.0)
    problem = cp.Problem(cp.Minimize(cp.prod(ratio)), constraints)
    return _GPProblem("dgp", problem, x, ratio_coeff, noise_coeff, qos_beta, qos_users)


def _build_log(num_bs: int, num_channels: int, qos_users: np.ndarray) -> _GPProblem:
    """The same GP in log variables ``y = log x`` as a DCP problem (``log_sum_exp``)."""
    u = num_bs * num_channels
    y = cp.Variable(u, name="y")  # vector layout
    log_noise = cp.Parameter((u, 1), name="log_n")
    ratio_coeff = None
    if num_bs > 1:
        ratio_coeff = cp.Parameter((u, num_bs - 1), name="log_K")
        terms = cp.hstack([y[_other_columns(num_bs, num_channels)] + ratio_coeff, log_noise])
        log_numerator = cp.log_sum_exp(terms, axis=1)  # (U,) log(interference + noise)
    else:
        log_numerator = cp.vec(log_noise, order="F")
    log_ratio = log_numerator - y  # (U,) log(1 / SINR)
    per_bs = cp.reshape(y, (num_channels, num_bs), order="C").T  # (B, Q)
    constraints = [cp.log_sum_exp(per_bs, axis=1) <= 0.0]
    qos_beta = None
    if qos_users.size:
        qos_beta = cp.Parameter(qos_users.size, name="log_beta")
        constraints.append(log_ratio[qos_users] + qos_beta <= 0.0)
    problem = cp.Problem(cp.Minimize(cp.sum(log_ratio)), constraints)
    return _GPProblem("log", problem, y, ratio_coeff, log_noise, qos_beta, qos_users)


def _gp_problem(
    formulation: str, num_bs: int, num_channels: int, qos_users: np.ndarray
) -> _GPProblem:
    key = (formulation, num_bs, num_channels, qos_users.tobytes())
    cached = _GP_CACHE.get(key)
    if cached is None:
        if len(_GP_CACHE) >= _CACHE_SIZE:
            _GP_CACHE.pop(next(iter(_GP_CACHE)))
        build = _build_dgp if formulation == "dgp" else _build_log
        cached = _GP_CACHE[key] = build(num_bs, num_channels, qos_users)
    return cached


def gp_point(
    prepared: PreparedInstance, solver: str = DEFAULT_SOLVER, formulation: str = "dgp"
) -> tuple[np.ndarray, str]:
    """Solve the high-SINR GP for one feasible instance and polish the result.

    Args:
        prepared: a feasible instance from :func:`prepare_instance`.
        solver: cvxpy solver name.
        formulation: one of :data:`FORMULATIONS`.

    Returns:
        ``(power, message)``: ``(B, Q)`` [W], always feasible; on a solver failure the interior
        anchor, with a message saying so.
    """
    if formulation not in FORMULATIONS:
        raise ValueError(f"formulation: expected one of {FORMULATIONS}, got {formulation!r}")
    b, q = prepared.num_bs, prepared.num_channels
    # Imperfect CSI: the GP (objective and QoS rows share their coefficients) is written for
    # the robust corner's gains; at high SINR that scales every SINR by the same factor, so the
    # maximizer is the one for the estimate, and the polish below keeps the robust rows.
    arrays = prepared.instance.constraint_side().as_numpy()
    gain = arrays["H"][0]  # (B, Q, B)
    direct = np.einsum("bqb->bq", gain)  # (B, Q)
    pmax, noise = float(arrays["pmax"][0]), float(arrays["noise"][0])
    beta_vec = prepared.beta.T.reshape(-1)  # vector layout
    qos_users = np.flatnonzero(beta_vec > 0)
    gp = _gp_problem(formulation, b, q, qos_users)

    coeff = None
    if b > 1:
        ratios = (gain / direct[:, :, None]).transpose(1, 0, 2)  # (Q, B, B): [q, b, c]
        mask = ~np.eye(b, dtype=bool)
        coeff = np.stack([ratios[k][mask].reshape(b, b - 1) for k in range(q)]).reshape(-1, b - 1)
    gp.set_data(coeff, (noise / (direct * pmax)).T.reshape(-1), beta_vec[qos_users])

    status = "not run"
    try:
        gp.solve(solver)
        status = str(gp.problem.status)
    except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
        status = f"error ({type(exc).__name__}: {exc})"
    x = gp.normalized_power(b, q) if status in _ACCEPTED_STATUSES else None
    if x is None or not np.all(np.isfinite(x)):
        note = f"gp: solver {solver} failed (status {status}); returned the interior anchor"
        return prepared.anchor.copy(), note
    power, t = polish(x * pmax, prepared)
    inaccurate = f"gp: solver status {status}" if status != cp.OPTIMAL else ""
    return power, join_messages(inaccurate, polish_note(t, "gp"))


def solve_instance(instance: dict[str, Any], options: dict[str, Any]) -> tuple[np.ndarray, str]:
    """Per-instance GP (the :data:`~feasnet.solvers.parallel.InstanceSolver` signature).

    Args:
        instance: one instance's float64 arrays (see :func:`prepare_instance`).
        options: ``solver`` (cvxpy solver name, default :data:`DEFAULT_SOLVER`) and
            ``formulation`` (one of :data:`FORMULATIONS`, default ``"dgp"``).

    Returns:
        ``(power (B, Q) [W], message)``; NaN power and the reason for an infeasible instance.
    """
    prepared = prepare_instance(instance)
    if not prepared.feasible:
        return np.full((prepared.num_bs, prepared.num_channels), math.nan), prepared.reason
    return gp_point(
        prepared,
        solver=options.get("solver", DEFAULT_SOLVER),
        formulation=options.get("formulation", "dgp"),
    )


def solve(
    instances: PowerControlInstances,
    workers: int | None = None,
    solver: str = DEFAULT_SOLVER,
    formulation: str = "dgp",
) -> AllocationResult:
    """The high-SINR GP for every instance, one worker process per core (one thread each).

    Args:
        instances: the batch.
        workers: worker processes (default: the available cores; 1 runs in-process).
        solver: cvxpy solver name (default Clarabel).
        formulation: ``"dgp"`` (cvxpy ``gp=True``) or ``"log"`` (hand-written log-domain
            convex program; same point, much faster to compile for large ``B * Q``).

    Returns:
        An :class:`AllocationResult` named ``"gp"``; ``seconds`` is the per-instance wall time
        inside the worker (the first instance of a size in each worker includes building the
        cvxpy problem).
    """
    require_supported(problem_of(instances), "gp", LINEAR_RATE_SETS)
    if formulation not in FORMULATIONS:
        raise ValueError(f"formulation: expected one of {FORMULATIONS}, got {formulation!r}")
    options = {"solver": solver, "formulation": formulation}
    power, seconds, messages = solve_each(
        solve_instance, instances, options, workers=workers, label="gp"
    )
    return AllocationResult.checked("gp", power, instances, seconds, messages)


__all__ = [
    "DEFAULT_SOLVER",
    "FORMULATIONS",
    "PreparedInstance",
    "gp_point",
    "join_messages",
    "polish",
    "prepare_instance",
    "solve",
    "solve_instance",
    "true_sum_rate",
]
