"""The suites' one "write or reuse a point's data set" helper (bench.runner)."""

from __future__ import annotations

from pathlib import Path

import pytest

from feasnet.bench import report
from feasnet.bench.runner import ensure_dataset_file, reusable_dataset
from feasnet.data import storage
from feasnet.data.generate import generate
from feasnet.data.presets import get_preset
from feasnet.run_folder import RunFolderError

SAMPLES = 20
SPLITS = (0.8, 0.1, 0.1)


def _write(path: Path, lines: list[str], **kwargs: object) -> Path:
    settings: dict[str, object] = {
        "scenario": get_preset("table2-1"),
        "samples": SAMPLES,
        "seed": 3,
        "splits": SPLITS,
        "force": False,
    }
    settings.update(kwargs)
    return ensure_dataset_file(path, log=lines.append, **settings)  # type: ignore[arg-type]


def test_writes_then_reuses(tmp_path: Path) -> None:
    path, lines = tmp_path / "point" / "dataset.h5", []
    _write(path, lines)
    info = storage.read_info(path)
    assert info.scenario == get_preset("table2-1") and info.seed == 3
    assert info.num_instances == SAMPLES and info.drawn is not None
    assert info.splits == dict(zip(storage.SPLIT_NAMES, SPLITS, strict=True))
    stamp = path.stat().st_mtime_ns
    _write(path, lines)
    assert path.stat().st_mtime_ns == stamp and lines[-1].startswith("reusing")


@pytest.mark.parametrize(
    "changed",
    [{"seed": 4}, {"samples": SAMPLES + 10}, {"splits": (0.7, 0.1, 0.2)}, {"scenario": "pmax"}],
)
def test_other_settings_are_stale(tmp_path: Path, changed: dict[str, object]) -> None:
    path, lines = tmp_path / "dataset.h5", []
    _write(path, lines)
    if changed.get("scenario") == "pmax":  # same name, another field: another data set
        changed = {"scenario": get_preset("table2-1").model_copy(update={"pmax": 2.0})}
    with pytest.raises(RunFolderError, match="made for other settings"):
        _write(path, lines, **changed)
    _write(path, lines, force=True, **changed)
    assert any("regenerating (--force)" in line for line in lines)
    assert reusable_dataset(
        path,
        force=False,
        **{  # type: ignore[arg-type]
            "scenario": get_preset("table2-1"),
            "samples": SAMPLES,
            "seed": 3,
            "splits": SPLITS,
            **changed,
        },
    )


def test_no_splits_accepts_any_and_custom_draw_stores_no_stats(tmp_path: Path) -> None:
    path, lines = tmp_path / "dataset.h5", []
    scenario = get_preset("table2-1")

    def draw() -> tuple[object, None, str]:
        instances, _ = generate(scenario, SAMPLES, seed=3)
        return instances, None, "drawn by the test"

    _write(path, lines, draw=draw)
    assert storage.read_info(path).drawn is None and "drawn by the test" in lines[-1]
    assert reusable_dataset(path, scenario, SAMPLES, 3, None, force=False)
    assert not reusable_dataset(tmp_path / "missing.h5", scenario, SAMPLES, 3, None, False)


def test_grid_markdown_and_closing_sections() -> None:
    by = {("a", 1): {"x": 1.5, "x_se": 0.25}}
    table = report.grid_markdown(["method"], ["1", "2"], report.cell_grid(by, ["a"], [1, 2], "x"))
    assert table.splitlines() == [
        "| method | 1 | 2 |",
        "|---|---:|---:|",
        "| a | 1.50 ± 0.25 | - |",
    ]
    sections = report.closing_sections(["m"], None, 12.4, threads=2)
    assert sections == ["## Measured\n\n- m", "Wall time of the run: 12 s (2 torch threads)."]
    assert report.closing_sections([], [], None) == []
