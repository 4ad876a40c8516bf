"""The ``hop`` layer's ``direction: auto`` (used by the ``hop+mlp`` preset): from the anchor for
real variables (power control), the raw output for complex beams (MISO)."""

from __future__ import annotations

import pytest
import torch

from feasnet.layers.registry import build_layer
from feasnet.methods import get_method
from tests.conftest import make_problem_case


@pytest.mark.parametrize(
    ("name", "same_as"), [("power-control/linear-rate", "from-anchor"), ("miso/sinr", "raw")]
)
def test_auto_direction_matches_the_family_convention(name: str, same_as: str) -> None:
    problem, instances = make_problem_case(name, n=4)
    instances = instances[problem.feasibility(instances).feasible.nonzero().squeeze(1)]
    g = torch.Generator().manual_seed(0)
    shape = (len(instances), *problem.variable_shape(instances))
    raw = torch.rand(shape, generator=g, dtype=torch.float64)
    if problem.complex_variable:
        raw = torch.complex(raw - 0.5, torch.rand(shape, generator=g, dtype=torch.float64) - 0.5)
    extra = torch.randn(len(instances), 1, generator=g, dtype=torch.float64)
    with torch.no_grad():
        auto = build_layer("hop", {"direction": "auto"}, problem)(raw, instances, extra)
        other = "raw" if same_as == "from-anchor" else "from-anchor"
        expected = build_layer("hop", {"direction": same_as}, problem)(raw, instances, extra)
        different = build_layer("hop", {"direction": other}, problem)(raw, instances, extra)
    torch.testing.assert_close(auto, expected, rtol=0, atol=0)
    assert (auto - different).abs().max() > 1e-6
    assert problem.is_feasible(auto, instances, rtol=1e-6).all()


def test_hop_mlp_preset_uses_auto() -> None:
    assert get_method("hop+mlp").layer.options["direction"] == "auto"
