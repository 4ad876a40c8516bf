"""Global optimum of the power-control sum rate with a certified upper bound (``--method global``).

Two exact branch-and-bound searches, both run on one instance at a time (vectorized in numpy over
batches of boxes) and both returning the best feasible powers plus a certified bound:

**Power boxes** (default, :func:`branch_and_bound`). In normalized powers ``x = P / Pmax``
(``U = B Q`` of them) and gains ``Hn = H Pmax / sigma^2``, the rate of user ``u`` is
``log2(1 + S_u + I_u) - log2(1 + I_u)``, with signal ``S_u`` and interference ``I_u`` linear in
``x``. It rises with the user's own power and falls with its interferers' powers, so over a box
``[low, high]`` it is at most the rate with own power at ``high`` and interferers at ``low``
(the mixed-monotonic bound). A second bound, kept when smaller, is second order in the box
width: ``log(1 + S + I)`` lies below its tangent at the box centre and ``-log(1 + I)`` below
its chord over the box, so the sum rate is below an affine function of ``x``, whose maximum over
the box and the per-BS budgets is a fractional knapsack. Near the stopping level, boxes where a
QoS row can bind also get the QoS rows into that affine bound through a Lagrangian (any
non-negative multipliers give a valid bound; near-optimal ones come from a few batched
interior-point steps on the small LP), and a child box keeps its parent's bound when smaller.
Before bounding, each box is shrunk to the part that can hold feasible points (the QoS rows
and budgets are linear in ``x``: bound tightening by interval propagation), and emptied boxes
are dropped. Each box also yields
candidates (the knapsack maximizer and the centre), made feasible by the closed-form step toward
the interior anchor; the incumbent starts from SCA (:func:`feasnet.solvers.sca.refine` from the
anchor and the "one BS loud" points).

**Rate boxes** (``algorithm="rate"``, :class:`RateRegion`): monotonic optimization over the
achievable rate region, see :mod:`feasnet.solvers.monotonic`. A vector of SINR targets is
achievable exactly when, on every channel ``q``, the minimal powers meeting the targets with
equality, ``x_q = (I - B_q(gamma))^{-1} v_q(gamma)``, are non-negative and fit every BS budget
(with ``v_q > 0`` on the users with a target, a solution ``x >= 0`` has ``B_q x < x`` there, so
the spectral radius of ``B_q`` is below 1; this is the test of
:func:`~feasnet.problems.power_control.minimum_power`). Exact but slower on strong
interference; kept as an independent cross-check.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.power_control_problem import LINEAR_RATE_SETS
from feasnet.problems.registry import problem_of, require_supported
from feasnet.solvers import gp, monotonic, sca
from feasnet.solvers.parallel import solve_each
from feasnet.solvers.result import AllocationResult

DEFAULT_GAP = monotonic.DEFAULT_GAP
DEFAULT_TIME_LIMIT = 600.0
ALGORITHMS = ("power", "rate")
"""``"power"``: branch and bound over power boxes; ``"rate"``: over rate boxes (slower)."""


class RateRegion:
    """The achievable rate region of one power-control instance, as a batched oracle.

    Args:
        gain: ``(B, Q, B)`` linear power gains (``H[b, q, c]``).
        pmax: budget per BS [W].
        noise: noise power [W].

    Rate vectors are ``(M, B * Q)`` [bit/s/Hz], flattened from ``(M, B, Q)`` in C order.
    """

    def __init__(self, gain: np.ndarray, pmax: float, noise: float) -> None:
        self.num_bs, self.num_channels, _ = gain.shape
        hn = np.asarray(gain, dtype=np.float64) * (pmax / noise)  # noise/Pmax units
        self.direct = np.einsum("bqb->bq", hn)  # (B, Q)
        off = 1.0 - np.eye(self.num_bs)
        # ratio[q, b, c] = Hn[b, q, c] / Hn[b, q, b] for c != b
        self.ratio = np.transpose(hn / self.direct[:, :, None], (1, 0, 2)) * off  # (Q, B, B)

    @property
    def dim(self) -> int:
        return self.num_bs * self.num_channels

    def upper_rates(self) -> np.ndarray:
        """``(B * Q,)`` rate of each user alone at full budget [bit/s/Hz] (no point exceeds it)."""
        return np.log2(1.0 + self.direct).reshape(-1)

    def minimal_powers(self, rates: np.ndarray) -> np.ndarray:
        """``(M, B, Q)`` minimal normalized powers ``P / Pmax`` meeting the rates ``(M, B*Q)``
        with equality; NaN (or negative entries) where the rates are not reachable."""
        m = rates.shape[0]
        gamma = np.expm1(np.asarray(rates, dtype=np.float64) * math.log(2.0))
        gamma = gamma.reshape(m, self.num_bs, self.num_channels)
        out = np.empty_like(gamma)
        eye = np.eye(self.num_bs)
        for q in range(self.num_channels):
            g = gamma[:, :, q]  # (M, B)
            system = eye - g[:, :, None] * self.ratio[q][None]  # (M, B, B)
            rhs = g / self.direct[None, :, q]  # (M, B)
            out[:, :, q] = _solve_small(system, rhs)
        return out

    def box_bound(self, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Upper bound ``(M,)`` on the sum of rates over the achievable points of each box.

        Every achievable ``r`` in ``[low, high]`` needs powers ``x >= x(low)`` (the minimal
        powers are monotone), so the interference of every user is at least the one at
        ``x(low)``; with it fixed there, user ``(b, q)`` needs ``x[b, q] >= c_bq (2^r - 1)``,
        ``c_bq = (1 + I_bq) / Hn[b,q,b]``, and the budget ``sum_q x[b, q] <= 1`` couples the
        users of one BS. Maximizing ``sum_q log2(1 + p_q / c_q)`` over ``sum_q p_q <= 1`` and
        the box is a water-filling per BS (water level by bisection, rounded up).
        """
        m = low.shape[0]
        x_low = np.clip(self.minimal_powers(low), 0.0, None)  # (M, B, Q)
        interference = np.einsum("qbc,mcq->mbq", self.ratio, x_low) * self.direct[None]
        cost = (1.0 + interference) / self.direct[None]  # (M, B, Q)
        lo = low.reshape(m, self.num_bs, self.num_channels)
        hi = high.reshape(m, self.num_bs, self.num_channels)
        p_lo = cost * np.expm1(lo * math.log(2.0))
        p_hi = cost * np.expm1(hi * math.log(2.0))
        level_lo = (p_lo + cost).min(axis=2)  # (M, B)
        level_hi = (p_hi + cost).max(axis=2)
        for _ in range(60):
            level = 0.5 * (level_lo + level_hi)
            total = np.clip(level[..., None] - cost, p_lo, p_hi).sum(axis=2)
            over = total >= 1.0
            level_hi = np.where(over, level, level_hi)
            level_lo = np.where(over, level_lo, level)
        p = np.clip(level_hi[..., None] - cost, p_lo, p_hi)
        filled = np.log2(1.0 + p / cost).sum(axis=2)  # (M, B)
        unconstrained = p_hi.sum(axis=2) <= 1.0
        per_bs = np.where(unconstrained, hi.sum(axis=2), np.minimum(filled, hi.sum(axis=2)))
        return per_bs.sum(axis=1)

    def __call__(self, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The :data:`~feasnet.solvers.monotonic.Oracle`: exact, so never undecided."""
        x = self.minimal_powers(rates)
        ok = np.isfinite(x).all(axis=(1, 2)) & (x >= 0).all(axis=(1, 2))
        ok &= (np.where(np.isfinite(x), x, np.inf).sum(axis=2) <= 1.0).all(axis=1)
        return ok, ~ok


def _solve_small(system: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``(M, n, n) x = (M, n)``; rows with a singular system give NaN."""
    try:
        return np.linalg.solve(system, rhs[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        out = np.full_like(rhs, math.nan)
        for i in range(system.shape[0]):
            with contextlib.suppress(np.linalg.LinAlgError):
                out[i] = np.linalg.solve(system[i], rhs[i])
        return out


def _interior_point_duals(
    general: np.ndarray,
    rhs: np.ndarray,
    objective: np.ndarray,
    iterations: int,
    done: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    check_at: tuple[int, ...] = (4, 6),
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate optimal duals of the general rows of a batch of small LPs on the unit box.

    ``max c . y`` s.t. ``G y <= h``, ``0 <= y <= 1``, with ``G`` ``(M, R, n)``, ``h`` ``(M, R)``,
    ``c`` ``(M, n)``: a fixed number of primal-dual interior-point steps (Mehrotra's predictor
    and corrector, separate primal and dual step lengths, infeasible start). The box rows are
    kept apart (diagonal in the normal equations ``G^T D G + diag``). An LP solved to high
    accuracy leaves the batch (further steps only lose precision), and so does every LP for
    which ``done(duals, rows)`` (``(K, R)`` current duals of the original rows ``rows``
    ``(K,)``) returns True, checked after the steps listed in ``check_at``.

    Returns:
        ``(duals, y)``: ``(M, R)`` non-negative multipliers of ``G y <= h`` (finite; zero where
        the iteration broke down) and the primal iterate ``(M, n)``.
    """
    m, r, n = general.shape
    general_t = np.swapaxes(general, 1, 2)  # (M, n, R)
    out_z, out_y = np.zeros((m, r)), np.full((m, n), 0.5)
    rows = np.arange(m)  # original index of each LP still in the batch

    def apply(y: np.ndarray) -> np.ndarray:  # G y: (M, R)
        return np.matmul(general, y[..., None])[..., 0]

    def apply_t(v: np.ndarray) -> np.ndarray:  # G^T v: (M, n)
        return np.matmul(general_t, v[..., None])[..., 0]

    y = np.full((m, n), 0.5)
    s_g = np.maximum(rhs - apply(y), 0.5)
    s_u, s_l = np.full((m, n), 0.5), np.full((m, n), 0.5)  # slacks of y <= 1 and -y <= 0
    z_g, z_u, z_l = np.ones((m, r)), np.ones((m, n)), np.ones((m, n))
    total = r + 2 * n
    with np.errstate(all="ignore"):
        for step_index in range(iterations):
            finished = (s_g * z_g).sum(axis=1) + (s_u * z_u).sum(axis=1)
            finished = (finished + (s_l * z_l).sum(axis=1)) / total <= 1e-11
            if done is not None and step_index in check_at:
                finished |= done(z_g, rows)
            if finished.any():
                out_z[rows[finished]], out_y[rows[finished]] = z_g[finished], y[finished]
                left = ~finished
                rows, general, general_t = rows[left], general[left], general_t[left]
                rhs, objective, y = rhs[left], objective[left], y[left]
                s_g, s_u, s_l = s_g[left], s_u[left], s_l[left]
                z_g, z_u, z_l = z_g[left], z_u[left], z_l[left]
                if rows.size == 0:
                    break
            rp_g = apply(y) + s_g - rhs
            rp_u = y + s_u - 1.0
            rp_l = -y + s_l
            r_d = apply_t(z_g) + z_u - z_l - objective
            mu = (s_g * z_g).sum(axis=1) + (s_u * z_u).sum(axis=1) + (s_l * z_l).sum(axis=1)
            mu = mu / total
            normal = np.matmul(general_t * (z_g / s_g)[:, None, :], general)
            normal[:, np.arange(n), np.arange(n)] += z_u / s_u + z_l / s_l + 1e-14
            inverse = np.linalg.inv(normal)
            if not np.isfinite(inverse).all():
                inverse = np.where(np.isfinite(inverse), inverse, 0.0)

            slacks, duals, residuals = (s_g, s_u, s_l), (z_g, z_u, z_l), (rp_g, rp_u, rp_l)
            step = (general, inverse, slacks, duals, residuals, r_d)
            dy, ds_g, ds_u, ds_l, dz_g, dz_u, dz_l = _newton_direction(
                *step, (-s_g * z_g, -s_u * z_u, -s_l * z_l)
            )
            a_p = _step_to_boundary((s_g, s_u, s_l), (ds_g, ds_u, ds_l))
            a_d = _step_to_boundary((z_g, z_u, z_l), (dz_g, dz_u, dz_l))
            mu_aff = (
                ((s_g + a_p * ds_g) * (z_g + a_d * dz_g)).sum(axis=1)
                + ((s_u + a_p * ds_u) * (z_u + a_d * dz_u)).sum(axis=1)
                + ((s_l + a_p * ds_l) * (z_l + a_d * dz_l)).sum(axis=1)
            ) / total
            sigma_mu = (np.clip(mu_aff / mu, 0.0, 1.0) ** 3 * mu)[:, None]
            dy, ds_g, ds_u, ds_l, dz_g, dz_u, dz_l = _newton_direction(
                *step,
                (
                    sigma_mu - s_g * z_g - ds_g * dz_g,
                    sigma_mu - s_u * z_u - ds_u * dz_u,
                    sigma_mu - s_l * z_l - ds_l * dz_l,
                ),
            )
            a_p = 0.99 * _step_to_boundary((s_g, s_u, s_l), (ds_g, ds_u, ds_l))
            a_d = 0.99 * _step_to_boundary((z_g, z_u, z_l), (dz_g, dz_u, dz_l))
            y = y + a_p * dy
            s_g, s_u, s_l = s_g + a_p * ds_g, s_u + a_p * ds_u, s_l + a_p * ds_l
            z_g, z_u, z_l = z_g + a_d * dz_g, z_u + a_d * dz_u, z_l + a_d * dz_l
    out_z[rows], out_y[rows] = z_g, y
    multipliers = np.where(np.isfinite(out_z), np.clip(out_z, 0.0, None), 0.0)
    return multipliers, np.where(np.isfinite(out_y), np.clip(out_y, 0.0, 1.0), 0.5)


def _newton_direction(
    general: np.ndarray,
    inverse: np.ndarray,
    slacks: tuple[np.ndarray, np.ndarray, np.ndarray],
    duals: tuple[np.ndarray, np.ndarray, np.ndarray],
    residuals: tuple[np.ndarray, np.ndarray, np.ndarray],
    dual_residual: np.ndarray,
    targets: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, ...]:
    """One Newton direction of :func:`_interior_point_duals`.

    Blocks are (general rows ``(M, R)``, ``y <= 1`` ``(M, n)``, ``-y <= 0`` ``(M, n)``);
    ``residuals`` are the primal residuals ``A y + s - b`` per block, ``dual_residual``
    ``A^T z - c`` ``(M, n)``, ``targets`` the right-hand sides ``t`` of ``s dz + z ds = t``
    per block and ``inverse`` ``(M, n, n)`` the inverse of ``G^T (z/s) G + diag``.

    Returns:
        ``(dy, ds_g, ds_u, ds_l, dz_g, dz_u, dz_l)``.
    """
    (s_g, s_u, s_l), (z_g, z_u, z_l), (rp_g, rp_u, rp_l) = slacks, duals, residuals
    t_g, t_u, t_l = targets
    in_g = (t_g + z_g * rp_g) / s_g
    in_u = (t_u + z_u * rp_u) / s_u
    in_l = (t_l + z_l * rp_l) / s_l
    right = -dual_residual - np.matmul(np.swapaxes(general, 1, 2), in_g[..., None])[..., 0]
    right = right - in_u + in_l
    dy = np.matmul(inverse, right[..., None])[..., 0]
    g_dy = np.matmul(general, dy[..., None])[..., 0]
    return (
        dy,
        -rp_g - g_dy,
        -rp_u - dy,
        -rp_l + dy,
        in_g + (z_g / s_g) * g_dy,
        in_u + (z_u / s_u) * dy,
        in_l - (z_l / s_l) * dy,
    )


def _step_to_boundary(
    values: tuple[np.ndarray, ...], changes: tuple[np.ndarray, ...]
) -> np.ndarray:
    """``(M, 1)`` largest ``alpha in [0, 1]`` keeping every ``value + alpha change >= 0``
    (``(M, K)`` blocks, values positive)."""
    alpha = np.ones((values[0].shape[0], 1))
    for value, change in zip(values, changes, strict=True):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(change < 0, -value / change, 1.0)
        np.minimum(alpha, ratio.min(axis=1, keepdims=True), out=alpha)
    return np.where(np.isfinite(alpha), np.clip(alpha, 0.0, 1.0), 0.0)


class PowerBox:
    """The sum-rate problem of one instance in normalized powers ``x = P / Pmax``, for boxes.

    User ``u = b * Q + q`` (C order of ``(B, Q)``) has signal ``S_u = Hn[b,q,b] x_u`` and
    interference ``I_u = sum_{c != b} Hn[b,q,c] x[c,q]`` (``Hn = H Pmax / sigma^2``, noise 1);
    its rate is ``log2(1 + S_u + I_u) - log2(1 + I_u)`` [bit/s/Hz]. Matrices are ``(U, U)``.

    Args:
        gain: ``(B, Q, B)`` linear power gains.
        pmax, noise: [W].
        beta: ``(B, Q)`` minimum SINRs (linear).
    """

    def __init__(self, gain: np.ndarray, pmax: float, noise: float, beta: np.ndarray) -> None:
        num_bs, num_channels, _ = gain.shape
        self.num_bs, self.num_channels = num_bs, num_channels
        dim = num_bs * num_channels
        hn = np.asarray(gain, dtype=np.float64) * (pmax / noise)
        self.direct = np.einsum("bqb->bq", hn).reshape(-1)  # (U,)
        cross = np.zeros((dim, dim))
        for b in range(num_bs):
            for q in range(num_channels):
                for c in range(num_bs):
                    if c != b:
                        cross[b * num_channels + q, c * num_channels + q] = hn[b, q, c]
        self.cross = cross  # (U, U): I = cross @ x
        self.total = cross + np.diag(self.direct)  # (U, U): S + I = total @ x
        self.beta = np.asarray(beta, dtype=np.float64).reshape(-1)  # (U,)
        self.bs_of = np.repeat(np.arange(num_bs), num_channels)  # (U,)
        self.tangent_rounds = 1
        self.dual_window = 0.02
        self._has_target = self.beta > 0  # (U,)
        with np.errstate(divide="ignore", invalid="ignore"):
            # QoS row u: x_u >= a_u + C_u . x
            self._qos_a = np.where(self._has_target, self.beta / self.direct, 0.0)  # (U,)
            self._qos_c = np.where(
                self._has_target[:, None], self.beta[:, None] * cross / self.direct[:, None], 0.0
            )  # (U, U)
            # constants of the hot loop (tighten, qos_dual_bound, repair)
            self._beta_or_one = np.where(self._has_target, self.beta, 1.0)  # (U,)
            self._cross_or_nan = np.where(cross > 0, cross, np.nan)  # (U, U)
        self._budget = np.zeros((num_bs, dim))  # (B, U): sum_q x[b, q]
        self._budget[self.bs_of, np.arange(dim)] = 1.0
        self._targets = np.nonzero(self._has_target)[0]  # (T,)
        # rows of the QoS dual LP in x: the budgets, then the QoS rows (C_u - e_u) . x <= -a_u
        self._dual_rows = np.concatenate(
            [self._budget, (self._qos_c - np.eye(dim))[self._targets]]
        )  # (R, U)
        self._dual_rhs = np.concatenate([np.ones(num_bs), -self._qos_a[self._targets]])  # (R,)

    @property
    def dim(self) -> int:
        return self.num_bs * self.num_channels

    def rates(self, x: np.ndarray) -> np.ndarray:
        """``(M, U)`` rates [bit/s/Hz] of powers ``x`` ``(M, U)``."""
        interference = x @ self.cross.T
        return np.log2(1.0 + self.direct * x / (1.0 + interference))

    def feasible(self, x: np.ndarray, rtol: float = 0.0) -> np.ndarray:
        """``(M,)`` exact check of ``x`` ``(M, U)``: ``x >= 0``, budgets, SINR targets."""
        budget = x.reshape(-1, self.num_bs, self.num_channels).sum(axis=2) <= 1.0 + rtol
        interference = x @ self.cross.T
        qos = self.direct * x >= self.beta * (1.0 + interference) * (1.0 - rtol)
        return (x >= 0).all(axis=1) & budget.all(axis=1) & qos.all(axis=1)

    def tighten(self, low: np.ndarray, high: np.ndarray, rounds: int = 3) -> np.ndarray:
        """Shrink boxes in place to the part that can hold feasible points; ``(M,)`` non-empty.

        Rules (each keeps every feasible point): a QoS row raises its own lower bound,
        ``x_u >= beta_u (1 + I_u(low)) / Hn_uu``, and caps its interferers,
        ``cross[u, v] x_v <= high_u Hn_uu / beta_u - 1 - I_u(low without v)``; a budget caps
        each power by what the other channels of its BS leave, ``1 - sum low``.
        """
        for _ in range(rounds):
            need = self.beta * (1.0 + low @ self.cross.T) / self.direct
            np.maximum(low, need, out=low)
            with np.errstate(divide="ignore", invalid="ignore"):
                room = high * self.direct / self._beta_or_one - 1.0
                slack = np.where(self._has_target, room - low @ self.cross.T, np.inf)  # (M, U)
                # x_v <= low_v + slack_u / cross[u, v] for every u that v interferes with
                caps = low[:, None, :] + slack[:, :, None] / self._cross_or_nan[None]
            caps = np.where(np.isnan(caps), np.inf, caps)
            np.minimum(high, caps.min(axis=1), out=high)
            used = low.reshape(-1, self.num_bs, self.num_channels).sum(axis=2)  # (M, B)
            left = 1.0 - used[:, self.bs_of] + low
            np.minimum(high, left, out=high)
        used = low.reshape(-1, self.num_bs, self.num_channels).sum(axis=2)
        return (low <= high * (1 + 1e-12) + 1e-15).all(axis=1) & (used <= 1.0 + 1e-12).all(axis=1)

    def bound(
        self,
        low: np.ndarray,
        high: np.ndarray,
        threshold: float | None = None,
        cap: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Upper bound ``(M,)`` [bit/s/Hz] on the sum rate over each box and the maximizer
        ``(M, U)`` of the linear bound (a candidate point).

        Two bounds, the smaller is kept:

        * monotone: own power at ``high``, interferers at ``low`` (first order in the width);
        * difference of concave functions: ``log(1 + S + I)`` lies below its tangent at the box
          centre, ``-log(1 + I)`` below its chord over ``[I(low), I(high)]``, so the rate sum is
          below an affine function of ``x``, whose maximum over the box and the budgets is a
          fractional knapsack per BS (second order in the width). The tangent point then moves
          toward that maximizer for :attr:`tangent_rounds` rounds; the smallest bound is kept.

        ``cap`` ``(M,)`` [bit/s/Hz]: known bounds (e.g. the parent box's), kept when smaller.
        With ``threshold`` [bit/s/Hz] given, every box whose bound is still above it and whose
        QoS rows can bind inside it also gets the QoS rows into the affine bound
        (:meth:`qos_dual_bound`).
        """
        i_low = low @ self.cross.T  # (M, U)
        i_high = high @ self.cross.T
        monotone = np.log1p(self.direct * high / (1.0 + i_low)).sum(axis=1)
        span = i_high - i_low
        with np.errstate(divide="ignore", invalid="ignore"):
            chord = np.where(
                span > 1e-12 * (1.0 + i_low),
                (np.log1p(i_high) - np.log1p(i_low)) / span,
                1.0 / (1.0 + i_low),
            )
        chord_const = (-np.log1p(i_low) + chord * i_low).sum(axis=1)
        linear = np.full(low.shape[0], np.inf)
        point = 0.5 * (low + high)  # first tangent point: the box centre
        best = point
        best_slope = np.zeros_like(low)
        best_const = np.zeros(low.shape[0])
        for _ in range(self.tangent_rounds):
            t0 = point @ self.total.T
            # bound(x) = const + slope . x
            slope = (1.0 / (1.0 + t0)) @ self.total - chord @ self.cross  # (M, U)
            const = (np.log1p(t0) - t0 / (1.0 + t0)).sum(axis=1) + chord_const
            maximizer = self._knapsack(slope, low, high)
            value = const + (slope * maximizer).sum(axis=1)
            value = value + 1e-12 * np.abs(const) + 1e-12  # round up by a hair
            better = value < linear
            linear = np.where(better, value, linear)
            best = np.where(better[:, None], maximizer, best)
            best_slope = np.where(better[:, None], slope, best_slope)
            best_const = np.where(better, const, best_const)
            point = 0.5 * (point + maximizer)  # next tangent: toward the bound's maximizer
        result = np.minimum(monotone, linear) / math.log(2.0)
        if cap is not None:
            result = np.minimum(result, cap)
        if threshold is not None and self._has_target.any():
            # far above the threshold the dual rarely prunes (measured: under 1 % of the boxes
            # more than 3 % above it): those boxes are split instead
            near = (result > threshold) & (result <= threshold * (1.0 + self.dual_window))
            rows = np.nonzero(near)[0]
            rows = rows[self._qos_can_bind(low[rows], high[rows])]
            if rows.size:
                dual, point_dual = self.qos_dual_bound(
                    best_slope[rows],
                    best_const[rows],
                    low[rows],
                    high[rows],
                    threshold=threshold * math.log(2.0),
                )
                dual = dual / math.log(2.0)
                tighter = dual < result[rows]
                result[rows[tighter]] = dual[tighter]
                best[rows[tighter]] = point_dual[tighter]
        return result, best

    def _qos_can_bind(self, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """``(M,)``: some QoS row is not implied by the box, i.e. ``x_u >= a_u + C_u . x``
        fails at the box point least favourable to it (own power low, interferers high)."""
        need = self._qos_a + high @ self._qos_c.T  # (M, U)
        return ((low < need) & self._has_target).any(axis=1)

    def qos_dual_bound(
        self,
        slope: np.ndarray,
        const: np.ndarray,
        low: np.ndarray,
        high: np.ndarray,
        iterations: int = 8,
        threshold: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Bound ``(M,)`` [nat/s/Hz] on ``const + slope . x`` over box, budgets and QoS rows.

        The QoS rows ``x_u >= a_u + C_u . x`` (``a_u = beta_u / Hn_uu``,
        ``C_uv = beta_u cross_uv / Hn_uu``) enter a Lagrangian: for any multipliers
        ``lam >= 0`` (``(M, U)``) and every feasible ``x`` of the box,
        ``slope . x <= -lam . a + max {(slope + lam - C^T lam) . x : box, budgets}``, the inner
        maximum being the fractional knapsack. So every ``lam >= 0`` gives a valid bound; good
        multipliers (close to the LP's optimal duals) come from a fixed number of batched
        primal-dual interior-point (Mehrotra predictor-corrector) steps on the LP in box
        coordinates ``x = low + (high - low) y``. Only the final knapsack evaluation matters
        for validity; a poor or failed interior-point run just gives a looser bound. With
        ``threshold`` [nat/s/Hz], a box leaves the interior-point batch early once its bound is
        at most that.

        Returns:
            ``(bound, point)``: the bound (rounded up) and the interior-point primal estimate
            ``(M, U)`` (near the LP maximizer; a candidate for the incumbent).
        """
        m, n = low.shape
        width = high - low  # (M, n)
        targets, general = self._targets, self._dual_rows  # general: (R, n) in x
        a_y = general[None] * width[:, None, :]  # (M, R, n) in y
        b_y = self._dual_rhs[None] - low @ general.T  # (M, R)
        norm = np.sqrt((a_y**2).sum(axis=2))
        norm = np.where(norm > 1e-300, norm, 1.0)
        c = slope * width
        c_scale = np.maximum(np.abs(c).max(axis=1), 1e-300)

        def lagrangian(duals: np.ndarray, rows: np.ndarray) -> np.ndarray:
            """Certified bound ``(K,)`` from the duals ``(K, R)`` of the boxes ``rows``."""
            # multipliers of the QoS rows in x units
            lam_rows = duals[:, self.num_bs :] * c_scale[rows, None] / norm[rows, self.num_bs :]
            lam = np.zeros((rows.size, n))
            lam[:, targets] = np.where(np.isfinite(lam_rows), np.clip(lam_rows, 0.0, None), 0.0)
            shifted = slope[rows] + lam - lam @ self._qos_c
            terms = shifted * self._knapsack(shifted, low[rows], high[rows])
            shift = lam @ self._qos_a
            value = const[rows] - shift + terms.sum(axis=1)
            error = np.abs(const[rows]) + shift + np.abs(terms).sum(axis=1)
            return value + 1e-12 * error + 1e-12

        def pruned(duals: np.ndarray, rows: np.ndarray) -> np.ndarray:
            return lagrangian(duals, rows) <= threshold

        duals, y = _interior_point_duals(
            a_y / norm[..., None],
            b_y / norm,
            c / c_scale[:, None],
            iterations,
            done=None if threshold is None else pruned,
        )
        return lagrangian(duals, np.arange(m)), low + y * width

    def _knapsack(self, slope: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Maximize ``slope . x`` over ``low <= x <= high`` and ``sum_q x[b, q] <= 1``:
        ``(M, U)``, filled greedily by slope per BS."""
        m = slope.shape[0]
        shape = (m, self.num_bs, self.num_channels)
        s, lo, hi = slope.reshape(shape), low.reshape(shape), high.reshape(shape)
        order = np.argsort(-s, axis=2)
        s_sorted = np.take_along_axis(s, order, axis=2)
        cap = np.take_along_axis(hi - lo, order, axis=2) * (s_sorted > 0)
        room = np.clip(1.0 - lo.sum(axis=2, keepdims=True), 0.0, None)
        before = np.cumsum(cap, axis=2) - cap
        take = np.clip(room - before, 0.0, cap)
        amount = np.empty_like(take)
        np.put_along_axis(amount, order, take, axis=2)
        return (lo + amount).reshape(m, -1)

    def repair(self, x: np.ndarray, anchor: np.ndarray) -> np.ndarray:
        """Move candidates ``(M, U)`` toward the feasible ``anchor`` ``(U,)`` until every linear
        constraint holds (largest step, closed form, as in ``scale_toward_anchor``)."""
        direction = x - anchor
        rows_g, rows_h = self._linear_rows()
        slack = np.clip(rows_h - rows_g @ anchor, 0.0, None)  # (R,)
        rate = direction @ rows_g.T  # (M, R)
        crosses = rate > slack
        with np.errstate(divide="ignore", invalid="ignore"):
            limits = np.where(crosses, slack / np.where(crosses, rate, 1.0), np.inf)
        t = np.clip(limits.min(axis=1), 0.0, 1.0) * (1.0 - 1e-12)
        return anchor + t[:, None] * direction

    def _linear_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """All constraints as ``G x <= h`` (``(R, U)``, ``(R,)``), QoS rows over ``Hn_uu``."""
        if not hasattr(self, "_rows"):
            dim = self.dim
            g_rows = [-np.eye(dim)]
            h_rows = [np.zeros(dim)]
            g_rows.append(self._budget)
            h_rows.append(np.ones(self.num_bs))
            qos = self.beta[:, None] * self.cross / self.direct[:, None] - np.eye(dim)
            g_rows.append(qos)
            h_rows.append(-self.beta / self.direct)
            self._rows = (np.concatenate(g_rows), np.concatenate(h_rows))
        return self._rows

    def branch_scores(self, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """``(M, U)`` how much each edge can move the sum rate: width times the largest slope
        of the rates in that power over the box (own rate at low interference, interfered
        rates at low interference)."""
        i_low = low @ self.cross.T
        t_low = low @ self.total.T
        own = self.direct / (1.0 + t_low)
        hurt = (1.0 / (1.0 + i_low)) @ self.cross
        return (high - low) * (own + hurt)


DEFAULT_MAX_OPEN_BOXES = 2_000_000
"""Open boxes at which the power-box search stops with its bound so far (about 0.4 GB of boxes
at U = 12, a few times that at the step's peak)."""


class OpenBoxLimitError(Exception):
    """The open list outgrew ``max_open_boxes``: the best point and the certified bound so far.

    Attributes:
        point: ``(U,)`` best feasible normalized powers.
        value: their sum rate [bit/s/Hz].
        upper_bound: certified bound [bit/s/Hz].
    """

    def __init__(self, point: np.ndarray, value: float, upper_bound: float) -> None:
        super().__init__("box limit")
        self.point, self.value, self.upper_bound = point, value, upper_bound


def branch_and_bound(
    box: PowerBox,
    low: np.ndarray,
    anchor: np.ndarray,
    incumbent: np.ndarray | None,
    gap: float,
    time_limit: float,
    batch: int = monotonic.DEFAULT_BATCH,
    max_open_boxes: int | None = None,
) -> tuple[np.ndarray, float, float, bool]:
    """Best-first branch and bound over power boxes (module docstring).

    Args:
        box: the instance.
        low: ``(U,)`` minimal normalized powers (every feasible point dominates them).
        anchor: ``(U,)`` a strictly feasible point (repair target, first incumbent).
        incumbent: ``(U,)`` a feasible point from a local method, or None.
        gap: relative gap to stop at.
        time_limit: seconds.
        batch: boxes per vectorized step.
        max_open_boxes: stop (not converged) once the open list holds more boxes than this,
            so that memory stays bounded (``(2 U + 1) * 8`` bytes a box, plus the step's
            copies); None = :data:`DEFAULT_MAX_OPEN_BOXES`.

    Raises:
        OpenBoxLimitError: carries the best point and the bound when ``max_open_boxes`` stopped
            the search (caught by :func:`solve_instance_with_bound`).

    Returns:
        ``(x, value, upper_bound, converged)``: best feasible powers ``(U,)`` (normalized),
        their sum rate and the certified bound [bit/s/Hz].
    """
    start = time.perf_counter()
    limit = DEFAULT_MAX_OPEN_BOXES if max_open_boxes is None else max_open_boxes
    dim = box.dim
    candidates = [anchor[None]] + ([incumbent[None]] if incumbent is not None else [])
    cand = np.concatenate(candidates)
    ok = box.feasible(cand)
    values = np.where(ok, box.rates(cand).sum(axis=1), -np.inf)
    best_x, best_value = cand[int(np.argmax(values))].copy(), float(values.max())
    lows = low[None].copy()
    highs = np.ones((1, dim))
    alive = box.tighten(lows, highs)
    bounds, _ = box.bound(lows, highs)
    lows, highs, bounds = lows[alive], highs[alive], bounds[alive]
    converged = False
    while True:
        top = float(bounds.max()) if bounds.size else best_value
        if max(top, best_value) - best_value <= gap * max(top, best_value):
            converged = True
            break
        if time.perf_counter() - start > time_limit:
            break
        if bounds.size > limit:
            top = float(bounds.max())
            raise OpenBoxLimitError(best_x, best_value, max(top, best_value * (1.0 + 0.1 * gap)))
        # at least an eighth of the open list, so that bookkeeping stays a fraction of the work
        take = min(max(batch, bounds.size // 8), bounds.size)
        chosen = np.argpartition(-bounds, take - 1)[:take] if take < bounds.size else None
        if chosen is None:
            lo, hi, parent = lows, highs, bounds
            lows, highs, bounds = lows[:0], highs[:0], bounds[:0]
        else:
            keep = np.ones(bounds.size, dtype=bool)
            keep[chosen] = False
            lo, hi, parent = lows[chosen], highs[chosen], bounds[chosen]
            lows, highs, bounds = lows[keep], highs[keep], bounds[keep]
        edge = np.argmax(box.branch_scores(lo, hi), axis=1)
        rows = np.arange(lo.shape[0])
        mid = 0.5 * (lo[rows, edge] + hi[rows, edge])
        lo_a, hi_a, lo_b, hi_b = lo.copy(), hi.copy(), lo.copy(), hi.copy()
        hi_a[rows, edge] = mid
        lo_b[rows, edge] = mid
        lo, hi = np.concatenate([lo_a, lo_b]), np.concatenate([hi_a, hi_b])
        parent = np.concatenate([parent, parent])
        nonempty = box.tighten(lo, hi)
        lo, hi, parent = lo[nonempty], hi[nonempty], parent[nonempty]
        if lo.shape[0] == 0:
            continue
        # a child holds no point its parent's bound excludes; the QoS dual bound is spent only
        # on boxes that could otherwise still block the stopping test
        bnd, point = box.bound(lo, hi, threshold=best_value * (1.0 + gap), cap=parent)
        # lower bounds: the bound's maximizer and the box centre, repaired to feasibility
        cand = np.concatenate([point, 0.5 * (lo + hi)])
        ok = box.feasible(cand)
        fixed = box.repair(cand[~ok], anchor)
        cand = np.concatenate([cand[ok], fixed])
        ok = np.concatenate([ok[ok], box.feasible(fixed)])  # only the repaired need a check
        values = np.where(ok, box.rates(cand).sum(axis=1), -np.inf)
        i = int(np.argmax(values))
        improved = bool(values[i] > best_value)
        if improved:
            best_value, best_x = float(values[i]), cand[i].copy()
        keep_new = bnd > best_value * (1.0 + 0.1 * gap)
        if improved and bounds.size:  # the incumbent moved: prune the open boxes
            keep_old = bounds > best_value * (1.0 + 0.1 * gap)
            lows, highs, bounds = lows[keep_old], highs[keep_old], bounds[keep_old]
        lows = np.concatenate([lows, lo[keep_new]])
        highs = np.concatenate([highs, hi[keep_new]])
        bounds = np.concatenate([bounds, bnd[keep_new]])
    top = float(bounds.max()) if bounds.size else best_value
    # boxes pruned against best * (1 + gap/10) may hold up to that value
    upper = max(top, best_value * (1.0 + 0.1 * gap))
    return best_x, best_value, upper, converged and upper - best_value <= gap * upper


def _sca_incumbent(prepared: gp.PreparedInstance) -> np.ndarray | None:
    """Normalized powers ``(U,)`` of the best SCA point from the anchor and the "one BS loud"
    starts (:func:`feasnet.solvers.sca.starting_points`)."""
    best, best_value = None, -math.inf
    for start in sca.starting_points(prepared).values():
        refined = sca.refine(prepared, start, max_iterations=20, tolerance=1e-7)
        if refined.sum_rate > best_value:
            best_value, best = refined.sum_rate, refined.power / prepared.pmax
    return None if best is None else best.reshape(-1)


def solve_instance_with_bound(
    instance: dict[str, Any], options: dict[str, Any]
) -> tuple[np.ndarray, str]:
    """Per-instance global solve, packed for :func:`~feasnet.solvers.parallel.solve_each`.

    Returns:
        ``(packed, message)``: ``packed`` is ``(B * Q + 2,)`` float64: the powers ``(B, Q)`` [W]
        flattened, then the certified upper bound on the sum rate [bit/s] and 1.0 when the gap
        was reached (else 0.0); all NaN for an infeasible instance.
    """
    gain = np.asarray(instance["H"], dtype=np.float64)
    num_bs, num_channels, _ = gain.shape
    pmax, noise, bandwidth = instance["pmax"], instance["noise"], instance["bandwidth"]
    gap = float(options.get("gap", DEFAULT_GAP))
    time_limit = float(options.get("time_limit", DEFAULT_TIME_LIMIT))
    start = time.perf_counter()
    packed = np.full(num_bs * num_channels + 2, math.nan)
    prepared = gp.prepare_instance(instance)
    if not prepared.feasible:
        return packed, prepared.reason
    algorithm = options.get("algorithm", "power")
    stopped_by = "time limit"
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm: expected one of {ALGORITHMS}, got {algorithm!r}")
    box = PowerBox(gain, pmax, noise, prepared.beta)
    incumbent = _sca_incumbent(prepared) if options.get("polish", True) else None
    remaining = max(0.0, time_limit - (time.perf_counter() - start))
    batch = int(options.get("batch", monotonic.DEFAULT_BATCH))
    if algorithm == "power":
        low = np.clip(prepared.min_power.reshape(-1) / pmax, 0.0, None)
        anchor = prepared.anchor.reshape(-1) / pmax
        try:
            x, value, upper, converged = branch_and_bound(
                box, low, anchor, incumbent, gap, remaining, batch=batch,
                max_open_boxes=options.get("max_open_boxes"),
            )  # fmt: skip
        except OpenBoxLimitError as stop:
            x, value, upper, converged = stop.point, stop.value, stop.upper_bound, False
            stopped_by = "box limit"
    else:
        region = RateRegion(gain, pmax, noise)
        lower = (np.asarray(instance["min_rate"], dtype=np.float64) / bandwidth).reshape(-1)
        start_rates = None
        if incumbent is not None:  # a hair inside, so the oracle accepts it
            start_rates = box.rates(incumbent[None])[0] * (1.0 - 1e-12)
        result = monotonic.maximize(
            np.ones(region.dim),
            lower,
            region.upper_rates(),
            region,
            gap=gap,
            time_limit=remaining,
            incumbent=start_rates,
            batch=batch,
            box_bound=region.box_bound,
        )
        if result is None:  # the exact test passed: only rounding can disagree
            return packed, "infeasible: the rate targets are not reachable within the budgets"
        x = np.clip(region.minimal_powers(result.point[None])[0].reshape(-1), 0.0, None)
        value, upper, converged = result.value, result.upper_bound, result.converged
    packed[: num_bs * num_channels] = x * pmax
    packed[-2] = upper * bandwidth
    packed[-1] = 1.0 if converged else 0.0
    result_gap = (upper - value) / upper if upper > 0 else 0.0
    if converged:
        return packed, f"optimal within gap {gap:g}"
    return packed, f"{stopped_by}: gap {result_gap:.3g}"


def solve(
    instances: PowerControlInstances,
    workers: int | None = None,
    gap: float = DEFAULT_GAP,
    time_limit: float = DEFAULT_TIME_LIMIT,
    polish: bool = True,
    batch: int = monotonic.DEFAULT_BATCH,
    algorithm: str = "power",
    max_open_boxes: int = DEFAULT_MAX_OPEN_BOXES,
) -> AllocationResult:
    """Certified global optimum of every instance, one worker process per core.

    Args:
        instances: the batch.
        workers: worker processes (default: the available cores; 1 runs in-process).
        gap: relative gap ``(bound - sum rate) / bound`` at which an instance stops.
        time_limit: seconds per instance; the best point and the bound so far are returned.
        polish: start from the best SCA point (usually optimal; the bound closes faster).
        batch: boxes per vectorized step of the search.
        algorithm: one of :data:`ALGORITHMS`.
        max_open_boxes: the power-box search stops with its bound so far (message
            ``"box limit: gap ..."``) once it holds more open boxes than this, so a hard
            instance cannot exhaust the memory.

    Returns:
        An :class:`AllocationResult` named ``"global"`` with ``upper_bound`` [bit/s], ``gap``
        and ``converged`` filled (NaN / False for infeasible instances).
    """
    if not 0 < gap < 1:
        raise ValueError(f"gap: expected a value in (0, 1), got {gap}")
    if not time_limit > 0:
        raise ValueError(f"time_limit: expected > 0 seconds, got {time_limit}")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm: expected one of {ALGORITHMS}, got {algorithm!r}")
    require_supported(problem_of(instances), "global", LINEAR_RATE_SETS)
    if max_open_boxes < 1:
        raise ValueError(f"max_open_boxes: expected >= 1, got {max_open_boxes}")
    if instances.csi_corner is not None and not bool((instances.csi_corner == 1).all()):
        raise ValueError(
            "global: instances with a robust CSI corner (csi_error with robust exact or "
            "heuristic) are not supported (its bounds assume one set of gains); use sca, or "
            "robust none"
        )
    options = {
        "gap": gap,
        "time_limit": time_limit,
        "polish": polish,
        "batch": batch,
        "algorithm": algorithm,
        "max_open_boxes": max_open_boxes,
    }
    b, q = instances.num_bs, instances.num_channels
    packed, seconds, messages = solve_each(
        solve_instance_with_bound,
        instances,
        options,
        workers=workers,
        label="global",
        output_shape=(b * q + 2,),
    )
    power = packed[:, : b * q].reshape(-1, b, q)
    result = AllocationResult.checked("global", power, instances, seconds, messages)
    upper = packed[:, -2]
    converged = packed[:, -1] == 1.0
    monotonic.attach_bound(result, upper, converged)
    return result


__all__ = [
    "ALGORITHMS",
    "DEFAULT_GAP",
    "DEFAULT_MAX_OPEN_BOXES",
    "DEFAULT_TIME_LIMIT",
    "OpenBoxLimitError",
    "PowerBox",
    "RateRegion",
    "branch_and_bound",
    "solve",
    "solve_instance_with_bound",
]
