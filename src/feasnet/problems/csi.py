"""Imperfect CSI for power control: the error model, the robust modes and true-channel draws.

Error model (power-control paper, section VIII-D): the gain a method sees is an estimate
``Ĥ``; the true gain is ``H = Ĥ + ΔH`` with ``ΔH[b, q, c] ~ U[-σ H[b, q, c], σ H[b, q, c]]``
drawn independently per entry, ``σ`` in ``[0, 1)`` (instances carry it as ``csi_error``).
Writing ``ΔH = e H`` with ``e ~ U[-σ, σ]`` gives ``Ĥ = (1 - e) H``, so every true gain lies in
the box ``[Ĥ / (1 + σ), Ĥ / (1 - σ)]``.

Robust modes (:data:`ROBUST_MODES`) decide which gains the constraints are written for; the
objective always uses ``Ĥ``. A mode is stored in the instances as ``csi_corner``, the
multipliers ``(direct, cross)`` of ``Ĥ`` (:attr:`PowerControlInstances.constraint_gain`), so
every constraint, feasibility test, anchor, layer and classical solver inherits it:

* ``exact`` (default when the instances carry ``csi_error``): ``(1 / (1 + σ), 1 / (1 - σ))``.
  For ``P >= 0`` the QoS row ``H_bqb P_bq - β Σ_{c≠b} H_bqc P_cq >= β σ_n²`` increases with
  the direct gain and decreases with every cross gain, so its minimum over the box is at
  this corner: an allocation meeting the corner's rows meets them for every true channel of
  the model, and the instance is robustly feasible iff the corner instance is feasible (the
  exact test of eqs. 25-26 on the corner).
* ``heuristic``: the worst-case heuristic of the paper's appendix (eq. 27): direct gains
  ``(1 - χ) Ĥ``, cross gains ``(1 + χ) Ĥ``, with ``χ`` the largest value on the grid
  ``0, 0.01, ..., σ`` for which the instance stays feasible. ``(1 + χ) < 1 / (1 - σ)``, so
  the cross gains are not worst-case: violations remain possible.
* ``none``: the constraints use ``Ĥ`` (perfect-CSI design applied to an estimate).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from feasnet.problems.instances import PowerControlInstances

EXACT, HEURISTIC, NONE = "exact", "heuristic", "none"
ROBUST_MODES: tuple[str, ...] = (EXACT, HEURISTIC, NONE)
"""Robust modes for instances carrying ``csi_error`` (``exact`` is the default)."""

CHI_STEP = 0.01
"""Grid step of the paper's χ search (appendix, eq. 27)."""


# ---------------------------------------------------------------------------- validation
def validate_csi_error(sigma: Tensor) -> Tensor:
    """``sigma`` ``(N,)`` unchanged when every entry is finite and in ``[0, 1)``.

    Raises:
        InvalidInstanceError: naming ``csi_error``.
    """
    from feasnet.problems.instances import InvalidInstanceError

    if not torch.isfinite(sigma).all():
        raise InvalidInstanceError("csi_error: contains NaN or inf; expected values in [0, 1)")
    if ((sigma < 0) | (sigma >= 1)).any():
        bad = float(sigma[(sigma < 0) | (sigma >= 1)][0])
        raise InvalidInstanceError(
            f"csi_error: expected the relative CSI error in [0, 1), got {bad:g}"
        )
    return sigma


def validate_corner(corner: Tensor, n: int) -> Tensor:
    """``csi_corner`` broadcast to ``(n, 2)``: positive finite ``(direct, cross)`` multipliers.

    Raises:
        InvalidInstanceError: naming ``csi_corner``.
    """
    from feasnet.problems.instances import InvalidInstanceError

    if corner.ndim == 0:
        corner = corner.expand(n, 2)
    elif corner.shape == (2,):
        corner = corner[None].expand(n, 2)
    if corner.shape != (n, 2):
        raise InvalidInstanceError(
            f"csi_corner: expected a scalar, shape (2,) or ({n}, 2), got {tuple(corner.shape)}"
        )
    if not torch.isfinite(corner).all() or (corner <= 0).any():
        raise InvalidInstanceError("csi_corner: expected finite multipliers > 0")
    return corner.clone()


# ---------------------------------------------------------------------------- corners
def exact_corner(sigma: Tensor) -> Tensor:
    """``(N, 2)`` the worst-case multipliers ``(1 / (1 + σ), 1 / (1 - σ))`` of ``σ`` ``(N,)``."""
    return torch.stack([1.0 / (1.0 + sigma), 1.0 / (1.0 - sigma)], dim=1)


def chi_corner(chi: Tensor) -> Tensor:
    """``(N, 2)`` the multipliers ``(1 - χ, 1 + χ)`` of the paper's eq. (27) for ``χ`` ``(N,)``."""
    return torch.stack([1.0 - chi, 1.0 + chi], dim=1)


