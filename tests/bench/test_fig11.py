"""The Fig. 11 suite (convergence of DEPNet's correction) and the correction's iterates."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from feasnet.bench import fig11
from feasnet.bench.suites import SUITES, SuiteOptions
from feasnet.cli import app
from feasnet.layers.correction import (
    CorrectionConfig,
    CorrectionLayer,
    CorrectionMode,
    correct,
    squared_violation,
)
from feasnet.problems import power_control as pc
from feasnet.problems.power_control_problem import PowerControlProblem
from tests.conftest import random_instances

SAMPLES = 40  # 36 / 2 / 2 train / validation / test
ITERATIONS = 8


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out_dir = tmp_path_factory.mktemp("fig11")
    payload = fig11.run_study(
        out_dir, SAMPLES, 1, 0, (0.1, 0.001), iterations=ITERATIONS, log=lambda *a: None
    )
    return out_dir, payload


def test_writes_every_output(study: tuple[Path, dict]) -> None:
    out_dir, payload = study
    names = ("results.json", "results.csv", "report.md", "fig11.png", "fig11-equilibrated.png")
    for name in (*names, "training.png"):
        assert (out_dir / name).stat().st_size > 0, name
    assert (out_dir / "fig11.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out_dir / "results.json").read_text())
    assert saved["suite"] == "fig11" and saved["step_sizes"] == [0.1, 0.001]
    assert saved["momentum"] == 0.5 and saved["regularization"] == 1e-8
    # 2 stages x (2 step sizes x 2 row scalings + 2 Newton rules), each with every iteration
    assert len(payload["results"]) == 2 * (2 * 2 + 2)
    with (out_dir / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 12 * (ITERATIONS + 1)
    assert "![fig11](fig11.png)" in (out_dir / "report.md").read_text()


def test_curves_start_at_the_backbone_output_and_newton_ends_feasible(
    study: tuple[Path, dict],
) -> None:
    _, payload = study
    for stage in ("before", "after"):
        rows = [r for r in payload["results"] if r["stage"] == stage]
        starts = {r["violation_probability"][0] for r in rows}
        assert len(starts) == 1  # every rule starts from the same point
        assert len({r["mean_squared_violation"][0] for r in rows}) == 1
        for row in rows:
            for key in ("violation_probability", "mean_squared_violation", "mean_sum_rate_mbps"):
                assert len(row[key]) == ITERATIONS + 1
            assert 0.0 <= min(row["violation_probability"]) <= max(row["violation_probability"])
            assert max(row["violation_probability"]) <= 1.0
        newton = next(r for r in rows if r["rule"] == "newton")
        assert newton["final_violation_probability"] == 0.0
        assert newton["final_mean_squared_violation"] < 1e-12
        assert newton["zero_violation_from"] is not None


def test_report_rerenders_and_the_cli_runs_the_suite(
    study: tuple[Path, dict], tmp_path: Path
) -> None:
    out_dir, _ = study
    (out_dir / "fig11.png").unlink()
    result = CliRunner().invoke(app, ["report", str(out_dir)])
    assert result.exit_code == 0, result.output
    assert (out_dir / "fig11.png").exists()
    assert "fig11" in SUITES
    bad = CliRunner().invoke(
        app, ["bench", "--suite", "fig11", "--points", "0", "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code != 0 and "points" in bad.output


def test_options_the_suite_does_not_take_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="methods"):
        fig11.run(SuiteOptions(run_dir=tmp_path, methods=("dipnet",)))
    with pytest.raises(ValueError, match="guard"):
        fig11.run(SuiteOptions(run_dir=tmp_path, guard=True))
    with pytest.raises(ValueError, match="points"):
        fig11.check_step_sizes((0.1, -1.0))
    assert fig11.check_step_sizes(None) == fig11.STEP_SIZES
    assert fig11.first_zero([1.0, 0.0, 0.5, 0.0, 0.0]) == 3
    assert fig11.first_zero([1.0, 0.5]) is None


# ----------------------------------------------------------------------------- the correction
def _tiny_case(n: int = 6, num_bs: int = 2, num_channels: int = 2, seed: int = 4):
    inst = random_instances(n, num_bs, num_channels, seed=seed, pathloss=True, feasible_only=True)
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(len(inst), num_bs * num_channels, generator=g, dtype=torch.float64) * 1.5
    return inst, pc.linear_constraints(inst), x0


def test_gradient_descent_with_momentum_converges_to_a_float64_feasible_point() -> None:
    inst, cons, x0 = _tiny_case()
    x = pc.to_matrix(x0, inst.num_bs, inst.num_channels) * inst.pmax[:, None, None]
    assert not pc.is_feasible(x, inst, rtol=1e-6).all()  # something to correct
    out = correct(x0, cons, 400, "gradient", step_size=0.3, momentum=0.5)
    p = pc.to_matrix(out, inst.num_bs, inst.num_channels) * inst.pmax[:, None, None]
    assert out.dtype == torch.float64
    assert pc.is_feasible(p, inst, rtol=1e-6).all()
    assert (squared_violation(out, cons) == 0).all()


def test_iterates_match_the_trace_and_the_result() -> None:
    _, cons, x0 = _tiny_case()
    cases: list[tuple[CorrectionMode, bool]] = [
        ("gradient", False),
        ("newton", False),
        ("newton", True),
    ]
    for mode, early_exit in cases:
        trace: list[torch.Tensor] = []
        points: list[torch.Tensor] = []
        out = correct(
            x0, cons, 6, mode, equilibrate=False, early_exit=early_exit, trace=trace,
            iterates=points,
        )  # fmt: skip
        # one point per step taken (early exit stops once every sample is done)
        assert len(points) == len(trace) <= 7
        assert early_exit or len(points) == 7
        assert torch.equal(points[0], x0)
        torch.testing.assert_close(points[-1], out, rtol=0, atol=0)
        # the trace measures the rows the correction aims at (tightened by the margin)
        aimed = pc.LinearConstraints(G=cons.G, h=cons.h - 1e-9 * cons.h.abs())
        for point, value in zip(points, trace, strict=True):
            torch.testing.assert_close(squared_violation(point, aimed), value)


def test_newton_residual_decreases_monotonically_on_a_tiny_case() -> None:
    _, cons, x0 = _tiny_case(n=4, seed=7)
    trace: list[torch.Tensor] = []
    correct(x0, cons, 10, "newton", trace=trace)
    values = torch.stack(trace)  # (steps + 1, N)
    assert (values[0] > 0).any()
    # monotone down to rounding noise (V ~ 1e-32 once a sample is on its targets)
    assert ((values[1:] <= values[:-1]) | (values[1:] < 1e-28)).all()
    assert (values[1] < values[0]).all()
    assert (values[-1] < 1e-20).all()


def test_gradient_steps_with_momentum_pass_gradcheck_on_given_rows() -> None:
    _, cons, x0 = _tiny_case(n=3, seed=9)
    x = (0.2 + 0.6 * x0 / 1.5).requires_grad_()

    def steps(z: torch.Tensor) -> torch.Tensor:
        return correct(z, cons, 3, "gradient", step_size=1e-3, momentum=0.5, equilibrate=False)

    assert torch.autograd.gradcheck(steps, (x,))


# ----------------------------------------------------------------------------- the layer option
def _layer(**options: object) -> CorrectionLayer:
    return CorrectionLayer(PowerControlProblem(), CorrectionConfig(**options))  # type: ignore[arg-type]


def test_layer_runs_gradient_descent_at_test_when_asked() -> None:
    inst = random_instances(8, 2, 2, seed=11, pathloss=True, feasible_only=True)
    g = torch.Generator().manual_seed(0)
    raw = torch.rand(len(inst), 2, 2, generator=g, dtype=torch.float64) * 1.5
    layer = _layer(test_mode="gradient", test_steps=300).eval()
    out = layer(raw, inst)
    flat = PowerControlProblem().linear_form(inst)
    assert flat is not None
    expected = correct(
        raw.reshape(len(inst), -1),
        pc.LinearConstraints(G=flat.G, h=flat.h),
        300,
        "gradient",
        early_exit=True,
    )
    torch.testing.assert_close(out.reshape(len(inst), -1), expected, rtol=0, atol=0)
    p = out * inst.pmax[:, None, None]
    assert pc.is_feasible(p, inst, rtol=1e-6).all()  # 300 heavy-ball steps suffice here
    newton = _layer().eval()(raw, inst)
    assert not torch.equal(newton, out)  # the default is still Newton
    with pytest.raises(ValueError, match="test_mode"):
        CorrectionConfig(test_mode="adam")  # type: ignore[arg-type]


def test_layer_gradient_test_mode_passes_gradcheck() -> None:
    inst = random_instances(3, 2, 2, seed=12, pathloss=True, feasible_only=True)
    g = torch.Generator().manual_seed(1)
    raw = 0.1 + 1.2 * torch.rand(len(inst), 2, 2, generator=g, dtype=torch.float64)
    assert not pc.is_feasible(raw * inst.pmax[:, None, None], inst, rtol=1e-6).all()
    layer = _layer(test_mode="gradient", test_steps=3).eval()
    assert torch.autograd.gradcheck(lambda r: layer(r, inst), (raw.requires_grad_(),))


def test_a_checkpoint_from_before_the_test_mode_option_resumes(tmp_path: Path) -> None:
    from feasnet.methods import get_method
    from feasnet.training import TrainConfig, train

    inst = random_instances(24, 2, 2, seed=13, pathloss=True, feasible_only=True)
    method = get_method("depnet")
    quiet = {"log": lambda *a: None}
    train(method, inst[:-4], inst[-4:], tmp_path, TrainConfig(epochs=1), **quiet)  # type: ignore[arg-type]
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del state["method"]["layer"]["options"]["test_mode"]  # as written before the option
    torch.save(state, tmp_path / "checkpoint.pt")
    summary = train(
        method,
        inst[:-4],
        inst[-4:],
        tmp_path,
        TrainConfig(epochs=2),
        resume=True,
        **quiet,  # type: ignore[arg-type]
    )
    assert [row["epoch"] for row in summary["history"]] == [1, 2]
