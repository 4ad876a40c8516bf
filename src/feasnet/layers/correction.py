"""Explicit iterative correction (DEPNet, power-control paper section V, eqs. 12-22).

The correction drives a candidate toward the feasible polytope ``G x <= h`` (normalized units
``x = p / pmax``, vector layout ``x[q*B + b]``, rows from
:func:`feasnet.problems.power_control.linear_constraints`) by descending the squared violation

    V(x) = ||max(G x - h, 0)||^2                                   (eq. 12)

whose gradient and (generalized) Hessian are, for affine constraints,

    grad V(x) = 2 G^T max(G x - h, 0)                              (eq. 15)
    hess V(x) = 2 G_A^T G_A,  A = {rows with G x - h > 0}          (eqs. 16, 19)

Two update rules (eq. 20), each followed by ``x <- max(x, 0)`` as in the paper:

* ``"gradient"``: heavy-ball gradient descent ``dx_t = -step_size grad V + momentum dx_{t-1}``
  (eq. 21; the paper prints ``- momentum dx_{t-1}``, we use the usual heavy-ball sign, the
  one under which momentum damps oscillations as the paper describes). A fixed number of
  steps is unrolled and differentiated through; this is the training-time rule.
* ``"newton"``: the regularized Newton step ``dx = -(hess V + reg I)^{-1} grad V`` (eq. 22),
  solved batched with a Cholesky factorization (LU where a matrix is not numerically positive
  definite). On the active rows one step solves ``G_A x = h_A`` in the least-squares sense,
  so it reaches the polytope in a handful of steps; this is the test-time rule.

Bound-aware Newton (default, ``bound_passes=2``). "Newton step, then clamp at 0" has spurious
fixed points: when the least-squares step asks for negative powers on some coordinates
already at 0 (say, a BS far over budget on one channel while its QoS rows on another channel
are violated), the clamp undoes that part of the step and the rest of the step is
(almost) zero, so the iteration stalls with ``V > 0``. On path-loss data (preset ``small``,
uniform starting points) the paper's rule stalls on 1.7 % of the samples. After the plain step
we therefore hold at 0 the coordinates that sit at 0 and that the step pushes negative, and
recompute the step on the other coordinates (at most ``bound_passes`` times; each pass reuses
the same Hessian). ``bound_passes=0`` is the paper's rule. Measurements:
``docs/layers-correction-penalty-guard.md``.

Boundary subtlety and the margin. Newton lands *on* the boundary of the rows it corrects, and
the ridge makes it stop a relative ``~reg / |G_A|^2`` short of it, so ``V`` only tends to 0
and in floating point a result can violate a row by a few ulps. To finish strictly inside,
every step targets the tightened polytope ``G x <= h - margin * |h|``: budget rows become
``sum_q x[b, q] <= 1 - margin`` and each QoS row asks for ``(1 + margin)`` times its noise
term, i.e. a strictly positive SINR slack. Rows with ``h = 0`` (non-negativity, users without a
rate target) are unchanged; the clamp keeps ``x >= 0`` exactly. A sample counts as done (early
exit) once it meets the constraints tightened by ``margin / 2``: it then satisfies the original
rows with a relative slack far above rounding, so the float64 check of
:func:`feasnet.problems.power_control.is_feasible` (rtol 1e-6) passes without needing its
tolerance. Defaults: ``1e-9`` when ``x`` is float64 and ``1e-5`` otherwise, a negligible
fraction of the rate targets. Newton runs in float64 either way; for float32 input the result
is cast back, and that rounding (relative 6e-8 of each power, which a QoS row with strong
interference amplifies) can exceed a slack measured against the noise term: on path-loss data
float32 outputs still pass the check at rtol 1e-6 as often as float64 ones, but not at rtol 0.

Row equilibration and the default step size (gradient rule). On path-loss data the rows of
``G`` differ wildly in scale (a QoS row holds ``beta * H_cross / H_direct``, up to ~5e3 on the
``small`` preset while the median instance's largest entry is ~4), so no fixed step fits all
instances: with the rows as given, step 0.1 overshoots on the large rows and the Jacobian of
the 5 unrolled steps, which training backpropagates through, has column sums of ~600. By
default (``equilibrate=None``) the gradient rule therefore works on the equilibrated rows
``G_i / |G_i|``, ``h_i / |G_i|``: the same polytope, with ``V`` now the sum of squared distances
to the violated hyperplanes. The step then means the same thing for every instance, and the
unrolled Jacobian's column sums stay below ~2 at the default ``step_size=0.3`` (heavy ball is
stable for ``step_size < (1 + mu) / lambda_max(G_A^T G_A)``, and ``lambda_max`` is the number
of strongly overlapping active rows, typically 1 to 3). In our sweep (0.1, 0.2, 0.3, 0.5) 0.3
cut the median ``V`` 280x to 10^4x in 5 steps with Jacobian column sums below 1.7. The paper tunes
the step per data set in ``[0.0005, 0.5]``, in its own, unstated units. The Newton rule uses the
rows as given (equilibration changed neither its step counts nor its failures materially).
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from feasnet.layers.base import FeasibilityLayer, constraint_jacobian, unsupported
from feasnet.problems.base import Problem
from feasnet.problems.power_control import (
    LinearConstraints,
)

CorrectionMode = Literal["newton", "gradient"]

DEFAULT_STEP_SIZE = 0.3
"""Gradient step size on the equilibrated rows (dimensionless); see the module docstring."""
DEFAULT_MOMENTUM = 0.5
"""Heavy-ball momentum (paper section VIII)."""
DEFAULT_NEWTON_REGULARIZATION = 1e-8
"""Ridge added to the Hessian of ``V`` (paper section VIII-B-2)."""
DEFAULT_BOUND_PASSES = 2
"""Re-solves per Newton step that hold at 0 the coordinates pushed below it."""


def default_margin(dtype: torch.dtype) -> float:
    """Relative tightening of the targeted constraints used by :func:`correct` for ``dtype``.

    ``1e-9`` for float64, ``1e-5`` for lower precisions (see the module docstring).
    """
    return 1e-9 if dtype == torch.float64 else 1e-5


def tighten(constraints: LinearConstraints, margin: float) -> LinearConstraints:
    """The polytope ``G x <= h - margin * |h|`` (rows with ``h = 0`` unchanged).

    Args:
        constraints: ``G (N, M, U)``, ``h (N, M)``, normalized units.
        margin: relative tightening, ``>= 0``.
    """
    if margin < 0:
        raise ValueError(f"margin: expected a value >= 0, got {margin}")
    if margin == 0:
        return constraints
    return LinearConstraints(G=constraints.G, h=constraints.h - margin * constraints.h.abs())


def equilibrate_rows(constraints: LinearConstraints) -> LinearConstraints:
    """The same polytope with every row scaled to unit Euclidean norm: ``G_i / |G_i|``.

    Rows of zeros (none in power control) are left as they are.
    """
    norm = constraints.G.norm(dim=2)  # (N, M)
    norm = torch.where(norm > 0, norm, torch.ones_like(norm))
    return LinearConstraints(G=constraints.G / norm.unsqueeze(-1), h=constraints.h / norm)


def squared_violation(x: Tensor, constraints: LinearConstraints) -> Tensor:
    """``V(x) = ||max(G x - h, 0)||^2`` (eq. 12): ``(N,)`` for ``x (N, U)``, normalized units."""
    residual = torch.einsum("nmu,nu->nm", constraints.G, x) - constraints.h
    return torch.clamp(residual, min=0).pow(2).sum(dim=1)


def correct(
    x: Tensor,
    constraints: LinearConstraints,
    steps: int,
    mode: CorrectionMode = "newton",
    *,
    step_size: float = DEFAULT_STEP_SIZE,
    momentum: float = DEFAULT_MOMENTUM,
    regularization: float = DEFAULT_NEWTON_REGULARIZATION,
    bound_passes: int = DEFAULT_BOUND_PASSES,
    equilibrate: bool | None = None,
    margin: float | None = None,
    early_exit: bool = False,
    trace: list[Tensor] | None = None,
    iterates: list[Tensor] | None = None,
) -> Tensor:
    """Apply up to ``steps`` correction steps to ``x`` (vector layout, normalized units).

    Every step is differentiable (the linear solves included); ``x`` is clamped to ``>= 0``
    after each step. Newton steps are computed in float64 whatever ``x``'s dtype (a ridge of
    ``1e-8`` is below float32 resolution) and the result is cast back.

    Args:
        x: ``(N, U)`` candidates, ``x = p / pmax`` with ``x[q*B + b] = P[b, q] / pmax``.
        constraints: ``G (N, M, U)``, ``h (N, M)`` from
            :func:`~feasnet.problems.power_control.linear_constraints`.
        steps: maximal number of steps (``>= 0``).
        mode: ``"newton"`` (eq. 22) or ``"gradient"`` (heavy ball, eq. 21).
        step_size: gradient step ``gamma``, ``"gradient"`` only (dimensionless on
            equilibrated rows; see the module docstring).
        momentum: heavy-ball momentum ``mu`` in ``[0, 1)``, ``"gradient"`` only.
        regularization: ridge ``alpha > 0`` added to the Hessian, ``"newton"`` only.
        bound_passes: ``"newton"`` only; re-solves that hold at 0 the coordinates at 0 that
            the step pushes negative (0: the paper's plain clamp; see the module docstring).
        equilibrate: scale every row to unit norm first (:func:`equilibrate_rows`; same
            polytope, different ``V``). ``None``: in ``"gradient"`` mode only.
        margin: relative tightening of the targeted constraints (see :func:`tighten`);
            ``None`` uses :func:`default_margin` for ``x``'s dtype.
        early_exit: freeze every sample as soon as it meets the constraints tightened by
            ``margin / 2`` (so its result does not depend on the rest of the batch), iterate on
            the others only, and stop when none is left. Off: exactly ``steps`` steps for all.
        trace: if given, ``V`` on the targeted (and, if so, equilibrated) rows (``(N,)``,
            detached; frozen
            samples keep their last value) is appended before the first and after every step.
        iterates: if given, the whole batch's current point (``(N, U)``, detached, in the
            working dtype: float64 for Newton; frozen samples keep their last point) is
            appended before the first and after every step, like ``trace``.

    Returns:
        ``(N, U)`` corrected candidates, same dtype and device as ``x``.
    """
    if steps < 0:
        raise ValueError(f"steps: expected a value >= 0, got {steps}")
    if mode not in ("newton", "gradient"):
        raise ValueError(f"mode: expected 'newton' or 'gradient', got {mode!r}")
    if mode == "newton" and regularization <= 0:
        raise ValueError(f"regularization: expected a value > 0, got {regularization}")
    if bound_passes < 0:
        raise ValueError(f"bound_passes: expected a value >= 0, got {bound_passes}")
    margin = default_margin(x.dtype) if margin is None else margin
    if mode == "gradient" if equilibrate is None else equilibrate:
        constraints = equilibrate_rows(constraints)
    work_dtype = torch.float64 if mode == "newton" else x.dtype
    G = constraints.G.to(work_dtype)  # (N, M, U)
    target = tighten(constraints, margin).h.to(work_dtype)  # (N, M), rows aimed at
    accept = tighten(constraints, 0.5 * margin).h.to(work_dtype)  # rows that end a sample
    z = x.to(work_dtype)
    ridge = regularization * torch.eye(z.shape[1], dtype=work_dtype, device=z.device)

    result = z  # rows of frozen samples are written here (early exit only)
    index: Tensor | None = None  # positions of the working set in the batch (None: all)
    velocity: Tensor | None = None
    values = torch.zeros(z.shape[0], dtype=work_dtype, device=z.device)
    for step in range(steps + 1):
        lhs = torch.bmm(G, z.unsqueeze(-1)).squeeze(-1)  # (n, M)
        excess = torch.clamp(lhs - target, min=0)
        if trace is not None:
            value = excess.detach().pow(2).sum(dim=1)
            values = value if index is None else values.index_copy(0, index, value)
            trace.append(values.clone())
        if iterates is not None:
            point = z.detach() if index is None else result.index_copy(0, index, z).detach()
            iterates.append(point.clone())
        if step == steps:
            break
        if early_exit:
            done = (lhs <= accept).all(dim=1)
            if bool(done.any()):
                if index is None:
                    index = torch.arange(z.shape[0], device=z.device)
                result = result.index_copy(0, index[done], z[done])
                keep = ~done
                if not bool(keep.any()):
                    return result.to(x.dtype)
                index, z, G, target, accept = (t[keep] for t in (index, z, G, target, accept))
                excess = excess[keep]
                velocity = velocity[keep] if velocity is not None else None
        gradient = 2.0 * torch.bmm(G.transpose(1, 2), excess.unsqueeze(-1))  # (n, U, 1)
        if mode == "gradient":
            update = -step_size * gradient.squeeze(-1)
            if velocity is not None and momentum != 0:
                update = update + momentum * velocity
            velocity = update
        else:
            update = _newton_update(z, G, excess, gradient, ridge, bound_passes)
        z = torch.clamp(z + update, min=0)
    if index is None:
        return z.to(x.dtype)
    return result.index_copy(0, index, z).to(x.dtype)


def _newton_update(
    z: Tensor,
    G: Tensor,
    excess: Tensor,
    gradient: Tensor,
    ridge: Tensor,
    bound_passes: int,
    rows: Tensor | None = None,
) -> Tensor:
    """Regularized Newton step (eq. 22), bound-aware; shapes ``z (n, U)``, ``G (n, M, U)``,
    ``excess (n, M)``, ``gradient (n, U, 1)``, ``ridge (U, U)``; returns ``(n, U)``. ``rows``:
    ``(n, M)`` bool rows in the Hessian (default: the violated ones, ``excess > 0``)."""
    active = ((excess > 0) if rows is None else rows).to(z.dtype)  # the indicator of eq. 17
    hessian = 2.0 * torch.bmm((G * active.unsqueeze(-1)).transpose(1, 2), G) + ridge
    update = -_solve_spd(hessian, gradient).squeeze(-1)
    held = torch.zeros_like(z, dtype=torch.bool)
    for _ in range(bound_passes):
        new_held = held | ((z <= 0) & (update < 0))
        if not bool((new_held & ~held).any()):
            break
        held = new_held
        free = (~held).to(z.dtype)  # (n, U)
        reduced = hessian * free.unsqueeze(2) * free.unsqueeze(1) + torch.diag_embed(1.0 - free)
        update = -_solve_spd(reduced, gradient * free.unsqueeze(-1)).squeeze(-1)
    return update


def _solve_spd(matrix: Tensor, rhs: Tensor) -> Tensor:
    """Batched ``matrix^{-1} rhs`` via Cholesky, LU for the samples whose factor fails (each
    sample's solution does not depend on the others)."""
    factor, info = torch.linalg.cholesky_ex(matrix)
    failed = info != 0
    if not bool(failed.any()):
        return torch.cholesky_solve(rhs, factor)
    safe = torch.where(failed[:, None, None], torch.eye(matrix.shape[1]).to(factor), factor)
    out = torch.cholesky_solve(rhs, safe)
    index = failed.nonzero().squeeze(1)
    solution, info = torch.linalg.solve_ex(matrix[index], rhs[index])
    # a singular or non-finite system (a NaN row) gives no step rather than an exception
    solution = torch.where((info == 0)[:, None, None], solution, torch.zeros_like(solution))
    return out.index_copy(0, index, solution)


# ============================================================================ any problem
TEST_STEPS_LINEAR = 100
"""Newton steps at most at test on a polytope (paper: 100)."""
TEST_STEPS_NONLINEAR = 300
"""Newton steps at most at test on non-linear rows (paper, section VIII-C: 300)."""


class CorrectionConfig(BaseModel):
    """Settings of the ``correction`` layer (DEPNet; defaults from the paper where it gives
    them). ``test_steps``: Newton steps at most in eval mode; None: the paper's 100 on a
    polytope and 300 on the non-linear rate and energy-efficiency rows (section VIII-C).
    ``nonnegative``: clamp ``x >= 0`` after every step (the paper's rule). ``test_mode``: the
    rule in eval mode, ``"newton"`` (the paper's) or ``"gradient"`` (heavy-ball gradient
    descent with ``step_size`` and ``momentum`` for up to ``test_steps`` steps, as the paper's
    Fig. 11 compares; it need not reach the feasible set)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    train_steps: int = Field(5, ge=0)
    step_size: float = Field(DEFAULT_STEP_SIZE, gt=0)
    momentum: float = Field(DEFAULT_MOMENTUM, ge=0, lt=1)
    test_steps: int | None = Field(None, ge=0)
    newton_regularization: float = Field(DEFAULT_NEWTON_REGULARIZATION, gt=0)
    bound_passes: int = Field(DEFAULT_BOUND_PASSES, ge=0)
    nonnegative: bool = True
    test_mode: CorrectionMode = "newton"


class CorrectionLayer(FeasibilityLayer):
    """``correction``: DEPNet's unrolled correction on any problem with real variables.

    Training mode: ``train_steps`` heavy-ball gradient steps on the squared violation of the
    equilibrated rows (differentiable); eval mode: up to ``test_steps`` regularized Newton
    steps (float64, bound-aware, early exit; heavy-ball steps instead with
    ``test_mode="gradient"``), as in :func:`correct`. Where the problem has a
    linear form (``linear-rate``) the rows are ``G x <= h`` and this is exactly :func:`correct`
    (DEPNet as in sections V-VI); otherwise the rows are ``problem.constraints`` and their true
    Jacobian comes from autograd (:func:`correct_rows`), which is what lets DEPNet handle the
    non-linear rate and energy-efficiency sets. Hard in eval mode where Newton converges
    (checked by the conformance tests; pair it with the guard for a certificate).
    """

    Config = CorrectionConfig

    @classmethod
    def check(cls, problem: Problem) -> None:
        if problem.complex_variable:
            raise unsupported(
                "correction", problem, "it needs a real variable; use dc3 for complex beams"
            )

    def forward(self, raw: Tensor, instances: Any, extra: Tensor | None = None) -> Tensor:
        """``(N, *shape)`` corrected normalized points in ``raw``'s dtype."""
        config = self.config
        assert isinstance(config, CorrectionConfig)
        dtype = torch.float64 if not self.training else raw.dtype
        inst = instances.to(dtype, raw.device)
        form = self.problem.linear_form(inst)
        mode: CorrectionMode
        if self.training:
            steps, mode, early_exit = config.train_steps, "gradient", False
        else:
            default = TEST_STEPS_LINEAR if form is not None else TEST_STEPS_NONLINEAR
            steps = default if config.test_steps is None else config.test_steps
            mode, early_exit = config.test_mode, True
        flat = raw.reshape(raw.shape[0], -1)
        options = {
            "step_size": config.step_size,
            "momentum": config.momentum,
            "regularization": config.newton_regularization,
            "bound_passes": config.bound_passes if config.nonnegative else 0,
            "early_exit": early_exit,
        }
        if form is not None and config.nonnegative:
            polytope = LinearConstraints(G=form.G.to(dtype), h=form.h.to(dtype))
            x = correct(flat, polytope, steps, mode, **options)  # type: ignore[arg-type]
        else:
            rows = functools.partial(
                correct_rows,
                self.problem,
                shape=raw.shape[1:],
                steps=steps,
                mode=mode,
                nonnegative=config.nonnegative,
                **options,  # type: ignore[arg-type]
            )
            x = rows(x=flat, instances=inst)
            if not self.training:
                # a set thinner than the margin (the energy-efficiency rows with rate targets
                # can leave the anchor only ~1e-6 inside) cannot hold the float32 margin: the
                # samples that end outside are redone from raw with the float64 one
                missed = ~self.problem.is_feasible(x.reshape(raw.shape), inst, rtol=0.0)
                missed &= torch.isfinite(flat).all(dim=1)
                if bool(missed.any()):
                    index = missed.nonzero().squeeze(1)
                    retry = rows(x=flat[index].double(), instances=inst[index]).to(x.dtype)
                    x = x.index_copy(0, index, retry)
        return x.reshape(raw.shape)


LINE_SEARCH_HALVINGS = 8
"""Step lengths ``1, 1/2, ..., 2^-8`` tried by the Newton step on non-linear rows."""


def _damped(
    problem: Problem,
    z: Tensor,
    update: Tensor,
    instances: Any,
    shape: torch.Size,
    offset: Tensor,
    margin: float,
    merit: Tensor,
    nonnegative: bool,
) -> Tensor:
    """The longest of ``update * 2^-k`` (``k <= LINE_SEARCH_HALVINGS``) that lowers the merit
    ``sum relu(g + margin c)^2`` below ``merit`` ``(n,)``; where none does, the full step if
    it keeps every row finite (a Newton step through a kink of the active set), else none.

    On curved rows the full Gauss-Newton step can overshoot: fixing one violated row breaks a
    neighbour that was just inside and the iteration cycles among them (seen on the rate rows,
    3-cycles that never reach the set). Backtracking makes the merit decrease monotonically.
    """
    length = torch.zeros_like(merit)
    found = torch.zeros_like(merit, dtype=torch.bool)
    with torch.no_grad():
        for k in range(LINE_SEARCH_HALVINGS + 1):
            trial = z.detach() + 0.5**k * update.detach()
            if nonnegative:
                trial = torch.clamp(trial, min=0)
            g = problem.constraints(trial.reshape(-1, *shape), instances)
            value = torch.relu(g + margin * offset).square().sum(dim=1)
            if k == 0:
                length = torch.isfinite(value).to(length.dtype)
            better = ~found & (value < merit)
            length = torch.where(better, torch.full_like(length, 0.5**k), length)
            found = found | better
            if bool(found.all()):
                break
    return update * length[:, None]


def _row_offsets(
    problem: Problem, shape: torch.Size, instances: Any, n: int, like: Tensor
) -> Tensor:
    """``(N, M)`` relative size ``c_i`` of each row, the unit of the margin ``g_i <= -margin
    c_i``: ``|g_i(0)|`` (for rows ``G x - h`` this is ``|h_i|``, the rule of :func:`tighten`),
    1 for rows that vanish at 0 except the bounds ``-x_j <= 0``, which stay untightened (the
    clamp keeps them)."""
    zero = torch.zeros(n, *shape, dtype=like.dtype, device=like.device)
    g0, jac0 = constraint_jacobian(problem, zero, instances)
    flat = jac0.reshape(n, g0.shape[1], -1)
    bound = (flat.eq(-1).sum(dim=2) == 1) & (flat.ne(0).sum(dim=2) == 1)
    offset = g0.abs()
    return torch.where(offset > 0, offset, torch.where(bound, 0.0, 1.0).to(offset.dtype))


def correct_rows(
    problem: Problem,
    x: Tensor,
    instances: Any,
    shape: torch.Size,
    steps: int,
    mode: CorrectionMode = "newton",
    *,
    step_size: float = DEFAULT_STEP_SIZE,
    momentum: float = DEFAULT_MOMENTUM,
    regularization: float = DEFAULT_NEWTON_REGULARIZATION,
    bound_passes: int = DEFAULT_BOUND_PASSES,
    nonnegative: bool = True,
    margin: float | None = None,
    early_exit: bool = False,
) -> Tensor:
    """:func:`correct` with the rows ``problem.constraints`` (any smooth rows).

    The same two rules, with ``G`` replaced by the Jacobian ``J(x)`` of the rows at the current
    point (autograd; for linear rows the two coincide) and the excess ``relu(g + margin c)``
    (``c`` from :func:`_row_offsets`). The gradient rule works on equilibrated rows
    ``g_i / |J_i|`` and is differentiable (the Jacobian is built with ``create_graph``);
    Newton runs in float64.

    Args:
        problem: rows ``g(x) <= 0`` and their autograd Jacobian.
        x: ``(N, D)`` flattened normalized points.
        instances: ``N`` instances in the working dtype.
        shape: per-instance variable shape (``D`` entries).
        steps, mode, step_size, momentum, regularization, bound_passes, margin, early_exit:
            as in :func:`correct`.
        nonnegative: clamp at 0 after every step.

    Returns:
        ``(N, D)`` corrected points in ``x``'s dtype.
    """
    margin = default_margin(x.dtype) if margin is None else margin
    work = torch.float64 if mode == "newton" else x.dtype
    z = x.to(work)
    inst = instances.to(work, z.device)
    n = z.shape[0]
    offset = _row_offsets(problem, shape, inst, n, z)
    result, index = z, None
    velocity: Tensor | None = None
    ridge = regularization * torch.eye(z.shape[1], dtype=work, device=z.device)
    for _ in range(steps):
        sub = inst if index is None else inst[index]
        point = z.reshape(-1, *shape)
        g, jac = constraint_jacobian(problem, point, sub, create_graph=mode == "gradient")
        J = jac.reshape(z.shape[0], g.shape[1], -1)
        if early_exit:
            done = (g <= -0.5 * margin * offset).all(dim=1)
            if bool(done.any()):
                index = torch.arange(n, device=z.device) if index is None else index
                result = result.index_copy(0, index[done], z[done])
                keep = ~done
                if not bool(keep.any()):
                    return result.to(x.dtype)
                index, z, offset, g, J = index[keep], z[keep], offset[keep], g[keep], J[keep]
                velocity = velocity[keep] if velocity is not None else None
        excess = torch.relu(g + margin * offset)
        if mode == "gradient":
            norm = torch.linalg.vector_norm(J, dim=2)
            norm = torch.where(norm > 0, norm, torch.ones_like(norm))
            gradient = 2.0 * torch.einsum("nm,nmd->nd", excess / norm.square(), J)
            update = -step_size * gradient
            if velocity is not None and momentum != 0:
                update = update + momentum * velocity
            velocity = update
        else:
            grad = 2.0 * torch.bmm(J.transpose(1, 2), excess.unsqueeze(-1))
            update = _newton_update(z, J, excess, grad, ridge, bound_passes if nonnegative else 0)
            merit = excess.detach().square().sum(dim=1)
            current = inst if index is None else inst[index]
            update = _damped(problem, z, update, current, shape, offset, margin, merit, nonnegative)
        z = z + update
        if nonnegative:
            z = torch.clamp(z, min=0)
    if index is None:
        return z.to(x.dtype)
    return result.index_copy(0, index, z).to(x.dtype)
