"""Every (family, constraint set): anchor strictly inside, exits certified, gradients."""

from __future__ import annotations

import torch

from feasnet.problems.base import Problem


def test_anchor_inside_and_exit_certified(problem_case) -> None:
    problem, inst = problem_case
    feasible = problem.feasibility(inst).feasible
    assert bool(feasible.all()) and len(inst) > 0
    anchor = problem.anchor(inst)
    assert bool(problem.is_feasible(anchor, inst, rtol=-1e-9).all())
    gen = torch.Generator().manual_seed(0)
    direction = torch.randn(anchor.shape, dtype=anchor.dtype, generator=gen)
    t = problem.boundary_exit(anchor, direction, inst)
    assert bool(torch.isfinite(t).all()) and bool((t > 0).all())
    shape = (-1,) + (1,) * (anchor.dim() - 1)
    assert bool(problem.is_feasible(anchor + t.view(shape) * direction, inst).all())
    beyond = anchor + (1.01 * t).view(shape) * direction
    assert not bool(problem.is_feasible(beyond, inst, rtol=0.0).any())
    # the closed forms agree with the generic certified bisection
    t_bisect = Problem.boundary_exit(problem, anchor, direction, inst)
    torch.testing.assert_close(t, t_bisect, rtol=1e-7, atol=1e-12)


def test_constraints_sign_matches_the_float64_check(problem_case) -> None:
    problem, inst = problem_case
    anchor = problem.anchor(inst)
    gen = torch.Generator().manual_seed(1)
    x = anchor * (
        0.5
        + 2
        * torch.rand(
            anchor.shape[0], *([1] * (anchor.dim() - 1)), generator=gen, dtype=torch.float64
        )
    )
    g = problem.constraints(x, inst)
    clear = g.abs().amin(dim=1) > 1e-4
    verdict = problem.is_feasible(x, inst, rtol=0.0)
    assert torch.equal((g <= 0).all(dim=1)[clear], verdict[clear])


def test_gradcheck_of_constraints_and_objective(problem_case) -> None:
    problem, inst = problem_case
    sub = inst[:2]
    x = problem.anchor(sub).clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: problem.constraints(v, sub), (x,))
    assert torch.autograd.gradcheck(lambda v: problem.objective(v, sub), (x,))
