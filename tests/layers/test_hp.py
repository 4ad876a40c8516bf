"""The ``hp`` layer (homeomorphic projection): INN invertibility, the fit, feasibility on every
constraint set, the exact-ray special case, gradients (float64 gradcheck) and the model hook."""

from __future__ import annotations

import functools

import pydantic
import pytest
import torch

from feasnet.layers.gauge import flat_real
from feasnet.layers.homeomorphic import ConditionalCoupling, HomeomorphicProjectionLayer
from feasnet.layers.registry import build_layer
from feasnet.methods import get_method
from feasnet.models import build_model
from tests.conftest import PROBLEM_CASES, make_problem_case

FIT = {"fit_steps": 15, "fit_instances": 6, "fit_samples": 4}
"""A short fit (enough to move the INN away from the identity)."""


@functools.cache
def case(name: str, n: int = 6):
    problem, instances = make_problem_case(name, n=n)
    feasible = problem.feasibility(instances).feasible
    return problem, instances[feasible.nonzero().squeeze(1)]


@functools.cache
def fitted(name: str) -> HomeomorphicProjectionLayer:
    problem, instances = case(name)
    layer = build_layer("hp", FIT, problem)
    assert isinstance(layer, HomeomorphicProjectionLayer)
    layer.fit(instances)
    return layer.eval()


