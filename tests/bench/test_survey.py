"""The survey suite (Table I measured): enumeration, a tiny smoke run, re-render, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from feasnet.bench import survey
from feasnet.bench.report import rerender
from feasnet.bench.suites import SUITES, SuiteOptions
from feasnet.data.generate import generate
from feasnet.data.presets import get_preset
from feasnet.layers.registry import LAYERS
from feasnet.nets.registry import BACKBONES, backbone_families

TINY_CASES = {
    "power-control": survey.Case("power-control", "small", "sca", 30, 30, "sum rate [Mbit/s]"),
    "miso": survey.Case("miso", "miso-small", "wmmse", 30, 30, "WSR [bit/s/Hz]"),
}
"""The smoke run's families: power control ``small`` and the 4-antenna, 2-user MISO preset."""


def _instances(preset: str, n: int = 4) -> Any:
    instances, _ = generate(get_preset(preset), n, seed=0)
    return instances


# ---------------------------------------------------------------------------- enumeration
@pytest.mark.parametrize(("family", "preset"), [("power-control", "small"), ("miso", "miso-small")])
def test_enumeration_covers_every_registered_pair(family: str, preset: str) -> None:
    applicable, skipped = survey.enumerate_combinations(family, _instances(preset))
    pairs = {(c.layer, c.backbone) for c in applicable} | {(s.layer, s.backbone) for s in skipped}
    assert pairs == {(layer, backbone) for layer in LAYERS for backbone in BACKBONES}
    assert not {(c.layer, c.backbone) for c in applicable} & {
        (s.layer, s.backbone) for s in skipped
    }
    assert all(s.reason.strip() for s in skipped)
    for s in skipped:
        if family not in backbone_families(s.backbone):
            assert "serves" in s.reason
    # every applicable pair comes with every objective TrainConfig knows
    by_pair: dict[tuple[str, str], set[str]] = {}
    for c in applicable:
        by_pair.setdefault((c.layer, c.backbone), set()).add(c.objective)
    assert all(objs == set(survey.objectives()) for objs in by_pair.values())


def test_enumeration_applies_and_refuses_per_family() -> None:
    pc, pc_skipped = survey.enumerate_combinations("power-control", _instances("small"))
    miso, miso_skipped = survey.enumerate_combinations("miso", _instances("miso-small"))
    pc_methods = {c.method for c in pc}
    miso_methods = {c.method for c in miso}
    assert {"penalty+mlp", "qp+mlp", "correction+mlp", "hop+mlp"} <= pc_methods
    assert {"penalty+mlp", "dc3+mlp", "hop+mlp", "penalty+du", "dc3+du", "hop+du"} <= miso_methods
    reasons = {s.method: s.reason for s in miso_skipped}
    assert "qp+mlp" in reasons and "polytope" in reasons["qp+mlp"]
    assert "correction+mlp" in reasons and "real variable" in reasons["correction+mlp"]
    assert "dc3+mlp" in {s.method for s in pc_skipped}


def test_new_layers_are_picked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LAYERS, "penalty-copy", "feasnet.layers.penalty:PenaltyLayer")
    monkeypatch.setitem(LAYERS, "broken", "feasnet.layers.penalty:NoSuchLayer")
    applicable, skipped = survey.enumerate_combinations(
        "power-control", _instances("small"), objective_names=("self-supervised",)
    )
    assert "penalty-copy+mlp" in {c.key for c in applicable}
    broken = [s for s in skipped if s.layer == "broken"]
    assert broken and all("could not be built" in s.reason for s in broken)


def test_quick_default_exclusions_and_labelled_backbones() -> None:
    applicable, skipped = survey.enumerate_combinations(
        "power-control",
        _instances("small"),
        excluded=survey.QUICK_EXCLUDED,
        labelled_backbones=("mlp",),
    )
    assert all(c.layer not in survey.QUICK_EXCLUDED for c in applicable)
    assert any(s.layer == "qp-cvxpylayers" and "--full" in s.reason for s in skipped)
    assert all(c.backbone == "mlp" for c in applicable if c.objective != "self-supervised")
    assert any(c.backbone != "mlp" for c in applicable)


def test_parse_method_and_keys() -> None:
    combo = survey.parse_method("HOP+MLP@supervised")
    assert combo == survey.Combination("hop", "mlp", "supervised")
    assert combo.key == "hop+mlp@supervised" and combo.method == "hop+mlp"
    assert survey.parse_method("dc3+du").key == "dc3+du"
    for bad in ("nolayer+mlp", "hop+nobackbone", "hop", "hop+mlp@telepathy"):
        with pytest.raises(ValueError, match="methods"):
            survey.parse_method(bad)


