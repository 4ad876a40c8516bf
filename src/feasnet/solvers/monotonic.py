"""Branch-reduce-and-bound for a linear objective over a normal set, given a feasibility oracle.

Both global solvers (:mod:`feasnet.solvers.global_power_control`,
:mod:`feasnet.solvers.global_miso`) reduce their problem to

    maximize  w . r   over   r in G,  lower <= r <= upper,

where ``r`` is the vector of user rates [bit/s/Hz], ``w >= 0`` the weights, and the achievable
rate region ``G`` is *normal* (if ``r`` is achievable, so is every ``r' <= r``: lower the SINR
targets and the minimum power needed to meet them can only fall). Membership in ``G`` is decided
by an exact oracle (minimum power meeting the targets, compared with the budget), evaluated on
many rate vectors at once.

The algorithm is Tuy's branch-reduce-and-bound (H. Tuy, "Monotonic optimization: problems and
solution approaches", SIAM J. Optim. 2000; H. Tuy, F. Al-Khayyal, P. Thach, "Monotonic
optimization: branch and cut methods", 2005) on boxes ``[a, b]`` of rate space:

* **reduce** — cut off the parts of a box that cannot hold a point better than the incumbent
  value ``f*``: ``a_i <- max(a_i, b_i - (w . b - f*) / w_i)`` (closed form, the objective is
  linear); then, as ``G`` is normal, ``b_i <- a_i + max{s : a + s e_i in G}`` (bisection with
  the oracle; the kept end is the infeasible side of the bracket, so no feasible point is cut);
  a box whose corner ``a`` is not in ``G`` holds no feasible point and is dropped;
* **bound** — ``w . b`` after the reduction is an upper bound on the box;
* **lower bound** — the point where the segment ``a -> b`` leaves ``G`` (bisection, feasible
  side) is feasible; the best such point is the incumbent;
* **branch** — the open boxes with the highest bounds are processed in batches (best first);
  each is halved along the edge with the largest ``w_i (b_i - a_i)``.

The global upper bound is the largest bound of an open box (or ``f*`` when none is left); the
loop stops when the relative gap ``(bound - f*) / bound`` is at most ``gap`` or after
``time_limit`` seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Oracle = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``oracle(r) -> (feasible, infeasible)`` for rate vectors ``r`` ``(M, D)`` [bit/s/Hz]: two
``(M,)`` bool arrays, ``feasible`` certified in ``G`` and ``infeasible`` certified outside
(never both; neither means undecided, which the search treats safely: not used as a lower bound,
not cut away)."""
BoxBound = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``bound(low, high) -> (M,)``: an upper bound on ``w . r`` over the feasible points of each box
``[low, high]`` (``(M, D)`` each, ``low`` in ``G``), tighter than ``w . high`` (optional)."""

DEFAULT_GAP = 1e-3
DEFAULT_BATCH = 512


@dataclass(frozen=True)
class MonotonicResult:
    """Outcome of :func:`maximize`.

    Attributes:
        point: ``(D,)`` best feasible rate vector found [bit/s/Hz].
        value: ``w . point``.
        upper_bound: certified upper bound on the optimum (``>= value``).
        converged: the relative gap reached the requested ``gap``.
        boxes: boxes processed (after branching).
        iterations: batches processed.
        seconds: wall time [s].
    """

    point: np.ndarray
    value: float
    upper_bound: float
    converged: bool
    boxes: int
    iterations: int
    seconds: float

    @property
    def gap(self) -> float:
        """Relative gap ``(upper_bound - value) / upper_bound`` (0 when both are 0)."""
        if self.upper_bound <= 0:
            return 0.0
        return max(0.0, (self.upper_bound - self.value) / self.upper_bound)


def _bisect(
    oracle: Oracle,
    start: np.ndarray,
    step: np.ndarray,
    lengths: np.ndarray,
    steps: int,
    strict: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Bisection for the largest ``t in [0, lengths]`` with ``start + t step`` in ``G``.

    ``start`` and ``step`` are ``(M, D)``, ``lengths`` ``(M,)``; ``start`` is assumed in ``G``.
    ``strict``: only certified-feasible points move the lower end (for lower bounds); otherwise
    only certified-infeasible points move the upper end (for upper bounds).

    Returns:
        ``(low, high)``, each ``(M,)``: ``start + low step`` is (certified, when ``strict``)
        feasible and ``start + high step`` is certified infeasible or ``high == lengths``.
    """
    low = np.zeros_like(lengths)
    high = lengths.copy()
    full_feasible, full_infeasible = oracle(start + lengths[:, None] * step)
    done = full_feasible if strict else ~full_infeasible
    low[done] = lengths[done]
    active = np.nonzero(~done)[0]
    for _ in range(steps):
        if active.size == 0:
            break
        mid = 0.5 * (low[active] + high[active])
        feasible, infeasible = oracle(start[active] + mid[:, None] * step[active])
        up = feasible if strict else ~infeasible
        low[active[up]] = mid[up]
        high[active[~up]] = mid[~up]
    return low, high


