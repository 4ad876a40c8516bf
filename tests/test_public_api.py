"""``import feasnet`` exposes the public API, each name the object its module defines."""

from __future__ import annotations

import importlib

import pytest

import feasnet


@pytest.mark.parametrize("name", sorted(feasnet._PUBLIC))
def test_every_public_name_resolves_to_its_definition(name: str) -> None:
    module = importlib.import_module(feasnet._PUBLIC[name])
    assert getattr(feasnet, name) is getattr(module, name)
    assert name in dir(feasnet)


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = feasnet.nope  # type: ignore[attr-defined]


def test_the_readme_workflow_through_the_package() -> None:
    instances, _ = feasnet.generate(feasnet.get_preset("small"), 20, seed=0)
    problem = feasnet.problem_of(instances)
    assert isinstance(problem, feasnet.PowerControlProblem)
    anchor = problem.anchor(instances)
    assert problem.is_feasible(anchor, instances, rtol=feasnet.DEFAULT_RTOL).all()
    result = feasnet.solve("fw", instances)
    metrics = feasnet.evaluate(result)
    assert metrics.num_instances == 20 and metrics.violation_probability == 0.0


def test_all_lists_exactly_the_public_names() -> None:
    assert sorted(feasnet.__all__) == sorted([*feasnet._PUBLIC, "__version__"])
