"""Path-loss channels: geometry constraints, model constants, statistics, reproducibility."""

from __future__ import annotations

import math

import pytest
import torch

from feasnet.channels.path_loss import (
    PlacementError,
    draw_path_loss,
    drop_nodes,
    noise_power,
    path_loss_db,
    path_loss_instances,
)


def pairwise(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distances ``(N, K, L)`` between point sets ``(N, K, 2)`` and ``(N, L, 2)``."""
    return torch.linalg.vector_norm(a[:, :, None] - b[:, None], dim=-1)


def test_minimum_distances_respected() -> None:
    bs, users = drop_nodes(300, 5, 20, seed=0)
    assert bs.shape == (300, 5, 2) and users.shape == (300, 20, 2)
    for pos in (bs, users):
        assert (pos >= 0).all() and (pos <= 500).all()
    off_bs = ~torch.eye(5, dtype=torch.bool)
    off_users = ~torch.eye(20, dtype=torch.bool)
    assert (pairwise(bs, bs)[:, off_bs] >= 100).all()
    assert (pairwise(users, bs) >= 5).all()
    assert (pairwise(users, users)[:, off_users] >= 2).all()


def test_tight_but_possible_geometry() -> None:
    # Four BSs 280 m apart in a 400 m square: only near-corner layouts fit, and a layout
    # whose first BSs sit badly gets stuck and must start over.
    bs, _ = drop_nodes(8, 4, 1, area_m=400, min_bs_distance_m=280, seed=1)
    off = ~torch.eye(4, dtype=torch.bool)
    assert (pairwise(bs, bs)[:, off] >= 280).all()


def test_impossible_geometry_raises() -> None:
    with pytest.raises(PlacementError, match=r"could not place all nodes.*do not fit"):
        drop_nodes(5, 10, 2, area_m=100, min_bs_distance_m=90, seed=0, max_tries=20, max_restarts=5)


def test_model_constants() -> None:
    d = torch.tensor([1000.0, 100.0, 10.0], dtype=torch.float64)
    expected = torch.tensor([128.1, 128.1 - 37.6, 128.1 - 2 * 37.6], dtype=torch.float64)
    assert torch.allclose(path_loss_db(d), expected)
    # -169 dBm/Hz over 5 MHz.
    assert math.isclose(noise_power(), 10 ** (-19.9) * 5e6, rel_tol=1e-12)
    assert 6.2e-14 < noise_power() < 6.4e-14


def test_shapes_units_and_ranges() -> None:
    inst = path_loss_instances(400, 4, 3, 2.5e6, seed=2)
    assert inst.gain.shape == (400, 4, 3, 4)
    assert inst.gain.dtype == torch.float64
    assert torch.allclose(inst.noise, torch.full((400,), noise_power(), dtype=torch.float64))
    assert torch.all(inst.pmax == 1e-3) and torch.all(inst.bandwidth == 5e6)
    log_gain = inst.gain.log10()
    median = log_gain.median().item()
    assert -12.0 < median < -9.0  # typical gains ~1e-9 ... 1e-13
    direct = torch.diagonal(inst.gain, dim1=1, dim2=3)
    assert direct.log10().median() > median  # served users are stronger than interferers


def test_shadowing_and_fading_statistics() -> None:
    draw = draw_path_loss(3000, 3, 2, seed=3)
    distance = pairwise(draw.user_positions, draw.bs_positions)  # (N, U, B)
    shadow_db = 10 * draw.large_scale_gain.log10() + path_loss_db(distance)
    assert abs(shadow_db.mean().item()) < 0.15
    assert abs(shadow_db.std().item() - 8.0) < 0.15
    # gain / large-scale gain of the served user is the Rayleigh fading power, Exp(1).
    n = draw.gain.shape[0]
    large = draw.large_scale_gain[torch.arange(n)[:, None, None], draw.users]  # (N, B, Q, B)
    fading = draw.gain / large
    assert abs(fading.mean().item() - 1.0) < 0.02
    assert abs(fading.var().item() - 1.0) < 0.06


def test_no_shadowing_gives_pure_path_loss() -> None:
    draw = draw_path_loss(50, 2, 2, shadowing_db=0.0, seed=4)
    distance = pairwise(draw.user_positions, draw.bs_positions)
    assert torch.allclose(draw.large_scale_gain, 10 ** (-path_loss_db(distance) / 10))


def test_association_uses_large_scale_gain() -> None:
    draw = draw_path_loss(300, 3, 3, seed=5)
    own = torch.gather(draw.large_scale_gain.permute(0, 2, 1), 2, draw.users)  # (N, B, Q)
    assert (own[:, :, :-1] >= own[:, :, 1:]).all()


def test_reproducible() -> None:
    a = draw_path_loss(20, 3, 2, seed=11)
    b = draw_path_loss(20, 3, 2, seed=11)
    c = draw_path_loss(20, 3, 2, seed=12)
    assert torch.equal(a.gain, b.gain) and torch.equal(a.bs_positions, b.bs_positions)
    assert not torch.equal(a.gain, c.gain)
