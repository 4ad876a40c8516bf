"""The miso-sinr sweep: its presets, and QoS rows that bind at high targets (WMMSE)."""

from __future__ import annotations

import pytest

from feasnet import solvers
from feasnet.bench import miso
from feasnet.data.generate import generate
from feasnet.data.miso_presets import SINR_SWEEP_DB, SINR_SWEEP_SNR_DB, MisoScenario
from feasnet.data.presets import get_preset
from feasnet.problems.miso import MisoInstances, minimum_power


def test_sweep_points_are_presets_at_a_fixed_snr() -> None:
    sweep = miso.SWEEPS["miso-sinr"]
    assert sweep.parameter == "sinr_min_db" and sweep.values == SINR_SWEEP_DB
    for value in sweep.values:
        scenario = get_preset(sweep.preset(value))
        assert isinstance(scenario, MisoScenario)
        assert scenario.sinr_min_db == value and scenario.snr_db == SINR_SWEEP_SNR_DB
        assert (scenario.num_antennas, scenario.num_users, scenario.nakagami_m) == (20, 3, 1.0)


def test_active_fraction_of_minimum_power_beams_is_one() -> None:
    instances, _ = generate(get_preset("miso-sinr-5"), 6, seed=1)
    assert isinstance(instances, MisoInstances)
    beams = minimum_power(instances).beams
    assert miso.qos_active_fraction(beams, instances) == 1.0
    # scaled up by 2, every SINR rises strictly above its target: nothing binds
    assert miso.qos_active_fraction(2 * beams, instances) == 0.0


@pytest.mark.parametrize(("target", "low", "high"), [(0, 0.0, 0.0), (15, 0.5, 1.0)])
def test_wmmse_rows_bind_only_at_high_targets(target: float, low: float, high: float) -> None:
    instances, _ = generate(get_preset(f"miso-sinr-{target:g}"), 4, seed=0)
    result = solvers.solve("wmmse", instances, workers=1)
    assert bool(result.feasible.all())
    assert low <= miso.qos_active_fraction(result.allocation, instances) <= high