def maximize(
    weights: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    oracle: Oracle,
    gap: float = DEFAULT_GAP,
    time_limit: float = math.inf,
    incumbent: np.ndarray | None = None,
    batch: int = DEFAULT_BATCH,
    resolution: float | None = None,
    box_bound: BoxBound | None = None,
) -> MonotonicResult | None:
    """Maximize ``weights . r`` over ``r in G`` with ``lower <= r <= upper``.

    Args:
        weights: ``(D,)`` non-negative objective weights.
        lower: ``(D,)`` smallest rates (the QoS targets) [bit/s/Hz].
        upper: ``(D,)`` rates no achievable point exceeds [bit/s/Hz].
        oracle: the membership test of ``G`` (:data:`Oracle`).
        gap: stop at this relative gap.
        time_limit: stop after this many seconds (checked between batches).
        incumbent: ``(D,)`` a known point of ``G`` (e.g. from a local method), or None.
        batch: boxes taken from the open list per iteration.
        resolution: absolute precision of the bisections [bit/s/Hz] (default from ``gap``).
        box_bound: a problem-specific bound on a box (:data:`BoxBound`); the smaller of it and
            ``w . high`` is used.

    Returns:
        :class:`MonotonicResult`, or None when ``lower`` itself is not in ``G`` (infeasible).
    """
    start_time = time.perf_counter()
    w = np.asarray(weights, dtype=np.float64)
    a0 = np.asarray(lower, dtype=np.float64)
    b0 = np.maximum(np.asarray(upper, dtype=np.float64), a0)
    b0 = np.where(w > 0, b0, a0)  # a zero-weight rate gains nothing above its target
    feasible0, _ = oracle(a0[None])
    if not feasible0[0]:
        return None
    best_point, best_value = a0.copy(), float(w @ a0)
    if incumbent is not None:
        inc = np.clip(np.asarray(incumbent, dtype=np.float64), a0, None)
        if oracle(inc[None])[0][0] and float(w @ inc) > best_value:
            best_point, best_value = inc, float(w @ inc)
    scale = max(float(w @ b0), 1e-12)
    delta = (
        resolution
        if resolution is not None
        else max(gap * 1e-2 * scale / max(w.sum(), 1e-12), 1e-12)
    )

    def steps_for(width: float) -> int:
        return max(1, math.ceil(math.log2(max(width, delta) / delta)))

    # open boxes
    box_low = a0[None].copy()
    box_high = b0[None].copy()
    bounds = np.array([float(w @ b0)])
    processed = iterations = 0
    converged = False
    while True:
        top = float(bounds.max()) if bounds.size else best_value
        upper_bound = max(top, best_value)
        if upper_bound <= 0 or (upper_bound - best_value) <= gap * upper_bound:
            converged = True
            break
        if time.perf_counter() - start_time > time_limit:
            break
        iterations += 1
        # select the best-bounded boxes
        take = min(batch, bounds.size)
        if take < bounds.size:
            chosen = np.argpartition(-bounds, take - 1)[:take]
        else:
            chosen = np.arange(bounds.size)
        keep = np.ones(bounds.size, dtype=bool)
        keep[chosen] = False
        lo, hi = box_low[chosen], box_high[chosen]
        box_low, box_high, bounds = box_low[keep], box_high[keep], bounds[keep]
        # branch: halve along the edge with the largest weighted width
        edge = np.argmax(w * (hi - lo), axis=1)
        rows = np.arange(take)
        mid = 0.5 * (lo[rows, edge] + hi[rows, edge])
        lo_a, hi_a = lo.copy(), hi.copy()
        hi_a[rows, edge] = mid
        lo_b, hi_b = lo.copy(), hi.copy()
        lo_b[rows, edge] = mid
        lo = np.concatenate([lo_a, lo_b])
        hi = np.concatenate([hi_a, hi_b])
        processed += lo.shape[0]
        lo, hi, bnd = _reduce_and_bound(w, lo, hi, best_value, oracle, steps_for, delta)
        if box_bound is not None and lo.shape[0]:
            bnd = np.minimum(bnd, box_bound(lo, hi))
        if lo.shape[0] == 0:
            if bounds.size:
                bounds_mask = bounds > best_value
                box_low, box_high, bounds = (
                    box_low[bounds_mask],
                    box_high[bounds_mask],
                    bounds[bounds_mask],
                )
            continue
        # lower bounds: the exit point of the diagonal a -> b
        width = float((hi - lo).max())
        t_low, _ = _bisect(oracle, lo, hi - lo, np.ones(lo.shape[0]), steps_for(width), True)
        points = lo + t_low[:, None] * (hi - lo)
        values = points @ w
        i = int(np.argmax(values))
        if values[i] > best_value:
            best_value, best_point = float(values[i]), points[i].copy()
        # prune and store
        alive = bnd > best_value
        box_low = np.concatenate([box_low, lo[alive]])
        box_high = np.concatenate([box_high, hi[alive]])
        bounds = np.concatenate([bounds, bnd[alive]])
        alive_old = bounds > best_value
        box_low, box_high, bounds = box_low[alive_old], box_high[alive_old], bounds[alive_old]
    top = float(bounds.max()) if bounds.size else best_value
    return MonotonicResult(
        point=best_point,
        value=best_value,
        upper_bound=max(top, best_value),
        converged=converged,
        boxes=processed,
        iterations=iterations,
        seconds=time.perf_counter() - start_time,
    )


