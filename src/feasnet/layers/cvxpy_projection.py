"""Reference projection layer built with cvxpylayers (the paper's implementation of eq. 10).

The same QP as :mod:`feasnet.layers.qp_projection`,

    x* = argmin_x  1/2 ||x - r||^2   subject to   G x <= h,

stated once per problem size as a parametrized, DPP-compliant CVXPY problem with parameters
``r (U,)``, ``G (M, U)`` and ``h (M,)`` and wrapped in ``cvxpylayers.torch.CvxpyLayer``. The
forward pass hands each instance of the batch to a conic solver (cvxpylayers 1.2 solves
through diffcp, which calls ECOS, Clarabel or SCS; the quadratic objective becomes a
second-order cone), and the backward pass differentiates the cone program's optimality
conditions (diffcp's adjoint). This is how the paper builds DIPNet (its refs. [19], [29]).

It is slow (one solver call per instance, on the CPU, in a thread pool) and serves as the
reference for checking and timing the hand-written batched layer. ``cvxpylayers`` is an
optional dependency: it is imported only when a layer is first built.

Units as in the rest of feasnet: ``x = p / pmax`` in the vector layout of ``to_vector``; the
projection in these units is the paper's projection in watts rescaled (``pmax`` is one scalar
per instance).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import torch
from torch import Tensor

from feasnet.layers.base import FeasibilityLayer
from feasnet.layers.qp_projection import (
    check_polytope,
    finish_projection,
    polytope_data,
)
from feasnet.problems.base import Problem
from feasnet.problems.power_control import LinearConstraints

DEFAULT_SOLVER_ARGS: dict[str, Any] = {
    "solve_method": "SCS",
    "eps_abs": 1e-12,
    "eps_rel": 1e-12,
    "max_iters": 100_000,
    "mode": "dense",
}
"""diffcp options: SCS (the paper-era default of cvxpylayers/diffcp) at tight tolerances and
dense (exact) derivatives. Measured on random instances this reproduces the projection to
~1e-12; ECOS and Clarabel (``solve_method="ECOS"`` / ``"Clarabel"``, with their own option
names) stall at ~1e-6 whatever the tolerance, as the squared norm becomes a second-order cone
whose objective gap bounds the error in ``x`` only through its square root."""

_NUMPY_COPY_WARNING = ".*__array__ implementation doesn't accept a copy keyword.*"
"""Emitted by cvxpylayers' tensor-to-array conversion under NumPy 2; harmless, silenced."""


@functools.cache
def cvxpy_layer(num_users: int, num_rows: int) -> Any:
    """The ``CvxpyLayer`` of the projection QP for ``U`` variables and ``M`` rows (cached).

    Parameters, in call order: ``r (U,)``, ``G (M, U)``, ``h (M,)``; variable: ``x (U,)``.
    """
    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer

    x = cp.Variable(num_users)
    r = cp.Parameter(num_users)
    G = cp.Parameter((num_rows, num_users))
    h = cp.Parameter(num_rows)
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - r)), [G @ x <= h])
    if not problem.is_dpp():  # pragma: no cover - guards against a CVXPY behaviour change
        raise RuntimeError("the projection problem is expected to be DPP-compliant")
    return CvxpyLayer(problem, parameters=[r, G, h], variables=[x])


def project(
    r: Tensor, constraints: LinearConstraints, *, solver_args: dict[str, Any] | None = None
) -> Tensor:
    """Differentiable projection onto ``{x : G x <= h}`` with cvxpylayers (batched).

    Args:
        r: ``(N, U)`` points, normalized units, any float dtype (solved in float64 on the CPU).
        constraints: ``G (N, M, U)``, ``h (N, M)``; every polytope must be non-empty.
        solver_args: diffcp options, default :data:`DEFAULT_SOLVER_ARGS`.

    Returns:
        ``(N, U)`` projections in ``r``'s dtype and device; the gradient w.r.t. ``r`` comes
        from cvxpylayers' implicit differentiation, ``G`` and ``h`` get none.
    """
    if r.ndim != 2:
        raise ValueError(f"r: expected shape (N, U), got {tuple(r.shape)}")
    n, u = r.shape
    G = constraints.G.detach().to(dtype=torch.float64, device="cpu")
    h = constraints.h.detach().to(dtype=torch.float64, device="cpu")
    if G.shape[0] != n or G.shape[2] != u or h.shape != G.shape[:2]:
        raise ValueError(
            f"constraints: G {tuple(G.shape)} and h {tuple(h.shape)} do not fit r {tuple(r.shape)}"
        )
    layer = cvxpy_layer(u, int(G.shape[1]))
    args = dict(DEFAULT_SOLVER_ARGS if solver_args is None else solver_args)
    if not (torch.is_grad_enabled() and r.requires_grad):
        # cvxpylayers then takes diffcp's solve-only path, which has no derivative options
        args.pop("mode", None)
        args.pop("n_jobs_backward", None)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NUMPY_COPY_WARNING)
        (x,) = layer(r.to(dtype=torch.float64, device="cpu"), G, h, solver_args=args)
    return x.to(dtype=r.dtype, device=r.device)


class CvxpyProjectionLayer(FeasibilityLayer):
    """``qp-cvxpylayers``: the projection of ``qp`` solved through cvxpylayers (the paper's
    way; slow, a reference). Needs a polytope (``problem.linear_form``). The same pre- and
    post-processing as ``qp``; ``last_safeguard`` holds the ``(N,)`` mask of instances the
    float64 safeguard moved in the last call."""

    last_safeguard: Tensor | None = None
    solver_args: dict[str, Any] = DEFAULT_SOLVER_ARGS
    """diffcp options (replace the attribute to change them, e.g. its thread counts)."""

    @classmethod
    def check(cls, problem: Problem) -> None:
        check_polytope("qp-cvxpylayers", problem)

    def forward(self, raw: Tensor, instances: Any, extra: Tensor | None = None) -> Tensor:
        """``(N, *shape)`` projections in ``raw``'s dtype (NaN rows where infeasible)."""
        if raw.shape[0] == 0:
            return raw.detach().clone()
        data = polytope_data(self.problem, raw, instances, self.anchor_of(instances))
        x = project(data.r, data.constraints, solver_args=self.solver_args)
        out, self.last_safeguard = finish_projection(self.problem, x, data, instances, raw.dtype)
        return out
