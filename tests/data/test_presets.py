"""Scenarios and presets: Table II values, lookup, overrides, validation."""

from __future__ import annotations

import math

import pydantic
import pytest

from feasnet.data.presets import PRESETS, Scenario, UnknownPresetError, get_preset, preset_names

TABLE2 = {  # ID: (BSs, users, quota, Mbit/s)
    1: (5, 5, 1, 10),
    2: (2, 6, 3, 2.5),
    3: (4, 20, 5, 5),
    4: (4, 20, 5, 2.5),
    5: (6, 24, 4, 5),
    6: (6, 24, 4, 2.5),
    7: (5, 5, 1, 2.5),
    8: (4, 12, 3, 2.5),
}


@pytest.mark.parametrize("index", sorted(TABLE2))
def test_table2_presets(index: int) -> None:
    num_bs, num_users, quota, rate = TABLE2[index]
    s = get_preset(f"table2-{index}")
    assert s.kind == "path-loss"
    assert (s.num_bs, s.num_users, s.num_channels) == (num_bs, num_users, quota)
    assert s.min_rate == rate * 1e6
    assert s.num_samples == 100_000
    assert s.pmax == 1.0 and s.bandwidth == 5e6 and s.carrier_hz == 2.4e9
    assert (s.area_m, s.min_bs_distance_m, s.min_bs_user_distance_m, s.min_user_distance_m) == (
        500,
        100,
        5,
        2,
    )
    assert s.shadowing_db == 8 and s.noise_density_dbm_hz == -169
    assert math.isclose(s.noise_power, 10 ** (-19.9) * 5e6)


def test_gaussian_and_small_presets() -> None:
    for q in (1, 2, 3, 5):
        s = get_preset(f"gaussian-4x{q}")
        assert (s.kind, s.num_bs, s.num_channels, s.min_rate) == ("gaussian", 4, q, 2.5e6)
        assert s.noise == 1e-8 and s.noise_power == 1e-8 and s.noise_density_dbm_hz is None
    small = get_preset("small")
    assert (small.kind, small.num_bs, small.num_channels, small.num_samples) == (
        "path-loss",
        3,
        2,
        10_000,
    )
    assert set(preset_names()) == set(PRESETS)


def test_lookup_is_case_insensitive_and_lists_names() -> None:
    assert get_preset("TABLE2-3") is PRESETS["table2-3"]
    with pytest.raises(UnknownPresetError, match=r"valid names: .*table2-1.*small"):
        get_preset("table9")


def test_overrides_are_validated() -> None:
    s = get_preset("small").with_overrides(pmax=1.0, num_samples=10)
    assert s.pmax == 1.0 and s.num_samples == 10 and s.name == "small"
    with pytest.raises(pydantic.ValidationError, match="pmax"):
        get_preset("small").with_overrides(pmax=-1.0)
    g = get_preset("small").with_overrides(kind="gaussian")
    assert g.noise == 1e-8 and g.noise_density_dbm_hz is None


def test_noise_field_must_match_kind() -> None:
    with pytest.raises(pydantic.ValidationError, match="noise_density_dbm_hz"):
        Scenario(
            name="x",
            kind="gaussian",
            num_bs=2,
            num_channels=1,
            min_rate=0,
            noise_density_dbm_hz=-170,
        )
    with pytest.raises(pydantic.ValidationError, match="noise"):
        Scenario(name="x", kind="path-loss", num_bs=2, num_channels=1, min_rate=0, noise=1e-9)


def test_json_round_trip() -> None:
    s = get_preset("table2-5")
    assert Scenario.model_validate_json(s.model_dump_json()) == s
