"""Minimum-power MISO beamforming as a second-order cone program (cvxpy + Clarabel).

In normalized units (:func:`feasnet.problems.miso.normalized_instances`: noise 1, transmit
budget 1) the problem is

    minimize    ||V||_F^2
    subject to  SINR_k(V) >= gamma_k        for every user with a target gamma_k > 0.

Rotating beam ``v_k`` by a phase changes no SINR, so one may ask ``h_k^T v_k`` to be real and
non-negative; then ``SINR_k >= gamma_k`` is exactly the second-order cone

    Re(h_k^T v_k) >= sqrt(gamma_k) || [h_k^T v_j (j != k), 1] ||,      Im(h_k^T v_k) = 0,

and the problem is convex. Its optimal value is the least transmit power (in units of the
budget) that meets every target: the instance is feasible iff it is at most 1. This module is
an independent reference for the fast duality-based :func:`feasnet.problems.miso.minimum_power`.

Everything is written with real variables ``y = [Re vec(Y), Im vec(Y)]`` (``vec`` row-major)
and real parameter matrices, built once per ``(size, K, users with a target)`` and cached in
the process (DPP: re-solving only updates parameter values). The helpers that turn a complex
channel into those real rows are shared with :mod:`feasnet.solvers.wmmse`.

Tolerance polish: Clarabel meets the cones to about ``1e-8``, so a returned SINR may sit a
hair below its target. Scaling all beams by ``s >= 1`` raises every SINR (signal and
interference grow by ``s^2``, the noise does not), so the beams are scaled by the smallest
``s`` that puts every SINR at or above its target in float64 (:func:`scale_to_targets`; ``s``
differs from 1 by about the solver tolerance). The power then exceeds the optimum by the same
relative amount, far inside the ``1e-6`` tolerance of :func:`~feasnet.problems.miso.is_feasible`.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import torch

from feasnet.problems import miso
from feasnet.solvers.parallel import solve_each
from feasnet.solvers.result import BeamformingResult

DEFAULT_SOLVER = "CLARABEL"
"""Conic solver cvxpy hands the SOCPs to."""

ACCEPTED_STATUSES = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
_CACHE_SIZE = 32

NO_BUDGET = "infeasible: pc >= pmax, no transmit budget is left"
UNREACHABLE = "infeasible: the SINR targets cannot be met at any power"
OVER_BUDGET = (
    "infeasible: the minimum transmit power meeting the SINR targets exceeds eta (pmax - pc)"
)


# ---------------------------------------------------------------------------- instance helpers
def instance_batch(instance: dict[str, Any]) -> miso.MisoInstances:
    """A batch of one (complex128) from one instance dict of
    :func:`~feasnet.solvers.parallel.solve_each` (keys of ``MisoInstances.as_numpy``)."""
    return miso.MisoInstances.from_arrays(
        np.asarray(instance["H"])[None],
        instance["pmax"],
        instance["pc"],
        instance["eta"],
        instance["noise"],
        np.asarray(instance["sinr_min"], dtype=np.float64)[None],
        np.asarray(instance["weights"], dtype=np.float64)[None],
    )


def beam_shape(instance: dict[str, Any]) -> tuple[int, int]:
    """``(Nt, K)``, the shape of one instance's beams (NaN fallback of ``solve_each``)."""
    k, nt = np.shape(instance["H"])
    return nt, k


