"""Frank-Wolfe (conditional gradient) refinement of feasible power allocations (paper sec. VI).

The feasible set of the power-control problem is the polytope
``{p >= 0, A p <= Pmax 1, C p >= d}`` (eq. 4), so a linear objective over it is an LP and
every convex combination of feasible points is feasible. One Frank-Wolfe step from a feasible
``p_t`` is

1. ``g = grad R(p_t)``, the gradient of the *true* (non-convex) sum rate;
2. ``s = argmax_{p in polytope} <g, p>`` (an LP). The paper's eq. (24) writes ``argmin``,
   which is the rule for *minimizing*; for maximizing the sum rate the linear model must be
   maximized, i.e. ``argmin <p, -g>``;
3. ``p_{t+1} = p_t + lambda (s - p_t)`` with ``lambda in [0, 1]`` from a line search on the
   true sum rate. (Eq. (23) prints ``p_t + lambda p_{t+1/2}``; the convex combination above is
   the standard step and the one that keeps ``p_{t+1}`` feasible.)

It stops when the Frank-Wolfe gap ``<g, s - p_t>`` (an upper bound on the first-order gain
available in the polytope; zero exactly at a stationary point) falls below
``threshold * R(p_t)``, or after ``iterations`` steps (paper: 50 and 1e-3).

Away steps (default; ``away_steps=False`` gives the paper's plain variant). Plain Frank-Wolfe
zig-zags when the maximum lies inside a face of the polytope (e.g. a budget split over
several channels): every step heads for a vertex, and convergence is slow. The away-step
variant keeps the iterate as a convex combination of the start and the LP vertices found so
far and, when it promises more first-order gain, moves *away* from the active atom the linear
model likes least (the step is capped so that the atom's weight stays non-negative, so the
iterate stays in the polytope). Measured on 100 path-loss instances each, it cut the mean
iterations from 17.8 to 8.2 (``B=3, Q=2``) and from 25.3 to 17.2 (``B=4, Q=5``), the
instances stopped by the 50-iteration limit from 22 to 1 and from 26 to 2, and raised the
mean sum rate by 0.03 %; on a single-cell instance (concave objective) it reached the optimum
to 1e-6 in 13 iterations where the plain variant was still 1 % short after 50.

Everything except the LPs is batched over instances in torch (float64, CPU): gradients by
autograd, and the line search evaluates the sum rate on a grid of step sizes at once and
then zooms in twice around the best one (the objective along a segment need not be unimodal,
so a pure golden-section search could stop at a worse local maximum). A step is only taken if
it increases the sum rate, so the iterates are monotone.

LPs: the ``N`` LPs of one iteration are independent and tiny (``U = B Q`` columns,
``B + U`` rows). They are solved in-process, one HiGHS model per instance kept across
iterations: only the cost vector changes between iterations, so HiGHS restarts from the
previous optimal basis. Measured on the 2-core development machine (CPU time), that costs
about 0.18 ms per LP for ``B=3, Q=2`` and 0.24 ms for ``B=4, Q=5`` against 1.1 and 1.8 ms for
a cold ``scipy.optimize.linprog(method="highs")`` call (same HiGHS library, model rebuilt
every time), which remains the fallback should a warm-started solve not report optimality.
Worker processes (``workers > 1``) split the batch into contiguous chunks, but a spawned
worker needs seconds to import torch: on that machine two workers were slower than one
process up to 400 instances of ``B=4, Q=5``, so a worker is only started per
``_MIN_PER_WORKER`` instances (see docs/solvers-fw-ga.md).
"""

from __future__ import annotations

import itertools
import math
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from scipy.optimize import linprog
from torch import Tensor

from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.power_control_problem import LINEAR_RATE_SETS
from feasnet.problems.registry import problem_of, require_supported
from feasnet.solvers._population import RayRepair, sum_rate_many, to_normalized
from feasnet.solvers.result import AllocationResult
from feasnet.threads import intra_op_threads, single_thread_worker

DEFAULT_ITERATIONS = 50
"""Maximum Frank-Wolfe iterations (paper, sec. VII)."""

