"""The Table II suite: combined reports, the paper's columns, resume, failed generation."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest

from feasnet.bench import runner, table2
from feasnet.data.generate import GenerationError

CONFIGS = (2, 7)
METHODS = ("gp", "depnet")
OUTPUTS = ("table2.json", "table2.csv", "table2.md", "table2.png")


def _tiny_run(out_dir: Path, configs: tuple[int, ...] = CONFIGS, **kwargs: Any) -> list[dict]:
    return table2.run(
        out_dir,
        samples=600,
        epochs=1,
        configs=configs,
        methods=kwargs.pop("methods", METHODS),
        workers=1,
        log=kwargs.pop("log", lambda *a: None),
        **kwargs,
    )


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out_dir = tmp_path_factory.mktemp("table2")
    return out_dir, _tiny_run(out_dir)


def test_writes_every_output(suite: tuple[Path, list[dict]]) -> None:
    out_dir, rows = suite
    for name in OUTPUTS:
        assert (out_dir / name).stat().st_size > 0, name
    for config in CONFIGS:  # each configuration keeps its own resumable folder
        assert (out_dir / f"table2-{config}" / "dataset.h5").exists()
        assert (out_dir / f"table2-{config}" / "results.json").exists()
    assert (out_dir / "table2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [r["config"] for r in rows] == list(CONFIGS)


def test_rows_hold_ours_and_the_papers_columns(suite: tuple[Path, list[dict]]) -> None:
    _, rows = suite
    for row in rows:
        paper = table2.PAPER_TABLE2[row["config"]]
        assert row["status"] == "ok"
        assert (row["num_bs"], row["num_users"], row["quota"]) == (
            paper.num_bs,
            paper.num_users,
            paper.quota,
        )
        assert row["target_mbps"] == paper.target_mbps
        assert row["num_test_instances"] == 30  # 5 % of 600
        assert row["paper_gp_sum_rate_mbps"] == paper.gp_sum_rate_mbps
        assert row["paper_depnet_time_ms"] == paper.depnet_time_ms
        assert row["paper_gp_percent_of_gp"] == pytest.approx(100.0)
        for m in METHODS:
            for key in ("sum_rate_mbps", "violation_probability", "time_ms", "percent_of_gp"):
                assert math.isfinite(row[f"{m}_{key}"]), (m, key)
            assert row[f"{m}_sum_rate_mbps"] > 0
            assert 0.0 <= row[f"{m}_violation_probability"] <= 1.0
            assert row[f"{m}_time_ms"] > 0
        assert row["gp_percent_of_gp"] == pytest.approx(100.0)


def test_files_agree_with_the_rows(suite: tuple[Path, list[dict]]) -> None:
    out_dir, rows = suite
    payload = json.loads((out_dir / "table2.json").read_text())
    assert payload["suite"] == "table2"
    assert payload["methods"] == list(METHODS)
    assert set(payload["paper_table2"]) == {str(k) for k in range(1, 9)}
    assert [r["config"] for r in payload["rows"]] == list(CONFIGS)
    assert payload["rows"][0]["gp_sum_rate_mbps"] == pytest.approx(rows[0]["gp_sum_rate_mbps"])
    with (out_dir / "table2.csv").open(newline="") as f:
        header = next(csv.reader(f))
    for column in (
        "config",
        "num_bs",
        "num_users",
        "quota",
        "target_mbps",
        "gp_sum_rate_mbps",
        "depnet_violation_probability",
        "depnet_time_ms",
        "paper_dipnet_sum_rate_mbps",
        "paper_depnet_sum_rate_mbps",
        "paper_gp_sum_rate_mbps",
        "paper_gp_time_ms",
    ):
        assert column in header, column
    text = (out_dir / "table2.md").read_text()
    for heading in ("paper DIPNet", "paper DEPNet", "paper GP", "depnet", "% of GP"):
        assert heading in text, heading
    assert "not comparable" in text  # the note on absolute sum rates


def test_second_run_resumes(suite: tuple[Path, list[dict]]) -> None:
    out_dir, rows = suite
    messages: list[str] = []
    again = _tiny_run(out_dir, log=lambda m: messages.append(str(m)))
    assert any("reusing" in m and "dataset.h5" in m for m in messages)
    assert not any(m.startswith("training") for m in messages)
    for old, new in zip(rows, again, strict=True):
        assert new["depnet_sum_rate_mbps"] == pytest.approx(old["depnet_sum_rate_mbps"])


def test_failed_generation_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = runner.generate  # every suite's data sets are drawn through bench.runner

    def generate(scenario: Any, *args: Any, **kwargs: Any) -> Any:
        if scenario.name == "table2-5":
            raise GenerationError("acceptance rate 0.03% (simulated)")
        return real(scenario, *args, **kwargs)

    monkeypatch.setattr(runner, "generate", generate)
    rows = _tiny_run(tmp_path, configs=(7, 5), methods=("gp",))
    ok, failed = rows
    assert ok["status"] == "ok" and math.isfinite(ok["gp_sum_rate_mbps"])
    assert failed["status"].startswith("not generated:")
    assert "simulated" in failed["status"]
    assert math.isnan(failed["gp_sum_rate_mbps"])
    assert failed["paper_gp_sum_rate_mbps"] == table2.PAPER_TABLE2[5].gp_sum_rate_mbps
    for name in OUTPUTS:
        assert (tmp_path / name).exists(), name
    payload = json.loads((tmp_path / "table2.json").read_text())  # strict JSON: NaN -> null
    assert payload["rows"][1]["gp_sum_rate_mbps"] is None
    assert "not generated" in (tmp_path / "table2.md").read_text()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"configs": (1, 9)}, "Table II dataset ID 9"),
        ({"methods": ("gp", "nope")}, "unknown nope"),
        ({"samples": 0}, "samples"),
    ],
)
def test_bad_arguments_are_rejected_before_any_work(
    tmp_path: Path, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        table2.run(tmp_path / "x", log=lambda *a: None, **kwargs)
    assert not (tmp_path / "x").exists()


def test_paper_table_matches_the_presets() -> None:
    for config, paper in table2.PAPER_TABLE2.items():
        row = table2._base_row(config)
        assert (row["num_bs"], row["num_users"], row["quota"], row["target_mbps"]) == (
            paper.num_bs,
            paper.num_users,
            paper.quota,
            paper.target_mbps,
        )
