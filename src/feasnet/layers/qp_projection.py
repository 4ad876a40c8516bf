"""Implicit Euclidean projection layer (DIPNet, power-control paper section IV, eq. 10).

The layer maps a backbone's raw output ``r`` to the closest feasible allocation

    x* = argmin_x  1/2 ||x - r||^2   subject to   G x <= h                  (eq. 10)

where ``G x <= h`` are all constraints of the problem (non-negativity, BS budgets, QoS) in
normalized units ``x = p / pmax`` (vector layout ``x[q*B + b] = P[b, q] / pmax``), as built by
:func:`feasnet.problems.power_control.linear_constraints`. Because ``pmax`` is one scalar per
instance, ``||p - p_r||^2 = pmax^2 ||x - r||^2``: the projection in normalized units is exactly
the paper's projection in watts, rescaled.

Forward: a batched primal-dual interior-point method (Mehrotra predictor-corrector) written
in torch, followed by an active-set polish. Points already feasible skip the iterations.

* Rows of ``G`` are scaled to unit norm first (the projection does not change).
* With slacks ``s = h - G x >= 0`` and multipliers ``z >= 0`` each Newton step reduces, after
  eliminating ``s`` and ``z``, to the ``U x U`` symmetric positive definite system
  ``(I + G^T diag(z / s) G) dx = rhs`` (eigenvalues >= 1), solved by a batched Cholesky
  factorization that the predictor and the corrector share. A common step length per
  instance keeps ``s, z > 0`` (fraction to the boundary 0.99); converged instances are frozen
  and the loop ends when every instance has converged or after ``max_iter`` iterations.
  A Mehrotra step shorter than 0.1 is replaced by a plain centering step where that is longer;
  the rare instances left unsolved are retried with more cautious centering.
* Polish: the rows with ``z > s`` form the active set ``A``; the exact projection onto
  ``{G_A x = h_A}`` is ``x = r - G_A^T y`` with ``(G_A G_A^T) y = G_A r - h_A``. It is solved
  batched on the gathered active rows (padded with identity rows to the largest active count)
  with a tiny ridge and two refinement steps on ``G_A x - h_A``, and accepted per instance
  when it passes a KKT certificate: stationarity holds by construction, so it checks
  feasibility, tightness of the active rows and ``y >= 0``. An accepted point is the
  projection to rounding level. The polish is also tried from the 4th iteration on, whenever
  an instance's active set changes, and certified instances stop early (the active set
  settles well before the interior-point tolerance is met); feasible inputs come back
  bit-for-bit unchanged.

Everything is computed in float64, whatever the input dtype (the active QoS rows are nearly
parallel for weak interference and the Newton matrices reach condition numbers ~1e12 near the
solution), and the result is returned in the input dtype.

Backward: the implicit function theorem on the KKT conditions. Where the active set is locally
constant and its multipliers are positive, ``x*(r)`` is the projection onto the affine set
``{G_A x = h_A}``, so ``dx*/dr = I - G_A^T (G_A G_A^T)^{-1} G_A``, a symmetric projector; the
vector-Jacobian product reuses the Cholesky factor of the polish system, so a backward pass
costs two triangular solves. At degenerate points (a row active with a zero multiplier) the
projection is not differentiable and this gives one element of its generalized Jacobian.
Gradients flow to ``r`` only; ``G`` and ``h`` come from the channel data, which is not learned.

:class:`ProjectionLayer` (``qp``) wraps it as a feasibility layer on any problem with a linear
form (``problem.linear_form``, columns in ``x.flatten(1)`` order; the polytope's rows are
normalized first, so their scale does not matter) and adds a float64 feasibility safeguard
(:func:`finish_projection`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from feasnet.layers.base import FeasibilityLayer, unsupported
from feasnet.problems.base import Problem
from feasnet.problems.power_control import (
    DEFAULT_RTOL,
    LinearConstraints,
)

DEFAULT_TOL = 1e-10
"""Interior-point tolerance: scaled KKT residuals and largest complementarity product ``s z``."""

DEFAULT_MAX_ITER = 50
"""Iteration cap of the interior-point method (typical runs stop after 4-10)."""

_STEP_FRACTION = 0.99
_SHORT_STEP = 0.1
_RECENTER = 0.5
"""A Mehrotra step shorter than ``_SHORT_STEP`` is replaced by a centering step
(``sigma = _RECENTER``) when that one is longer."""
_CAUTIOUS_SIGMA = 0.1
_CAUTIOUS_MAX_ITER = 100
"""Retry of the instances the first pass did not solve: centering at least 0.1, with this
iteration cap (and no stall limit above ``_STALL_FLOOR``)."""
_MAX_STALL = 3
"""Interior-point iterations without a better residual after which an instance stops, once
its best residual is below ``_STALL_FLOOR`` (rounding floor)."""
_STALL_FLOOR = 1e-6
_MAX_STALL_FAR = 12
"""Stall limit above ``_STALL_FLOOR``: far from the solution the residual is not monotone (a
badly scaled instance can sit on a plateau for several iterations before the active set
settles), so a short stall there is progress, not rounding."""
_RIDGE = 1e-12
"""Ridge added to the masked ``G_A G_A^T`` (rows have unit norm, so this is relative)."""

_POLISH_FEAS_TOL = 1e-12
_POLISH_DUAL_TOL = 1e-9
"""Polish acceptance: feasibility and tightness of the active rows (relative to
``1 + |h| + |r|``) and multiplier sign (relative to ``1 + |y|``)."""

_POLISH_REFINE = 2
"""Iterative-refinement steps of the polish (the ridge and rounding are corrected)."""

_EARLY_POLISH_FROM = 4
"""First interior-point iteration at which the polish is tried as an early exit."""


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ProjectionInfo:
    """Diagnostics of one batched projection.

    Attributes:
        iterations: ``(N,)`` int64, interior-point iterations of each instance (0 for points
            already feasible).
        converged: ``(N,)`` bool, the interior point reached the tolerance or the polish
            certified the solution.
        polished: ``(N,)`` bool, the active-set polish was accepted (otherwise the result is
            the interior-point iterate).
        residual: ``(N,)`` float64, max of the scaled KKT residuals and the largest
            complementarity product of the last interior-point iterate (0 for points
            already feasible; large for instances that stopped early on the polish).
        safeguard: ``(N,)`` bool, the float64 feasibility safeguard moved the result (only set
            by the modules; all False from :func:`project`).
        infeasible: ``(N,)`` bool, instance without any feasible point (NaN output; only set
            by the modules).
    """

    iterations: Tensor
    converged: Tensor
    polished: Tensor
    residual: Tensor
    safeguard: Tensor
    infeasible: Tensor

    @property
    def max_iterations(self) -> int:
        return int(self.iterations.max().item()) if self.iterations.numel() else 0

    def summary(self) -> str:
        """One line: iterations, convergence, polish and safeguard counts."""
        n = int(self.converged.numel())
        return (
            f"N={n} iters max {self.max_iterations} "
            f"mean {self.iterations.double().mean().item():.1f}, "
            f"converged {int(self.converged.sum())}/{n}, polished {int(self.polished.sum())}/{n}, "
            f"safeguard fired {int(self.safeguard.sum())}, infeasible {int(self.infeasible.sum())}"
        )


# ---------------------------------------------------------------------------- solver core
def _max_step(v: Tensor, dv: Tensor) -> Tensor:
    """Largest ``a`` in ``[0, inf]`` with ``v + a dv >= 0`` per row: ``(N, K) -> (N,)``."""
    return torch.where(dv < 0, -v / dv, math.inf).amin(dim=1)


def _row_max(v: Tensor) -> Tensor:
    """``max`` over dim 1 of ``(N, k)``, 0 when ``k == 0``: ``(N,)``."""
    if v.shape[1] == 0:
        return torch.zeros(v.shape[0], dtype=v.dtype, device=v.device)
    return v.amax(dim=1)


def _mv(A: Tensor, v: Tensor) -> Tensor:
    """Batched ``A v``: ``(N, M, U), (N, U) -> (N, M)`` (faster than bmm for tiny matrices)."""
    return (A * v[:, None, :]).sum(dim=2)


def _mtv(A: Tensor, w: Tensor) -> Tensor:
    """Batched ``A^T w``: ``(N, M, U), (N, M) -> (N, U)``."""
    return (A * w[:, :, None]).sum(dim=1)


class _DenseRows:
    """Generic unit-norm constraint rows ``G (N, M, U)``: products with dense tensors."""

    def __init__(self, G: Tensor) -> None:
        self.G = G

    def subset(self, keep: Tensor) -> _DenseRows:
        """The rows of the instances selected by ``keep`` (bool mask or index tensor)."""
        return _DenseRows(self.G[keep])

    def mv(self, x: Tensor) -> Tensor:
        """``G x``: ``(N, U) -> (N, M)``."""
        return _mv(self.G, x)

    def mtv(self, w: Tensor) -> Tensor:
        """``G^T w``: ``(N, M) -> (N, U)``."""
        return _mtv(self.G, w)

    def gram(self, d: Tensor) -> Tensor:
        """``I + G^T diag(d) G``: ``(N, M) -> (N, U, U)``."""
        K = self.G.transpose(1, 2) @ (d[..., None] * self.G)
        K.diagonal(dim1=1, dim2=2).add_(1.0)
        return K


class _PowerControlRows:
    """Unit-norm rows in the layout of ``linear_constraints``, applied without dense products.

    Rows: ``U`` rows ``-e_i`` (non-negativity), ``B`` budget rows (``1/sqrt(Q)`` on the ``Q``
    users of a BS) and ``U`` QoS rows, block diagonal per channel with blocks ``C (N, Q, B, B)``
    (row ``b`` of block ``q`` acts on ``x[q*B : (q+1)*B]``). Costs ``O(N U B)`` per product
    instead of ``O(N M U)``, and the Newton matrix is assembled from ``Q`` blocks of ``B x B``.
    """

    def __init__(self, blocks: Tensor) -> None:
        self.blocks = blocks
        self.blocks_t = blocks.transpose(2, 3).contiguous()
        self.n, self.q, self.b, _ = blocks.shape
        self.u = self.q * self.b
        self.inv_sqrt_q = 1.0 / math.sqrt(self.q)

    def subset(self, keep: Tensor) -> _PowerControlRows:
        """The rows of the instances selected by ``keep`` (bool mask or index tensor)."""
        return _PowerControlRows(self.blocks[keep])

    def mv(self, x: Tensor) -> Tensor:
        X = x.view(self.n, self.q, self.b)
        budget = X.sum(dim=1) * self.inv_sqrt_q  # (N, B)
        qos = torch.matmul(self.blocks, X[..., None])  # (N, Q, B, 1)
        return torch.cat((-x, budget, qos.view(self.n, self.u)), dim=1)

    def mtv(self, w: Tensor) -> Tensor:
        u, b = self.u, self.b
        w_budget = w[:, u : u + b] * self.inv_sqrt_q  # (N, B)
        W = w[:, u + b :].reshape(self.n, self.q, self.b, 1)
        qos = torch.matmul(self.blocks_t, W).view(self.n, self.q, self.b)
        return (qos + w_budget[:, None, :]).view(self.n, u) - w[:, :u]

    def gram(self, d: Tensor) -> Tensor:
        u, b, q = self.u, self.b, self.q
        d_budget = d[:, u : u + b] / q  # (N, B)
        D = d[:, u + b :].reshape(self.n, q, b, 1)
        blocks = torch.matmul(self.blocks_t, D * self.blocks)  # (N, Q, B, B)
        K = torch.zeros(self.n, q, b, q, b, dtype=d.dtype, device=d.device)
        K.diagonal(dim1=1, dim2=3).copy_(blocks.permute(0, 2, 3, 1))
        K.diagonal(dim1=2, dim2=4).add_(d_budget[:, None, None, :])
        K = K.view(self.n, u, u)
        K.diagonal(dim1=1, dim2=2).add_(1.0 + d[:, :u])
        return K


def _power_control_blocks(G: Tensor) -> Tensor | None:
    """The QoS blocks ``(N, Q, B, B)`` if unit-norm ``G`` has the ``linear_constraints`` layout.

    The layout is recognised exactly (``-I`` rows, 0/1 budget rows scaled by ``1/sqrt(Q)``,
    QoS rows zero outside their channel block); ``None`` otherwise.
    """
    n, m, u = G.shape
    b = m - 2 * u
    if n == 0 or b <= 0 or u % b:
        return None
    q = u // b
    eye = torch.eye(u, dtype=G.dtype, device=G.device)
    if not torch.equal(G[:, :u], -eye.expand(n, u, u)):
        return None
    cols = torch.arange(u, device=G.device)
    budget = torch.zeros(b, u, dtype=G.dtype, device=G.device)
    budget[cols % b, cols] = 1.0
    if (G[:, u : u + b] - budget / math.sqrt(q)).abs().amax() > 1e-15:
        return None
    qos = G[:, u + b :].reshape(n, q, b, q, b)
    off_block = ~torch.eye(q, dtype=torch.bool, device=G.device)[:, None, :, None]
    if bool((qos * off_block.expand(q, b, q, b)).any()):
        return None
    return qos.diagonal(dim1=1, dim2=3).permute(0, 3, 1, 2).contiguous()


def _normalize_rows(G: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """Scale every row of ``G x <= h`` to unit norm: ``(N, M, U), (N, M)``."""
    norms = torch.linalg.vector_norm(G, dim=2).clamp_min(torch.finfo(G.dtype).tiny)
    return G / norms[..., None], h / norms


def _newton_direction(
    rows: _DenseRows | _PowerControlRows,
    chol: Tensor,
    s: Tensor,
    z: Tensor,
    rd: Tensor,
    rp: Tensor,
    rc: Tensor,
) -> Tensor:
    """One Newton direction of the KKT system with ``s`` and ``z`` eliminated.

    Solves ``dx + G^T dz = -rd``, ``G dx + ds = -rp``, ``z ds + s dz = -rc`` through
    ``(I + G^T diag(z/s) G) dx = G^T ((rc - z rp) / s) - rd`` with the given Cholesky factor.
    Shapes: ``chol (N, U, U)``, ``s, z, rp, rc (N, M)``, ``rd (N, U)``.

    Returns:
        ``(N, U + 2M)``: ``(dx, ds, dz)`` concatenated like the solver state.
    """
    rhs = rows.mtv((rc - z * rp) / s) - rd
    dx = torch.cholesky_solve(rhs[..., None], chol).squeeze(-1)
    ds = -rp - rows.mv(dx)
    dz = (-rc - z * ds) / s
    return torch.cat((dx, ds, dz), dim=1)


def _interior_point(
    r: Tensor,
    rows: _DenseRows | _PowerControlRows,
    h: Tensor,
    tol: float,
    max_iter: int,
    G: Tensor | None = None,
    cautious: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Batched Mehrotra predictor-corrector for ``min 1/2||x - r||^2 s.t. G x <= h``.

    The state of every instance is one row ``(x, s, z)`` of an ``(N, U + 2M)`` tensor, which
    keeps the number of tensor operations per iteration small (they dominate the run time at
    these sizes). Each instance keeps its best iterate (smallest residual); it stops when that
    residual is below ``tol`` or has not improved for ``_MAX_STALL`` iterations (rounding),
    and finished instances leave the working set once they are a quarter of it.

    Early exit: when the dense rows ``G`` are given, from iteration ``_EARLY_POLISH_FROM`` on
    the active-set polish is tried on the running instances; an instance whose polished point
    passes the KKT certificate stops there, with that point as its ``x`` (the active set is
    usually identified several iterations before the interior-point tolerance is reached).

    Args:
        r: ``(N, U)`` float64 points to project.
        rows: the unit-norm rows of ``G`` (``M`` of them).
        h: ``(N, M)`` float64.
        tol: stopping tolerance on the scaled residuals and largest complementarity product.
        max_iter: iteration cap.

    Returns:
        ``(x, s, z, iterations, converged, residual, certified)``: the best iterate
        ``x (N, U)`` (the polished point for certified instances), its slacks and multipliers
        ``(N, M)``, ``(N,)`` int64 iteration counts, ``(N,)`` bool (tolerance reached), the
        ``(N,)`` residual of the interior-point iterate and the ``(N,)`` bool early-exit mask.
    """
    n, m = h.shape
    u = r.shape[1]
    # start: least-squares point of 1/2||x-r||^2 + 1/2||h - G x||^2, then shift s, z inside
    chol = torch.linalg.cholesky(rows.gram(torch.ones_like(h)))
    x = torch.cholesky_solve((r + rows.mtv(h))[..., None], chol).squeeze(-1)
    s = h - rows.mv(x)
    z = -s
    s_min = s.amin(dim=1, keepdim=True)
    s = s + torch.where(s_min < 1e-8, 1.0 - s_min, torch.zeros_like(s_min))
    z_min = z.amin(dim=1, keepdim=True)
    z = z + torch.where(z_min < 1e-8, 1.0 - z_min, torch.zeros_like(z_min))
    state = torch.cat((x, s, z), dim=1)

    inv_d = 1.0 / (1.0 + r.abs().amax(dim=1))
    inv_p = 1.0 / (1.0 + h.abs().amax(dim=1))
    inv_c = inv_d * inv_p
    best = state
    best_res = torch.full((n,), math.inf, dtype=h.dtype, device=h.device)
    worse = torch.zeros(n, dtype=torch.int64, device=h.device)  # iterations without progress
    iters = torch.zeros(n, dtype=torch.int64, device=h.device)
    certified = torch.zeros(n, dtype=torch.bool, device=h.device)
    tried = torch.zeros(n, m, dtype=torch.bool, device=h.device)  # active set of the last try
    # finished instances leave the working set; their results are written to these
    out, out_res, out_iter = state.clone(), best_res.clone(), iters.clone()
    out_cert = certified.clone()
    index = torch.arange(n, device=h.device)  # working set -> batch position

    for k in range(max_iter + 1):
        x, s, z = state[:, :u], state[:, u : u + m], state[:, u + m :]
        rd = x - r + rows.mtv(z)
        rp = rows.mv(x) + s - h
        sz = s * z
        residual = torch.maximum(
            torch.maximum(rd.abs().amax(dim=1) * inv_d, rp.abs().amax(dim=1) * inv_p),
            sz.amax(dim=1) * inv_c,
        )
        # keep the best iterate: once rounding dominates, further steps can only hurt
        improved = residual < best_res
        best_res = torch.where(improved, residual, best_res)
        best = torch.where(improved[:, None], state, best)
        worse = (worse + 1).masked_fill_(improved, 0)
        far_limit = max_iter if cautious else _MAX_STALL_FAR
        stall_limit = torch.where(best_res <= _STALL_FLOOR, _MAX_STALL, far_limit)
        running = (best_res > tol) & (worse < stall_limit) & ~certified
        running &= torch.isfinite(residual)  # a non-finite iterate stops at its best point
        if k == max_iter:
            running = torch.zeros_like(running)
        elif G is not None and k >= _EARLY_POLISH_FROM:
            # try the polish where the active set changed since the last try (the polished
            # point depends on the active set only)
            active = z > s
            fresh = running & (active != tried).any(dim=1)
            tried = torch.where(fresh[:, None], active, tried)
            try_rows = fresh.nonzero().squeeze(1)
            if try_rows.numel():
                Gc, hc, xc = G[try_rows], h[try_rows], x[try_rows]
                factor = _active_set_factor(Gc, hc, active[try_rows])
                xp, ok = _polish(r[try_rows], rows.subset(try_rows), hc, xc, factor)
                if bool(ok.any()):
                    hit = try_rows[ok]
                    state[hit, :u] = xp[ok]
                    best[hit] = state[hit]
                    certified[hit] = True
                    running[hit] = False
        current = running.shape[0]
        num_running = int(running.sum().item())
        if num_running == 0 or 4 * (current - num_running) >= current:
            done = ~running
            pos = index[done]
            out[pos], out_res[pos], out_iter[pos] = best[done], best_res[done], iters[done]
            out_cert[pos] = certified[done]
            if num_running == 0:
                break
            keep = running
            index, rows, r, h = index[keep], rows.subset(keep), r[keep], h[keep]
            G = None if G is None else G[keep]
            state, best, best_res = state[keep], best[keep], best_res[keep]
            worse, iters, running = worse[keep], iters[keep], running[keep]
            certified, tried = certified[keep], tried[keep]
            inv_d, inv_p, inv_c = inv_d[keep], inv_p[keep], inv_c[keep]
            rd, rp, sz = rd[keep], rp[keep], sz[keep]
            x, s, z = state[:, :u], state[:, u : u + m], state[:, u + m :]
        iters = iters + running

        chol, _ = torch.linalg.cholesky_ex(rows.gram(z / s))
        mu = sz.sum(dim=1) / m
        # predictor (affine scaling)
        d = _newton_direction(rows, chol, s, z, rd, rp, sz)
        a_aff = _max_step(state[:, u:], d[:, u:]).clamp(max=1.0)[:, None]
        ds, dz = d[:, u : u + m], d[:, u + m :]
        mu_aff = ((s + a_aff * ds) * (z + a_aff * dz)).sum(dim=1) / m
        sigma_mu = (mu_aff / mu).clamp(0.0, 1.0) ** 3 * mu
        if cautious:  # never center less than _CAUTIOUS_SIGMA (slower but steadier)
            sigma_mu = torch.maximum(sigma_mu, _CAUTIOUS_SIGMA * mu)
        # corrector (centering + second-order term)
        d = _newton_direction(rows, chol, s, z, rd, rp, sz + ds * dz - sigma_mu[:, None])
        alpha = (_STEP_FRACTION * _max_step(state[:, u:], d[:, u:])).clamp(max=1.0)
        short = alpha < _SHORT_STEP
        if bool(short.any()):
            # the second-order term can point into the boundary when the iterate has lost
            # centrality: take a plain centering step (no corrector term) there instead
            d_c = _newton_direction(rows, chol, s, z, rd, rp, sz - _RECENTER * mu[:, None])
            a_c = (_STEP_FRACTION * _max_step(state[:, u:], d_c[:, u:])).clamp(max=1.0)
            use = short & (a_c > alpha)
            d = torch.where(use[:, None], d_c, d)
            alpha = torch.where(use, a_c, alpha)
        ok = running & torch.isfinite(d.sum(dim=1)) & torch.isfinite(alpha)
        alpha = torch.where(ok, alpha, torch.zeros_like(alpha))
        state = state.addcmul(alpha[:, None], torch.nan_to_num(d, nan=0.0, posinf=0.0, neginf=0.0))
    x, s, z = out[:, :u], out[:, u : u + m], out[:, u + m :]
    return x, s, z, out_iter, out_res <= tol, out_res, out_cert


