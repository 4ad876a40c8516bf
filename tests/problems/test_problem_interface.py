"""The two families on the Problem interface agree with the free functions they wrap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from feasnet.problems import miso
from feasnet.problems import power_control as pc
from feasnet.problems.base import Problem, UnsupportedProblemError
from feasnet.problems.miso_problem import MisoProblem
from feasnet.problems.power_control_problem import PowerControlProblem
from feasnet.problems.registry import FAMILIES, family_of, problem_of
from tests.conftest import random_instances, random_miso_instances


@pytest.fixture
def pc_batch():
    return random_instances(12, 3, 2, seed=3)


def _random_x(inst, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(len(inst), inst.num_bs, inst.num_channels, generator=g, dtype=torch.float64)


def test_registry_knows_both_families(pc_batch):
    assert FAMILIES["power-control"] is PowerControlProblem
    assert FAMILIES["miso"] is MisoProblem
    assert family_of(pc_batch) is PowerControlProblem
    assert family_of(random_miso_instances(2)) is MisoProblem
    assert problem_of(pc_batch).constraint_set == "linear-rate"
    assert problem_of(pc_batch, nonlinear=True).constraint_set == "rate"


def test_power_control_matches_free_functions(pc_batch):
    problem = PowerControlProblem()
    x = _random_x(pc_batch)
    power = x * pc_batch.pmax[:, None, None]
    assert torch.equal(problem.objective(x, pc_batch), pc.sum_rate(power, pc_batch))
    assert torch.equal(problem.violation(x, pc_batch), pc.violation_measure(power, pc_batch))
    assert torch.equal(problem.is_feasible(x, pc_batch), pc.is_feasible(power, pc_batch))
    # the linear form is the constraints in x.flatten(1) order
    form = problem.linear_form(pc_batch)
    g = torch.einsum("nmd,nd->nm", form.G, x.flatten(1)) - form.h
    torch.testing.assert_close(g, problem.constraints(x, pc_batch))
    # squared violation of the rows equals the base-class measure
    torch.testing.assert_close(
        Problem.violation(problem, x, pc_batch), pc.violation_measure(power, pc_batch)
    )


def test_power_control_anchor_and_exit(pc_batch):
    problem = PowerControlProblem()
    anchor = problem.anchor(pc_batch)
    torch.testing.assert_close(anchor * pc_batch.pmax[:, None, None], pc.interior_anchor(pc_batch))
    assert bool((problem.constraints(anchor, pc_batch) < 0).all())
    direction = torch.randn(
        anchor.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    t = problem.boundary_exit(anchor, direction, pc_batch)
    t_bisect = Problem.boundary_exit(problem, anchor, direction, pc_batch)
    torch.testing.assert_close(t, t_bisect, rtol=1e-9, atol=1e-12)
    # scale_toward_anchor uses the same exit, clamped at 1
    cand = anchor + direction
    _, step = pc.scale_toward_anchor(
        cand * pc_batch.pmax[:, None, None], pc.interior_anchor(pc_batch), pc_batch
    )
    torch.testing.assert_close(step, t.clamp(max=1.0))


def test_rate_set_is_the_same_set(pc_batch):
    linear, rate = PowerControlProblem(), PowerControlProblem("rate")
    assert rate.linear_form(pc_batch) is None and not rate.is_convex
    x = _random_x(pc_batch, seed=4) * 0.6
    g_lin, g_rate = linear.constraints(x, pc_batch), rate.constraints(x, pc_batch)
    assert g_rate.shape == g_lin.shape
    # the same points satisfy them (compare the verdict away from the boundary)
    clear = (g_lin.abs().amin(dim=1) > 1e-6) & (g_rate.abs().amin(dim=1) > 1e-6)
    assert torch.equal((g_lin <= 0).all(1)[clear], (g_rate <= 0).all(1)[clear])
    t = rate.boundary_exit(rate.anchor(pc_batch), x - rate.anchor(pc_batch), pc_batch)
    t_bisect = Problem.boundary_exit(
        rate, rate.anchor(pc_batch), x - rate.anchor(pc_batch), pc_batch
    )
    torch.testing.assert_close(t, t_bisect, rtol=1e-9, atol=1e-12)


def test_miso_matches_free_functions():
    inst = random_miso_instances(8)
    problem = MisoProblem()
    anchor = problem.anchor(inst)
    beams = miso.interior_anchor(inst)
    torch.testing.assert_close(problem.to_physical(anchor, inst), beams)
    assert torch.equal(problem.is_feasible(anchor, inst), miso.is_feasible(beams, inst))
    torch.testing.assert_close(problem.objective(anchor, inst), miso.weighted_sum_rate(beams, inst))
    direction = torch.randn(
        anchor.shape, dtype=torch.complex128, generator=torch.Generator().manual_seed(2)
    )
    t = problem.boundary_exit(anchor, direction, inst)
    torch.testing.assert_close(
        t, Problem.boundary_exit(problem, anchor, direction, inst), rtol=1e-8, atol=1e-12
    )
    assert problem.linear_form(inst) is None


def test_files_round_trip_and_strict_keys(pc_batch):
    problem = PowerControlProblem()
    arrays = problem.instances_to_arrays(pc_batch)
    back = problem.instances_from_arrays(arrays, "mem")
    assert torch.equal(back.gain, pc_batch.gain)
    with pytest.raises(ValueError, match="unknown key 'foo'"):
        problem.instances_from_arrays({**arrays, "foo": np.zeros(1)}, "mem")
    m = random_miso_instances(3)
    back_m = MisoProblem().instances_from_arrays(MisoProblem().instances_to_arrays(m), "mem")
    assert torch.equal(back_m.channel, m.channel)


def test_constraint_set_must_match_instances(pc_batch):
    with pytest.raises(UnsupportedProblemError, match="constraint_set"):
        PowerControlProblem("sinr")
    ee = random_instances(2, 2, 2)
    arrays = ee.as_numpy()
    with_ee = PowerControlProblem().instances_to_arrays(ee) | {
        "min_energy_efficiency": np.asarray(1e3)
    }
    inst = PowerControlProblem("energy-efficiency").instances_from_arrays(with_ee, "mem")
    assert problem_of(inst).constraint_set == "energy-efficiency"
    with pytest.raises(UnsupportedProblemError, match="min_energy_efficiency"):
        PowerControlProblem().is_feasible(torch.zeros(2, 2, 2, dtype=torch.float64), inst)
    assert arrays.keys() <= PowerControlProblem.file_keys.keys()
