"""MISO backbones: fully connected net and deep-unfolded WMMSE."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from feasnet.layers.hop import HopConfig, HopLayer
from feasnet.nets.miso_mlp import MisoMLP, miso_features, to_unit_ball
from feasnet.nets.unfolded_wmmse import UnfoldedWMMSE, mrt_beams, wmmse_layer
from feasnet.problems import miso
from feasnet.problems.miso_problem import MisoProblem
from tests.conftest import snr_miso_instances

# Normalized units: pc 0, eta 1, noise 1, SINR targets 10**U(0, 0.8), unit weights.
UNIT_MISO: dict = dict(
    gamma_log10_max=0.8,
    circuit_power=0.0,
    efficiency=1.0,
    noise=1.0,
    random_weights=False,
    normalized=True,
)


def test_mlp_shapes_dtypes_and_unit_ball() -> None:
    torch.manual_seed(0)
    inst = snr_miso_instances(32, 5, 3, **UNIT_MISO)
    net = MisoMLP(5, 3, hidden=(32, 32), extra_outputs=2)
    beams, extra = net(inst)
    assert beams.shape == (len(inst), 5, 3) and beams.dtype == torch.complex64
    assert extra.shape == (len(inst), 2) and extra.dtype == torch.float32
    assert (miso.transmit_power(beams) < 1).all()  # budget strictly met
    net.eval()
    beams64, extra64 = net.double()(inst[:1])  # batch of one in eval mode, float64
    assert beams64.dtype == torch.complex128 and extra64.shape == (1, 2)
    assert MisoMLP(5, 3, hidden=(8,))(inst)[1].shape == (len(inst), 0)
    with pytest.raises(ValueError, match="Nt, K"):
        net(snr_miso_instances(4, 4, 2, **UNIT_MISO))


def test_features_ignore_per_user_channel_phases() -> None:
    inst = snr_miso_instances(8, 4, 2, seed=1, **UNIT_MISO)
    phase = torch.exp(1j * torch.rand(len(inst), 2, 1, dtype=torch.float64) * 6.0)
    rotated = dataclasses.replace(inst, channel=inst.channel * phase)
    torch.testing.assert_close(miso_features(inst), miso_features(rotated))
    assert miso_features(inst).shape == (len(inst), 2 * (2 * 4 + 3))
    z = torch.randn(4, 3, 2, dtype=torch.complex128) * torch.tensor([0.0, 1e-6, 1.0, 1e3])[
        :, None, None
    ].to(torch.complex128)
    norms = to_unit_ball(z).flatten(1).norm(dim=1)
    assert (norms <= 1).all() and norms[0] == 0 and norms[2] < 1 and norms[3] == pytest.approx(1.0)


def test_unfolded_wmmse_shapes_budget_and_improvement() -> None:
    inst = snr_miso_instances(64, 6, 3, seed=2, **UNIT_MISO)
    net = UnfoldedWMMSE(6, 3, num_layers=3, extra_outputs=1)
    beams, extra = net(inst)
    assert beams.shape == (len(inst), 6, 3) and beams.dtype == torch.complex128
    assert extra.shape == (len(inst), 1) and torch.isfinite(extra).all()
    assert (miso.transmit_power(beams) <= 1 + 1e-12).all()
    mrt = miso.weighted_sum_rate(mrt_beams(inst), inst)
    assert miso.weighted_sum_rate(beams, inst).mean() > mrt.mean() + 1.0
    beams32, _ = net(inst.to(torch.complex64))
    assert beams32.dtype == torch.complex64
    loss = -miso.weighted_sum_rate(beams32, inst.to(torch.complex64)).mean() + extra.sum() * 0
    loss.backward()
    assert net.log_mu.grad is not None and torch.isfinite(net.log_mu.grad).all()


def test_unfolded_layer_gradcheck() -> None:
    inst = snr_miso_instances(6, 3, 2, seed=3, **UNIT_MISO)[:3]
    v0 = mrt_beams(inst).requires_grad_()
    log_mu = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor([0.1, -0.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, m, s: wmmse_layer(v, inst, m, s), (v0, log_mu, scale))


def test_mlp_with_hop_learns_beyond_the_anchor() -> None:
    torch.manual_seed(0)
    inst = snr_miso_instances(96, 4, 2, seed=4, **UNIT_MISO)[:64]
    problem = MisoProblem()
    anchor = problem.anchor(inst)
    net = MisoMLP(4, 2, hidden=(64, 64), extra_outputs=1)
    hop = HopLayer(problem, HopConfig(direction="raw"))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    inst32 = inst.to(torch.complex64)
    for _ in range(200):
        direction, extra = net.propose(inst32)
        beams = hop(direction, inst32, extra)
        loss = -problem.objective(beams, inst32).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        direction, extra = net.propose(inst32)
        beams = hop(direction, inst32, extra)
    assert problem.is_feasible(beams, inst).all()
    gain = (
        problem.objective(beams.to(torch.complex128), inst).mean()
        - problem.objective(anchor, inst).mean()
    )
    assert gain > 0.5
