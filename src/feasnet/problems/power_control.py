"""The multi-cell, multi-channel power-control problem (power-control paper, eqs. 1-6, 25-26).

Maximize the sum rate ``sum_{b,q} W log2(1 + SINR_bq(P))`` over the power matrix
``P`` (B x Q, watts) subject to

* ``P >= 0``,
* ``sum_q P[b, q] <= Pmax`` for every BS ``b`` (power budget),
* ``R_bq(P) >= alpha_bq`` for every user (minimum rate, QoS).

With ``beta_bq = 2**(alpha_bq / W) - 1`` the QoS rows are linear in ``P``:
``H[b,q,b] P[b,q] - beta_bq sum_{c != b} H[b,q,c] P[c,q] >= beta_bq sigma^2``, so the feasible
set is a polytope. Everything in this module is batched over a leading instance dimension
``N``, differentiable where that makes sense, and works in float32 or float64 on any device.

Numerics (docs/power-control.md): solvers and layers use *normalized* units, ``x = P / Pmax`` and
each QoS row divided by its direct gain, which turns the QoS block of channel ``q`` into
``(I - B_q) x_q >= u_q / Pmax`` with the matrices ``B_q``, ``u_q`` of eq. (25)-(26).

Layout of the vector form (paper eq. 4): ``p[q * B + b] = P[b, q]`` (columns of ``P`` stacked).

Imperfect CSI: every constraint-side function (QoS matrices, feasibility checks, minimum power,
anchors, rate rows) works on ``instances.constraint_side()``, the gains of the robust mode
(:mod:`feasnet.problems.csi`); the rates and the sum rate use the estimate ``instances.gain``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from feasnet.problems.instances import PowerControlInstances

DEFAULT_RTOL = 1e-6
"""Relative tolerance of the float64 feasibility check used throughout feasnet."""


# ---------------------------------------------------------------------------- objective
def min_sinr(instances: PowerControlInstances) -> Tensor:
    """Minimum SINR ``beta = 2**(alpha / W) - 1`` of every user: ``(N, B, Q)``, linear."""
    return torch.expm1(instances.min_rate / instances.bandwidth[:, None, None] * math.log(2.0))


def received_powers(power: Tensor, instances: PowerControlInstances) -> tuple[Tensor, Tensor]:
    """Desired and interfering received power of every user.

    Args:
        power: ``(N, B, Q)`` transmit powers [W].

    Returns:
        ``(signal, interference)``, each ``(N, B, Q)`` [W]; interference excludes noise.
    """
    total = torch.einsum("nbqc,ncq->nbq", instances.gain, power)
    direct = torch.diagonal(instances.gain, dim1=1, dim2=3).transpose(1, 2)  # (N, B, Q)
    signal = direct * power
    return signal, total - signal


def sinr(power: Tensor, instances: PowerControlInstances) -> Tensor:
    """SINR of every user (eq. 1): ``(N, B, Q)``, linear, for powers ``(N, B, Q)`` [W]."""
    signal, interference = received_powers(power, instances)
    return signal / (interference + instances.noise[:, None, None])


def rates(power: Tensor, instances: PowerControlInstances) -> Tensor:
    """Rate of every user (eq. 1): ``(N, B, Q)`` [bit/s] for powers ``(N, B, Q)`` [W]."""
    return instances.bandwidth[:, None, None] * torch.log2(1.0 + sinr(power, instances))


def sum_rate(power: Tensor, instances: PowerControlInstances) -> Tensor:
    """Network sum rate (objective of eq. 2): ``(N,)`` [bit/s] for powers ``(N, B, Q)`` [W]."""
    return rates(power, instances).sum(dim=(1, 2))


# ---------------------------------------------------------------------------- vector form
def to_vector(power: Tensor) -> Tensor:
    """Stack the columns of ``P``: ``(N, B, Q) -> (N, B*Q)`` with ``p[q*B + b] = P[b, q]``."""
    return power.transpose(1, 2).reshape(power.shape[0], -1)


def to_matrix(p: Tensor, num_bs: int, num_channels: int) -> Tensor:
    """Inverse of :func:`to_vector`: ``(N, B*Q) -> (N, B, Q)``."""
    return p.reshape(p.shape[0], num_channels, num_bs).transpose(1, 2)


@dataclass(frozen=True)
class VectorForm:
    """Linear constraints of eq. (4) in physical units: ``p >= 0``, ``A p <= pmax``, ``C p >= d``.

    Attributes:
        A: ``(B, U)`` 0/1 matrix summing each BS's powers (eq. 5).
        C: ``(N, U, U)`` block-diagonal QoS matrix ``diag(M_1, ..., M_Q)`` (eq. 6) [linear gain].
        d: ``(N, U)`` QoS right-hand side ``beta * sigma^2`` [W].
        pmax: ``(N,)`` power budget [W].
    """

    A: Tensor
    C: Tensor
    d: Tensor
    pmax: Tensor


def vector_form(instances: PowerControlInstances) -> VectorForm:
    """Build ``A``, ``C``, ``d`` of eqs. (4)-(6) for every instance (constraint-side gains)."""
    instances = instances.constraint_side()
    n, b, q = instances.num_instances, instances.num_bs, instances.num_channels
    u = b * q
    dtype, device = instances.dtype, instances.device
    a = torch.zeros(b, u, dtype=dtype, device=device)
    a[torch.arange(u, device=device) % b, torch.arange(u, device=device)] = 1.0
    beta = min_sinr(instances)  # (N, B, Q)
    gain_q = instances.gain.permute(0, 2, 1, 3)  # (N, Q, B, B): [n, q, b, c]
    eye = torch.eye(b, dtype=dtype, device=device)
    blocks = gain_q * eye - beta.transpose(1, 2)[..., None] * gain_q * (1 - eye)  # (N, Q, B, B)
    c = torch.zeros(n, u, u, dtype=dtype, device=device)
    for k in range(q):
        c[:, k * b : (k + 1) * b, k * b : (k + 1) * b] = blocks[:, k]
    d = to_vector(beta * instances.noise[:, None, None])
    return VectorForm(A=a, C=c, d=d, pmax=instances.pmax)


# ---------------------------------------------------------------------------- normalized form
def qos_matrices(instances: PowerControlInstances) -> tuple[Tensor, Tensor]:
    """The matrices of the exact feasibility test (eqs. 25-26), per channel.

    Returns:
        ``(B_mat, u)``: ``B_mat`` is ``(N, Q, B, B)`` with
        ``B_mat[n, q, b, c] = beta_bq H[b,q,c] / H[b,q,b]`` off the diagonal and 0 on it
        (dimensionless); ``u`` is ``(N, Q, B)`` with
        ``u[n, q, b] = beta_bq sigma^2 / H[b,q,b]`` [W]. On the constraint-side gains
        (:meth:`~feasnet.problems.instances.PowerControlInstances.constraint_side`).
    """
    instances = instances.constraint_side()
    b = instances.num_bs
    beta = min_sinr(instances).transpose(1, 2)  # (N, Q, B)
    gain_q = instances.gain.permute(0, 2, 1, 3)  # (N, Q, B, B)
    direct = torch.diagonal(gain_q, dim1=2, dim2=3)  # (N, Q, B)
    off = 1 - torch.eye(b, dtype=instances.dtype, device=instances.device)
    b_mat = beta[..., None] * gain_q / direct[..., None] * off
    u = beta * instances.noise[:, None, None] / direct
    return b_mat, u


@dataclass(frozen=True)
class LinearConstraints:
    """All constraints as ``G x <= h`` in normalized units ``x = p / pmax`` (vector layout).

    Rows, in order: ``U`` non-negativity rows ``-x <= 0``; ``B`` budget rows ``A x <= 1``;
    ``U`` QoS rows ``(B_q - I) x_q <= -u_q / pmax`` (each QoS row divided by its direct gain).

    Attributes:
        G: ``(N, 2U + B, U)`` dimensionless.
        h: ``(N, 2U + B)`` dimensionless.
    """

    G: Tensor
    h: Tensor

    @property
    def num_rows(self) -> int:
        return int(self.G.shape[1])


def linear_constraints(instances: PowerControlInstances) -> LinearConstraints:
    """Normalized ``G x <= h`` for every instance (see :class:`LinearConstraints`)."""
    n, b, q = instances.num_instances, instances.num_bs, instances.num_channels
    u_dim = b * q
    dtype, device = instances.dtype, instances.device
    b_mat, u = qos_matrices(instances)
    eye_u = torch.eye(u_dim, dtype=dtype, device=device)
    g = torch.zeros(n, 2 * u_dim + b, u_dim, dtype=dtype, device=device)
    h = torch.zeros(n, 2 * u_dim + b, dtype=dtype, device=device)
    g[:, :u_dim] = -eye_u
    cols = torch.arange(u_dim, device=device)
    g[:, u_dim + cols % b, cols] = 1.0
    h[:, u_dim : u_dim + b] = 1.0
    eye_b = torch.eye(b, dtype=dtype, device=device)
    for k in range(q):
        rows = slice(u_dim + b + k * b, u_dim + b + (k + 1) * b)
        g[:, rows, k * b : (k + 1) * b] = b_mat[:, k] - eye_b
    h[:, u_dim + b :] = -(u / instances.pmax[:, None, None]).reshape(n, u_dim)
    return LinearConstraints(G=g, h=h)


def violation_measure(power: Tensor, instances: PowerControlInstances) -> Tensor:
    """Squared constraint violation ``||max(g, 0)||^2`` in normalized units (eq. 12): ``(N,)``.

    ``g = G x - h`` with ``x = p / pmax`` (see :func:`linear_constraints`); zero iff feasible.
    Differentiable in ``power`` (``(N, B, Q)`` [W]).
    """
    cons = linear_constraints(instances)
    x = to_vector(power) / instances.pmax[:, None]
    g = torch.einsum("nmu,nu->nm", cons.G, x) - cons.h
    return torch.clamp(g, min=0).pow(2).sum(dim=1)


# ---------------------------------------------------------------------------- checks
@dataclass(frozen=True)
class Violations:
    """Per-constraint violation amounts in physical units (0 where a constraint holds).

    Attributes:
        negative_power: ``(N, B, Q)`` [W], ``max(-P, 0)``.
        budget_excess: ``(N, B)`` [W], ``max(sum_q P[b, q] - pmax, 0)``.
        rate_shortfall: ``(N, B, Q)`` [bit/s], ``max(alpha - R, 0)``.
    """

    negative_power: Tensor
    budget_excess: Tensor
    rate_shortfall: Tensor


def violations(power: Tensor, instances: PowerControlInstances) -> Violations:
    """Violation of every constraint for powers ``(N, B, Q)`` [W] (constraint-side gains)."""
    instances = instances.constraint_side()
    return Violations(
        negative_power=torch.clamp(-power, min=0),
        budget_excess=torch.clamp(power.sum(dim=2) - instances.pmax[:, None], min=0),
        rate_shortfall=torch.clamp(instances.min_rate - rates(power, instances), min=0),
    )


def is_feasible(
    power: Tensor, instances: PowerControlInstances, rtol: float = DEFAULT_RTOL
) -> Tensor:
    """Float64 feasibility check: ``(N,)`` bool.

    An allocation passes when it is finite, ``P >= 0``, every row sum is at most
    ``pmax * (1 + rtol)``, every rate is at least ``alpha * (1 - rtol)`` and, for instances
    carrying a minimum energy efficiency ``ee``, every rate is at least
    ``ee * P * (1 - rtol)`` (the multiplied form of ``R / P >= ee``).

    Args:
        power: ``(N, B, Q)`` transmit powers [W] (any float dtype; checked in float64).
        instances: the instances the powers are meant for.
        rtol: relative tolerance on the budget and the rate targets.
    """
    p64 = power.detach().to(torch.float64)
    inst64 = instances.to(torch.float64, p64.device).constraint_side()  # robust CSI corner
    finite = torch.isfinite(p64).all(dim=(1, 2))
    p_safe = torch.where(torch.isfinite(p64), p64, torch.zeros_like(p64))
    nonneg = (p_safe >= 0).all(dim=(1, 2))
    budget = (p_safe.sum(dim=2) <= inst64.pmax[:, None] * (1 + rtol)).all(dim=1)
    r = rates(p_safe.clamp(min=0), inst64)
    rate_ok = (r >= inst64.min_rate * (1 - rtol)).all(dim=(1, 2))
    if inst64.min_energy_efficiency is not None:
        ee_floor = inst64.min_energy_efficiency * p_safe.clamp(min=0) * (1 - rtol)
        rate_ok = rate_ok & (r >= ee_floor).all(dim=(1, 2))
    return finite & nonneg & budget & rate_ok


# ---------------------------------------------------------------------------- non-linear rows
def rate_rows(power: Tensor, instances: PowerControlInstances) -> Tensor:
    """Minimum-rate rows in their non-linear form (eq. 2), scale-free: ``(N, B, Q)``
    ``1 - R_bq(P) / alpha_bq`` (``<= 0`` where met; ``-1`` for a user without target).
    Differentiable in ``power`` ``(N, B, Q)`` [W]. Constraint-side gains."""
    instances = instances.constraint_side()
    alpha = instances.min_rate
    has_target = alpha > 0
    ratio = rates(power, instances) / torch.where(has_target, alpha, torch.ones_like(alpha))
    return torch.where(has_target, 1 - ratio, -torch.ones_like(ratio))


def energy_efficiency_rows(power: Tensor, instances: PowerControlInstances) -> Tensor:
    """Energy-efficiency rows ``ee_bq P_bq - R_bq(P) <= 0`` divided by ``ee_bq pmax`` (so
    scale-free): ``(N, B, Q)`` ``P_bq / pmax - R_bq(P) / (ee_bq pmax)``; ``-1`` for a user
    without requirement (``ee = 0``) and everywhere when the instances carry none.
    Differentiable in ``power`` ``(N, B, Q)`` [W]. Constraint-side gains."""
    instances = instances.constraint_side()
    ee = instances.min_energy_efficiency
    if ee is None:
        return -torch.ones_like(power)
    has_req = ee > 0
    scale = torch.where(has_req, ee, torch.ones_like(ee)) * instances.pmax[:, None, None]
    row = (ee * power - rates(power, instances)) / scale
    return torch.where(has_req, row, -torch.ones_like(row))


def _energy_efficiency_ok(power: Tensor, instances: PowerControlInstances) -> Tensor:
    """``(N,)`` bool, every energy-efficiency row holds exactly (float64, rtol 0)."""
    instances = instances.constraint_side()
    if instances.min_energy_efficiency is None:
        return torch.ones(power.shape[0], dtype=torch.bool, device=power.device)
    floor = instances.min_energy_efficiency * power
    return (rates(power, instances) >= floor).all(dim=(1, 2))


# ---------------------------------------------------------------------------- min power
@dataclass(frozen=True)
class MinimumPower:
    """Result of the exact feasibility test.

    Attributes:
        power: ``(N, B, Q)`` [W], the componentwise-minimal power meeting every QoS row with
            equality; NaN for instances whose QoS targets are unreachable at any power.
        qos_reachable: ``(N,)`` bool, spectral radius of every ``B_q`` below 1.
        feasible: ``(N,)`` bool, QoS reachable and ``P_min`` within every BS budget.
        spectral_radius: ``(N, Q)`` spectral radius of each ``B_q`` (feasible needs < 1);
            ``inf`` where a QoS coefficient is not a finite float64 number.
        overflow: ``(N, B, Q)`` bool, users whose minimum SINR ``2**(alpha / W) - 1`` or
            whose QoS row (``B_q`` row, ``u_q`` entry) overflows float64; such a target is
            unreachable. None when not computed (treated as all False).
        gain_overflow: ``(N, B, Q)`` bool, users whose received power at full budget in noise
            units, ``sum_c H[b, q, c] pmax / sigma^2``, overflows float64: their rates cannot
            be evaluated, so no allocation of the instance can be checked and it is reported
            infeasible. None when not computed (treated as all False).
        efficiency_short: ``(N, B, Q)`` bool, users whose minimum energy efficiency fails at
            ``P_min`` (``alpha_bq < ee_bq P_min[b, q]``). Every ratio ``R_bq / P_bq`` is
            non-increasing in every power (``R_bq`` is concave in ``P_bq`` with ``R_bq(0) = 0``
            and decreasing in the others' powers) and every rate-feasible ``P`` dominates
            ``P_min``, so such an instance has no feasible point: the test stays exact.
            None when the instances carry no energy-efficiency requirement.
    """

    power: Tensor
    qos_reachable: Tensor
    feasible: Tensor
    spectral_radius: Tensor
    overflow: Tensor | None = None
    gain_overflow: Tensor | None = None
    efficiency_short: Tensor | None = None

    def reasons(self) -> list[str]:
        """One human-readable line per instance ("" when feasible)."""
        out = []
        for i, (reachable, ok) in enumerate(
            zip(self.qos_reachable.tolist(), self.feasible.tolist(), strict=True)
        ):
            if ok:
                out.append("")
            elif (user := _first_user(self.gain_overflow, i)) is not None:
                out.append(
                    f"infeasible (outside float64 range): the received power of user (b={user[0]}, "
                    f"q={user[1]}) at full budget in noise units, H*pmax/noise, overflows; "
                    "rescale H and noise"
                )
            elif (user := _first_user(self.overflow, i)) is not None:
                out.append(
                    f"infeasible: rate target of user (b={user[0]}, q={user[1]}) unreachable: "
                    "its minimum SINR 2^(alpha/W)-1 (or its QoS row) overflows float64"
                )
            elif not reachable:
                out.append(
                    "infeasible: the rate targets cannot be met at any power (rho(B_q) >= 1)"
                )
            elif (user := _first_user(self.efficiency_short, i)) is not None:
                out.append(
                    f"infeasible: the energy-efficiency requirement of user (b={user[0]}, "
                    f"q={user[1]}) fails at the minimum powers meeting the rate targets"
                )
            else:
                out.append("infeasible: the minimum powers meeting the rate targets exceed pmax")
        return out


def _first_user(mask: Tensor | None, index: int) -> tuple[int, int] | None:
    """``(b, q)`` of the first True entry of ``mask[index]`` (``(N, B, Q)``), or None."""
    if mask is None or not bool(mask[index].any()):
        return None
    b, q = torch.nonzero(mask[index])[0].tolist()
    return int(b), int(q)


def minimum_power(instances: PowerControlInstances) -> MinimumPower:
    """Componentwise-minimal QoS power ``P_min`` and the exact feasibility test (eqs. 25-26).

    For each channel ``q``, ``P[:, q] = (I - B_q)^{-1} u_q`` when the spectral radius of the
    non-negative matrix ``B_q`` is below 1; any feasible ``P`` dominates ``P_min``
    componentwise, so the instance is feasible iff ``P_min`` fits every BS budget.
    Computed in float64 and returned in the instances' dtype.

    Non-finite numbers never reach the eigenvalue solver (which can spin forever on them):
    users without a target (``alpha = 0``) sit at zero power in ``P_min``, so their rows and
    columns of ``B_q`` are dropped (set to 0, which changes neither ``P_min`` nor the spectral
    radius); a user with a target whose minimum SINR ``beta`` or QoS row overflows (e.g.
    ``alpha > ~1024 W``) needs infinite power, so its channel is unreachable and decided here
    without any iteration. An instance whose noise-normalized gains ``H pmax / sigma^2``
    overflow cannot be evaluated at all and is reported infeasible too (see
    :attr:`MinimumPower.gain_overflow`).
    """
    inst64 = instances.to(torch.float64).constraint_side()  # robust CSI corner, if any
    received = inst64.gain.sum(dim=3) * (inst64.pmax / inst64.noise)[:, None, None]  # (N, B, Q)
    gain_overflow = ~torch.isfinite(received)
    b_mat, u = qos_matrices(inst64)  # (N, Q, B, B), (N, Q, B)
    beta = min_sinr(inst64).transpose(1, 2)  # (N, Q, B)
    has_target = beta != 0  # NaN/inf count as targets
    pair = has_target[..., :, None] & has_target[..., None, :]
    b_mat = torch.where(pair, b_mat, torch.zeros_like(b_mat))
    u = torch.where(has_target, u, torch.zeros_like(u))
    user_overflow = has_target & ~(
        torch.isfinite(beta) & torch.isfinite(b_mat).all(dim=-1) & torch.isfinite(u)
    )  # (N, Q, B)
    finite_q = ~user_overflow.any(dim=-1)  # (N, Q)
    b_safe = torch.where(finite_q[..., None, None], b_mat, torch.zeros_like(b_mat))
    u_safe = torch.where(finite_q[..., None], u, torch.zeros_like(u))
    eye = torch.eye(inst64.num_bs, dtype=torch.float64, device=inst64.device)
    radius = torch.linalg.eigvals(b_safe).abs().amax(dim=-1)  # (N, Q)
    radius = torch.where(finite_q, radius, torch.full_like(radius, math.inf))
    solution, info = torch.linalg.solve_ex(eye - b_safe, u_safe.unsqueeze(-1))
    solution = solution.squeeze(-1)  # (N, Q, B)
    ok_q = (
        finite_q
        & (radius < 1.0)
        & (info == 0)
        & torch.isfinite(solution).all(-1)
        & (solution >= 0).all(-1)
    )
    reachable = ok_q.all(dim=1)
    power = solution.transpose(1, 2)  # (N, B, Q)
    power = torch.where(reachable[:, None, None], power, torch.full_like(power, float("nan")))
    fits = (power.sum(dim=2) <= inst64.pmax[:, None]).all(dim=1)
    feasible = reachable & fits & ~gain_overflow.any(dim=(1, 2))
    efficiency_short = None
    if inst64.min_energy_efficiency is not None:
        # R_bq(P_min) = alpha_bq exactly; users without target sit at zero power (R = 0 = ee*0)
        need = inst64.min_energy_efficiency * power
        efficiency_short = reachable[:, None, None] & (inst64.min_rate < need)
        feasible = feasible & ~efficiency_short.any(dim=(1, 2))
    return MinimumPower(
        power=power.to(instances.dtype),
        qos_reachable=reachable,
        feasible=feasible,
        spectral_radius=radius.to(instances.dtype),
        overflow=user_overflow.transpose(1, 2),
        gain_overflow=gain_overflow,
        efficiency_short=efficiency_short,
    )


def interior_anchor(
    instances: PowerControlInstances,
    fraction: float = 0.5,
    min_power: MinimumPower | None = None,
) -> Tensor:
    """A strictly interior point in closed form: ``s * P_min`` (see docs/power-control.md).

    Scaling ``P_min`` by ``s > 1`` gives ``C (s p) = s d > d`` (every QoS row slack, as
    ``d > 0``), and ``s < s_max = pmax / max_b sum_q P_min[b, q]`` keeps every budget slack.
    We take ``s = 1 + fraction * (s_max - 1)``. When no user has a rate target (``P_min = 0``)
    the anchor is the uniform split ``fraction * pmax / Q``. Users with a zero target sit at
    zero power in the anchor (on the ``P >= 0`` face, every other row strict).

    Args:
        instances: the batch.
        fraction: position in ``(0, 1)`` between ``P_min`` (0) and the budget boundary (1).
        min_power: a precomputed :func:`minimum_power` result, to avoid recomputing it.

    Returns:
        ``(N, B, Q)`` [W] in the instances' dtype; NaN rows for infeasible instances and
        ``P_min`` itself when the budget is exactly tight (no interior exists).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction: expected a value in (0, 1), got {fraction}")
    mp = min_power if min_power is not None else minimum_power(instances)
    p_min = mp.power.to(torch.float64)
    pmax = instances.pmax.to(torch.float64)
    load = p_min.sum(dim=2).amax(dim=1)  # (N,)
    has_targets = load > 0
    s_max = pmax / torch.where(has_targets, load, torch.ones_like(load))
    scale = 1.0 + fraction * (s_max - 1.0)
    anchor = p_min * scale[:, None, None]
    uniform = (fraction * pmax / instances.num_channels)[:, None, None].expand_as(p_min)
    anchor = torch.where(has_targets[:, None, None], anchor, uniform)
    if instances.min_energy_efficiency is not None:
        anchor = _efficient_anchor(instances, p_min, s_max, has_targets, fraction)
    anchor = torch.where(mp.feasible[:, None, None], anchor, torch.full_like(anchor, float("nan")))
    return anchor.to(instances.dtype)


def _efficient_anchor(
    instances: PowerControlInstances,
    p_min: Tensor,
    s_max: Tensor,
    has_targets: Tensor,
    fraction: float,
    iterations: int = 60,
) -> Tensor:
    """The interior anchor when the instances carry a minimum energy efficiency.

    Along a ray ``s * D`` from the origin every ratio ``R_bq / P_bq`` is non-increasing in
    ``s``, so the energy-efficiency rows hold on an interval ``s <= s_ee`` found by bisection
    on the exact float64 rows. With rate targets ``D = P_min`` and ``s`` runs over
    ``[1, min(s_max, s_ee)]`` (rate rows strict for ``s > 1``); without, ``D`` is the uniform
    split ``pmax / Q`` over the users whose ratio at vanishing power,
    ``W H_bqb / (ln 2 sigma^2)``, exceeds their requirement (the others must stay at zero
    power), and ``s`` runs over ``(0, min(1, s_ee)]``. The anchor is ``fraction`` of the way
    along that interval: every ratio strictly above its requirement (the ratio decreases
    strictly in ``s`` for a user with power), every budget slack.
    Returns ``(N, B, Q)`` float64 [W].
    """
    inst64 = instances.to(torch.float64, p_min.device).constraint_side()
    ee = inst64.min_energy_efficiency
    assert ee is not None
    direct = torch.diagonal(inst64.gain, dim1=1, dim2=3).transpose(1, 2)  # (N, B, Q)
    slope0 = (
        inst64.bandwidth[:, None, None] * direct / (math.log(2.0) * inst64.noise[:, None, None])
    )
    eligible = slope0 > ee
    uniform = (inst64.pmax / inst64.num_channels)[:, None, None] * eligible
    base = torch.where(has_targets[:, None, None], torch.nan_to_num(p_min), uniform)
    low = torch.where(has_targets, torch.ones_like(s_max), torch.zeros_like(s_max))
    high = torch.where(has_targets, torch.nan_to_num(s_max, nan=1.0), torch.ones_like(s_max))
    ok_high = _energy_efficiency_ok(base * high[:, None, None], inst64)
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        ok = _energy_efficiency_ok(base * mid[:, None, None], inst64)
        low = torch.where(ok, mid, low)
        high = torch.where(ok, high, mid)
    top = torch.where(ok_high, high, low)
    start = torch.where(has_targets, torch.ones_like(top), torch.zeros_like(top))
    scale = start + fraction * (top - start)
    return base * scale[:, None, None]


def ray_exit(x_anchor: Tensor, direction: Tensor, cons: LinearConstraints) -> Tensor:
    """``(N,)`` largest ``t >= 0`` keeping ``x_anchor + t * direction`` inside ``G x <= h``.

    Closed form: the first row the ray crosses, ``min`` over rows with ``G d > 0`` of
    ``slack / (G d)`` (slack clamped at 0); ``inf`` where no row limits the ray.
    Differentiable almost everywhere.

    Args:
        x_anchor: ``(N, U)`` feasible points in normalized vector layout (see
            :func:`linear_constraints`).
        direction: ``(N, U)`` directions, same layout.
        cons: the instances' :func:`linear_constraints`.
    """
    slack = cons.h - torch.einsum("nmu,nu->nm", cons.G, x_anchor)  # >= 0 at a feasible anchor
    rate = torch.einsum("nmu,nu->nm", cons.G, direction)
    slack = torch.clamp(slack, min=0)
    crosses = rate > 0
    limits = torch.where(
        crosses, slack / torch.where(crosses, rate, torch.ones_like(rate)), math.inf
    )
    return limits.amin(dim=1)


def scale_toward_anchor(
    power: Tensor, anchor: Tensor, instances: PowerControlInstances
) -> tuple[Tensor, Tensor]:
    """Move each candidate along the segment to a feasible anchor until it is feasible.

    Returns ``anchor + t * (power - anchor)`` with the largest ``t`` in ``[0, 1]`` that keeps
    every linear constraint (closed form: the first constraint row the segment crosses).
    Feasible candidates come back unchanged (``t = 1``). Differentiable almost everywhere.

    Args:
        power: ``(N, B, Q)`` candidates [W] (any values; non-finite entries give ``t = 0``).
        anchor: ``(N, B, Q)`` feasible points, e.g. :func:`interior_anchor` [W].
        instances: the batch.

    Returns:
        ``(scaled, t)``: ``(N, B, Q)`` [W] and ``(N,)`` step fractions.
    """
    cons = linear_constraints(instances)
    pmax = instances.pmax[:, None]
    x_anchor = to_vector(anchor) / pmax
    finite = torch.isfinite(power).all(dim=(1, 2))
    safe_power = torch.where(finite[:, None, None], power, anchor)
    direction = to_vector(safe_power) / pmax - x_anchor
    t = torch.clamp(ray_exit(x_anchor, direction, cons), max=1.0)
    t = torch.where(finite, t, torch.zeros_like(t))
    scaled = anchor + t[:, None, None] * (safe_power - anchor)
    scaled = torch.where((t == 1)[:, None, None], safe_power, scaled)  # exact when untouched
    return scaled, t