def heuristic_chi(instances: PowerControlInstances, step: float = CHI_STEP) -> Tensor:
    """``(N,)`` the paper's χ: the largest ``k * step <= σ`` keeping the instance feasible.

    Each candidate ``χ`` is tested with the exact feasibility test on the gains of eq. (27).
    Instances infeasible even at ``χ = 0`` (their estimate itself) get ``χ = 0``.
    Instances without ``csi_error`` get zeros.
    """
    from feasnet.problems import power_control as pc

    if not step > 0:
        raise ValueError(f"step: expected > 0, got {step}")
    n = instances.num_instances
    sigma = instances.csi_error
    if sigma is None:
        return torch.zeros(n, dtype=instances.dtype, device=instances.device)
    base = instances.to(torch.float64)  # carries csi_error; each trial sets the corner
    sigma64 = sigma.to(torch.float64)
    chi = torch.zeros(n, dtype=torch.float64, device=instances.device)
    steps = math.floor(float(sigma64.max()) / step + 1e-9)
    for k in range(1, steps + 1):
        value = k * step
        allowed = value <= sigma64 + 1e-12
        if not allowed.any():
            break
        trial = replace(base, csi_corner=chi_corner(torch.full_like(sigma64, value)))
        ok = pc.minimum_power(trial).feasible & allowed
        chi = torch.where(ok, torch.full_like(chi, value), chi)
    return chi.to(instances.dtype)


def check_robust_mode(mode: str | None) -> str:
    """``mode`` (None means ``exact``) when it is one of :data:`ROBUST_MODES`.

    Raises:
        ValueError: an unknown mode (the message names ``robust``).
    """
    mode = EXACT if mode is None else mode
    if mode not in ROBUST_MODES:
        raise ValueError(f"robust: expected one of {', '.join(ROBUST_MODES)}, got {mode!r}")
    return mode


def is_exact_corner(sigma: Tensor, corner: Tensor) -> bool:
    """``corner`` ``(N, 2)`` is the exact worst-case corner of ``sigma`` ``(N,)`` (to a relative
    1e-6), i.e. the default robust mode that exchange files leave implicit."""
    return torch.allclose(corner.double(), exact_corner(sigma.double()), rtol=1e-6, atol=0.0)


def with_robust(
    instances: PowerControlInstances, mode: str | None = EXACT, step: float = CHI_STEP
) -> PowerControlInstances:
    """The instances with their constraints written for robust ``mode``.

    Args:
        instances: a batch; without ``csi_error`` it comes back unchanged (nothing to be
            robust against).
        mode: one of :data:`ROBUST_MODES`; None means ``exact``.
        step: χ grid step of the ``heuristic`` mode.

    Raises:
        ValueError: an unknown mode (the message names ``robust``).
    """
    mode = check_robust_mode(mode)
    sigma = instances.csi_error
    if sigma is None:
        return instances
    if mode == EXACT:
        corner = exact_corner(sigma)
    elif mode == HEURISTIC:
        corner = chi_corner(heuristic_chi(instances, step))
    else:
        corner = torch.ones_like(sigma)[:, None].expand(-1, 2).clone()
    return replace(instances, csi_corner=corner.to(instances.dtype))


def robust_mode(instances: PowerControlInstances) -> str:
    """The mode the constraints are written for: ``exact``, ``none``, ``heuristic`` (any
    other corner), or ``""`` for instances without ``csi_error``."""
    sigma, corner = instances.csi_error, instances.csi_corner
    if sigma is None:
        return ""
    if corner is None or bool((corner == 1).all()):
        return NONE
    if is_exact_corner(sigma, corner):
        return EXACT
    return HEURISTIC


def without_csi(instances: PowerControlInstances) -> PowerControlInstances:
    """The instances as perfect CSI (``csi_error`` and ``csi_corner`` dropped)."""
    return replace(instances, csi_error=None, csi_corner=None)