DEFAULT_THRESHOLD = 1e-3
"""Stop when the Frank-Wolfe gap is below this fraction of the current sum rate (paper)."""

_GRID = 17
"""Step sizes tried in the first round of the line search (spacing 1/16)."""

_ZOOM_ROUNDS = 2
"""Further rounds of the line search, each on a finer grid around the best step so far."""

_ZOOM_POINTS = 9
"""Step sizes per zoom round."""

_MIN_PER_WORKER = 2000
"""Instances per worker process below which :func:`refine` stays in this process."""


# ---------------------------------------------------------------------------- LP oracle
def _highs_class() -> Any:
    """The HiGHS class to instantiate, or ``None`` when highspy is missing.

    ``highspy.Highs`` prints a banner on stdout (from C++) every time a process creates its
    first instance, before any option can be set; its base class ``_core._Highs`` has the
    same solver methods without the callback machinery and prints nothing, so we prefer it.
    """
    try:
        import highspy
    except ImportError:  # pragma: no cover - highspy is a dependency
        return None
    core = getattr(highspy, "_core", None)
    return getattr(core, "_Highs", None) or highspy.Highs


class _LinearOracle:
    """``argmax_x <c, x>`` over ``{x >= 0, G' x <= h'}`` for each instance, warm-started.

    Args:
        G: ``(N, M, U)`` budget and QoS rows of the normalized constraints (no sign rows).
        h: ``(N, M)`` right-hand sides.
    """

    def __init__(self, G: np.ndarray, h: np.ndarray) -> None:
        self.G = G
        self.h = h
        self._cls = _highs_class()
        self._models: dict[int, Any] = {}
        self.fallbacks = 0

    def _model(self, i: int) -> Any:
        model = self._models.get(i)
        if model is not None:
            return model
        import highspy

        model = self._cls()
        model.setOptionValue("output_flag", False)
        a = self.G[i]
        m, u = a.shape
        rows, cols = np.nonzero(a)
        lp = highspy.HighsLp()
        lp.num_col_ = u
        lp.num_row_ = m
        lp.col_cost_ = np.zeros(u)
        lp.col_lower_ = np.zeros(u)
        lp.col_upper_ = np.full(u, highspy.kHighsInf)
        lp.row_lower_ = np.full(m, -highspy.kHighsInf)
        lp.row_upper_ = self.h[i].copy()
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        starts = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=m))])
        lp.a_matrix_.start_ = starts.astype(np.int32)
        lp.a_matrix_.index_ = cols.astype(np.int32)
        lp.a_matrix_.value_ = a[rows, cols]
        lp.sense_ = highspy.ObjSense.kMaximize
        model.passModel(lp)
        self._models[i] = model
        return model

    def solve(self, i: int, cost: np.ndarray) -> np.ndarray | None:
        """Maximizer for instance ``i`` and cost ``(U,)``; ``None`` if no LP solve succeeded."""
        if self._cls is not None:
            import highspy

            model = self._model(i)
            u = cost.shape[0]
            model.changeColsCost(u, np.arange(u, dtype=np.int32), cost)
            model.run()
            if model.getModelStatus() == highspy.HighsModelStatus.kOptimal:
                return np.asarray(model.getSolution().col_value, dtype=np.float64)
        self.fallbacks += 1
        res = linprog(-cost, A_ub=self.G[i], b_ub=self.h[i], bounds=(0, None), method="highs")
        return res.x if res.status == 0 else None