def raw_points(problem, instances, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (len(instances), *problem.variable_shape(instances))
    if problem.complex_variable:
        z = torch.complex(
            torch.randn(shape, generator=g, dtype=torch.float64),
            torch.randn(shape, generator=g, dtype=torch.float64),
        )
        return z / torch.linalg.vector_norm(z.flatten(1), dim=1)[:, None, None]
    return 1.2 * torch.rand(shape, generator=g, dtype=torch.float64)


def test_coupling_inn_is_invertible_to_1e_9() -> None:
    torch.manual_seed(0)
    inn = ConditionalCoupling(dim=7, condition=5, layers=4, hidden=16, scale_limit=2.0)
    for parameter in inn.parameters():  # away from the zero-initialized identity
        parameter.data.normal_(0, 0.5)
    s = torch.randn(64, 7, dtype=torch.float64)
    c = torch.randn(64, 5, dtype=torch.float64)
    u, logdet, _ = inn(s, c)
    assert (u - s).abs().max() > 1e-2
    torch.testing.assert_close(inn.inverse(u, c), s, rtol=0, atol=1e-9)
    # the log-determinant is exact (triangular Jacobian)
    jac = torch.autograd.functional.jacobian(lambda v: inn(v[None], c[:1])[0][0], s[0])
    torch.testing.assert_close(logdet[0], torch.linalg.slogdet(jac)[1], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["power-control/linear-rate", "miso/sinr"])
def test_layer_map_round_trip_after_fit(name: str) -> None:
    problem, instances = case(name)
    layer = fitted(name)
    geometry = layer.geometry(instances)
    assert layer.inn is not None and not any(p.requires_grad for p in layer.inn.parameters())
    x = flat_real(raw_points(problem, instances, seed=1))
    with torch.no_grad():
        s = layer.encode(x, geometry)
        torch.testing.assert_close(layer.decode(s, geometry), x, rtol=0, atol=1e-9)
        # the ball's center is the anchor exactly
        torch.testing.assert_close(
            layer.decode(torch.zeros_like(s), geometry), flat_real(problem.anchor(instances))
        )
        assert (layer.decode(s, geometry) - x).abs().max() < 1e-9
        assert (s - layer.encode(x, geometry)).abs().max() == 0
        assert (layer.inn(s, geometry[4])[0] - s).abs().max() > 1e-6  # the fit moved it


@pytest.mark.parametrize("name", PROBLEM_CASES)
def test_fitted_outputs_are_feasible_and_feasible_inputs_kept(name: str) -> None:
    problem, instances = case(name)
    layer = fitted(name)
    for seed in range(3):
        raw = raw_points(problem, instances, seed=seed) * (1 + 2 * seed)
        with torch.no_grad():
            x = layer(raw, instances)
            x32 = layer(raw.to(torch.complex64 if raw.is_complex() else torch.float32), instances)
        assert problem.is_feasible(x, instances, rtol=1e-6).all(), (name, seed)
        assert problem.is_feasible(x32, instances, rtol=1e-6).all(), (name, seed)
        kept = problem.is_feasible(raw, instances, rtol=0.0)
        torch.testing.assert_close(x[kept], raw[kept], rtol=0, atol=0)
        assert (flat_real(x - raw).abs().amax(dim=1)[~kept] > 0).all()


def test_fit_trades_volume_against_violation() -> None:
    problem, instances = case("power-control/linear-rate")
    layer = build_layer("hp", {**FIT, "fit_steps": 40}, problem)
    assert isinstance(layer, HomeomorphicProjectionLayer)
    terms = layer.fit(instances)
    assert set(terms) == {"loss", "violation", "log_volume", "anisotropy"}
    assert terms["log_volume"] > 0  # the image grew beyond the axis cross-polytope


@pytest.mark.parametrize("name", PROBLEM_CASES)
def test_exact_ray_is_the_straight_segment(name: str) -> None:
    problem, instances = case(name)
    layer = build_layer("hp", {"inn": "none"}, problem).eval()
    raw = raw_points(problem, instances, seed=4) * 2
    anchor = problem.anchor(instances)
    with torch.no_grad():
        x = layer(raw, instances)
        t = problem.boundary_exit(anchor, raw - anchor, instances)
    fraction = torch.clamp((1 - 1e-4) * t, max=1.0).view(-1, *([1] * (raw.dim() - 1)))
    torch.testing.assert_close(x, anchor + fraction * (raw - anchor), rtol=1e-12, atol=1e-14)
    assert problem.is_feasible(x, instances, rtol=1e-6).all()


@pytest.mark.parametrize("name", ["power-control/linear-rate", "power-control/energy-efficiency"])
def test_gradcheck_float64_fitted(name: str) -> None:
    problem, instances = case(name)
    instances = instances[:3]
    layer = fitted(name)
    raw = (raw_points(problem, instances, seed=3) + 0.3).requires_grad_()
    assert not problem.is_feasible(raw, instances).all()  # the projection is exercised
    assert torch.autograd.gradcheck(lambda r: layer(r, instances), (raw,), atol=1e-6, rtol=1e-4)


def test_gradcheck_float64_exact_ray_miso() -> None:
    problem, instances = case("miso/sinr")
    instances = instances[:3]
    layer = build_layer("hp", {"inn": "none"}, problem).eval()
    raw = (2 * raw_points(problem, instances, seed=3)).requires_grad_()
    assert torch.autograd.gradcheck(lambda r: layer(r, instances), (raw,), atol=1e-6, rtol=1e-4)


def test_model_builds_fits_and_reloads_the_inn() -> None:
    problem, instances = case("power-control/linear-rate")
    config = get_method("hp+mlp", layer={"kind": "hp", "options": FIT})
    model = build_model(config, instances, problem=problem)
    assert isinstance(model.layer, HomeomorphicProjectionLayer) and model.layer.inn is not None
    assert all(not p.requires_grad for p in model.layer.inn.parameters())
    model.fit_normalizer(instances)
    state = model.state_dict()
    assert any(key.startswith("layer.inn.") for key in state)
    again = build_model(config, instances, problem=problem)
    again.load_state_dict(state)
    model.eval()
    again.eval()
    with torch.no_grad():
        torch.testing.assert_close(again(instances), model(instances))
        assert problem.is_feasible(model(instances), instances).all()


def test_bad_option_names_the_field() -> None:
    problem, _ = case("power-control/linear-rate")
    with pytest.raises(pydantic.ValidationError, match="inn"):
        build_layer("hp", {"inn": "glow"}, problem)
    with pytest.raises(pydantic.ValidationError, match="coupling_layers"):
        build_layer("hp", {"coupling_layers": 0}, problem)


def test_other_size_is_a_clear_error() -> None:
    problem, instances = case("power-control/linear-rate")
    layer = build_layer("hp", {}, problem)
    assert isinstance(layer, HomeomorphicProjectionLayer)
    layer.setup((2, 2))
    raw = raw_points(problem, instances)  # (N, 3, 2)
    with pytest.raises(ValueError, match="raw: the hp layer's INN was built for 4 real"):
        layer(raw, instances)
