"""Metrics of :mod:`feasnet.metrics`: means, standard errors, convergence and upper bounds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from feasnet.metrics import (
    evaluate,
    ratio_of_means,
    standard_error,
    tightest_upper_bound,
)


@dataclass
class FakeResult:
    """The fields :func:`evaluate` reads, plus the optional ones a solver may report."""

    method: str
    objective: np.ndarray
    feasible: np.ndarray
    seconds: np.ndarray
    rtol: float = 1e-6
    converged: np.ndarray | None = None
    upper_bound: np.ndarray | None = None
    messages: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.objective)


def fake(method: str, objective: list[float], feasible: list[bool] | None = None, **kw):  # type: ignore[no-untyped-def]
    n = len(objective)
    return FakeResult(
        method=method,
        objective=np.asarray(objective, dtype=float),
        feasible=np.asarray(feasible if feasible is not None else [True] * n),
        seconds=np.asarray(kw.pop("seconds", [0.1 * (i + 1) for i in range(n)]), dtype=float),
        **kw,
    )


def test_means_and_standard_errors_by_hand() -> None:
    result = fake("a", [1.0, 2.0, 3.0, 4.0], [True, True, False, True])
    m = evaluate(result)  # type: ignore[arg-type]
    counted = np.array([1.0, 2.0, 0.0, 4.0])  # the infeasible one counts as zero
    assert m.num_instances == 4
    assert m.mean_objective == pytest.approx(1.75)
    assert m.objective_standard_error == pytest.approx(np.std(counted, ddof=1) / 2)
    assert m.mean_objective_feasible == pytest.approx(7 / 3)
    assert m.violation_probability == pytest.approx(0.25)
    assert m.violation_standard_error == pytest.approx(math.sqrt(0.25 * 0.75 / 4))
    assert m.time_per_sample == pytest.approx(0.25)
    assert m.time_standard_error == pytest.approx(np.std([0.1, 0.2, 0.3, 0.4], ddof=1) / 2)
    assert m.batched_timing is False
    assert m.num_not_converged is None  # no convergence field: not applicable
    assert math.isnan(m.ratio_to_reference) and math.isnan(m.ratio_to_upper_bound)


def test_batched_timing_is_recognized() -> None:
    m = evaluate(fake("b", [1.0, 2.0, 3.0], seconds=[0.01, 0.01, 0.01]))  # type: ignore[arg-type]
    assert m.batched_timing is True
    assert m.time_standard_error == 0.0
    # batch time / N stored per instance differs by rounding only: still batched
    seconds = np.full(3, 0.3 / 7) + np.array([0.0, 1e-18, -1e-18])
    m = evaluate(fake("b", [1.0, 2.0, 3.0], seconds=seconds))  # type: ignore[arg-type]
    assert m.batched_timing is True and m.time_standard_error == 0.0


def test_ratio_standard_error_is_the_delta_method() -> None:
    rng = np.random.default_rng(0)
    y = rng.uniform(10, 12, 200)
    x = 0.97 * y + rng.normal(0, 0.1, 200)
    m = evaluate(fake("x", list(x)), reference=fake("y", list(y)))  # type: ignore[arg-type]
    ratio = x.mean() / y.mean()
    assert m.ratio_to_reference == pytest.approx(ratio)
    expected = np.std(x - ratio * y, ddof=1) / math.sqrt(200) / y.mean()
    assert m.ratio_standard_error == pytest.approx(expected)
    # paired data: the error is far below what the per-method spreads alone would suggest
    assert m.ratio_standard_error < 0.2 * m.objective_standard_error / y.mean()
    # the reference against itself: ratio 1, no spread
    same = evaluate(fake("y", list(y)), reference=fake("y", list(y)))  # type: ignore[arg-type]
    assert same.ratio_to_reference == pytest.approx(1.0)
    assert same.ratio_standard_error == pytest.approx(0.0, abs=1e-15)


def test_not_converged_is_counted_when_reported() -> None:
    result = fake("c", [1.0, 2.0, 3.0], converged=np.array([True, False, False]))
    assert evaluate(result).num_not_converged == 2  # type: ignore[arg-type]
    result = fake("c", [1.0, 2.0, 3.0], converged=np.array([True, True, True]))
    assert evaluate(result).num_not_converged == 0  # type: ignore[arg-type]


def test_upper_bound_ratio_and_tightest_bound() -> None:
    a = fake("a", [9.0, 8.0, 10.0], upper_bound=np.array([10.0, np.nan, 12.0]))
    b = fake("b", [9.5, 8.0, 10.0], upper_bound=np.array([11.0, 9.0, 11.0]))
    c = fake("c", [9.0, 8.0, 10.0])
    bound = tightest_upper_bound([a, b, c])  # type: ignore[list-item]
    assert bound is not None
    np.testing.assert_allclose(bound, [10.0, 9.0, 11.0])
    assert tightest_upper_bound([c]) is None  # type: ignore[list-item]
    m = evaluate(c, upper_bound=bound)  # type: ignore[arg-type]
    assert m.ratio_to_upper_bound == pytest.approx(27.0 / 30.0)
    assert math.isfinite(m.upper_bound_ratio_standard_error)
    # an instance without a bound is left out of the ratio
    partial = evaluate(c, upper_bound=np.array([10.0, np.nan, 11.0]))  # type: ignore[arg-type]
    assert partial.ratio_to_upper_bound == pytest.approx(19.0 / 21.0)
    with pytest.raises(ValueError, match="upper_bound"):
        evaluate(c, upper_bound=np.ones(2))  # type: ignore[arg-type]


def test_helpers_on_edge_cases() -> None:
    assert math.isnan(standard_error(np.array([1.0])))
    assert all(math.isnan(v) for v in ratio_of_means(np.ones(3), np.zeros(3)))
    with pytest.raises(ValueError, match="reference"):
        evaluate(fake("a", [1.0, 2.0]), reference=fake("b", [1.0]))  # type: ignore[arg-type]
