"""A genetic algorithm for sum-rate power control, batched over instances and individuals.

The paper (sec. VII) benchmarks against MATLAB's generic ``ga`` with 5000 iterations. Here the
algorithm is written directly in torch so that one tensor holds the population of *every*
instance of a chunk, ``x`` of shape ``(N, pop, U)`` in normalized units ``x = P / Pmax``
(vector layout ``x[..., q*B + b] = P[b, q] / Pmax``, i.e. ``(N, pop, B, Q)`` with the channel
index outermost). A generation is a few dozen tensor operations for the whole chunk, whereas
a generic GA library evaluates one instance at a time through Python callbacks.

Every individual is feasible at all times: each child is clipped at zero and then pulled
along the ray toward the interior anchor (:func:`~feasnet.problems.power_control.
interior_anchor`) to the largest feasible point (the closed form of
:func:`~feasnet.problems.power_control.scale_toward_anchor`, with the constraint data computed
once per chunk; see :class:`~feasnet.solvers._population.RayRepair`). The fitness is therefore
simply the sum rate, with no penalty terms.

One generation (constants below):

* **elitism**: the ``_ELITE`` best individuals pass unchanged;
* **tournament selection**: each parent is the fittest of ``_TOURNAMENT`` individuals drawn
  uniformly;
* **crossover** with probability ``_CROSSOVER``, half of the time *arithmetic* (one uniform
  weight in ``[0, 1]``: the child lies on the parents' segment, hence is feasible) and half
  *blend* (BLX-alpha: every gene uniform on the parents' interval widened by ``_ALPHA`` times
  its length on each side);
* **Gaussian mutation**, each gene with probability ``1/U``: additive noise in normalized units
  or multiplicative log-normal noise (half of the mutated genes each; the latter suits users
  whose power is orders of magnitude below ``Pmax``), with a width decaying geometrically
  from ``_SIGMA_START`` to ``_SIGMA_END`` over the run;
* **extension**, with probability ``_P_EXTEND``: the child is pushed away from the anchor
  (``a + 4 (x - a)``) so that its repair lands on the boundary;
* **repair** (clip at zero, ray toward the anchor);
* **coordinate moves** (``ceil(U/4)`` per child): one gene at a time is set to the bottom or
  the top of its feasible range with the others fixed, or moved toward one end by a random
  fraction that shrinks over the run (boundary and non-uniform mutation of constrained GAs).
  These stay feasible and reach the faces of the polytope where many rate targets and budgets
  are tight at once, which is where sum-rate maxima lie; without them the GA stalled
  clearly below Frank-Wolfe.

Tuning (path-loss instances, ``B=4, Q=5``, 300 generations): tournament 4 and elite 4 beat
2/2 and 3/2, and a final mutation width of ``2e-4`` beat ``2e-3``; see docs/solvers-fw-ga.md.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import Tensor

from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.power_control_problem import LINEAR_RATE_SETS
from feasnet.problems.registry import problem_of, require_supported
from feasnet.solvers._population import (
    RayRepair,
    sum_rate_many,
    to_normalized,
    to_power,
)
from feasnet.solvers.result import AllocationResult
from feasnet.threads import intra_op_threads

DEFAULT_POPULATION = 64
DEFAULT_GENERATIONS = 300
DEFAULT_CHUNK = 256
"""Instances evolved together; memory is about ``chunk * pop * (2U + B) * 8`` bytes per
temporary, i.e. a few MB for ``U = 20``."""

_ELITE = 4  # individuals copied unchanged into the next generation
_TOURNAMENT = 4  # contenders per tournament
_CROSSOVER = 0.9  # probability that a child is a crossover of its two parents
_ALPHA = 0.3  # BLX-alpha widening of the parents' interval
_SIGMA_START = 0.2  # Gaussian mutation width at the first generation (normalized units)
_SIGMA_END = 2e-4  # ... and at the last
_P_EXTEND = 0.1  # probability of pushing a child away from the anchor before the repair
_EXTEND = 4.0  # factor of that push
_MOVES_PER_GENE = 0.25  # coordinate moves per child and generation, per gene


def _initial_population(
    pop: int,
    inst: PowerControlInstances,
    min_power: Tensor,
    repair: RayRepair,
    initial: Tensor | None,
    gen: torch.Generator,
) -> Tensor:
    """Feasible starting population ``(n, pop, U)`` (normalized).

    Structured members first: the anchor, ``P_min``, ``P_min`` scaled to 25/75/95 % of the way
    to the tightest budget, the uniform full-budget split, and the optional ``initial``
    point with perturbed copies; the rest are random. Half of the random members are
    Dirichlet splits of a random share of each BS's budget, half are ``P_min`` plus a
    Dirichlet split of a random share of the budget left over; all are repaired.
    """
    n, b, q = inst.num_instances, inst.num_bs, inst.num_channels
    u_dim = b * q
    dtype = inst.dtype
    x_min = to_normalized(min_power, inst)  # (n, U)
    load = x_min.reshape(n, q, b).sum(dim=1).amax(dim=1)  # (n,) tightest BS share of pmax
    s_max = 1.0 / torch.where(load > 0, load, torch.ones_like(load))
    members = [repair.anchor, x_min]
    for frac in (0.25, 0.75, 0.95):
        members.append(x_min * (1.0 + frac * (s_max - 1.0))[:, None])
    members.append(torch.full((n, u_dim), 1.0 / q, dtype=dtype))
    if initial is not None:
        x_init = to_normalized(initial, inst)
        members.append(x_init)
        for _ in range(max(1, pop // 8)):
            noise = torch.exp(0.1 * torch.randn(n, u_dim, generator=gen, dtype=dtype))
            members.append(x_init * noise)
    structured = torch.stack(members[:pop], dim=1)
    rest = pop - structured.shape[1]
    if rest > 0:
        gamma = -torch.log(torch.rand(n, rest, b, q, generator=gen, dtype=dtype).clamp(min=1e-300))
        # Dirichlet(1) splits over each BS's channels; half of them sharpened (power 4) so that
        # most of the budget goes to one or two channels.
        sharp = torch.rand(n, rest, 1, 1, generator=gen, dtype=dtype) < 0.5
        gamma = torch.where(sharp, gamma**4, gamma)
        split = gamma / gamma.sum(dim=3, keepdim=True)
        share = torch.rand(n, rest, b, 1, generator=gen, dtype=dtype) ** (1.0 / q)
        spare = (1.0 - x_min.reshape(n, q, b).sum(dim=1)).clamp(min=0.0)  # (n, B)
        on_top = torch.rand(n, rest, 1, 1, generator=gen, dtype=dtype) < 0.5
        base = x_min.reshape(n, 1, q, b).transpose(2, 3)  # (n, 1, B, Q)
        random_x = torch.where(
            on_top, base + spare[:, None, :, None] * share * split, share * split
        )
        random_x = random_x.transpose(2, 3).reshape(n, rest, u_dim)
        structured = torch.cat([structured, random_x], dim=1)
    structured = torch.where(torch.isfinite(structured), structured, repair.anchor[:, None, :])
    return repair(structured.clamp(min=0.0))


def _gene_rows(num_bs: int, num_channels: int) -> Tensor:
    """Rows of the normalized constraints that involve each gene: ``(U, B + 2)`` int64.

    Gene ``u = q*B + b`` (user ``b`` on channel ``q``) appears in its sign row ``u``, the budget
    row ``U + b`` of BS ``b`` and the ``B`` rate rows ``U + B + q*B + c`` of channel ``q`` (its
    own with coefficient -1, the others with its interference coefficients), in the row order
    of :func:`~feasnet.problems.power_control.linear_constraints`.
    """
    u_dim = num_bs * num_channels
    gene = torch.arange(u_dim)
    b, q = gene % num_bs, gene // num_bs
    qos = u_dim + num_bs + q[:, None] * num_bs + torch.arange(num_bs)
    return torch.cat([gene[:, None], (u_dim + b)[:, None], qos], dim=1)


def _coordinate_moves(
    x: Tensor,
    feasible_set: RayRepair,
    rows: Tensor,
    draws: Tensor,
    progress: float,
) -> Tensor:
    """Move single coordinates of feasible candidates within their feasible ranges.

    Each of ``moves`` rounds picks one gene per candidate and sets it, with the others fixed,
    to the bottom (probability 1/4) or top (1/4) of its feasible range, or moves it toward
    one end by a random fraction that shrinks to zero as ``progress`` goes from 0 to 1
    (1/2; non-uniform mutation). The bottom of a user's range is usually the power at
    which its own rate target is met exactly, the top where a budget or another user's
    target becomes tight, so these moves reach the vertices and faces of the polytope where
    sum-rate maxima lie. Only the ``B + 2`` rows involving the gene are read, and ``G x`` is
    updated in those rows only.

    Args:
        x: ``(n, K, U)`` feasible candidates (normalized).
        feasible_set: the chunk's constraints.
        rows: ``(U, R)`` the rows involving each gene (:func:`_gene_rows`).
        draws: ``(n, K, moves, 3)`` uniform numbers (gene, kind of move, step fraction).
        progress: position in the run, in ``[0, 1]``.

    Returns:
        ``(n, K, U)`` candidates, feasible up to rounding.
    """
    n, k, u_dim = x.shape
    r = rows.shape[1]
    g, h = feasible_set.G, feasible_set.h
    table = g[:, rows, torch.arange(u_dim)[:, None]]  # (n, U, R): G[n, rows[u, j], u]
    gx = torch.einsum("nmu,nku->nkm", g, x)
    exponent = (1.0 - progress) ** 2
    for j in range(draws.shape[2]):
        gene = (draws[:, :, j, 0] * u_dim).long().clamp(max=u_dim - 1)  # (n, K)
        row = rows[gene]  # (n, K, R)
        coef = table.gather(1, gene[..., None].expand(n, k, r))  # (n, K, R)
        slack = (h.gather(1, row.reshape(n, -1)).reshape(n, k, r) - gx.gather(2, row)).clamp(
            min=0.0
        )
        step = slack / torch.where(coef != 0, coef, torch.ones_like(coef))
        up = torch.where(coef > 0, step, torch.full_like(step, math.inf)).amin(dim=-1)
        down = torch.where(coef < 0, step, torch.full_like(step, -math.inf)).amax(dim=-1)
        up, down = up.clamp(min=0.0), down.clamp(max=0.0)  # (n, K): range is current + [down, up]
        kind = draws[:, :, j, 1]
        shrink = 1.0 - draws[:, :, j, 2] ** exponent
        delta = torch.where(
            kind < 0.25,
            down,
            torch.where(kind < 0.5, up, shrink * torch.where(kind < 0.75, up, down)),
        )
        current = x.gather(2, gene[..., None])
        x = x.scatter(2, gene[..., None], (current + delta[..., None]).clamp(min=0.0))
        gx = gx.scatter_add(2, row, coef * (x.gather(2, gene[..., None]) - current))
    return x


def _evolve(
    inst: PowerControlInstances,
    pop: int,
    generations: int,
    initial: Tensor | None,
    gen: torch.Generator,
) -> Tensor:
    """Run the GA on a chunk of feasible instances; best powers ``(n, B, Q)`` [W]."""
    n, u_dim = inst.num_instances, inst.num_users
    dtype = inst.dtype
    mpow = pc.minimum_power(inst)
    anchor = pc.interior_anchor(inst, min_power=mpow)
    feasible_set = RayRepair.build(anchor, inst)
    x = _initial_population(pop, inst, mpow.power, feasible_set, initial, gen)
    fit = sum_rate_many(x, inst)
    elite = min(_ELITE, pop)
    kids = pop - elite
    p_gene = min(1.0, 1.0 / u_dim)
    moves = max(1, math.ceil(u_dim * _MOVES_PER_GENE))
    rows_of_gene = _gene_rows(inst.num_bs, inst.num_channels)
    rows = torch.arange(n)[:, None]
    a = feasible_set.anchor[:, None, :]
    for g in range(generations):
        progress = g / max(1, generations - 1)
        sigma = _SIGMA_START * (_SIGMA_END / _SIGMA_START) ** progress
        keep = fit.topk(elite, dim=1).indices
        # Tournament selection: (n, 2 * kids, tournament) contenders.
        contenders = torch.randint(0, pop, (n, 2 * kids, _TOURNAMENT), generator=gen)
        winner = fit.gather(1, contenders.reshape(n, -1)).reshape(contenders.shape).argmax(-1)
        parents = contenders.gather(2, winner[..., None])[..., 0]  # (n, 2 * kids)
        mom = x[rows, parents[:, :kids]]
        dad = x[rows, parents[:, kids:]]
        # All uniform draws of the generation at once: 3 per gene, 4 per child, 3 per move.
        draws = torch.rand(n, kids, 3 * u_dim + 4 + 3 * moves, generator=gen, dtype=dtype)
        per_gene = draws[..., : 3 * u_dim].unflatten(-1, (3, u_dim))
        per_kid = draws[..., 3 * u_dim : 3 * u_dim + 4]
        per_move = draws[..., 3 * u_dim + 4 :].unflatten(-1, (moves, 3))
        noise = torch.randn(n, kids, u_dim, generator=gen, dtype=dtype)
        # Crossover: arithmetic (one weight, stays feasible) or blend (one weight per gene).
        blend = per_kid[..., 1:2] < 0.5
        w = torch.where(blend, per_gene[:, :, 0] * (1 + 2 * _ALPHA) - _ALPHA, per_kid[..., 2:3])
        w = w * (per_kid[..., 0:1] < _CROSSOVER)  # no crossover: the child copies its mother
        child = mom + w * (dad - mom)
        # Gaussian mutation, additive (normalized units) or multiplicative (log-normal).
        mutated = torch.where(
            per_gene[:, :, 2] < 0.5, child + sigma * noise, child * torch.exp(5 * sigma * noise)
        )
        child = torch.where(per_gene[:, :, 1] < p_gene, mutated, child)
        # Extension away from the anchor: the repair then lands on the boundary.
        extend = per_kid[..., 3:4] < _P_EXTEND
        child = torch.where(extend, a + _EXTEND * (child - a), child)
        child = feasible_set(child.clamp(min=0.0))
        child = _coordinate_moves(child, feasible_set, rows_of_gene, per_move, progress)
        child_fit = sum_rate_many(child, inst)
        x = torch.cat([x[rows, keep], child], dim=1)
        fit = torch.cat([fit.gather(1, keep), child_fit], dim=1)
        fit = torch.where(torch.isfinite(fit), fit, torch.full_like(fit, -math.inf))
    best = to_power(x[torch.arange(n), fit.argmax(dim=1)][:, None, :], inst)[:, 0]
    # Polish: clears rounding-level violations of the boundary moves (no-op otherwise).
    best, _ = pc.scale_toward_anchor(best.clamp(min=0.0), anchor, inst)
    return best


def evolve(
    instances: PowerControlInstances,
    population: int = DEFAULT_POPULATION,
    generations: int = DEFAULT_GENERATIONS,
    seed: int = 0,
    initial: Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    threads: int = 1,
) -> Tensor:
    """Best individual per instance: ``(N, B, Q)`` float64 [W], NaN for infeasible instances.

    Args:
        instances: the batch (computed in float64 on the CPU).
        population: individuals per instance (>= 2).
        generations: generations to run (0 returns the best initial individual).
        seed: seed of the ``torch.Generator`` driving all random choices; the result is a
            deterministic function of ``(instances, options, seed)``.
        initial: optional ``(N, B, Q)`` allocations [W] (e.g. from GP) placed in the initial
            population with perturbed copies; infeasible ones are repaired first.
        chunk_size: instances evolved together (bounds memory).
        threads: torch intra-op threads during the run (1 is fastest for these sizes).
    """
    if population < 2:
        raise ValueError(f"population: expected >= 2, got {population}")
    if generations < 0:
        raise ValueError(f"generations: expected >= 0, got {generations}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size: expected >= 1, got {chunk_size}")
    inst64 = instances.to(torch.float64, "cpu")
    init64 = None
    if initial is not None:
        init64 = torch.as_tensor(initial).detach().to(torch.float64).cpu()
        if tuple(init64.shape) != tuple(inst64.gain.shape[:3]):
            raise ValueError(
                f"initial: expected shape {tuple(inst64.gain.shape[:3])}, got {tuple(init64.shape)}"
            )
    mpow = pc.minimum_power(inst64)
    feasible = mpow.feasible
    out = torch.full(tuple(inst64.gain.shape[:3]), math.nan, dtype=torch.float64)
    idx = torch.nonzero(feasible).flatten()
    gen = torch.Generator().manual_seed(int(seed))
    with intra_op_threads(threads):
        for lo in range(0, len(idx), chunk_size):
            part = idx[lo : lo + chunk_size]
            chunk_init = None if init64 is None else init64[part]
            out[part] = _evolve(inst64[part], population, generations, chunk_init, gen)
    # Feasible by construction; the float64 check guards against rounding surprises.
    bad = feasible & ~pc.is_feasible(out, inst64)
    if bool(bad.any()):
        anchor = pc.interior_anchor(inst64, min_power=mpow)
        out = torch.where(bad[:, None, None], anchor, out)
    return out


def solve(
    instances: PowerControlInstances,
    workers: int | None = None,
    population: int = DEFAULT_POPULATION,
    generations: int = DEFAULT_GENERATIONS,
    seed: int = 0,
    initial: Tensor | np.ndarray | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    threads: int = 1,
) -> AllocationResult:
    """Genetic algorithm on every instance (see :func:`evolve`), batched in this process.

    Args:
        instances: the batch.
        workers: unused (the batch is evolved in this process); kept for the common solver
            signature.
        population, generations, seed, initial, chunk_size, threads: see :func:`evolve`.

    Returns:
        :class:`AllocationResult` named ``"ga"``; ``seconds`` is the batch wall time divided by
        ``N``; infeasible instances get NaN powers and the reason of
        :meth:`~feasnet.problems.power_control.MinimumPower.reasons`.
    """
    require_supported(problem_of(instances), "ga", LINEAR_RATE_SETS)
    del workers
    start = time.perf_counter()
    inst64 = instances.to(torch.float64, "cpu")
    init = None
    if initial is not None:
        init = (
            initial.detach().to(torch.float64)
            if isinstance(initial, Tensor)
            else torch.as_tensor(np.asarray(initial, dtype=np.float64))
        )
    power = evolve(
        inst64,
        population=population,
        generations=generations,
        seed=seed,
        initial=init,
        chunk_size=chunk_size,
        threads=threads,
    )
    messages = pc.minimum_power(inst64).reasons()
    elapsed = (time.perf_counter() - start) / max(1, len(instances))
    return AllocationResult.checked("ga", power, inst64, elapsed, messages)