def _active_set_factor(
    G: Tensor, h: Tensor, active: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gather the active rows and factor ``G_A G_A^T`` (padded, ridged).

    The active rows of every instance are moved to the front and the batch is cut to the
    largest active count ``k``; padding rows are zero and get an identity diagonal.

    Args:
        G: ``(N, M, U)`` unit-norm rows; ``h``: ``(N, M)``; ``active``: ``(N, M)`` bool.

    Returns:
        ``(G_a (N, k, U), h_a (N, k), mask (N, k), L (N, k, k))``: gathered rows (zero on
        padding), right-hand sides, 1.0 on real rows / 0.0 on padding, and
        ``L L^T = G_a G_a^T + diag(1 - mask) + ridge I``.
    """
    n, _, u = G.shape
    k = int(active.sum(dim=1).max().item()) if n else 0
    order = torch.argsort((~active).to(torch.int8), dim=1, stable=True)[:, :k]  # active first
    mask = torch.gather(active, 1, order).to(G.dtype)  # (N, k)
    Ga = torch.gather(G, 1, order[..., None].expand(n, k, u)) * mask[..., None]
    ha = torch.gather(h, 1, order) * mask
    S = Ga @ Ga.transpose(1, 2)
    S.diagonal(dim1=1, dim2=2).add_(1.0 - mask + _RIDGE)
    chol, _ = torch.linalg.cholesky_ex(S)
    return Ga, ha, mask, chol


def _polish(
    r: Tensor,
    rows: _DenseRows | _PowerControlRows,
    h: Tensor,
    x_fallback: Tensor,
    factor: tuple[Tensor, Tensor, Tensor, Tensor],
) -> tuple[Tensor, Tensor]:
    """Exact projection onto ``{G_A x = h_A}``, accepted where it is the KKT point.

    Args:
        r: ``(N, U)`` points; rows, h: the unit-norm polytope; x_fallback: ``(N, U)``
            returned where the certificate fails; factor: from :func:`_active_set_factor`.

    Returns:
        ``(x, accepted)``: ``(N, U)`` polished points (``x_fallback`` where not accepted) and
        the ``(N,)`` bool acceptance mask.
    """
    Ga, ha, _, chol = factor
    Gat = Ga.transpose(1, 2)
    rhs = (Ga @ r[..., None]).squeeze(-1) - ha
    y = torch.cholesky_solve(rhs[..., None], chol).squeeze(-1)
    x = r - (Gat @ y[..., None]).squeeze(-1)
    # iterative refinement against the un-ridged system, on the residual of the active rows
    # at x (O(1) numbers) rather than on rhs - G_A G_A^T y: with badly scaled, nearly parallel
    # active rows y reaches ~1e4-1e5 and that difference would cancel catastrophically
    # (padding rows: zero rows, zero right-hand side, y = 0)
    for _ in range(_POLISH_REFINE):
        dy = torch.cholesky_solve(((Ga @ x[..., None]).squeeze(-1) - ha)[..., None], chol)
        y = y + dy.squeeze(-1)
        x = x - (Gat @ dy).squeeze(-1)
    # KKT certificate: stationarity holds by construction; check primal feasibility,
    # complementarity (active rows tight) and dual feasibility (y >= 0)
    feas_tol = _POLISH_FEAS_TOL * (1.0 + h.abs().amax(dim=1) + r.abs().amax(dim=1))
    y_scale = 1.0 + _row_max(y.abs())
    tight = ((Ga @ x[..., None]).squeeze(-1) - ha).abs()
    accepted = (
        torch.isfinite(x).all(dim=1)
        & ((rows.mv(x) - h).amax(dim=1) <= feas_tol)
        & (_row_max(tight) <= feas_tol)
        & (-_row_max(-y) >= -_POLISH_DUAL_TOL * y_scale)
    )
    return torch.where(accepted[:, None], x, x_fallback), accepted


def solve_projection(
    r: Tensor,
    G: Tensor,
    h: Tensor,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    polish: bool = True,
    need_factor: bool = True,
) -> tuple[Tensor, Tensor | None, Tensor | None, ProjectionInfo]:
    """Solve the projection QP (no autograd): float64 in, float64 out.

    Constraint sets with the layout of ``linear_constraints`` are recognised and use the
    structured products of :class:`_PowerControlRows`; any other ``G`` uses dense products.

    Args:
        r: ``(N, U)`` points to project (normalized units).
        G: ``(N, M, U)``, ``h``: ``(N, M)``, the polytope ``G x <= h`` (must be non-empty).
        tol: interior-point tolerance.
        max_iter: interior-point iteration cap.
        polish: try the active-set polish.
        need_factor: build the active-set factor of every instance for a backward pass;
            without it (inference) instances certified early are not polished again.

    Returns:
        ``(x, G_a, L, info)``: the ``(N, U)`` projections, the gathered unit-norm active rows
        ``(N, k, U)`` and the Cholesky factor ``(N, k, k)`` of their Gram matrix (used by the
        backward pass; ``None`` without ``need_factor``), and the diagnostics.
    """
    with torch.no_grad():
        Gn, hn = _normalize_rows(G, h)
        blocks = _power_control_blocks(Gn)
        rows = _DenseRows(Gn) if blocks is None else _PowerControlRows(blocks)
        # points already in the polytope are their own projection: no iterations for them
        inside = (rows.mv(r) <= hn).all(dim=1)
        x = r.clone()
        active = torch.zeros_like(hn, dtype=torch.bool)
        iterations = torch.zeros(r.shape[0], dtype=torch.int64, device=r.device)
        residual = torch.zeros(r.shape[0], dtype=r.dtype, device=r.device)
        converged, certified = inside.clone(), torch.zeros_like(inside)
        todo = (~inside).nonzero().squeeze(1)
        if todo.numel():
            xo, so, zo, it, conv, res, cert = _interior_point(
                r[todo], rows.subset(todo), hn[todo], tol, max_iter, Gn[todo] if polish else None
            )
            x[todo], active[todo], iterations[todo] = xo, zo > so, it
            converged[todo], residual[todo], certified[todo] = conv, res, cert
            # the few instances left unsolved (long plateaus on badly scaled rows) are
            # retried from scratch with a more cautious centering
            again = todo[~(conv | cert)]
            if again.numel():
                xo, so, zo, it, conv, res, cert = _interior_point(
                    r[again], rows.subset(again), hn[again], tol, _CAUTIOUS_MAX_ITER,
                    Gn[again] if polish else None, cautious=True,
                )  # fmt: skip
                better = conv | cert | (res < residual[again])
                keep = again[better]
                x[keep], active[keep], converged[keep] = xo[better], (zo > so)[better], conv[better]
                residual[keep], certified[keep] = res[better], cert[better]
                iterations[again] += it
        Ga = chol = None
        if need_factor:
            factor = _active_set_factor(Gn, hn, active)
            Ga, _, _, chol = factor
        if polish and need_factor:
            # recomputes the early-exit points (same active sets, equal up to rounding); where
            # the certificate fails, x is the interior-point iterate (or the early polished one)
            x, polished = _polish(r, rows, hn, x, factor)
            polished = polished | certified
        elif polish:
            polished = certified | inside
            rest = (~polished).nonzero().squeeze(1)
            if rest.numel():
                Gr, hr = Gn[rest], hn[rest]
                factor = _active_set_factor(Gr, hr, active[rest])
                x[rest], polished[rest] = _polish(r[rest], rows.subset(rest), hr, x[rest], factor)
        else:
            polished = torch.zeros_like(converged)
        converged = converged | polished
    info = ProjectionInfo(
        iterations=iterations,
        converged=converged,
        polished=polished,
        residual=residual,
        safeguard=torch.zeros_like(converged),
        infeasible=torch.zeros_like(converged),
    )
    return x, Ga, chol, info


class _ProjectFunction(torch.autograd.Function):
    """``r -> argmin 1/2||x - r||^2 s.t. G x <= h`` with the implicit (active-set) backward.

    ``info_box`` is a list the forward appends its :class:`ProjectionInfo` to;
    ``need_factor`` is False when no backward pass can follow (see :func:`solve_projection`).
    """

    @staticmethod
    def forward(
        r: Tensor,
        G: Tensor,
        h: Tensor,
        tol: float,
        max_iter: int,
        polish: bool,
        need_factor: bool,
        info_box: list[ProjectionInfo],
    ) -> tuple[Tensor, Tensor, Tensor]:
        x, Gm, chol, info = solve_projection(
            r, G, h, tol=tol, max_iter=max_iter, polish=polish, need_factor=need_factor
        )
        info_box.append(info)
        if Gm is None or chol is None:  # no backward pass will come
            Gm, chol = r.new_zeros(r.shape[0], 0, r.shape[1]), r.new_zeros(r.shape[0], 0, 0)
        return x, Gm, chol

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        _, Gm, chol = output
        ctx.save_for_backward(Gm, chol)
        ctx.mark_non_differentiable(Gm, chol)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_x: Tensor, _g1: Any, _g2: Any) -> tuple:
        # dx/dr = I - G_A^T (G_A G_A^T)^{-1} G_A is symmetric: the VJP applies it to grad_x
        Gm, chol = ctx.saved_tensors
        y = torch.cholesky_solve(_mv(Gm, grad_x)[..., None], chol).squeeze(-1)
        grad_r = grad_x - _mtv(Gm, y)
        return grad_r, None, None, None, None, None, None, None


def project(
    r: Tensor,
    constraints: LinearConstraints,
    *,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    polish: bool = True,
    return_info: bool = False,
) -> Tensor | tuple[Tensor, ProjectionInfo]:
    """Differentiable Euclidean projection onto ``{x : G x <= h}`` (batched).

    Args:
        r: ``(N, U)`` points, normalized units ``p / pmax`` in vector layout; any float dtype
            and device (solved in float64 on ``r``'s device).
        constraints: ``G (N, M, U)``, ``h (N, M)`` (e.g. from ``linear_constraints``); every
            polytope must be non-empty.
        tol: interior-point tolerance (scaled KKT residuals, largest ``s z``).
        max_iter: interior-point iteration cap.
        polish: finish with the exact active-set projection where it is verified (and stop
            early on it); without it the result is the interior-point iterate.
        return_info: also return :class:`ProjectionInfo`.

    Returns:
        ``(N, U)`` projections in ``r``'s dtype (and the diagnostics when asked). The
        gradient w.r.t. ``r`` is the implicit-function one; ``G``, ``h`` get no gradient. For
        the backward pass the active rows ``(N, k, U)`` and a ``(N, k, k)`` factor are kept,
        ``k`` the largest active count in the batch.
    """
    if r.ndim != 2:
        raise ValueError(f"r: expected shape (N, U), got {tuple(r.shape)}")
    G = constraints.G.detach().to(dtype=torch.float64, device=r.device)
    h = constraints.h.detach().to(dtype=torch.float64, device=r.device)
    if G.shape[0] != r.shape[0] or G.shape[2] != r.shape[1] or h.shape != G.shape[:2]:
        raise ValueError(
            f"constraints: G {tuple(G.shape)} and h {tuple(h.shape)} do not fit r {tuple(r.shape)}"
        )
    box: list[ProjectionInfo] = []
    need_factor = torch.is_grad_enabled() and r.requires_grad
    x, _, _ = _ProjectFunction.apply(
        r.to(torch.float64), G, h, tol, max_iter, polish, need_factor, box
    )
    x = x.to(r.dtype)
    return (x, box[0]) if return_info else x


# ---------------------------------------------------------------------------- any polytope
class ProjectionConfig(BaseModel):
    """Settings of the ``qp`` layer (interior-point tolerance, iteration cap, polish)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    tol: float = Field(DEFAULT_TOL, gt=0)
    max_iter: int = Field(DEFAULT_MAX_ITER, ge=1)
    polish: bool = True


def check_polytope(name: str, problem: Problem) -> None:
    """Raise :class:`UnsupportedProblemError` unless ``problem`` is a polytope with a linear
    form (what the projection layers need)."""
    if not problem.is_convex or type(problem).linear_form is Problem.linear_form:
        raise unsupported(
            name,
            problem,
            "the projection needs a polytope G x <= h (problem.linear_form); this constraint "
            "set has none, use correction, hop or guard",
        )


@dataclass(frozen=True)
class PolytopeData:
    """Float64 projection data of a batch (any problem with a linear form).

    Attributes:
        constraints: ``G (N, M, D)``, ``h (N, M)``, columns in ``x.flatten(1)`` order; for
            instances without a feasible point ``h`` is replaced by ``max(h, 0)`` so the
            solver still sees a non-empty set (their output is NaN anyway).
        anchor: ``(N, *shape)`` float64 interior anchor (NaN rows where infeasible).
        feasible: ``(N,)`` bool, the instance has a feasible point.
        r: ``(N, D)`` float64 candidates connected to ``raw``; non-finite rows replaced by the
            anchor, rows of infeasible instances by 0.
        nonnegative: ``(N, D)`` bool, columns with a bound row ``x_j >= 0``.
    """

    constraints: LinearConstraints
    anchor: Tensor
    feasible: Tensor
    r: Tensor
    nonnegative: Tensor


def _nonnegative_columns(G: Tensor, h: Tensor) -> Tensor:
    """``(N, D)`` bool: the column has a bound row ``-c x_j <= 0`` (``c > 0``) in ``G x <= h``."""
    single = (G != 0).sum(dim=2) == 1
    bound = single & (G.sum(dim=2) < 0) & (h == 0)  # (N, M)
    return ((G < 0) & bound[:, :, None]).any(dim=1)


def polytope_data(
    problem: Problem, raw: Tensor, instances: Any, anchor: Tensor | None = None
) -> PolytopeData:
    """:class:`PolytopeData` of raw outputs ``(N, *shape)`` (normalized units); ``anchor``: a
    precomputed ``problem.anchor(instances)``."""
    inst64 = problem.float64(instances, raw.device)
    if anchor is None:
        anchor = problem.anchor(inst64)
    anchor = anchor.to(device=raw.device, dtype=torch.float64)
    flat_anchor = anchor.reshape(raw.shape[0], -1)
    feasible = torch.isfinite(flat_anchor).all(dim=1)
    form = problem.linear_form(inst64)
    assert form is not None
    G = form.G.to(torch.float64)
    h = torch.where(feasible[:, None], form.h, form.h.clamp(min=0)).to(torch.float64)
    r = raw.reshape(raw.shape[0], -1).to(torch.float64)
    safe_anchor = torch.where(torch.isfinite(flat_anchor), flat_anchor, torch.zeros_like(r))
    finite = torch.isfinite(r).all(dim=1)
    r = torch.where(finite[:, None], r, safe_anchor)
    r = torch.where(feasible[:, None], r, torch.zeros_like(r))
    nonnegative = _nonnegative_columns(G, h)
    return PolytopeData(LinearConstraints(G=G, h=h), anchor, feasible, r, nonnegative)


def finish_projection(
    problem: Problem, x: Tensor, data: PolytopeData, instances: Any, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Float64 projections ``(N, D)`` to outputs ``(N, *shape)`` in ``dtype`` that pass
    ``problem.is_feasible`` (rtol 1e-6) after rounding: coordinates with a bound row that came
    out as tiny negatives are set to 0, and the few points that still miss the check by
    rounding move toward the anchor (:func:`feasnet.layers.guard.repair`); infeasible
    instances give NaN. Returns ``(out, moved)``."""
    from feasnet.layers.guard import repair

    # bound rows met only to rounding (x_j = -1e-17): snap to 0, straight through (the
    # implicit gradient of such an active coordinate is 0 already)
    snapped = torch.where(data.nonnegative, x.detach().clamp_min(0.0), x.detach())
    x = x + (snapped - x.detach())
    out = x.reshape(data.anchor.shape)
    rounded = out.to(dtype)
    fixed = repair(problem, rounded, instances, DEFAULT_RTOL, anchor=data.anchor)
    out = torch.where(data.feasible.view(-1, *([1] * (out.dim() - 1))), fixed.x, math.nan)
    return out.to(dtype), fixed.fired & data.feasible


class ProjectionLayer(FeasibilityLayer):
    """``qp``: DIPNet's Euclidean projection onto ``problem.linear_form`` with the batched
    interior-point solver of this module (implicit gradients). Needs a polytope.

    Outputs pass ``problem.is_feasible`` at rtol 1e-6 after rounding to ``raw``'s dtype
    (:func:`finish_projection`); instances without a feasible point give NaN. The diagnostics
    of the last call are kept in ``last_info`` (:class:`ProjectionInfo`).
    """

    Config = ProjectionConfig
    last_info: ProjectionInfo | None = None

    @classmethod
    def check(cls, problem: Problem) -> None:
        check_polytope("qp", problem)

    def forward(self, raw: Tensor, instances: Any, extra: Tensor | None = None) -> Tensor:
        """``(N, *shape)`` projections in ``raw``'s dtype (NaN rows where infeasible)."""
        config = self.config
        assert isinstance(config, ProjectionConfig)
        if raw.shape[0] == 0:
            return raw.detach().clone()
        data = polytope_data(self.problem, raw, instances, self.anchor_of(instances))
        x, info = project(
            data.r,
            data.constraints,
            tol=config.tol,
            max_iter=config.max_iter,
            polish=config.polish,
            return_info=True,
        )
        out, moved = finish_projection(self.problem, x, data, instances, raw.dtype)
        self.last_info = ProjectionInfo(
            iterations=info.iterations,
            converged=info.converged,
            polished=info.polished,
            residual=info.residual,
            safeguard=moved,
            infeasible=~data.feasible,
        )
        return out