# ---------------------------------------------------------------------------- draws
def _uniform(shape: tuple[int, ...], sigma: Tensor, generator: torch.Generator | None) -> Tensor:
    """``U[-σ, σ]`` of ``shape`` (leading dim ``N``), float64 on the CPU, ``σ`` ``(N,)``."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    scale = sigma.detach().to("cpu", torch.float64).reshape((-1,) + (1,) * (len(shape) - 1))
    return (2.0 * u - 1.0) * scale


def estimate(
    instances: PowerControlInstances,
    sigma: float | Tensor,
    generator: torch.Generator | None = None,
) -> PowerControlInstances:
    """Estimates of true channels: ``Ĥ = (1 - e) H``, ``e ~ U[-σ, σ]`` per entry.

    Args:
        instances: the true channels (their own CSI fields are ignored).
        sigma: scalar or ``(N,)`` relative error in ``[0, 1)``.
        generator: randomness (CPU).

    Returns:
        The estimates, carrying ``csi_error = σ`` (exact robust mode), same dtype and device.
    """
    n = instances.num_instances
    sigma_t = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
    if sigma_t.numel() == 1:
        sigma_t = sigma_t.expand(n)
    validate_csi_error(sigma_t)
    e = _uniform(tuple(instances.gain.shape), sigma_t, generator)
    gain = instances.gain * (1.0 - e).to(instances.gain)
    sigma_dev = sigma_t.to(instances.dtype).to(instances.device)
    return replace(
        instances, gain=gain, csi_error=sigma_dev.clone(), csi_corner=exact_corner(sigma_dev)
    )


def draw_true_gains(
    instances: PowerControlInstances, draws: int, generator: torch.Generator | None = None
) -> Tensor:
    """True channels consistent with the estimates: ``H = Ĥ / (1 - e)``, ``e ~ U[-σ, σ]``.

    This is the error model solved for ``H`` (``Ĥ = H - e H``) with ``e`` independent of the
    channel, so each draw lies in ``[Ĥ / (1 + σ), Ĥ / (1 - σ)]``, both ends reachable.

    Args:
        instances: estimates carrying ``csi_error`` (without it every draw is ``Ĥ``).
        draws: true channels per instance (``D >= 1``).

    Returns:
        ``(N, D, B, Q, B)`` linear gains, the instances' dtype and device.
    """
    if draws < 1:
        raise ValueError(f"draws: expected >= 1, got {draws}")
    n = instances.num_instances
    sigma = instances.csi_error
    if sigma is None:
        sigma = torch.zeros(n, dtype=torch.float64)
    shape = (n, draws, *instances.gain.shape[1:])
    e = _uniform(shape, sigma, generator)
    return instances.gain[:, None] / (1.0 - e).to(instances.gain)


def true_instances(
    instances: PowerControlInstances, draws: int, generator: torch.Generator | None = None
) -> PowerControlInstances:
    """``N * D`` perfect-CSI instances, ``D`` true-channel draws of each estimate, ordered
    instance-major (draw ``d`` of instance ``i`` at ``i * D + d``)."""
    gains = draw_true_gains(instances, draws, generator)
    index = torch.arange(instances.num_instances, device=instances.device).repeat_interleave(draws)
    expanded = without_csi(instances)[index]
    return replace(expanded, gain=gains.reshape(-1, *instances.gain.shape[1:]))


def distort(
    instances: PowerControlInstances,
    sigma: float,
    generator: torch.Generator | None = None,
) -> PowerControlInstances:
    """Artificially distorted CSI for training (the paper's reference [39]):
    ``H̄ = Ĥ + ΔĤ``, ``ΔĤ ~ U[-σ Ĥ, σ Ĥ]`` per entry; CSI fields are kept.

    Args:
        instances: the (estimated) channels of a batch.
        sigma: relative distortion in ``[0, 1)``.
    """
    if not 0.0 <= sigma < 1.0:
        raise ValueError(f"csi_distortion: expected a value in [0, 1), got {sigma}")
    n = instances.num_instances
    e = _uniform(tuple(instances.gain.shape), torch.full((n,), float(sigma)), generator)
    return replace(instances, gain=instances.gain * (1.0 + e).to(instances.gain))


# ---------------------------------------------------------------------------- evaluation
def evaluate_on_true_channels(
    power: Tensor | np.ndarray,
    instances: PowerControlInstances,
    draws: int,
    generator: torch.Generator | None = None,
    rtol: float = 1e-6,
    chunk: int = 20_000,
) -> tuple[Tensor, Tensor]:
    """Sum rate and QoS verdict of allocations on fresh true channels.

    Args:
        power: ``(N, B, Q)`` allocations [W] for the estimates, tensor or array (NaN rows: no
            allocation).
        instances: the estimates, carrying ``csi_error``.
        draws: true channels per instance.
        rtol: tolerance of the float64 feasibility check.
        chunk: true instances checked at a time (memory).

    Returns:
        ``(sum_rate, violated)``: ``(N, D)`` float64 sum rates [bit/s] on the true channels
        and ``(N, D)`` bool, the allocation violates some constraint on that true channel
        (rows without an allocation count as violated).
    """
    from feasnet.problems import power_control as pc

    inst64 = instances.to(torch.float64, "cpu")
    truth = true_instances(inst64, draws, generator)
    p = torch.as_tensor(power).detach().to("cpu", torch.float64).repeat_interleave(draws, dim=0)
    rates, ok = [], []
    for start in range(0, len(truth), chunk):
        sub, ps = truth[start : start + chunk], p[start : start + chunk]
        safe = torch.nan_to_num(ps, nan=0.0).clamp(min=0)
        rates.append(pc.sum_rate(safe, sub))
        ok.append(pc.is_feasible(ps, sub, rtol=rtol))
    n = instances.num_instances
    return torch.cat(rates).reshape(n, draws), ~torch.cat(ok).reshape(n, draws)