def real_gain_rows(channel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Real rows giving every beam gain as a linear function of the real variable vector.

    For a complex ``channel`` ``(K, m)`` and beams ``Y`` ``(m, K)`` stored as
    ``y = [Re Y.ravel(), Im Y.ravel()]`` (length ``2 m K``), returns ``(re, im)``, each
    ``(K, K, 2 m K)``, with ``re[k, j] @ y = Re (channel @ Y)[k, j]`` and likewise ``im``.
    """
    k_users, m = channel.shape
    size = m * k_users
    re = np.zeros((k_users, k_users, 2 * size))
    im = np.zeros((k_users, k_users, 2 * size))
    cols = np.arange(m) * k_users
    for j in range(k_users):
        re[:, j, cols + j] = channel.real
        re[:, j, size + cols + j] = -channel.imag
        im[:, j, cols + j] = channel.imag
        im[:, j, size + cols + j] = channel.real
    return re, im


def unpack(y: np.ndarray, m: int, k_users: int) -> np.ndarray:
    """Complex beams ``(m, K)`` from the real vector ``[Re Y.ravel(), Im Y.ravel()]``."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    size = m * k_users
    return (y[:size] + 1j * y[size:]).reshape(m, k_users)


def pack(beams: np.ndarray) -> np.ndarray:
    """Inverse of :func:`unpack`."""
    flat = np.asarray(beams).reshape(-1)
    return np.concatenate([flat.real, flat.imag])


def sinr_np(channel: np.ndarray, beams: np.ndarray) -> np.ndarray:
    """``(K,)`` SINRs for noise 1: ``channel`` ``(K, m)``, ``beams`` ``(m, K)``."""
    power = np.abs(channel @ beams) ** 2
    signal = np.diag(power)
    return signal / (power.sum(axis=1) - signal + 1.0)


def scale_to_targets(channel: np.ndarray, beams: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Scale ``beams`` by the least ``s >= 1`` with every SINR at or above ``gamma`` (noise 1).

    ``SINR_k(s V) = s^2 S_k / (s^2 I_k + 1)``, so user ``k`` needs
    ``s^2 >= gamma_k / (S_k - gamma_k I_k)`` (when ``S_k > gamma_k I_k``; otherwise no scaling
    helps and the beams are returned unchanged). A relative margin of ``1e-12`` absorbs
    rounding.
    """
    power = np.abs(channel @ beams) ** 2
    signal = np.diag(power)
    interference = power.sum(axis=1) - signal
    active = gamma > 0
    short = active & (signal < gamma * (interference + 1.0))
    if not short.any():
        return beams
    slack = signal - gamma * interference
    if np.any(slack[short] <= 0):
        return beams
    needed = np.max(gamma[short] / slack[short]) * (1 + 1e-12)
    return beams * math.sqrt(max(needed, 1.0))


# ---------------------------------------------------------------------------- the SOCP
@dataclass
class _QosRows:
    """Cvxpy parameters of the phase-restricted QoS cones of the users with a target."""

    signal: list[cp.Parameter]  # (n,) Re h_k^T v_k row
    phase: list[cp.Parameter]  # (n,) Im h_k^T v_k row
    interference: list[cp.Parameter]  # (2(K-1), n) sqrt(gamma_k) [Re; Im] h_k^T v_j rows
    noise: list[cp.Parameter]  # (1,) sqrt(gamma_k)

    def constraints(self, y: cp.Variable) -> list[cp.Constraint]:
        out: list[cp.Constraint] = []
        for s, p, f, c in zip(self.signal, self.phase, self.interference, self.noise, strict=True):
            out.append(cp.SOC(s @ y, cp.hstack([f @ y, c])))
            out.append(p @ y == 0)
        return out

    def set_values(self, channel: np.ndarray, gamma: np.ndarray, users: np.ndarray) -> None:
        re, im = real_gain_rows(channel)
        k_users = channel.shape[0]
        for slot, k in enumerate(users):
            others = [j for j in range(k_users) if j != k]
            root = math.sqrt(float(gamma[k]))
            self.signal[slot].value = re[k, k]
            self.phase[slot].value = im[k, k]
            rows = np.concatenate([re[k, others], im[k, others]], axis=0)
            self.interference[slot].value = root * rows.reshape(-1, re.shape[2])
            self.noise[slot].value = np.array([root])


def qos_parameters(n: int, k_users: int, users: np.ndarray) -> _QosRows:
    """Empty QoS parameters for ``users`` (indices with a target), variable length ``n``."""
    rows = max(1, 2 * (k_users - 1))
    return _QosRows(
        signal=[cp.Parameter(n) for _ in users],
        phase=[cp.Parameter(n) for _ in users],
        interference=[cp.Parameter((rows, n)) for _ in users],
        noise=[cp.Parameter(1, nonneg=True) for _ in users],
    )


@dataclass
class _MinPowerProblem:
    problem: cp.Problem
    y: cp.Variable
    qos: _QosRows
    users: np.ndarray


def _min_power_problem(m: int, k_users: int, users: np.ndarray) -> _MinPowerProblem:
    """The compiled DPP problem for this size and set of users with targets (cached)."""
    return _min_power_problem_cached(m, k_users, tuple(int(u) for u in users))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _min_power_problem_cached(m: int, k_users: int, user_key: tuple[int, ...]) -> _MinPowerProblem:
    users = np.asarray(user_key, dtype=np.int64)
    n = 2 * m * k_users
    y = cp.Variable(n, name="y")
    qos = qos_parameters(n, k_users, users)
    problem = cp.Problem(cp.Minimize(cp.sum_squares(y)), qos.constraints(y))
    return _MinPowerProblem(problem, y, qos, users)


def _interference_pad(qos: _QosRows, k_users: int) -> None:
    """With one user there are no interferers: the single placeholder row is zero."""
    if k_users == 1:
        for p in qos.interference:
            p.value = np.zeros(p.shape)


def solve_min_power_socp(
    channel: np.ndarray, gamma: np.ndarray, solver: str = DEFAULT_SOLVER
) -> tuple[np.ndarray | None, str]:
    """Least-power beams meeting every target for noise 1 (no budget constraint).

    Args:
        channel: ``(K, m)`` complex (normalized) channel.
        gamma: ``(K,)`` SINR targets (linear).
        solver: cvxpy solver name.

    Returns:
        ``(beams (m, K) complex or None, status)``; None when the solver found no solution
        (``status`` is then ``"infeasible"`` for unreachable targets, else the solver status).
    """
    k_users, m = channel.shape
    users = np.flatnonzero(gamma > 0)
    if users.size == 0:
        return np.zeros((m, k_users), dtype=np.complex128), cp.OPTIMAL
    prob = _min_power_problem(m, k_users, users)
    prob.qos.set_values(channel, gamma, users)
    _interference_pad(prob.qos, k_users)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            prob.problem.solve(solver=solver, warm_start=False)
        status = str(prob.problem.status)
    except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
        return None, f"error ({type(exc).__name__}: {exc})"
    if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        return None, "infeasible"
    if status not in ACCEPTED_STATUSES or prob.y.value is None:
        return None, status
    beams = unpack(prob.y.value, m, k_users)
    beams[:, gamma <= 0] = 0.0  # users without target get no power at the optimum
    return scale_to_targets(channel, beams, gamma), status


def solve_instance(instance: dict[str, Any], options: dict[str, Any]) -> tuple[np.ndarray, str]:
    """Per-instance minimum-power SOCP (the ``solve_each`` signature).

    Args:
        instance: one instance's arrays (keys of ``MisoInstances.as_numpy``).
        options: ``solver`` (cvxpy solver name).

    Returns:
        ``(beams (Nt, K) complex [sqrt(W)], message)``; NaN beams and ``"infeasible: ..."``
        for an infeasible instance.
    """
    batch = instance_batch(instance)
    nt, k_users = batch.num_antennas, batch.num_users
    nan = np.full((nt, k_users), complex(math.nan, math.nan))
    if float(batch.transmit_budget[0]) <= 0:
        return nan, NO_BUDGET
    normalized = miso.normalized_instances(batch)
    channel = normalized.channel[0].numpy()
    gamma = batch.sinr_min[0].numpy()
    beams, status = solve_min_power_socp(channel, gamma, options.get("solver", DEFAULT_SOLVER))
    if beams is None:
        if status == "infeasible":
            return nan, UNREACHABLE
        failed = f"min-power: solver failed (status {status})"
        # Out-of-range data (e.g. sinr_min = 1e300) breaks the conic solver; the exact test
        # (uplink fixed point, no conic solver) still gives a verdict.
        exact = miso.minimum_power(batch)
        if not bool(exact.feasible[0]):
            return nan, f"{exact.reasons()[0]} (exact test; {failed})"
        return nan, failed
    if np.sum(np.abs(beams) ** 2) > 1.0:
        return nan, OVER_BUDGET
    physical = miso.beams_from_normalized(torch.as_tensor(beams)[None], batch)[0].numpy()
    note = f"min-power: solver status {status}" if status != cp.OPTIMAL else ""
    return physical, note


def solve(
    instances: miso.MisoInstances, workers: int | None = None, solver: str = DEFAULT_SOLVER
) -> BeamformingResult:
    """Minimum-power beams by the SOCP for every instance (one worker process per core).

    Args:
        instances: the batch.
        workers: worker processes (default: the available cores; 1 runs in-process).
        solver: cvxpy solver name (default Clarabel).

    Returns:
        A :class:`BeamformingResult` named ``"min-power"``: the least-power beams (every SINR
        at its target) for feasible instances; NaN beams and ``"infeasible: ..."`` otherwise.
    """
    beams, seconds, messages = solve_each(
        solve_instance,
        instances,
        {"solver": solver},
        workers=workers,
        label="min-power",
        output_shape=beam_shape,
        complex_output=True,
    )
    return BeamformingResult.checked("min-power", beams, instances, seconds, messages)


__all__ = [
    "DEFAULT_SOLVER",
    "beam_shape",
    "instance_batch",
    "pack",
    "real_gain_rows",
    "scale_to_targets",
    "sinr_np",
    "solve",
    "solve_instance",
    "solve_min_power_socp",
    "unpack",
]