def test_table_i_mapping_and_verdicts() -> None:
    assert survey.table_i_approach("dc3", "self-supervised") == "DC3"
    assert survey.table_i_approach("penalty", "supervised") == "supervised learning"
    assert survey.table_i_approach("penalty", "self-supervised") == ""
    rows = [
        {"table_i": "DC3", "family": "miso", "method": "dc3+du", "violation_probability": 0.0},
        {"table_i": "HoP", "family": "miso", "method": "hop+du", "violation_probability": 0.1},
        {
            "table_i": "supervised learning",
            "family": "miso",
            "method": "penalty+mlp@supervised",
            "violation_probability": 0.5,
        },
    ]
    verdicts = {line.split(":")[0]: line for line in survey.feasibility_verdicts(rows)}
    assert verdicts["DC3"].endswith("supported")
    assert verdicts["HoP"].endswith("contradicted")
    assert "consistent" in verdicts["supervised learning"]
    assert "not measured" in verdicts["gauge mapping"]


def test_bad_options_are_refused(tmp_path: Path) -> None:
    for options, field in (
        (SuiteOptions(run_dir=tmp_path, points=(1.0,)), "points"),
        (SuiteOptions(run_dir=tmp_path, configs=(1,)), "configs"),
        (SuiteOptions(run_dir=tmp_path, samples=5), "samples"),
        (SuiteOptions(run_dir=tmp_path, methods=("nope+mlp",)), "methods"),
    ):
        with pytest.raises(ValueError, match=field):
            survey.run(options)
    assert not (tmp_path / "results.json").exists()


def test_registered() -> None:
    assert SUITES["survey"].module == "feasnet.bench.survey"


# ---------------------------------------------------------------------------- smoke run
SMOKE_METHODS = ("penalty+mlp@supervised", "hop+mlp")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    run_dir = tmp_path_factory.mktemp("survey")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(survey, "CASES", TINY_CASES)
        survey.run(
            SuiteOptions(
                run_dir=run_dir, samples=30, epochs=1, methods=SMOKE_METHODS, log=lambda _: None
            )
        )
    return run_dir, json.loads((run_dir / "results.json").read_text())


def test_smoke_run_writes_the_table(smoke_run: tuple[Path, dict[str, Any]]) -> None:
    run_dir, payload = smoke_run
    assert payload["suite"] == "survey" and not payload["failed"], payload["failed"]
    names = ("results.json", "results.csv", "report.md", "survey.png")
    for name in (*names, "survey-power-control.png", "survey-miso.png"):
        assert (run_dir / name).stat().st_size > 0, name
    rows = payload["results"]
    assert {(r["family"], r["method"]) for r in rows} == {
        (family, method)
        for family, reference in (("power-control", "sca"), ("miso", "wmmse"))
        for method in (reference, *SMOKE_METHODS)
    }
    for r in rows:
        assert 0.0 <= r["violation_probability"] <= 1.0
        assert r["rtol"] == 1e-6
        if r["kind"] == "learned":
            assert r["time_batch1_ms"] > 0 and r["time_batch1024_ms"] > 0
            assert r["train_seconds"] > 0 and r["epochs"] == 1
            assert math.isfinite(r["percent_of_reference"])
        else:
            assert r["percent_of_reference"] == 100.0
    hop = [r for r in rows if r["method"] == "hop+mlp"]
    assert all(r["violation_probability"] == 0.0 for r in hop)  # a hard layer
    assert {r["table_i"] for r in rows if r["method"] == "penalty+mlp@supervised"} == {
        "supervised learning"
    }
    text = (run_dir / "report.md").read_text()
    assert "Table I with measured columns" in text and "hop+mlp" in text
    # the supervised objective trained on solver labels stored in the data set
    assert (run_dir / "miso" / "models" / "penalty+mlp@supervised" / "done").exists()


def test_report_rerenders_and_resume_reuses(smoke_run: tuple[Path, dict[str, Any]]) -> None:
    run_dir, payload = smoke_run
    (run_dir / "report.md").unlink()
    written = rerender(run_dir, log=lambda _: None)
    assert run_dir / "report.md" in written and (run_dir / "report.md").exists()
    model = run_dir / "power-control" / "models" / "hop+mlp" / "model.pt"
    before = model.stat().st_mtime_ns
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(survey, "CASES", TINY_CASES)
        survey.run(
            SuiteOptions(
                run_dir=run_dir,
                samples=30,
                epochs=1,
                methods=("hop+mlp",),
                resume=True,
                log=lambda _: None,
            )
        )
    assert model.stat().st_mtime_ns == before
    again = json.loads((run_dir / "results.json").read_text())["results"]
    old = {(r["family"], r["method"]): r for r in payload["results"]}
    for r in again:
        if r["method"] == "hop+mlp":
            assert r["percent_of_reference"] == pytest.approx(
                old[(r["family"], "hop+mlp")]["percent_of_reference"]
            )
