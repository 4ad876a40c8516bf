"""Every feasibility layer on every (family x constraint set) it applies to, one contract.

For each pair of :data:`tests.conftest.PROBLEM_CASES` and registered layer: hard layers'
eval-mode outputs pass the float64 check at rtol 1e-6, dtype and device are kept, NaN rows do
not crash nor touch the other rows, a sample's output does not depend on the batch it is in,
and ``torch.autograd.gradcheck`` passes in float64 (small sizes). Pairs where a layer does not
apply must say so with a one-line :class:`UnsupportedProblemError` naming both.
"""

from __future__ import annotations

import functools

import pytest
import torch

from feasnet.layers.registry import LAYERS, build_layer
from feasnet.problems.base import UnsupportedProblemError
from tests.conftest import PROBLEM_CASES, make_problem_case

CONFORMANCE_LAYERS = tuple(name for name in LAYERS if name != "qp-cvxpylayers")
"""``qp-cvxpylayers`` (slow, optional dependency) is checked against ``qp`` in
tests/layers/test_qp_projection.py."""


@functools.cache
def case(name: str):
    """``(problem, instances of the feasible ones)`` (cached: built once per session)."""
    problem, instances = make_problem_case(name, n=6)
    feasible = problem.feasibility(instances).feasible
    return problem, instances[feasible.nonzero().squeeze(1)]


def applies(case_name: str, layer: str) -> bool:
    try:
        build_layer(layer, {}, case(case_name)[0])
    except UnsupportedProblemError:
        return False
    return True


PAIRS = [(c, layer) for c in PROBLEM_CASES for layer in CONFORMANCE_LAYERS if applies(c, layer)]
REFUSED = [
    (c, layer) for c in PROBLEM_CASES for layer in CONFORMANCE_LAYERS if not applies(c, layer)
]


def raw_points(problem, instances, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """Candidates around the feasible set, ``(N, *shape)``: powers in [0, 1.2] of the budget,
    complex Gaussian beams of norm ~1."""
    g = torch.Generator().manual_seed(seed)
    shape = (len(instances), *problem.variable_shape(instances))
    if problem.complex_variable:
        re, im = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        z = torch.complex(re, im).to(torch.complex128)
        z = z / torch.linalg.vector_norm(z.flatten(1), dim=1)[:, None, None]
        return as_dtype(z, dtype)
    return (1.2 * torch.rand(shape, generator=g, dtype=torch.float64)).to(dtype)


def extra_for(layer, n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, layer.extra_outputs, generator=g, dtype=torch.float64)


def as_dtype(x: torch.Tensor, real: torch.dtype) -> torch.Tensor:
    if x.is_complex():
        return x.to(torch.complex64 if real == torch.float32 else torch.complex128)
    return x.to(real)


def test_every_pair_is_covered_and_the_known_refusals_hold() -> None:
    assert ("power-control/linear-rate", "qp") in PAIRS
    for name in ("power-control/rate", "power-control/energy-efficiency", "miso/sinr"):
        assert (name, "qp") in REFUSED  # no linear form
        assert (name, "hop") in PAIRS and (name, "guard") in PAIRS
    assert ("power-control/energy-efficiency", "correction") in PAIRS
    assert ("miso/sinr", "correction") in REFUSED  # complex beams: dc3
    assert ("miso/sinr", "dc3") in PAIRS


@pytest.mark.parametrize(("case_name", "layer_name"), REFUSED)
def test_refusal_is_one_line_naming_layer_and_problem(case_name: str, layer_name: str) -> None:
    problem, _ = case(case_name)
    with pytest.raises(UnsupportedProblemError) as info:
        build_layer(layer_name, {}, problem)
    message = str(info.value)
    assert "\n" not in message and layer_name in message and problem.name in message


@pytest.mark.parametrize(("case_name", "layer_name"), PAIRS)
def test_hard_layers_are_feasible_and_keep_dtype(case_name: str, layer_name: str) -> None:
    problem, instances = case(case_name)
    layer = build_layer(layer_name, {}, problem).eval()
    raw = raw_points(problem, instances)
    extra = extra_for(layer, len(instances))
    with torch.no_grad():
        x = layer(raw, instances, extra)
    assert x.shape == raw.shape and x.dtype == raw.dtype and x.device == raw.device
    if layer.hard:
        assert problem.is_feasible(x, instances, rtol=1e-6).all(), (case_name, layer_name)
    with torch.no_grad():
        x32 = layer(as_dtype(raw, torch.float32), instances, extra.float())
    assert x32.dtype == as_dtype(raw, torch.float32).dtype
    if layer.hard and layer_name != "correction":
        # float32 outputs stay feasible after the cast (correction: Newton targets its
        # margin in float64, and the cast of strongly interfering rows can cross it)
        assert problem.is_feasible(x32, instances, rtol=1e-6).all(), (case_name, layer_name)


@pytest.mark.parametrize(("case_name", "layer_name"), PAIRS)
def test_nan_rows_and_batch_composition(case_name: str, layer_name: str) -> None:
    problem, instances = case(case_name)
    layer = build_layer(layer_name, {}, problem).eval()
    raw = raw_points(problem, instances, seed=2)
    extra = extra_for(layer, len(instances))
    with torch.no_grad():
        whole = layer(raw, instances, extra)
        poisoned = raw.clone()
        poisoned[0] = float("nan")
        with_nan = layer(poisoned, instances, extra)
        alone = torch.cat(
            [layer(raw[i : i + 1], instances[i : i + 1], extra[i : i + 1]) for i in (1, 2)]
        )
    torch.testing.assert_close(with_nan[1:], whole[1:], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(alone, whole[1:3], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("case_name", "layer_name"), PAIRS)
def test_gradcheck_float64(case_name: str, layer_name: str) -> None:
    problem, instances = case(case_name)
    instances = instances[:3]
    layer = build_layer(layer_name, {}, problem)
    # unrolled corrections are differentiated in training mode; the others in eval mode
    layer.train(layer_name in ("correction", "dc3"))
    raw = raw_points(problem, instances, seed=3)
    if layer_name == "qp":  # keep clear of kinks: points far outside or inside
        raw = 0.1 + raw
    if layer_name == "dc3":  # inside the trust region: its clip is a kink
        raw = 0.4 * raw
    if layer_name == "guard":  # outside along a generic ray (the guard must fire)
        raw = 1.5 * raw + 0.1 if not problem.complex_variable else 3 * raw
    raw = raw.requires_grad_()
    extra = extra_for(layer, len(instances)).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda r, e: layer(r, instances, e), (raw, extra), atol=1e-6, rtol=1e-4
    )
