"""The backbone registry: one builder per (backbone, family), the contract, clear refusals."""

from __future__ import annotations

import pytest
import torch

from feasnet.nets.registry import BACKBONES, build_backbone, check_backbone
from feasnet.problems.base import UnsupportedProblemError
from tests.conftest import make_problem_case


@pytest.mark.parametrize(
    ("name", "case_name"),
    [
        (name, case)
        for name, (_, builders) in BACKBONES.items()
        for case in ("power-control/linear-rate", "miso/sinr")
        if case.split("/")[0] in builders
    ],
)
def test_every_backbone_follows_the_contract(name: str, case_name: str) -> None:
    problem, instances = make_problem_case(case_name, n=4)
    shape = tuple(problem.variable_shape(instances))
    torch.manual_seed(0)
    net = build_backbone(name, {}, problem.family, shape, extra=2).eval()
    raw, extra = net.propose(instances)
    assert raw.shape == (len(instances), *shape) and extra.shape == (len(instances), 2)
    assert raw.is_complex() == problem.complex_variable
    assert torch.isfinite(torch.view_as_real(raw) if raw.is_complex() else raw).all()


def test_refusals_name_the_backbone_and_the_family() -> None:
    with pytest.raises(UnsupportedProblemError, match="backbone 'du' does not apply to toy"):
        check_backbone("du", {}, "toy")
    with pytest.raises(UnsupportedProblemError, match="option activation is for power control"):
        check_backbone("mlp", {"activation": "softmax"}, "miso")
    with pytest.raises(UnsupportedProblemError, match="'gnn' option activation is for power"):
        check_backbone("gnn", {"activation": "budget"}, "miso")
    with pytest.raises(KeyError, match="unknown backbone"):
        check_backbone("transformer", {}, "miso")