def _reduce_and_bound(
    w: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    best_value: float,
    oracle: Oracle,
    steps_for: Callable[[float], int],
    delta: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reduce boxes ``[lo, hi]`` (each ``(M, D)``) against the incumbent value; drop empty and
    infeasible ones. Returns the kept ``(lo, hi, bound)``."""
    # objective reduction: every point better than f* has r_i >= b_i - (w.b - f*) / w_i
    excess = hi @ w - best_value  # (M,)
    alive = excess > 0
    positive = w > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = hi - excess[:, None] / np.where(positive, w, 1.0)
    floor = np.where(positive, floor, lo)
    lo = np.maximum(lo, floor - delta * 1e-3)  # a hair below, against rounding
    lo = np.minimum(lo, hi)
    lo, hi = lo[alive], hi[alive]
    if lo.shape[0] == 0:
        return lo, hi, np.zeros(0)
    # feasibility of the lower corner
    _, infeasible = oracle(lo)
    lo, hi = lo[~infeasible], hi[~infeasible]
    m = lo.shape[0]
    if m == 0:
        return lo, hi, np.zeros(0)
    # upper reduction along each axis (bisection, infeasible side kept)
    width = hi - lo  # (M, D)
    axes = np.nonzero(positive)[0]
    start = np.repeat(lo, axes.size, axis=0)  # (M * A, D)
    step = np.zeros_like(start)
    lengths = width[:, axes].reshape(-1)
    step[np.arange(start.shape[0]), np.tile(axes, m)] = 1.0
    steps = steps_for(float(lengths.max()) if lengths.size else 0.0)
    _, high = _bisect(oracle, start, step, lengths, steps, False)
    hi = hi.copy()
    hi[:, axes] = lo[:, axes] + high.reshape(m, axes.size)
    return lo, hi, hi @ w


def attach_bound(result: Any, upper: np.ndarray, converged: np.ndarray) -> None:
    """Fill ``upper_bound`` ``(N,)``, ``gap`` ``(N,)`` (``(bound - objective) / bound``, NaN
    where there is no bound) and ``converged`` ``(N,)`` bool of a solver result."""
    objective = np.asarray(result.objective, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where(upper > 0, (upper - objective) / upper, 0.0)
    finite = np.isfinite(upper) & np.isfinite(objective)
    result.upper_bound = upper
    result.gap = np.where(finite, np.maximum(gap, 0.0), np.nan)
    result.converged = np.asarray(converged, dtype=bool) & finite
