"""The generalize suite at a tiny size: files, rows, resume, re-render, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feasnet.bench import generalize, suites
from feasnet.bench.suites import SuiteOptions
from feasnet.training import load_model

METHODS = ("qp+gnn",)
"""Power control only (the MISO part's reference, WMMSE, takes seconds per size even on two
instances; the MISO GNN's size independence is tested in tests/nets)."""


def _options(out_dir: Path, **changes: object) -> SuiteOptions:
    values: dict[str, object] = {
        "run_dir": out_dir,
        "samples": 20,  # 16 / 2 / 2 train / validation / test per size
        "epochs": 1,
        "configs": (2, 3),
        "methods": METHODS,
        "log": lambda *a: None,
    }
    values.update(changes)
    return SuiteOptions(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("generalize")
    suites.run("generalize", _options(out_dir))
    return out_dir


def test_writes_every_output_and_one_model_per_family(run_dir: Path) -> None:
    for name in ("results.json", "results.csv", "report.md", "generalize.png"):
        assert (run_dir / name).stat().st_size > 0, name
    assert (run_dir / "generalize.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    payload = json.loads((run_dir / "results.json").read_text())
    assert payload["suite"] == "generalize"
    rows = payload["results"]
    pc = {(r["size"], r["method"]) for r in rows if r["family"] == "power-control"}
    # B = 4, the training size, is always added; no MISO method asked, no MISO part
    assert pc == {(b, m) for b in (2, 3, 4) for m in ("sca", "qp+gnn")}
    assert {r["family"] for r in rows} == {"power-control"}
    # one trained model per family, trained on the training size, serving every size
    model, payload_pc = load_model(run_dir / "power-control" / "models" / "qp+gnn")
    assert payload_pc["variable_shape"] == [4, 2] and model.any_size
    for row in rows:
        if row["method"] == "qp+gnn":  # a hard layer: feasible at every size
            assert row["violation_probability"] == 0.0, row
        assert row["num_instances"] == 2
    checks = payload["checks"]["power-control"]["qp+gnn"]
    assert checks["sizes"] == [2, 3] and checks["largest_violation"] == 0.0
    text = (run_dir / "report.md").read_text()
    assert "B = 4 (train)" in text and "B = 3" in text


def test_rerun_reuses_everything_and_report_rerenders(run_dir: Path) -> None:
    lines: list[str] = []
    before = (run_dir / "power-control" / "B2" / "solutions" / "qp+gnn.npz").stat().st_mtime_ns
    suites.run("generalize", _options(run_dir, log=lines.append))
    after = (run_dir / "power-control" / "B2" / "solutions" / "qp+gnn.npz").stat().st_mtime_ns
    assert before == after and any("reusing" in line for line in lines)
    payload = json.loads((run_dir / "results.json").read_text())
    (run_dir / "report.md").unlink()
    written = suites.write_reports("generalize", run_dir, payload, log=lambda *a: None)
    assert run_dir / "report.md" in written and (run_dir / "report.md").exists()


def test_refuses_size_bound_backbones_and_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="methods: dipnet has the 'mlp' backbone"):
        generalize.run(_options(tmp_path / "a", methods=("dipnet",)))
    with pytest.raises(ValueError, match="points"):
        generalize.run(_options(tmp_path / "b", points=(1.0,)))
    with pytest.raises(ValueError, match="configs"):
        generalize.run(_options(tmp_path / "c", configs=(0,)))
    with pytest.raises(ValueError, match="samples"):
        generalize.run(_options(tmp_path / "d", samples=3))
    assert not any(tmp_path.iterdir())  # nothing written
