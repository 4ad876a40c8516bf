"""SCA iterates to its stated tolerances and reports the instances that did not converge."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linprog

from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances
from feasnet.solvers import frank_wolfe, sca
from tests.solvers.test_gp_sca import pathloss_instances


def relative_frank_wolfe_gap(power: np.ndarray, inst: PowerControlInstances) -> np.ndarray:
    """Independent check: autograd gradient, LP over the normalized rows ``G x <= h``.

    (The LP must see normalized rows: in watts the QoS rows fall below HiGHS's tolerances.)
    """
    p = torch.as_tensor(power, dtype=torch.float64).requires_grad_(True)
    rate = pc.sum_rate(p, inst)
    (grad,) = torch.autograd.grad(rate.sum(), p)
    cons = pc.linear_constraints(inst)
    gaps = []
    for i in range(len(inst)):
        g = pc.to_vector(grad[i : i + 1])[0].numpy() * float(inst.pmax[i])  # per unit of x
        res = linprog(
            -g / np.abs(g).max(),
            A_ub=cons.G[i].numpy(),
            b_ub=cons.h[i].numpy(),
            bounds=(None, None),
            method="highs",
        )
        x = pc.to_vector(p[i : i + 1].detach())[0].numpy() / float(inst.pmax[i])
        gaps.append(float(g @ (res.x - x)) / float(rate[i].detach()))
    return np.array(gaps)


def test_sca_converges_to_a_stationary_point() -> None:
    inst = pathloss_instances(12, 3, 2, seed=31)
    result = sca.solve(inst, workers=1)
    assert result.feasible.all()
    assert result.converged is not None and result.converged.mean() >= 11 / 12
    gaps = relative_frank_wolfe_gap(result.power, inst)
    # a converged instance meets the gap tolerance (LP tolerances allow a hair more)
    assert (gaps[result.converged] <= 2 * sca.DEFAULT_GAP_TOLERANCE).all()
    # Frank-Wolfe with a tight threshold from the SCA point finds no noticeable gain
    start = torch.as_tensor(result.power)
    polished, _ = frank_wolfe.refine(start, inst, iterations=100, threshold=1e-9)
    gain = pc.sum_rate(polished, inst).numpy() / result.sum_rate - 1
    assert (gain[result.converged] < 1e-6).all()


def test_not_converged_instances_say_why() -> None:
    inst = pathloss_instances(3, 3, 2, seed=32)
    result = sca.solve(inst, workers=1, max_iterations=1, gap_tolerance=0.0)
    assert result.feasible.all() and not result.converged.any()
    for message in result.messages:
        assert sca.NOT_CONVERGED in message and "FW gap" in message


def test_failed_subproblems_are_retried_with_another_solver() -> None:
    inst = pathloss_instances(2, 3, 2, seed=33)
    reference = sca.solve(inst, workers=1)
    retried = sca.solve(inst, workers=1, solver="NOT_A_SOLVER")
    assert retried.feasible.all() and retried.converged.all()
    assert all("subproblem 1 failed" in m and "retried" in m for m in retried.messages)
    np.testing.assert_allclose(retried.sum_rate, reference.sum_rate, rtol=1e-6)


def test_converged_flags_follow_the_messages() -> None:
    messages = ["", f"{sca.NOT_CONVERGED}: stalled", "gp: note", "infeasible: x"]
    feasible = np.array([True, True, True, False])
    assert sca.converged_from_messages(messages, feasible).tolist() == [True, False, True, False]
