"""Global optimum of the MISO weighted sum rate with a certified upper bound (``--method global``).

In rate space ``r_k = log2(1 + SINR_k)`` [bit/s/Hz] the objective ``sum_k w_k r_k`` is linear
and the achievable set ``G`` is normal: a vector of SINR targets ``gamma`` is achievable iff the
minimum transmit power meeting it, ``P_min(gamma)``, fits the transmit budget
``eta (Pmax - Pc)``, and ``P_min`` can only grow with the targets. The QoS constraints are the
box ``r >= log2(1 + gamma_min)``, and no rate exceeds the single-user one,
``log2(1 + budget ||h_k||^2 / sigma^2)``. :func:`feasnet.solvers.monotonic.maximize`
(branch-reduce-and-bound) solves this to a certified relative gap.

The membership oracle is the uplink-downlink duality fixed point of
:func:`feasnet.problems.miso.minimum_power`, written here on the ``K x K`` Gram matrix of one
instance and batched over many target vectors: the uplink powers
``lambda_k <- gamma_k / (a_k^H (I + sum_{j != k} lambda_j a_j a_j^H)^{-1} a_k)``
(``a_k = conj(h_k) / sigma``; the same fixed point as the form used there, written so that it
contracts with the interference coupling rather than with ``gamma / (1 + gamma)``, which is
close to 1 at high SINR; ``K x K`` matrices via the Gram matrix and Sherman-Morrison) grow
monotonically from 0 to the fixed point, whose sum is ``P_min(gamma)``. A sum above the budget
therefore certifies *infeasible* at any iterate; a converged sum below the budget (with a small
margin) certifies *feasible*; anything else stays undecided, which the search treats safely.
The beams returned are the minimum-power beams of the best target vector, computed by
:func:`feasnet.problems.miso.minimum_power` itself and checked in float64.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from feasnet.problems import miso
from feasnet.problems.miso import MisoInstances
from feasnet.solvers import miso_min_power as mmp
from feasnet.solvers import monotonic
from feasnet.solvers.parallel import solve_each
from feasnet.solvers.result import BeamformingResult

DEFAULT_GAP = monotonic.DEFAULT_GAP
DEFAULT_TIME_LIMIT = 600.0
DEFAULT_BATCH = 64
"""Boxes per vectorized step of the search (default of :func:`solve` and of the options)."""
MAX_ITERATIONS = 2000
"""Most fixed-point iterations per oracle call (undecided after that)."""
TOLERANCE = 1e-12
"""Relative change of the uplink powers at which the fixed point counts as converged."""
MARGIN = 1e-9
"""Relative margin below the budget a converged power sum needs to count as feasible."""


class SinrRegion:
    """The achievable rate region of one MISO instance as a batched oracle.

    Args:
        channel: ``(K, Nt)`` complex, row ``k`` is ``h_k``.
        noise: ``sigma^2`` [W].
        budget: transmit budget ``eta (Pmax - Pc)`` [W] (> 0).
    """

    def __init__(self, channel: np.ndarray, noise: float, budget: float) -> None:
        a = (np.conj(np.asarray(channel, dtype=np.complex128)) / math.sqrt(noise)).T  # (Nt, K)
        self.gram = a.conj().T @ a  # (K, K), R[k, j] = a_k^H a_j
        self.budget = float(budget)
        self.num_users = self.gram.shape[0]

    def upper_rates(self) -> np.ndarray:
        """``(K,)`` single-user rates at full budget [bit/s/Hz] (no achievable point exceeds)."""
        return np.log2(1.0 + self.budget * np.real(np.diag(self.gram)))

    def uplink_powers(self, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the fixed point for rate vectors ``(M, K)``.

        Returns:
            ``(lam, converged, over)``: ``(M, K)`` uplink powers (noise-normalized, their sum is
            the minimum transmit power [W] at convergence), ``(M,)`` converged flags and
            ``(M,)`` flags for sums that passed the budget (certainly infeasible).
        """
        m, k = rates.shape
        gamma = np.expm1(np.asarray(rates, dtype=np.float64) * math.log(2.0))
        has_target = gamma > 0
        lam = np.zeros((m, k))
        converged = np.zeros(m, dtype=bool)
        over = np.zeros(m, dtype=bool)
        active = np.arange(m)
        eye = np.eye(k)
        for _ in range(MAX_ITERATIONS):
            if active.size == 0:
                break
            current = lam[active]
            system = eye + self.gram[None] * current[:, None, :]  # I + R diag(lam)
            quad = np.linalg.solve(system, np.broadcast_to(self.gram, system.shape))
            full = np.clip(np.real(np.diagonal(quad, axis1=1, axis2=2)), 1e-300, None)
            # e_k without user k's own term (Sherman-Morrison); lambda_k = gamma_k / e_k
            excluded = full / np.clip(1.0 - current * full, 1e-300, None)
            new = np.where(has_target[active], gamma[active] / excluded, 0.0)
            change = (np.abs(new - current) / np.clip(new, 1e-300, None)).max(axis=1)
            lam[active] = new
            total = new.sum(axis=1)
            passed = ~(total <= self.budget)  # also NaN / inf
            done = change <= TOLERANCE
            over[active[passed]] = True
            converged[active[done & ~passed]] = True
            active = active[~(passed | done)]
        return lam, converged, over

    def box_bound(self, weights: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Upper bound ``(M,)`` on ``w . r`` over the achievable points of each box ``[low, high]``.

        In the uplink, ``lambda_k = gamma_k / e_k`` with
        ``e_k = a_k^H (I + sum_{j != k} lambda_j a_j a_j^H)^{-1} a_k``, which falls as the other
        powers grow; every achievable ``r >= low`` has ``lambda >= lambda(low)``, so it needs
        ``sum_k c_k (2^{r_k} - 1) <= budget`` with ``c_k = 1 / e_k(lambda(low))``. The best
        ``w . r`` under that budget and the box is a weighted water-filling (level by bisection,
        rounded up).
        """
        lam, _, _ = self.uplink_powers(low)  # from below: a valid lower estimate of lambda(low)
        k = self.num_users
        system = np.eye(k)[None] + self.gram[None] * lam[:, None, :]
        full = np.real(
            np.diagonal(
                np.linalg.solve(system, np.broadcast_to(self.gram, system.shape)), axis1=1, axis2=2
            )
        )  # a_k^H (I + sum_j lam_j a_j a_j^H)^{-1} a_k
        # remove user k's own term (Sherman-Morrison): e_k = full_k / (1 - lam_k full_k)
        own = np.clip(1.0 - lam * full, 1e-300, None)
        cost = own / np.clip(full, 1e-300, None)  # c_k = 1 / e_k
        p_lo = cost * np.expm1(low * math.log(2.0))
        p_hi = cost * np.expm1(high * math.log(2.0))
        w = np.broadcast_to(weights, low.shape)
        positive = w > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            level_lo = np.where(positive, (p_lo + cost) / np.where(positive, w, 1.0), np.inf).min(
                axis=1
            )
            level_hi = np.where(positive, (p_hi + cost) / np.where(positive, w, 1.0), 0.0).max(
                axis=1
            )
        level_lo = np.minimum(level_lo, level_hi)
        for _ in range(60):
            level = 0.5 * (level_lo + level_hi)
            total = np.clip(w * level[:, None] - cost, p_lo, p_hi).sum(axis=1)
            over = total >= self.budget
            level_hi = np.where(over, level, level_hi)
            level_lo = np.where(over, level_lo, level)
        p = np.clip(w * level_hi[:, None] - cost, p_lo, p_hi)
        filled = (w * np.log2(1.0 + p / cost)).sum(axis=1)
        return np.minimum(filled, high @ weights)

    def __call__(self, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The :data:`~feasnet.solvers.monotonic.Oracle` (``feasible``, ``infeasible``)."""
        lam, converged, over = self.uplink_powers(rates)
        feasible = converged & (lam.sum(axis=1) * (1.0 + MARGIN) <= self.budget)
        return feasible, over


def packed_shape(instance: dict[str, Any]) -> tuple[int]:
    """``(Nt * K + 2,)``: the packed output of :func:`solve_instance_with_bound`."""
    k, nt = np.shape(instance["H"])
    return (nt * k + 2,)


def solve_instance_with_bound(
    instance: dict[str, Any], options: dict[str, Any]
) -> tuple[np.ndarray, str]:
    """Per-instance global solve, packed for :func:`~feasnet.solvers.parallel.solve_each`.

    Returns:
        ``(packed, message)``: ``packed`` is ``(Nt * K + 2,)`` complex128: the beams
        ``(Nt, K)`` [sqrt(W)] flattened, then the certified upper bound on the weighted sum rate
        [bit/s/Hz] and 1 when the gap was reached (else 0); all NaN for an infeasible instance.
    """
    gap = float(options.get("gap", DEFAULT_GAP))
    time_limit = float(options.get("time_limit", DEFAULT_TIME_LIMIT))
    k, nt = np.shape(instance["H"])
    packed = np.full(nt * k + 2, complex(math.nan, math.nan))
    batch = mmp.instance_batch(instance)
    budget = float(batch.transmit_budget[0])
    if budget <= 0:
        return packed, mmp.NO_BUDGET
    exact = miso.minimum_power(batch)
    if not bool(exact.feasible[0]):
        return packed, exact.reasons()[0]
    region = SinrRegion(np.asarray(instance["H"]), float(instance["noise"]), budget)
    gamma_min = np.asarray(instance["sinr_min"], dtype=np.float64)
    weights = np.asarray(instance["weights"], dtype=np.float64)
    lower = np.log2(1.0 + gamma_min)
    result = monotonic.maximize(
        weights,
        lower,
        region.upper_rates(),
        region,
        gap=gap,
        time_limit=time_limit,
        batch=int(options.get("batch", DEFAULT_BATCH)),
        box_bound=lambda low, high: region.box_bound(weights, low, high),
    )
    if result is None:  # the exact test passed but the targets sit on the budget boundary
        beams = exact.beams[0].numpy()
        upper, converged, achieved_gap = float(weights @ lower), True, 0.0
    else:
        beams = _beams_for_rates(batch, result.point)
        upper, converged, achieved_gap = result.upper_bound, result.converged, result.gap
    packed[: nt * k] = beams.reshape(-1)
    packed[-2] = upper
    packed[-1] = 1.0 if converged else 0.0
    if converged:
        return packed, f"optimal within gap {gap:g}"
    return packed, f"time limit: gap {achieved_gap:.3g}"


def _beams_for_rates(batch: MisoInstances, rates: np.ndarray) -> np.ndarray:
    """Minimum-power beams ``(Nt, K)`` [sqrt(W)] meeting the rates ``(K,)`` [bit/s/Hz] with
    equality (:func:`feasnet.problems.miso.minimum_power`, run to convergence)."""
    gamma = np.expm1(np.asarray(rates, dtype=np.float64) * math.log(2.0))
    target = MisoInstances(
        channel=batch.channel,
        pmax=batch.pmax,
        circuit_power=batch.circuit_power,
        efficiency=batch.efficiency,
        noise=batch.noise,
        sinr_min=torch.as_tensor(gamma, dtype=batch.sinr_min.dtype)[None],
        weights=batch.weights,
    )
    return miso.minimum_power(target, stop_above_budget=False).beams[0].numpy()


def solve(
    instances: MisoInstances,
    workers: int | None = None,
    gap: float = DEFAULT_GAP,
    time_limit: float = DEFAULT_TIME_LIMIT,
    batch: int = DEFAULT_BATCH,
) -> BeamformingResult:
    """Certified global optimum of every instance, one worker process per core.

    Args:
        instances: the batch.
        workers: worker processes (default: the available cores; 1 runs in-process).
        gap: relative gap ``(bound - WSR) / bound`` at which an instance stops.
        time_limit: seconds per instance; the best point and the bound so far are returned.
        batch: boxes per vectorized step of the search.

    Returns:
        A :class:`BeamformingResult` named ``"global"`` with ``upper_bound`` [bit/s/Hz], ``gap``
        and ``converged`` filled (NaN / False for infeasible instances).
    """
    if not 0 < gap < 1:
        raise ValueError(f"gap: expected a value in (0, 1), got {gap}")
    if not time_limit > 0:
        raise ValueError(f"time_limit: expected > 0 seconds, got {time_limit}")
    options = {"gap": gap, "time_limit": time_limit, "batch": batch}
    packed, seconds, messages = solve_each(
        solve_instance_with_bound,
        instances,
        options,
        workers=workers,
        label="global",
        output_shape=packed_shape,
        complex_output=True,
    )
    nt, k = instances.num_antennas, instances.num_users
    beams = packed[:, : nt * k].reshape(-1, nt, k)
    result = BeamformingResult.checked("global", beams, instances, seconds, messages)
    upper = np.real(packed[:, -2])
    converged = np.real(packed[:, -1]) == 1.0
    monotonic.attach_bound(result, upper, converged)
    return result


__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_GAP",
    "DEFAULT_TIME_LIMIT",
    "SinrRegion",
    "solve",
    "solve_instance_with_bound",
]
