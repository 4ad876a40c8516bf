"""Downlink MISO beamforming with QoS: the survey's weighted-sum-rate case study.

One base station with ``Nt`` antennas serves ``K`` single-antenna users with complex
beamformers ``V = [v_1, ..., v_K]`` (``(Nt, K)``). User ``k`` receives
``y_k = h_k^T sum_j v_j s_j + n_k`` where ``h_k = H[k, :]`` (no conjugate), so the amplitude of
beam ``j`` at user ``k`` is ``(H @ V)[k, j]``.

Problem (per instance)::

    maximize    sum_k w_k log2(1 + SINR_k)                       [bit/s/Hz]
    subject to  sum_k ||v_k||^2 / eta + Pc <= Pmax               (total power budget)
                SINR_k >= gamma_k                                (QoS, every user)

    SINR_k = |h_k^T v_k|^2 / (sum_{j != k} |h_k^T v_j|^2 + sigma^2)

The power constraint is the same as ``sum_k ||v_k||^2 <= eta (Pmax - Pc)``, the *transmit
budget*. After rotating each beam's phase so that ``h_k^T v_k`` is real and non-negative (which
changes no SINR), every QoS constraint is a second-order cone, so the feasible set is convex up
to those phases; its minimum-power point decides feasibility exactly (:func:`minimum_power`).

Normalized units (:func:`normalized_channel`): beamformers in units of ``sqrt(budget)`` and
channels scaled by ``sqrt(budget / sigma^2)``, so that the budget is ``||V||^2 <= 1`` and the
noise is 1. Every SINR is unchanged; solvers and networks work in these units.

Everything is batched over a leading dimension ``N`` and works in complex64/complex128 on any
device. Feasibility is checked in float64 (:func:`is_feasible`) with a relative tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from feasnet.problems.instances import InvalidInstanceError, field_tensor

DEFAULT_RTOL = 1e-6
"""Relative tolerance of :func:`is_feasible` on the budget and the SINR targets."""

_DIVERGED = 1e30
"""Uplink power (noise-normalized) beyond which :func:`minimum_power` calls targets unreachable."""

_COMPLEX_OF = {torch.float32: torch.complex64, torch.float64: torch.complex128}
_REAL_OF = {torch.complex64: torch.float32, torch.complex128: torch.float64}


# ============================================================================ instances
@dataclass(frozen=True)
class MisoInstances:
    """``N`` MISO beamforming instances.

    Attributes:
        channel: ``(N, K, Nt)`` complex, row ``k`` is user ``k``'s channel ``h_k``
            (amplitude gain, ``y_k = h_k^T v``) [sqrt(W)/sqrt(W), i.e. linear amplitude].
        pmax: ``(N,)`` real, total power budget including circuit power [W].
        circuit_power: ``(N,)`` real, circuit power ``Pc`` [W] (``>= 0``).
        efficiency: ``(N,)`` real, power-amplifier efficiency ``eta`` in ``(0, 1]``.
        noise: ``(N,)`` real, receiver noise power ``sigma^2`` [W].
        sinr_min: ``(N, K)`` real, SINR targets ``gamma_k`` (linear, ``>= 0``).
        weights: ``(N, K)`` real, rate weights ``w_k`` (``>= 0``).
    """

    channel: Tensor
    pmax: Tensor
    circuit_power: Tensor
    efficiency: Tensor
    noise: Tensor
    sinr_min: Tensor
    weights: Tensor

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        channel: Any,
        pmax: Any,
        circuit_power: Any,
        efficiency: Any,
        noise: Any,
        sinr_min: Any,
        weights: Any = 1.0,
        dtype: torch.dtype = torch.complex128,
        device: torch.device | str | None = None,
    ) -> MisoInstances:
        """Validate array-likes, broadcast scalars and build a batch.

        Args:
            channel: ``(N, K, Nt)`` complex (a real array is accepted as complex), finite,
                every user's channel non-zero. Field name in errors: ``H``.
            pmax: scalar or ``(N,)``, ``> 0`` [W].
            circuit_power: scalar or ``(N,)``, ``>= 0`` [W] (``pc``). ``pc >= pmax`` is not an
                input error: such an instance is reported infeasible by :func:`minimum_power`.
            efficiency: scalar or ``(N,)``, in ``(0, 1]`` (``eta``).
            noise: scalar or ``(N,)``, ``> 0`` [W].
            sinr_min: scalar, ``(N,)``, ``(K,)`` or ``(N, K)``, linear, ``>= 0``.
            weights: scalar, ``(N,)``, ``(K,)`` or ``(N, K)``, ``>= 0``.
            dtype: complex dtype of the channel (reals get the matching float dtype).

        Raises:
            InvalidInstanceError: naming the field and what was expected.
        """
        if dtype not in _REAL_OF:
            raise ValueError(f"dtype: expected complex64 or complex128, got {dtype}")
        real_dtype = _REAL_OF[dtype]
        h = field_tensor("H", channel, allow_complex=True).to(dtype=dtype, device=device)
        if h.ndim != 3:
            raise InvalidInstanceError(f"H: expected shape (N, K, Nt), got {tuple(h.shape)}")
        n, k, nt = h.shape
        if n == 0 or k == 0 or nt == 0:
            raise InvalidInstanceError(f"H: expected non-empty dimensions, got {tuple(h.shape)}")
        if not torch.isfinite(torch.view_as_real(h)).all():
            raise InvalidInstanceError("H: contains NaN or inf; expected finite channel amplitudes")
        if (h.abs().sum(dim=2) == 0).any():
            raise InvalidInstanceError("H: a user's channel is all zero; every user needs a path")

        def per_instance(name: str, value: Any, low: float, strict: bool, high: float = math.inf):
            t = field_tensor(name, value).to(dtype=real_dtype, device=device)
            if t.ndim == 0:
                t = t.expand(n).clone()
            if t.shape != (n,):
                raise InvalidInstanceError(
                    f"{name}: expected a scalar or shape ({n},), got {tuple(t.shape)}"
                )
            _check_range(name, t, low, strict, high)
            return t

        def per_user(name: str, value: Any) -> Tensor:
            t = field_tensor(name, value).to(dtype=real_dtype, device=device)
            if t.ndim == 0:
                t = t.expand(n, k).clone()
            elif t.shape == (n,) and n != k:
                t = t[:, None].expand(n, k).clone()
            elif t.shape == (k,):
                t = t[None, :].expand(n, k).clone()
            if t.shape != (n, k):
                raise InvalidInstanceError(
                    f"{name}: expected a scalar, shape ({n},), ({k},) or ({n}, {k}), got "
                    f"{tuple(t.shape)}"
                )
            _check_range(name, t, 0.0, strict=False)
            return t

        return cls(
            channel=h,
            pmax=per_instance("pmax", pmax, 0.0, strict=True),
            circuit_power=per_instance("pc", circuit_power, 0.0, strict=False),
            efficiency=per_instance("eta", efficiency, 0.0, strict=True, high=1.0),
            noise=per_instance("noise", noise, 0.0, strict=True),
            sinr_min=per_user("sinr_min", sinr_min),
            weights=per_user("weights", weights),
        )

    # ------------------------------------------------------------------ shape helpers
    @property
    def num_instances(self) -> int:
        return int(self.channel.shape[0])

    @property
    def num_users(self) -> int:
        return int(self.channel.shape[1])

    @property
    def num_antennas(self) -> int:
        return int(self.channel.shape[2])

    def __len__(self) -> int:
        return self.num_instances

    @property
    def dtype(self) -> torch.dtype:
        """Complex dtype of the channel."""
        return self.channel.dtype

    @property
    def real_dtype(self) -> torch.dtype:
        return _REAL_OF[self.channel.dtype]

    @property
    def device(self) -> torch.device:
        return self.channel.device

    @property
    def transmit_budget(self) -> Tensor:
        """``(N,)`` ``eta (Pmax - Pc)`` [W]: the most ``sum_k ||v_k||^2`` may be (< 0: none)."""
        return self.efficiency * (self.pmax - self.circuit_power)

    def __getitem__(self, index: int | slice | Tensor | np.ndarray | list[int]) -> MisoInstances:
        """A sub-batch (an integer index keeps the batch dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        if isinstance(index, np.ndarray | list):
            index = torch.as_tensor(index, device=self.device)
        return MisoInstances(*(getattr(self, f.name)[index] for f in fields(self)))

    def to(
        self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> MisoInstances:
        """Copy to another dtype (complex, or the matching real one) and/or device."""
        if dtype in _COMPLEX_OF:
            dtype = _COMPLEX_OF[dtype]
        complex_dtype = dtype or self.dtype
        real_dtype = _REAL_OF[complex_dtype]
        values = {
            f.name: getattr(self, f.name).to(
                dtype=complex_dtype if f.name == "channel" else real_dtype, device=device
            )
            for f in fields(self)
        }
        return MisoInstances(**values)

    def as_numpy(self) -> dict[str, np.ndarray]:
        """Plain arrays keyed as in the ``.npz`` exchange format (complex128 / float64)."""
        return {
            "H": self.channel.detach().cpu().to(torch.complex128).numpy(),
            "pmax": self.pmax.detach().cpu().double().numpy(),
            "pc": self.circuit_power.detach().cpu().double().numpy(),
            "eta": self.efficiency.detach().cpu().double().numpy(),
            "noise": self.noise.detach().cpu().double().numpy(),
            "sinr_min": self.sinr_min.detach().cpu().double().numpy(),
            "weights": self.weights.detach().cpu().double().numpy(),
        }

    @classmethod
    def from_numpy(cls, arrays: dict[str, Any], **kwargs: Any) -> MisoInstances:
        """Inverse of :meth:`as_numpy` (validated; missing keys raise naming the key)."""
        for key in ("H", "pmax", "pc", "eta", "noise", "sinr_min", "weights"):
            if key not in arrays:
                raise InvalidInstanceError(f"{key}: missing")
        return cls.from_arrays(
            arrays["H"],
            arrays["pmax"],
            arrays["pc"],
            arrays["eta"],
            arrays["noise"],
            arrays["sinr_min"],
            arrays["weights"],
            **kwargs,
        )

    @staticmethod
    def concatenate(parts: list[MisoInstances]) -> MisoInstances:
        """Stack batches of equal ``(K, Nt)`` along the instance dimension."""
        if not parts:
            raise ValueError("concatenate: need at least one batch")
        return MisoInstances(
            *(torch.cat([getattr(p, f.name) for p in parts]) for f in fields(MisoInstances))
        )


def _check_range(name: str, t: Tensor, low: float, strict: bool, high: float = math.inf) -> None:
    if not torch.isfinite(t).all():
        raise InvalidInstanceError(f"{name}: contains NaN or inf")
    if (t <= low).any() if strict else (t < low).any():
        raise InvalidInstanceError(f"{name}: must be {'>' if strict else '>='} {low:g}")
    if (t > high).any():
        raise InvalidInstanceError(f"{name}: must be <= {high:g}")


# ============================================================================ objective
def beam_gains(beams: Tensor, instances: MisoInstances) -> Tensor:
    """``(N, K, K)`` complex ``G[n, k, j] = h_k^T v_j``, the amplitude of beam j at user k.

    Args:
        beams: ``(N, Nt, K)`` complex beamformers [sqrt(W)].
    """
    return instances.channel @ beams


def signal_and_interference(beams: Tensor, instances: MisoInstances) -> tuple[Tensor, Tensor]:
    """``(signal, interference)``, each ``(N, K)`` real [W]: ``|h_k^T v_k|^2`` and
    ``sum_{j != k} |h_k^T v_j|^2``."""
    power = beam_gains(beams, instances).abs().square()
    signal = torch.diagonal(power, dim1=1, dim2=2)
    return signal, power.sum(dim=2) - signal


def sinr(beams: Tensor, instances: MisoInstances) -> Tensor:
    """``(N, K)`` SINR of every user (linear) for beams ``(N, Nt, K)``."""
    signal, interference = signal_and_interference(beams, instances)
    return signal / (interference + instances.noise[:, None])


def rates(beams: Tensor, instances: MisoInstances) -> Tensor:
    """``(N, K)`` spectral efficiency ``log2(1 + SINR_k)`` [bit/s/Hz]."""
    return torch.log2(1 + sinr(beams, instances))


def weighted_sum_rate(beams: Tensor, instances: MisoInstances) -> Tensor:
    """``(N,)`` ``sum_k w_k log2(1 + SINR_k)`` [bit/s/Hz]."""
    return (instances.weights * rates(beams, instances)).sum(dim=1)


def transmit_power(beams: Tensor) -> Tensor:
    """``(N,)`` ``sum_k ||v_k||^2`` [W] for beams ``(N, Nt, K)``."""
    return beams.abs().square().sum(dim=(1, 2))


def consumed_power(beams: Tensor, instances: MisoInstances) -> Tensor:
    """``(N,)`` ``sum_k ||v_k||^2 / eta + Pc`` [W], the left side of the budget constraint."""
    return transmit_power(beams) / instances.efficiency + instances.circuit_power


# ============================================================================ constraints
def constraint_values(beams: Tensor, instances: MisoInstances) -> Tensor:
    """``(N, 1 + K)`` normalized constraint functions, ``<= 0`` where satisfied.

    Column 0 is the budget, ``||V||^2 / budget - 1``; column ``1 + k`` is ``1 - SINR_k / gamma_k``
    (``-1`` for a user without target). Both are dimensionless, which is what the penalty and
    the DC3 correction act on.
    """
    budget = instances.transmit_budget
    power_row = transmit_power(beams) / budget - 1
    target = instances.sinr_min
    has_target = target > 0
    ratio = sinr(beams, instances) / torch.where(has_target, target, torch.ones_like(target))
    qos_rows = torch.where(has_target, 1 - ratio, -torch.ones_like(ratio))
    return torch.cat([power_row[:, None], qos_rows], dim=1)


def violation_measure(beams: Tensor, instances: MisoInstances) -> Tensor:
    """``(N,)`` sum of the positive parts of :func:`constraint_values` (0 iff feasible)."""
    return torch.relu(constraint_values(beams, instances)).sum(dim=1)


@dataclass(frozen=True)
class Violations:
    """Per-constraint violation amounts in physical units (0 where a constraint holds).

    Attributes:
        budget_excess: ``(N,)`` [W], ``max(sum_k ||v_k||^2 / eta + Pc - Pmax, 0)``.
        sinr_shortfall: ``(N, K)`` linear, ``max(gamma_k - SINR_k, 0)``.
    """

    budget_excess: Tensor
    sinr_shortfall: Tensor


def violations(beams: Tensor, instances: MisoInstances) -> Violations:
    """Violation of every constraint for beams ``(N, Nt, K)``."""
    return Violations(
        budget_excess=torch.clamp(consumed_power(beams, instances) - instances.pmax, min=0),
        sinr_shortfall=torch.clamp(instances.sinr_min - sinr(beams, instances), min=0),
    )


def is_feasible(beams: Tensor, instances: MisoInstances, rtol: float = DEFAULT_RTOL) -> Tensor:
    """Float64 feasibility check: ``(N,)`` bool.

    Beams pass when they are finite, the consumed power is at most ``Pmax (1 + rtol)`` and every
    SINR is at least ``gamma_k (1 - rtol)``.

    Args:
        beams: ``(N, Nt, K)`` complex beamformers [sqrt(W)] (checked in complex128).
        instances: the instances the beams are meant for.
        rtol: relative tolerance on the budget and the SINR targets.
    """
    v = beams.detach().to(torch.complex128)
    inst = instances.to(torch.complex128, v.device)
    finite = torch.isfinite(torch.view_as_real(v)).flatten(1).all(dim=1)
    v = torch.where(finite[:, None, None], v, torch.zeros_like(v))
    budget_ok = consumed_power(v, inst) <= inst.pmax * (1 + rtol)
    qos_ok = (sinr(v, inst) >= inst.sinr_min * (1 - rtol)).all(dim=1)
    return finite & budget_ok & qos_ok


# ============================================================================ units
def normalized_channel(instances: MisoInstances) -> Tensor:
    """``(N, K, Nt)`` complex ``H * sqrt(budget / sigma^2)``: with beams in units of
    ``sqrt(budget)`` the budget reads ``||V||^2 <= 1`` and the noise is 1 (SINRs unchanged).

    Instances without a positive transmit budget get the scale of a zero budget (all zeros).
    """
    budget = instances.transmit_budget.clamp(min=0)
    scale = torch.sqrt(budget / instances.noise).to(instances.dtype)
    return instances.channel * scale[:, None, None]


def beams_from_normalized(normalized: Tensor, instances: MisoInstances) -> Tensor:
    """Beams [sqrt(W)] ``(N, Nt, K)`` from normalized beams (units of ``sqrt(budget)``)."""
    scale = torch.sqrt(instances.transmit_budget.clamp(min=0)).to(normalized.dtype)
    return normalized * scale[:, None, None]


def beams_to_normalized(beams: Tensor, instances: MisoInstances) -> Tensor:
    """Inverse of :func:`beams_from_normalized` (NaN where the budget is not positive)."""
    scale = torch.sqrt(instances.transmit_budget).to(beams.dtype)
    return beams / scale[:, None, None]


# ============================================================================ min power
@dataclass(frozen=True)
class MinimumPower:
    """Result of the exact feasibility test.

    Attributes:
        beams: ``(N, Nt, K)`` complex [sqrt(W)], the minimum-power beamformers meeting every
            SINR target with equality (zero beams for users without target); NaN where the
            targets cannot be met at any power.
        power: ``(N,)`` [W] their transmit power ``sum_k ||v_k||^2`` (inf where unreachable).
        qos_reachable: ``(N,)`` bool, some finite power meets every target.
        feasible: ``(N,)`` bool, reachable and ``power <= eta (Pmax - Pc)``.
        iterations: fixed-point iterations run on the batch.
        out_of_range: ``(N,)`` bool, instances whose noise-normalized budget
            ``max |h|^2 eta (Pmax - Pc) / sigma^2`` overflows float64; they are reported
            infeasible without iterating (their SINRs cannot be evaluated). None: all False.
    """

    beams: Tensor
    power: Tensor
    qos_reachable: Tensor
    feasible: Tensor
    iterations: int
    out_of_range: Tensor | None = None

    def reasons(self) -> list[str]:
        """One human-readable line per instance (``""`` when feasible)."""
        out = []
        flags = self.qos_reachable.tolist()
        out_of_range = (
            self.out_of_range.tolist() if self.out_of_range is not None else [False] * len(flags)
        )
        for reachable, ok, overflow in zip(
            flags, self.feasible.tolist(), out_of_range, strict=True
        ):
            if ok:
                out.append("")
            elif overflow:
                out.append(
                    "infeasible (outside float64 range): the noise-normalized budget "
                    "max|h|^2 eta (pmax - pc) / noise overflows; rescale H and noise"
                )
            elif not reachable:
                out.append("infeasible: the SINR targets cannot be met at any power")
            else:
                out.append(
                    "infeasible: the minimum transmit power meeting the SINR targets exceeds "
                    "eta (pmax - pc)"
                )
        return out


def minimum_power(
    instances: MisoInstances,
    tol: float = 1e-12,
    max_iterations: int = 10_000,
    stop_above_budget: bool = True,
) -> MinimumPower:
    """Minimum-power beamformers by uplink-downlink duality (exact feasibility test).

    The SOCP ``min ||V||^2 s.t. SINR_k >= gamma_k`` is solved through its dual uplink power
    problem: the fixed point ``lambda_k = 1 / ((1 + 1/gamma_k) a_k^H (I + sum_j lambda_j a_j
    a_j^H)^{-1} a_k)`` (a standard interference function, so the iteration converges
    monotonically from 0), then MMSE directions and the downlink powers that meet every target
    with equality. Work is in noise-normalized units with ``K x K`` matrices only (Woodbury),
    batched over instances. The SOCP in :mod:`feasnet.solvers.miso_min_power` (cvxpy) is the
    independent reference the tests compare against.

    Args:
        instances: ``N`` instances (computed in complex128).
        tol: relative change of the uplink powers at which the iteration stops.
        max_iterations: hard cap (an instance whose powers still grow is unreachable).
        stop_above_budget: stop iterating an instance as soon as its uplink power sum exceeds
            the transmit budget: the iterates grow monotonically to the minimum power (the two
            sums agree at the fixed point), so the instance is infeasible. Its ``beams`` are
            then NaN and ``power`` is that lower bound; ``False`` computes them exactly.

    Returns:
        :class:`MinimumPower` (float64 / complex128 tensors on the instances' device).
    """
    inst = instances.to(torch.complex128)
    n, k = len(inst), inst.num_users
    # a_k = conj(h_k) / sigma so that h_k^T v = a_k^H v in noise-normalized units, computed as
    # scale * a_k with the largest amplitude of every instance's a at 1: the uplink powers and
    # downlink powers below are those of the scaled channel, i.e. scale^2 times the true ones,
    # so no product of channel entries can overflow or underflow (|h|^2 / sigma^2 may exceed
    # the float64 range while the instance is perfectly well posed).
    amplitude = inst.channel.abs().amax(dim=(1, 2))  # (N,) > 0 (validated)
    a = (inst.channel.conj() / amplitude[:, None, None]).transpose(1, 2)  # (N, Nt, K)
    log_scale = torch.log(amplitude) - 0.5 * torch.log(inst.noise)  # log of |a| max, (N,)
    gram = a.conj().transpose(1, 2) @ a  # (N, K, K), R = A^H A of the scaled channel
    gamma = inst.sinr_min
    has_target = gamma > 0
    inv_gamma = torch.where(has_target, 1 / gamma.clamp(min=1e-300), torch.zeros_like(gamma))
    eye = torch.eye(k, dtype=gram.dtype, device=gram.device)
    lam = torch.zeros(n, k, dtype=torch.float64, device=gram.device)
    # budget in the scaled units (scale^2 times the true one); inf/0 when out of range is right
    budget = inst.transmit_budget * torch.exp(2.0 * log_scale)
    out_of_range = ~torch.isfinite(budget)  # SINRs overflow: decided before iterating
    over_budget = out_of_range.clone()
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 - count is reported
        # diag of A^H (I + A L A^H)^{-1} A = R (I + L R)^{-1} = (I + R L)^{-1} R
        quad, _ = torch.linalg.solve_ex(eye + gram * lam.to(gram.dtype)[:, None, :], gram)
        quad = torch.diagonal(quad, dim1=1, dim2=2).real.clamp(min=1e-300)
        new = torch.where(has_target, 1 / ((1 + inv_gamma) * quad), torch.zeros_like(lam))
        new = torch.nan_to_num(new, posinf=math.inf).clamp(max=2 * _DIVERGED)
        change = ((new - lam).abs() / new.clamp(min=1e-300)).amax(dim=1)
        # uplink powers past _DIVERGED (noise-normalized) mean the targets are out of reach
        diverged = ~(lam.amax(dim=1) <= _DIVERGED)
        if stop_above_budget:
            over_budget = over_budget | (lam.sum(dim=1) > budget)
        frozen = diverged | over_budget
        lam = torch.where(frozen[:, None], lam, new)
        if bool(((change <= tol) | frozen).all()):
            break
    # MMSE directions u_k = (I + A L A^H)^{-1} a_k, normalized
    nt = inst.num_antennas
    cov = torch.eye(nt, dtype=a.dtype, device=a.device) + (a * lam.to(a.dtype)[:, None, :]) @ (
        a.conj().transpose(1, 2)
    )
    u, _ = torch.linalg.solve_ex(cov, a)
    u = u / torch.linalg.vector_norm(u, dim=1, keepdim=True)
    # downlink powers: (1/gamma_k) |a_k^H u_k|^2 p_k - sum_{j!=k} |a_k^H u_j|^2 p_j = 1
    coupling = (a.conj().transpose(1, 2) @ u).abs().square()  # (N, K, K) [k, j]
    direct = torch.diagonal(coupling, dim1=1, dim2=2)
    system = -(coupling - torch.diag_embed(direct)) * has_target[:, :, None]
    system = system + torch.diag_embed(
        torch.where(has_target, direct * inv_gamma, torch.ones_like(direct))
    )
    rhs = has_target.to(torch.float64)
    solution, info = torch.linalg.solve_ex(system, rhs.unsqueeze(2))
    p = solution.squeeze(2)
    # users without a target get zero power: their direction does not matter
    u = torch.where(has_target[:, None, :], u, torch.zeros_like(u))
    reachable = (
        (info == 0)
        & (lam.amax(dim=1) <= _DIVERGED)
        & torch.isfinite(torch.view_as_real(u)).flatten(1).all(dim=1)
        & torch.isfinite(p).all(dim=1)
        & (p >= -1e-9).all(dim=1)
    )
    p = torch.where(has_target, p.clamp(min=0), torch.zeros_like(p))
    # true beams: the scaled channel needs scale^2 times the power, so divide by scale
    beams = (
        u * torch.sqrt(p).to(u.dtype)[:, None, :] * torch.exp(-log_scale).to(u.dtype)[:, None, None]
    )
    beams = torch.where(reachable[:, None, None], beams, torch.full_like(beams, math.nan))
    scaled_power = p.sum(dim=1)  # scale^2 times the true transmit power
    true_power = torch.where(
        scaled_power > 0, scaled_power * torch.exp(-2.0 * log_scale), torch.zeros_like(p[:, 0])
    )
    power = torch.where(reachable, true_power, torch.full_like(p[:, 0], math.inf))
    # stopped above the budget: infeasible, power known only as a lower bound
    stopped = over_budget & ~diverged
    beams = torch.where(stopped[:, None, None], torch.full_like(beams, math.nan), beams)
    power = torch.where(stopped, lam.sum(dim=1) * torch.exp(-2.0 * log_scale), power)
    reachable = reachable | stopped
    feasible = reachable & ~stopped & ~out_of_range & (scaled_power <= budget)
    device = instances.device
    return MinimumPower(
        beams=beams.to(device),
        power=power.to(device),
        qos_reachable=reachable.to(device),
        feasible=feasible.to(device),
        iterations=iterations,
        out_of_range=out_of_range.to(device),
    )


def interior_anchor(
    instances: MisoInstances, anchor_fraction: float = 0.5, minimum: MinimumPower | None = None
) -> Tensor:
    """Strictly interior anchor ``(N, Nt, K)`` [sqrt(W)]: the minimum-power beams scaled up.

    Scaling every beam by ``s > 1`` raises every SINR with a target (signal and interference
    grow by ``s^2``, noise does not), so ``s V_min`` meets every target strictly; ``s`` is chosen
    so the transmit power is ``P_min + anchor_fraction (budget - P_min)``, strictly inside the
    budget for ``0 < anchor_fraction < 1``. NaN for infeasible instances.

    Args:
        instances: ``N`` instances; the anchor comes back in their complex dtype.
        anchor_fraction: where between the minimum power and the budget the anchor sits.
        minimum: a precomputed :func:`minimum_power` result (recomputed if omitted).
    """
    if not 0 < anchor_fraction < 1:
        raise ValueError(f"anchor_fraction: expected in (0, 1), got {anchor_fraction}")
    minimum = minimum or minimum_power(instances)
    budget = instances.transmit_budget.to(torch.float64)
    p_min = minimum.power
    target = p_min + anchor_fraction * (budget - p_min)
    scale = torch.sqrt(target / p_min.clamp(min=1e-300))
    scale = torch.where(p_min > 0, scale, torch.ones_like(scale))
    anchor = minimum.beams * scale.to(minimum.beams.dtype)[:, None, None]
    anchor = torch.where(minimum.feasible[:, None, None], anchor, torch.full_like(anchor, math.nan))
    return anchor.to(instances.dtype)


# ============================================================================ rays
def _first_exit(quadratic: Tensor, linear: Tensor, constant: Tensor) -> Tensor:
    """Smallest ``t > 0`` with ``a t^2 + b t + c = 0`` for ``c > 0`` (inf if none); elementwise.

    With ``c > 0`` a positive root exists iff ``b < 0`` or ``a < 0`` (and the discriminant is
    non-negative); it is then ``2 c / (-b + sqrt(b^2 - 4 a c))``, a form without cancellation.
    """
    disc = linear.square() - 4 * quadratic * constant
    exists = (disc >= 0) & ((linear < 0) | (quadratic < 0))
    root = torch.sqrt(torch.where(exists, disc, torch.ones_like(disc)))
    denominator = torch.where(exists, -linear + root, torch.ones_like(root))
    return torch.where(exists, 2 * constant / denominator, torch.full_like(root, math.inf))


def boundary_distance(anchor: Tensor, direction: Tensor, instances: MisoInstances) -> Tensor:
    """``(N,)`` largest ``t`` such that ``anchor + s direction`` is feasible for all ``s < t``.

    Along the ray every constraint is a quadratic in ``t``: the budget
    ``||V0 + t D||^2 <= budget`` and, for each user with a target,
    ``|G0_kk + t GD_kk|^2 / gamma_k - sum_{j != k} |G0_kj + t GD_kj|^2 - sigma^2 >= 0``
    (``G = H V``). Each is positive at ``t = 0`` for a strictly interior anchor, so the distance
    is the smallest first positive root over the constraints, in closed form. Differentiable.

    Args:
        anchor: ``(N, Nt, K)`` strictly feasible beams [sqrt(W)].
        direction: ``(N, Nt, K)`` any non-zero direction (same units).
    """
    budget = instances.transmit_budget
    real = instances.real_dtype
    a_pow = direction.abs().square().sum(dim=(1, 2))
    b_pow = 2 * (anchor.conj() * direction).real.sum(dim=(1, 2))
    c_pow = budget - anchor.abs().square().sum(dim=(1, 2))  # > 0 inside; root of -(...)
    t_budget = _first_exit(-a_pow, -b_pow, c_pow)  # budget - ||V0 + t D||^2 >= 0

    g0 = beam_gains(anchor, instances)
    gd = beam_gains(direction, instances)
    quad = gd.abs().square()  # (N, K, K) coefficient of t^2 of |g0 + t gd|^2
    lin = 2 * (g0.conj() * gd).real
    const = g0.abs().square()
    gamma = instances.sinr_min.to(real)
    has_target = gamma > 0
    inv_gamma = torch.where(has_target, 1 / gamma.clamp(min=1e-300), torch.zeros_like(gamma))

    def qos_coefficient(term: Tensor) -> Tensor:
        own = torch.diagonal(term, dim1=1, dim2=2)
        return own * inv_gamma - (term.sum(dim=2) - own)

    t_qos = _first_exit(
        qos_coefficient(quad),
        qos_coefficient(lin),
        qos_coefficient(const) - instances.noise[:, None],
    )
    t_qos = torch.where(has_target, t_qos, torch.full_like(t_qos, math.inf))
    return torch.minimum(t_budget, t_qos.amin(dim=1))


def scale_toward_anchor(
    beams: Tensor, anchor: Tensor, instances: MisoInstances, shrink: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Pull each candidate back along the segment to the anchor until it is feasible.

    Args:
        beams: ``(N, Nt, K)`` candidates.
        anchor: ``(N, Nt, K)`` strictly interior beams.
        shrink: keep ``(1 - shrink)`` of the boundary distance (``0``: land on the boundary).

    Returns:
        ``(beams, step)``: the candidate itself where the whole segment is feasible, else
        ``anchor + step (beams - anchor)`` with ``step = (1 - shrink) t_max < 1``; ``step`` is
        ``(N,)`` (1 where unchanged).
    """
    direction = beams - anchor
    t_max = boundary_distance(anchor, direction, instances)
    step = torch.clamp((1 - shrink) * t_max, max=1.0)
    moved = anchor + step.to(anchor.dtype)[:, None, None] * direction
    return moved, step


def normalized_instances(instances: MisoInstances) -> MisoInstances:
    """The same instances in normalized units: channel :func:`normalized_channel`, noise 1,
    ``pmax = 1``, ``pc = 0``, ``eta = 1`` (so the transmit budget is 1), same targets and
    weights. Every SINR, rate and constraint value of beams in units of ``sqrt(budget)`` equals
    that of the physical beams; solvers and networks work on these."""
    ones = torch.ones_like(instances.pmax)
    return MisoInstances(
        channel=normalized_channel(instances),
        pmax=ones,
        circuit_power=torch.zeros_like(ones),
        efficiency=ones,
        noise=ones,
        sinr_min=instances.sinr_min,
        weights=instances.weights,
    )
