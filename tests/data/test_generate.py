"""Feasible-instance generation: filtering, bookkeeping, determinism, hopeless targets."""

from __future__ import annotations

import pytest
import torch

from feasnet.data.generate import GenerationError, draw_instances, generate
from feasnet.data.presets import get_preset
from feasnet.problems.power_control import minimum_power

SMALL = get_preset("small")  # path loss, B=3, Q=2: a few percent of draws are feasible


def test_keeps_only_feasible_and_counts_rejections() -> None:
    instances, stats = generate(SMALL, 40, seed=0, batch_size=256)
    assert len(instances) == 40 and stats.num_samples == 40
    assert instances.gain.shape == (40, 3, 2, 3) and instances.gain.dtype == torch.float64
    assert minimum_power(instances).feasible.all()
    assert stats.rejected > 0
    assert stats.drawn == stats.num_samples + stats.rejected
    assert 0 < stats.acceptance_rate < 1

    # Replay the same batches by hand: same kept instances, same counts.
    g = torch.Generator().manual_seed(0)
    kept, drawn, rejected = [], 0, 0
    while len(kept) < 40:
        batch = draw_instances(SMALL, 256, g)
        for i, ok in enumerate(minimum_power(batch).feasible.tolist()):
            if len(kept) == 40:
                break
            drawn += 1
            if ok:
                kept.append(batch.gain[i])
            else:
                rejected += 1
    assert torch.equal(torch.stack(kept), instances.gain)
    assert (stats.drawn, stats.rejected) == (drawn, rejected)


def test_deterministic_and_prefix_stable() -> None:
    a, _ = generate(SMALL, 20, seed=3, batch_size=128)
    b, _ = generate(SMALL, 20, seed=3, batch_size=128)
    c, _ = generate(SMALL, 20, seed=4, batch_size=128)
    longer, _ = generate(SMALL, 30, seed=3, batch_size=128)
    assert torch.equal(a.gain, b.gain)
    assert not torch.equal(a.gain, c.gain)
    assert torch.equal(longer.gain[:20], a.gain)


def test_gaussian_scenario() -> None:
    scenario = get_preset("gaussian-4x1")
    instances, stats = generate(scenario, 25, seed=1, batch_size=64)
    assert instances.gain.shape == (25, 4, 1, 4)
    assert torch.all(instances.noise == 1e-8) and torch.all(instances.min_rate == 2.5e6)
    assert minimum_power(instances).feasible.all()
    assert stats.drawn >= 25


def test_scenario_values_reach_instances() -> None:
    scenario = SMALL.with_overrides(pmax=0.5, min_rate=1e6)
    instances, _ = generate(scenario, 5, seed=0, batch_size=64)
    assert torch.all(instances.pmax == 0.5) and torch.all(instances.min_rate == 1e6)
    expected_noise = torch.full((5,), scenario.noise_power, dtype=torch.float64)
    assert torch.allclose(instances.noise, expected_noise)


def test_hopeless_targets_raise() -> None:
    scenario = SMALL.with_overrides(min_rate=200e6)  # 40 bit/s/Hz for every user
    with pytest.raises(GenerationError, match=r"acceptance rate 0\.000%.*min_rate"):
        generate(scenario, 10, seed=0, batch_size=100, max_draw_factor=20)


def test_argument_checks() -> None:
    with pytest.raises(ValueError, match="num_samples"):
        generate(SMALL, 0)
    with pytest.raises(ValueError, match="batch_size"):
        generate(SMALL, 5, batch_size=0)
