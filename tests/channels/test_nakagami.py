"""Nakagami-m MISO channels: moments, phases, Gamma sampler, geometry, reproducibility."""

from __future__ import annotations

import math

import pytest
import torch

from feasnet.channels import (
    drop_users_in_annulus,
    miso_channels,
    nakagami_fading,
    path_gain,
    standard_gamma,
)


def gamma_moment(m: float, n: int) -> float:
    """``E X^n`` for ``X ~ Gamma(m, 1/m)``."""
    return math.exp(math.lgamma(m + n) - math.lgamma(m)) / m**n


@pytest.mark.parametrize("m", [0.5, 1.0, 4.0])
def test_moments(m: float) -> None:
    g = nakagami_fading(4000, 5, 20, m, seed=0)  # 400k coefficients
    assert g.shape == (4000, 5, 20) and g.dtype == torch.complex128
    power = g.abs().square().flatten()
    n = power.numel()
    # E|g|^2 = 1, E|g|^4 = (m + 1) / m, each within five standard errors
    for order, expected in ((1, 1.0), (2, (m + 1) / m)):
        sd = math.sqrt(gamma_moment(m, 2 * order) - gamma_moment(m, order) ** 2)
        assert gamma_moment(m, order) == pytest.approx(expected)
        assert abs(power.pow(order).mean().item() - expected) < 5 * sd / math.sqrt(n), order
    # Uniform phase: circular, so E g = 0 and E g^2 = 0 (pseudo-variance).
    assert abs(g.mean().item()) < 5 / math.sqrt(n)
    assert abs((g * g).mean().item()) < 5 * math.sqrt(gamma_moment(m, 2) / n)


def test_m_one_is_rayleigh() -> None:
    power = nakagami_fading(2000, 4, 25, 1.0, seed=1).abs().square().flatten()
    for t in (0.1, 1.0, 3.0):  # Exp(1) tail probabilities
        p = math.exp(-t)
        observed = (power > t).double().mean().item()
        assert abs(observed - p) < 5 * math.sqrt(p * (1 - p) / power.numel()), t


def test_phase_is_uniform() -> None:
    phase = torch.angle(nakagami_fading(1000, 4, 25, 2.0, seed=2)).flatten()  # in (-pi, pi]
    counts = torch.histc(phase, bins=8, min=-math.pi, max=math.pi)
    expected = phase.numel() / 8
    assert ((counts - expected).abs() < 5 * math.sqrt(expected)).all()


@pytest.mark.parametrize("shape", [0.5, 0.8, 1.0, 2.5, 8.0])
def test_standard_gamma_mean_and_variance(shape: float) -> None:
    x = standard_gamma(shape, (200_000,), torch.Generator().manual_seed(3))
    assert (x > 0).all()
    se_mean = math.sqrt(shape / x.numel())
    assert abs(x.mean().item() - shape) < 5 * se_mean
    assert x.var().item() == pytest.approx(shape, rel=0.05)


def test_reproducible_from_seed_or_generator() -> None:
    a = nakagami_fading(50, 3, 8, 0.7, seed=5)
    b = nakagami_fading(50, 3, 8, 0.7, generator=torch.Generator().manual_seed(5))
    c = nakagami_fading(50, 3, 8, 0.7, seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    h1, g1 = miso_channels(30, 3, 8, 2.0, seed=9)
    h2, g2 = miso_channels(30, 3, 8, 2.0, torch.Generator().manual_seed(9))
    assert torch.equal(h1, h2) and torch.equal(g1, g2)
    assert nakagami_fading(4, 2, 3, 1.0, seed=0, dtype=torch.complex64).dtype == torch.complex64


@pytest.mark.parametrize("m", [0.49, 0.0, -1.0, math.nan, math.inf])
def test_m_below_half_is_rejected(m: float) -> None:
    with pytest.raises(ValueError, match=r"^m: .*>= 0\.5"):
        nakagami_fading(2, 2, 2, m, seed=0)
    with pytest.raises(ValueError, match=r"^m: "):
        miso_channels(2, 2, 2, m, seed=0)


def test_bad_sizes_and_geometry() -> None:
    with pytest.raises(ValueError, match="num_antennas"):
        nakagami_fading(2, 2, 0, 1.0, seed=0)
    with pytest.raises(ValueError, match="inner_radius_fraction"):
        miso_channels(2, 2, 2, 1.0, seed=0, inner_radius_fraction=0.0)
    with pytest.raises(ValueError, match="cell_radius_m"):
        miso_channels(2, 2, 2, 1.0, seed=0, cell_radius_m=-5.0)


def test_path_gain_is_3gpp() -> None:
    assert path_gain(1000.0).item() == pytest.approx(10 ** (-12.81))
    assert path_gain(100.0).item() == pytest.approx(10 ** (-(128.1 - 37.6) / 10))


def test_miso_channels_geometry_and_scaling() -> None:
    radius, fraction = 200.0, 0.5
    h, gain = miso_channels(20_000, 3, 6, 1.0, seed=4, cell_radius_m=radius)
    assert h.shape == (20_000, 3, 6) and h.dtype == torch.complex128
    assert gain.shape == (20_000, 3) and gain.dtype == torch.float64
    # distances recovered from the gains lie in [fraction R, R] ...
    distance = 1000 * 10 ** ((-10 * torch.log10(gain) - 128.1) / 37.6)
    assert distance.min() >= fraction * radius - 1e-6 and distance.max() <= radius + 1e-6
    # ... uniform in area: E d^2 = (R^2 + r0^2) / 2, d^2 uniform on [r0^2, R^2]
    r0 = fraction * radius
    sd = (radius**2 - r0**2) / math.sqrt(12 * distance.numel())
    assert abs(distance.square().mean().item() - (radius**2 + r0**2) / 2) < 5 * sd
    # channel = sqrt(gain) * unit-power fading
    fading = h / gain.sqrt()[:, :, None]
    assert fading.abs().square().mean().item() == pytest.approx(1.0, abs=0.02)


def test_drop_users_uniform_in_area_edges() -> None:
    d = drop_users_in_annulus(1000, 4, torch.Generator().manual_seed(0), 100.0, 1.0)
    assert torch.allclose(d, torch.full_like(d, 100.0))  # fraction 1: all on the edge