# ---------------------------------------------------------------------------- refinement
def _value_and_grad(x: Tensor, instances: PowerControlInstances) -> tuple[Tensor, Tensor]:
    """Sum rate ``(N,)`` [bit/s] and its gradient ``(N, U)`` w.r.t. normalized ``x (N, U)``.

    Works inside ``torch.no_grad()`` blocks too (e.g. when refining a network's outputs).
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        value = sum_rate_many(x[:, None, :], instances)[:, 0]
        (grad,) = torch.autograd.grad(value.sum(), x)
    return value.detach(), grad


def _line_search(
    x: Tensor, direction: Tensor, current: Tensor, instances: PowerControlInstances
) -> tuple[Tensor, Tensor]:
    """Best step in ``[0, 1]`` along ``direction``: grid of 17, then two zooms of 9 points.

    Args:
        x, direction: ``(N, U)`` normalized point and ``s - x``.
        current: ``(N,)`` sum rate at ``x`` [bit/s] (the value at step 0).

    Returns:
        ``(step, value)``, each ``(N,)``; ``step = 0`` and ``value = current`` when no tried
        step increases the sum rate.
    """
    n = x.shape[0]
    best_step = torch.zeros(n, dtype=x.dtype)
    best_value = current.clone()
    steps = torch.linspace(0.0, 1.0, _GRID, dtype=x.dtype).expand(n, _GRID)
    spacing = 1.0 / (_GRID - 1)
    for round_ in range(_ZOOM_ROUNDS + 1):
        if round_ > 0:
            offsets = torch.linspace(-spacing, spacing, _ZOOM_POINTS, dtype=x.dtype)
            steps = (best_step[:, None] + offsets).clamp(0.0, 1.0)
            spacing = 2.0 * spacing / (_ZOOM_POINTS - 1)
        values = sum_rate_many(x[:, None, :] + steps[..., None] * direction[:, None, :], instances)
        values = torch.where(torch.isfinite(values), values, torch.full_like(values, -math.inf))
        value, idx = values.max(dim=1)
        better = value > best_value
        best_step = torch.where(better, steps.gather(1, idx[:, None])[:, 0], best_step)
        best_value = torch.where(better, value, best_value)
    return best_step, best_value


@dataclass(frozen=True)
class Refined:
    """Outcome of :func:`refine_with_status` for ``N`` instances.

    Attributes:
        power: ``(N, B, Q)`` refined powers [W].
        iterations: ``(N,)`` int64 Frank-Wolfe iterations performed.
        converged: ``(N,)`` bool, the relative Frank-Wolfe gap reached ``threshold``.
        gap: ``(N,)`` float64 last relative Frank-Wolfe gap (inf where never computed).
        non_finite: ``(N,)`` bool, stopped because the sum rate or its gradient was not
            finite (e.g. gains whose SINRs overflow float64).
    """

    power: Tensor
    iterations: Tensor
    converged: Tensor
    gap: Tensor
    non_finite: Tensor

    def messages(self, iterations: int) -> list[str]:
        """``"fw: not converged: ..."`` for every instance that did not converge, else ""."""
        out = []
        for used, ok, gap, bad in zip(
            self.iterations.tolist(),
            self.converged.tolist(),
            self.gap.tolist(),
            self.non_finite.tolist(),
            strict=True,
        ):
            if ok:
                out.append("")
            elif bad:
                out.append("fw: not converged: sum rate or gradient not finite; kept the start")
            elif used >= iterations:
                out.append(
                    f"fw: not converged: iteration cap {iterations} reached, FW gap {gap:.2g}"
                )
            else:
                out.append(f"fw: not converged: no improving step found, FW gap {gap:.2g}")
        return out


def _refine64(
    power: Tensor,
    instances: PowerControlInstances,
    iterations: int,
    threshold: float,
    anchor: Tensor | None,
    away_steps: bool,
) -> Refined:
    """Float64 CPU core of :func:`refine_with_status` (same arguments, float64)."""
    n = instances.num_instances
    mpow = pc.minimum_power(instances)
    if anchor is None:
        anchor = pc.interior_anchor(instances, min_power=mpow)
    ok = mpow.feasible & torch.isfinite(anchor).all(dim=(1, 2))
    used = torch.zeros(n, dtype=torch.int64)
    out = power.clone()
    converged_all = torch.zeros(n, dtype=torch.bool)
    gap_all = torch.full((n,), math.inf, dtype=torch.float64)
    bad_all = torch.zeros(n, dtype=torch.bool)
    if not bool(ok.any()):
        return Refined(out, used, converged_all, gap_all, bad_all)
    idx = torch.nonzero(ok).flatten()
    sub = instances[idx]
    sub_anchor = anchor[idx]
    repair = RayRepair.build(sub_anchor, sub)
    u_dim = sub.num_users

    start, _ = pc.scale_toward_anchor(power[idx], sub_anchor, sub)  # no-op when feasible
    x = to_normalized(start, sub)
    start_value = sum_rate_many(x[:, None, :], sub)[:, 0]

    cons = pc.linear_constraints(sub)
    oracle = _LinearOracle(cons.G[:, u_dim:].numpy(), cons.h[:, u_dim:].numpy())
    sub_converged = torch.zeros(len(idx), dtype=torch.bool)
    sub_gap = torch.full((len(idx),), math.inf, dtype=torch.float64)
    sub_bad = ~torch.isfinite(start_value)
    active = ~sub_bad
    sub_used = torch.zeros(len(idx), dtype=torch.int64)
    # Active set for away steps: x = sum_t weights[t] * atoms[t]; atom 0 is the start, atom
    # t + 1 the LP vertex of iteration t (or its weight goes to an identical earlier atom).
    atoms = torch.zeros(len(idx), iterations + 1, u_dim, dtype=x.dtype)
    atoms[:, 0] = x
    weights = torch.zeros(len(idx), iterations + 1, dtype=x.dtype)
    weights[:, 0] = 1.0
    for t in range(iterations):
        act = torch.nonzero(active).flatten()
        if len(act) == 0:
            break
        act_inst = sub[act]
        xa = x[act]
        value, grad = _value_and_grad(xa, act_inst)
        # A non-finite value or gradient must never reach the LP or the line search.
        bad = ~(torch.isfinite(value) & torch.isfinite(grad).all(dim=1))
        if bool(bad.any()):
            sub_bad[act[bad]] = True
            active[act[bad]] = False
            keep = ~bad
            act, xa, value, grad = act[keep], xa[keep], value[keep], grad[keep]
            act_inst = sub[act]
            if len(act) == 0:
                break
        scale = grad.abs().amax(dim=1, keepdim=True).clamp(min=1e-300)
        cost = (grad / scale).numpy()
        vertex = xa.clone()
        for j, i in enumerate(act.tolist()):
            sol = oracle.solve(i, cost[j])
            if sol is not None and np.isfinite(sol).all():
                vertex[j] = torch.from_numpy(sol)
        # Clear the LP solver's tolerance-level violations: clip the sign rows, then pull the
        # vertex toward the interior anchor (a no-op for an exactly feasible vertex).
        vertex = repair.select(act)(vertex.clamp(min=0.0)[:, None, :])[:, 0]
        toward = vertex - xa
        gap = (grad * toward).sum(dim=1)
        converged = gap <= threshold * value.abs()
        sub_gap[act] = gap / value.abs().clamp(min=1e-300)
        sub_converged[act] = converged
        rows = torch.arange(len(act))
        at, wt = atoms[act], weights[act]
        if away_steps:
            # Away direction: from the active atom the linear model likes least, with the
            # largest step that keeps its weight non-negative.
            score = torch.einsum("ktu,ku->kt", at, grad).masked_fill(wt <= 0, math.inf)
            worst = score.argmin(dim=1)
            w_worst = wt[rows, worst]
            away = xa - at[rows, worst]
            reach = w_worst / (1.0 - w_worst).clamp(min=1e-300)
            use_away = ((grad * away).sum(dim=1) > gap) & (w_worst < 1.0)
            direction = torch.where(use_away[:, None], reach[:, None] * away, toward)
        else:
            use_away = torch.zeros(len(act), dtype=torch.bool)
            direction = toward
        step, _ = _line_search(xa, direction, value, act_inst)
        moved = ~converged & (step > 0)
        x[act] = torch.where(moved[:, None], xa + step[:, None] * direction, xa)
        # Weights of the active set.
        fw_move = (moved & ~use_away)[:, None]
        same = (at[:, : t + 1] - vertex[:, None]).abs().amax(dim=2) <= 1e-15
        slot = torch.where(same.any(dim=1), same.to(torch.int64).argmax(dim=1), t + 1)
        fw_w = wt * (1.0 - step[:, None])
        fw_w[rows, slot] += step
        new_atoms = at.clone()
        new_atoms[rows, t + 1] = torch.where(same.any(dim=1)[:, None], at[:, t + 1], vertex)
        wt_new = torch.where(fw_move, fw_w, wt)
        if away_steps:
            gamma = step * reach
            away_w = wt * (1.0 + gamma[:, None])
            away_w[rows, worst] = torch.where(step >= 1.0, 0.0, away_w[rows, worst] - gamma)
            wt_new = torch.where((moved & use_away)[:, None], away_w.clamp(min=0.0), wt_new)
        atoms[act] = torch.where(fw_move[..., None], new_atoms, at)
        weights[act] = wt_new
        sub_used[act] += 1
        # The line search only returns a positive step when the sum rate increases; an
        # instance that cannot move along its chosen direction stops.
        active[act] = moved

    # Numerical polish (a no-op for an exactly feasible iterate), then keep the start where
    # the result is not better.
    refined = pc.to_matrix(x.clamp(min=0.0) * sub.pmax[:, None], sub.num_bs, sub.num_channels)
    refined, _ = pc.scale_toward_anchor(refined, sub_anchor, sub)
    better = pc.sum_rate(refined, sub) >= start_value
    out[idx] = torch.where(better[:, None, None], refined, start)
    used[idx] = sub_used
    converged_all[idx] = sub_converged & ~sub_bad
    gap_all[idx] = sub_gap
    bad_all[idx] = sub_bad
    return Refined(out, used, converged_all, gap_all, bad_all)


def _refine_job(
    args: tuple[Tensor, PowerControlInstances, int, float, Tensor | None, bool],
) -> Refined:
    return _refine64(*args)


def refine(
    power: Tensor,
    instances: PowerControlInstances,
    iterations: int = DEFAULT_ITERATIONS,
    threshold: float = DEFAULT_THRESHOLD,
    workers: int | None = None,
    anchor: Tensor | None = None,
    away_steps: bool = True,
) -> tuple[Tensor, Tensor]:
    """:func:`refine_with_status` returning ``(refined, used)`` only.

    ``refined``: ``(N, B, Q)`` powers [W] in ``power``'s dtype and device; ``used``: ``(N,)``
    int64 Frank-Wolfe iterations performed.
    """
    refined = refine_with_status(
        power, instances, iterations, threshold, workers, anchor, away_steps
    )
    return refined.power, refined.iterations


def refine_with_status(
    power: Tensor,
    instances: PowerControlInstances,
    iterations: int = DEFAULT_ITERATIONS,
    threshold: float = DEFAULT_THRESHOLD,
    workers: int | None = None,
    anchor: Tensor | None = None,
    away_steps: bool = True,
) -> Refined:
    """Improve feasible allocations with Frank-Wolfe steps on the true sum rate.

    Each instance runs until its relative Frank-Wolfe gap ``<g, s - p> / R(p)`` is at most
    ``threshold``, no step along the chosen direction (toward ``s`` or, with away steps, away
    from an active atom) increases the sum rate, or ``iterations`` LPs have been solved.
    The result is never worse than the start: iterates only move when the sum rate
    increases, and the final point is compared with the start once more.

    Args:
        power: ``(N, B, Q)`` feasible starting allocations [W], e.g. a network's output. A
            start that is not feasible is first pulled toward the interior anchor with
            :func:`~feasnet.problems.power_control.scale_toward_anchor` (non-finite rows
            become the anchor).
        instances: the batch (any dtype/device; the work is done in float64 on the CPU).
        iterations: maximum Frank-Wolfe iterations (LP solves) per instance.
        threshold: relative Frank-Wolfe gap at which an instance stops.
        workers: ``None``/``1`` runs in this process; ``k > 1`` splits the batch into up to
            ``k`` contiguous chunks of at least ``_MIN_PER_WORKER`` instances, refined in
            spawned single-thread worker processes (process start-up costs seconds).
        anchor: ``(N, B, Q)`` strictly feasible points used for the repair [W]; by default
            :func:`~feasnet.problems.power_control.interior_anchor`.
        away_steps: use the away-step variant (see the module docstring); ``False`` is the
            plain Frank-Wolfe of the paper.

    Returns:
        :class:`Refined`: powers ``(N, B, Q)`` [W] in ``power``'s dtype and device, iterations
        performed, convergence flags, last relative gaps and non-finite stops. Instances that
        :func:`~feasnet.problems.power_control.minimum_power` finds infeasible come back
        unchanged with 0 iterations and ``converged=False``. An instance whose sum rate or
        gradient is not finite stops at once (it never reaches the LP or the line search).
    """
    if iterations < 0:
        raise ValueError(f"iterations: expected >= 0, got {iterations}")
    if threshold < 0:
        raise ValueError(f"threshold: expected >= 0, got {threshold}")
    inst64 = instances.to(torch.float64, "cpu")
    if tuple(power.shape) != tuple(inst64.gain.shape[:3]):
        raise ValueError(
            f"power: expected shape {tuple(inst64.gain.shape[:3])}, got {tuple(power.shape)}"
        )
    p64 = power.detach().to(torch.float64).cpu()
    a64 = None if anchor is None else anchor.detach().to(torch.float64).cpu()
    n = inst64.num_instances
    chunks = 1 if workers is None else max(1, min(int(workers), n // _MIN_PER_WORKER))
    if chunks <= 1:
        with intra_op_threads(1):
            result = _refine64(p64, inst64, iterations, threshold, a64, away_steps)
    else:
        bounds = np.linspace(0, n, chunks + 1).astype(int)
        jobs = [
            (
                p64[lo:hi],
                inst64[lo:hi],
                iterations,
                threshold,
                None if a64 is None else a64[lo:hi],
                away_steps,
            )
            for lo, hi in itertools.pairwise(bounds.tolist())
        ]
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(chunks, mp_context=ctx, initializer=single_thread_worker) as pool:
            parts = list(pool.map(_refine_job, jobs))
        result = Refined(*(torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Refined)))
    return Refined(
        power=result.power.to(dtype=power.dtype, device=power.device),
        iterations=result.iterations.to(power.device),
        converged=result.converged.to(power.device),
        gap=result.gap.to(power.device),
        non_finite=result.non_finite.to(power.device),
    )


# ---------------------------------------------------------------------------- solver
def solve(
    instances: PowerControlInstances,
    workers: int | None = None,
    iterations: int = DEFAULT_ITERATIONS,
    threshold: float = DEFAULT_THRESHOLD,
    away_steps: bool = True,
) -> AllocationResult:
    """Frank-Wolfe from the interior anchor (``interior_anchor``, half-way to the budget).

    Args:
        instances: the batch.
        workers: see :func:`refine` (``None`` runs in this process).
        iterations, threshold, away_steps: see :func:`refine`.

    Returns:
        :class:`AllocationResult` named ``"fw"``; ``seconds`` is the batch wall time divided
        by ``N``; infeasible instances get NaN powers and the reason of
        :meth:`~feasnet.problems.power_control.MinimumPower.reasons`.
    """
    require_supported(problem_of(instances), "fw", LINEAR_RATE_SETS)
    start_time = time.perf_counter()
    inst64 = instances.to(torch.float64, "cpu")
    mpow = pc.minimum_power(inst64)
    anchor = pc.interior_anchor(inst64, min_power=mpow)
    refined = refine_with_status(
        anchor, inst64, iterations, threshold, workers=workers, away_steps=away_steps
    )
    power = torch.where(
        mpow.feasible[:, None, None], refined.power, torch.full_like(refined.power, math.nan)
    )
    elapsed = (time.perf_counter() - start_time) / max(1, len(instances))
    notes = refined.messages(iterations)
    messages = [reason or note for reason, note in zip(mpow.reasons(), notes, strict=True)]
    result = AllocationResult.checked("fw", power, inst64, elapsed, messages)
    result.converged = refined.converged.numpy() & result.feasible
    for i in np.flatnonzero(~result.feasible):
        if not result.messages[i]:  # every infeasible output says why
            result.messages[i] = "fw: the output failed the float64 feasibility check"
    return result
