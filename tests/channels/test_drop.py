"""User drops of the path-loss data: the paper's uniform drop and the cell drop around each BS."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import torch
from typer.testing import CliRunner

from feasnet.channels.path_loss import (
    CELL_RADIUS_M,
    DROPS,
    draw_path_loss,
    drop_nodes,
)
from feasnet.cli import app
from feasnet.data import storage
from feasnet.data.generate import draw_instances, feasible_mask, generate
from feasnet.data.presets import PRESETS, Scenario, get_preset
from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances


def pairwise(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distances ``(N, K, L)`` between point sets ``(N, K, 2)`` and ``(N, L, 2)``."""
    return torch.linalg.vector_norm(a[:, :, None] - b[:, None], dim=-1)


def test_cell_drop_keeps_users_in_their_cell_and_the_distances() -> None:
    num_bs, quota = 6, 4
    bs, users = drop_nodes(400, num_bs, num_bs * quota, drop="cell", seed=0)
    assert bs.shape == (400, num_bs, 2) and users.shape == (400, num_bs * quota, 2)
    assert (users >= 0).all() and (users <= 500).all()
    home = torch.arange(num_bs * quota) // quota  # user u belongs to BS u // Q
    to_home = torch.linalg.vector_norm(users - bs[:, home], dim=-1)
    assert (to_home <= CELL_RADIUS_M + 1e-9).all()
    assert (pairwise(users, bs) >= 5).all()
    off_users = ~torch.eye(num_bs * quota, dtype=torch.bool)
    assert (pairwise(users, users)[:, off_users] >= 2).all()
    off_bs = ~torch.eye(num_bs, dtype=torch.bool)
    assert (pairwise(bs, bs)[:, off_bs] >= 100).all()
    # Uniform over the disc: about a quarter of the users within half the radius.
    inner = (to_home <= CELL_RADIUS_M / 2).double().mean().item()
    assert 0.2 < inner < 0.32


def test_uniform_drop_is_the_default_and_unchanged() -> None:
    assert DROPS == ("uniform", "cell")
    default = drop_nodes(50, 4, 12, seed=3)
    uniform = drop_nodes(50, 4, 12, seed=3, drop="uniform")
    for a, b in zip(default, uniform, strict=True):
        assert torch.equal(a, b)
    bs, users = default
    nearest = pairwise(users, bs).min(dim=-1).values
    assert (nearest > 2 * CELL_RADIUS_M).float().mean() > 0.1  # users far from every BS
    assert Scenario(name="x", kind="path-loss", num_bs=2, num_channels=1, min_rate=0).drop == (
        "uniform"
    )


def test_cell_drop_association_serves_most_users_from_their_cell() -> None:
    draw = draw_path_loss(300, 4, 3, drop="cell", seed=1)
    home = torch.arange(12) // 3
    served_by = torch.arange(4)[None, :, None].expand_as(draw.users)
    assert (home[draw.users] == served_by).double().mean() > 0.9


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"drop": "hexagonal"}, "drop: unknown user drop 'hexagonal'"),
        ({"drop": "cell", "cell_radius_m": 4.0}, "cell_radius_m"),
        ({"drop": "cell", "cell_radius_m": float("inf")}, "cell_radius_m"),
    ],
)
def test_bad_drop_arguments_name_the_field(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        drop_nodes(4, 2, 4, seed=0, **kwargs)


def test_cell_drop_needs_whole_cells() -> None:
    with pytest.raises(ValueError, match="multiple of the number of BSs"):
        drop_nodes(4, 2, 5, seed=0, drop="cell")


def test_scenario_field_is_validated() -> None:
    base = get_preset("table2-5")
    assert isinstance(base, Scenario)
    with pytest.raises(pydantic.ValidationError, match="drop"):
        base.with_overrides(drop="hexagonal")
    with pytest.raises(pydantic.ValidationError, match="cell_radius_m"):
        base.with_overrides(cell_radius_m=0.0)
    assert Scenario.model_validate_json(base.model_dump_json()) == base


def test_presets_choose_the_drop() -> None:
    table2 = [s for name, s in PRESETS.items() if name.startswith("table2-")]
    assert len(table2) == 8
    assert all(isinstance(s, Scenario) and s.drop == "cell" for s in table2)
    small = get_preset("small")
    assert isinstance(small, Scenario) and small.drop == "uniform"


def _acceptance(scenario: Scenario, n: int = 2048) -> float:
    batch = draw_instances(scenario, n, torch.Generator().manual_seed(0))
    return float(feasible_mask(batch).double().mean())


def test_table2_5_generates_with_the_cell_drop_but_not_uniformly() -> None:
    scenario = get_preset("table2-5")
    assert isinstance(scenario, Scenario)
    assert _acceptance(scenario) > 0.2  # measured 32 %
    assert _acceptance(scenario.with_overrides(drop="uniform")) < 0.005  # measured 0.03 %
    instances, stats = generate(scenario, 40, seed=0)
    assert isinstance(instances, PowerControlInstances)
    assert len(instances) == 40 and stats.acceptance_rate > 0.2
    # Independent check: the minimum-power point meets every constraint in float64.
    p_min = pc.minimum_power(instances)
    assert p_min.feasible.all()
    assert pc.is_feasible(p_min.power, instances, rtol=1e-6).all()


def test_every_table2_preset_generates_at_a_usable_rate() -> None:
    for index in range(1, 9):
        scenario = get_preset(f"table2-{index}")
        assert isinstance(scenario, Scenario)
        assert _acceptance(scenario, 1024) > 0.2, scenario.name


def test_cli_drop_option(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "t5.h5"
    result = runner.invoke(
        app, ["data", "generate", "table2-5", "--out", str(out), "--samples", "30"]
    )
    assert result.exit_code == 0, result.output
    info = storage.read_info(out)
    assert isinstance(info.scenario, Scenario) and info.scenario.drop == "cell"
    out2 = tmp_path / "t8u.h5"
    result = runner.invoke(
        app,
        [
            "data",
            "generate",
            "table2-8",
            "--out",
            str(out2),
            "--samples",
            "20",
            "--drop",
            "uniform",
        ],
    )
    assert result.exit_code == 0, result.output
    assert storage.read_info(out2).scenario.drop == "uniform"  # type: ignore[union-attr]
    result = runner.invoke(
        app, ["data", "generate", "small", "--out", str(out2), "--drop", "hexagonal"]
    )
    assert result.exit_code != 0 and "drop" in result.output
    result = runner.invoke(
        app, ["data", "generate", "gaussian-4x2", "--out", str(out2), "--drop", "cell"]
    )
    assert result.exit_code != 0 and "not a path-loss preset" in result.output


def test_table2_rows_record_the_drop() -> None:
    from feasnet.bench import table2

    row = table2._base_row(5)
    assert row["drop"] == "cell" and row["cell_radius_m"] == CELL_RADIUS_M
    text = table2._drop_text([row], {})
    assert "not uniformly over the 500 m square as in the paper" in text
    uniform = {**row, "drop": "uniform", "cell_radius_m": None}
    assert "as in the paper" in table2._drop_text([uniform], {})
    assert "Drops by configuration: 5: cell, 5: uniform" in table2._drop_text([row, uniform], {})
