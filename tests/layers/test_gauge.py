"""The ``gauge`` layer: closed form vs boundary exit, the map's geometry, feasibility on every
constraint set, gradients (float64 gradcheck) and input modes."""

from __future__ import annotations

import functools

import pydantic
import pytest
import torch

from feasnet.layers.gauge import (
    GaugeLayer,
    flat_real,
    gauge_exit,
    infinity_norm,
    polytope_gauge,
    to_cube,
    unflat_real,
)
from feasnet.layers.registry import build_layer
from feasnet.problems.base import Problem
from feasnet.problems.power_control_problem import PowerControlProblem
from tests.conftest import PROBLEM_CASES, make_problem_case


@functools.cache
def case(name: str, n: int = 6):
    problem, instances = make_problem_case(name, n=n)
    feasible = problem.feasibility(instances).feasible
    return problem, instances[feasible.nonzero().squeeze(1)]


def random_cube(problem, instances, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    """Points of the open unit l_inf cube, ``(N, *shape)`` float64 / complex128."""
    g = torch.Generator().manual_seed(seed)
    shape = (len(instances), *problem.variable_shape(instances))
    if problem.complex_variable:
        parts = scale * (2 * torch.rand(*shape, 2, generator=g, dtype=torch.float64) - 1)
        return torch.view_as_complex(parts)
    return scale * (2 * torch.rand(shape, generator=g, dtype=torch.float64) - 1)


def test_polytope_closed_form_agrees_with_boundary_exit() -> None:
    problem, instances = case("power-control/linear-rate")
    anchor = problem.anchor(instances)
    z = random_cube(problem, instances)
    form = problem.linear_form(instances)
    assert form is not None
    closed = 1 / polytope_gauge(form, anchor, z)
    torch.testing.assert_close(
        closed, problem.boundary_exit(anchor, z, instances), rtol=1e-12, atol=0
    )
    # and against the generic certified bisection of the problem interface
    bisection = Problem.boundary_exit(problem, anchor, z, instances)
    torch.testing.assert_close(closed, bisection, rtol=1e-9, atol=0)
    # the rate set is the same polytope without a linear form: boundary_exit serves it
    rate = PowerControlProblem("rate")
    torch.testing.assert_close(gauge_exit(rate, anchor, z, instances), closed, rtol=1e-12, atol=0)


def test_miso_cone_exit_agrees_with_bisection() -> None:
    problem, instances = case("miso/sinr")
    anchor = problem.anchor(instances)
    z = random_cube(problem, instances, seed=1)
    layer = build_layer("gauge", {}, problem)
    assert isinstance(layer, GaugeLayer)
    closed = layer.exit_distance(anchor, z, instances)
    bisection = Problem.boundary_exit(problem, anchor, z, instances)
    torch.testing.assert_close(closed, bisection, rtol=1e-9, atol=0)


@pytest.mark.parametrize("name", PROBLEM_CASES)
def test_cube_surface_maps_to_the_boundary_and_center_to_anchor(name: str) -> None:
    problem, instances = case(name)
    layer = build_layer("gauge", {"eps": 0.0, "input": "ball"}, problem).eval()
    anchor = problem.anchor(instances)
    z = random_cube(problem, instances, seed=2)
    surface = z / infinity_norm(z).view(-1, *([1] * (z.dim() - 1)))
    with torch.no_grad():
        x = layer(surface, instances)
        g = problem.constraints(x, instances)
        torch.testing.assert_close(
            g.amax(dim=1), torch.zeros(len(x), dtype=g.dtype), atol=1e-9, rtol=0
        )
        torch.testing.assert_close(layer(torch.zeros_like(z), instances), anchor)
        # the map is a bijection: z = (x - x0) gamma(x - x0) / ||x - x0||_inf recovers it
        inner = layer(0.7 * z, instances)
        offset = inner - anchor
        t = gauge_exit(problem, anchor, offset, instances)
        recovered = offset / (t * infinity_norm(offset)).view(-1, *([1] * (z.dim() - 1)))
    torch.testing.assert_close(recovered, 0.7 * z, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", PROBLEM_CASES)
@pytest.mark.parametrize("mode", ["auto", "unit-interval", "ball", "tanh"])
def test_outputs_are_feasible_on_random_inputs(name: str, mode: str) -> None:
    problem, instances = case(name)
    layer = build_layer("gauge", {"input": mode}, problem).eval()
    g = torch.Generator().manual_seed(5)
    shape = (len(instances), *problem.variable_shape(instances))
    for scale in (0.5, 3.0, 1e4):
        raw = scale * torch.randn(shape, generator=g, dtype=torch.float64)
        if problem.complex_variable:
            raw = torch.complex(raw, scale * torch.randn(shape, generator=g, dtype=torch.float64))
        with torch.no_grad():
            x = layer(raw, instances)
            x32 = layer(raw.to(torch.complex64 if raw.is_complex() else torch.float32), instances)
        assert problem.is_feasible(x, instances, rtol=1e-6).all(), (name, mode, scale)
        assert problem.is_feasible(x32, instances, rtol=1e-6).all(), (name, mode, scale)


@pytest.mark.parametrize("name", ["power-control/linear-rate", "power-control/rate", "miso/sinr"])
@pytest.mark.parametrize("mode", ["unit-interval", "tanh"])
def test_gradcheck_float64_input_modes(name: str, mode: str) -> None:
    problem, instances = case(name)
    instances = instances[:3]
    layer = build_layer("gauge", {"input": mode}, problem).eval()
    raw = 0.4 * random_cube(problem, instances, seed=7) + (0.5 if mode == "unit-interval" else 0)
    raw = raw.requires_grad_()
    assert torch.autograd.gradcheck(lambda r: layer(r, instances), (raw,), atol=1e-6, rtol=1e-4)


def test_closed_form_and_exit_paths_give_the_same_map() -> None:
    problem, instances = case("power-control/linear-rate")
    raw = torch.rand(len(instances), *problem.variable_shape(instances), dtype=torch.float64)
    with torch.no_grad():
        a = build_layer("gauge", {"closed_form": True}, problem)(raw, instances)
        b = build_layer("gauge", {"closed_form": False}, problem)(raw, instances)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_real_coordinates_round_trip_and_cube_modes() -> None:
    z = torch.randn(4, 3, 2, dtype=torch.complex128)
    assert flat_real(z).shape == (4, 12)
    torch.testing.assert_close(unflat_real(flat_real(z), z), z)
    raw = torch.tensor([[0.0, 0.5, 1.0]])
    torch.testing.assert_close(to_cube(raw, "unit-interval", False), torch.tensor([[-1.0, 0, 1]]))
    torch.testing.assert_close(to_cube(raw, "auto", False), to_cube(raw, "unit-interval", False))
    torch.testing.assert_close(to_cube(raw, "auto", True), raw)


def test_bad_option_names_the_field() -> None:
    problem, _ = case("power-control/linear-rate")
    with pytest.raises(pydantic.ValidationError, match="input"):
        build_layer("gauge", {"input": "sphere"}, problem)
    with pytest.raises(pydantic.ValidationError, match="eps"):
        build_layer("gauge", {"eps": 1.5}, problem)
