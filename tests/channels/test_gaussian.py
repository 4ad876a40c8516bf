"""Gaussian (i.i.d. Rayleigh) channels: shapes, units, statistics, reproducibility."""

from __future__ import annotations

import pytest
import torch

from feasnet.channels.gaussian import (
    gaussian_gains,
    gaussian_instances,
    rayleigh_power,
    resolve_generator,
)


def test_rayleigh_power_is_exponential() -> None:
    g = torch.Generator().manual_seed(0)
    x = rayleigh_power((200_000,), g)
    assert x.dtype == torch.float64
    assert (x > 0).all()
    assert abs(x.mean().item() - 1.0) < 0.01  # Exp(1): mean 1
    assert abs(x.var().item() - 1.0) < 0.03  # and variance 1
    assert abs((x > 1.0).double().mean().item() - torch.exp(torch.tensor(-1.0)).item()) < 0.005


def test_shapes_and_defaults() -> None:
    inst = gaussian_instances(50, 4, 3, 2.5e6, seed=1)
    assert inst.gain.shape == (50, 4, 3, 4)
    assert inst.gain.dtype == torch.float64
    assert (inst.gain > 0).all()
    assert torch.all(inst.pmax == 1e-3)
    assert torch.all(inst.noise == 1e-8)
    assert torch.all(inst.bandwidth == 5e6)
    assert inst.min_rate.shape == (50, 4, 3)


def test_single_channel_direct_gain_is_best_among_free_users() -> None:
    # With Q = 1 the first BS takes the user with the largest gain to it.
    g = torch.Generator().manual_seed(3)
    gain = gaussian_gains(500, 4, 1, generator=g)
    direct0 = gain[:, 0, 0, 0]
    # No other user has a larger gain to BS 0 than BS 0's own user.
    assert (direct0[:, None] >= gain[:, :, 0, 0]).all()


def test_reproducible() -> None:
    a = gaussian_gains(10, 3, 2, seed=5)
    b = gaussian_gains(10, 3, 2, seed=5)
    c = gaussian_gains(10, 3, 2, seed=6)
    d = gaussian_gains(10, 3, 2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert torch.equal(a, d)
    assert not torch.equal(a, c)


def test_generator_and_seed_exclusive() -> None:
    with pytest.raises(ValueError, match="either generator or seed"):
        resolve_generator(torch.Generator(), 3)


def test_bad_sizes() -> None:
    with pytest.raises(ValueError, match="num_bs"):
        gaussian_gains(3, 0, 2, seed=0)
