"""Deep-unfolded WMMSE on power control: the classical iteration (against a per-user loop
written from the textbook update), shapes and budgets, gradients, one training step, sizes."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import torch

from feasnet.methods import get_method
from feasnet.models import build_model
from feasnet.nets.registry import build_backbone
from feasnet.nets.unfolded_power_control import (
    UnfoldedPowerControlWMMSE,
    normalized_gains,
    wmmse_sweep,
)
from feasnet.problems import power_control as pc
from feasnet.training import TrainConfig, load_model, model_result, train
from tests.conftest import pathloss_instances, random_instances


def _loop_wmmse(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One textbook WMMSE sweep for single-channel (Q = 1) power control, user by user:
    receiver, weight, then the transmitter clipped to [0, sqrt(pmax)] (normalized: 1)."""
    n, b = v.shape[0], v.shape[1]
    out = torch.empty_like(v)
    for i in range(n):
        gain = g[i, :, 0, :].tolist()  # [receiver][transmitter]
        amp = v[i, :, 0].tolist()
        u = [
            math.sqrt(gain[k][k]) * amp[k] / (sum(gain[k][j] * amp[j] ** 2 for j in range(b)) + 1)
            for k in range(b)
        ]
        w = [1 / (1 - u[k] * math.sqrt(gain[k][k]) * amp[k]) for k in range(b)]
        for k in range(b):
            cost = sum(w[j] * u[j] ** 2 * gain[j][k] for j in range(b))
            out[i, k, 0] = min(max(w[k] * u[k] * math.sqrt(gain[k][k]) / cost, 0.0), 1.0)
    return out


def test_one_sweep_is_the_classical_wmmse_update_and_the_rate_never_falls() -> None:
    inst = random_instances(5, 4, 1, seed=3, cross_scale=0.5)
    g = normalized_gains(inst)
    targets = torch.zeros_like(inst.min_rate)
    zero, one = torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    v = torch.full_like(targets, 1.0)
    rates = []
    for _ in range(15):
        new = wmmse_sweep(v, g, targets, zero, zero, one)
        torch.testing.assert_close(new, _loop_wmmse(g, v), rtol=1e-10, atol=1e-12)
        v = new
        rates.append(pc.sum_rate(v.square() * inst.pmax[:, None, None], inst))
    for before, after in itertools.pairwise(rates):
        assert bool((after >= before * (1 - 1e-12)).all())  # WMMSE is monotone


def test_outputs_meet_every_budget_on_any_size_and_extra_head() -> None:
    torch.manual_seed(0)
    net = build_backbone("du", {"unfolded_layers": 4}, "power-control", (3, 2), extra=1)
    assert isinstance(net, UnfoldedPowerControlWMMSE) and net.any_size
    for b, q in ((3, 2), (6, 4)):
        inst = pathloss_instances(4, b, q, seed=b)
        raw, extra = net.propose(inst)
        assert raw.shape == (4, b, q) and extra.shape == (4, 1) and raw.dtype == torch.float32
        assert bool((raw >= 0).all()) and bool((raw.sum(dim=2) <= 1 + 1e-6).all())
        assert torch.isfinite(extra).all()


def test_gradients_of_the_learned_scalars_match_finite_differences() -> None:
    inst = random_instances(3, 3, 2, seed=1)
    g = normalized_gains(inst)
    targets = inst.min_rate / inst.bandwidth[:, None, None]
    v = torch.full_like(targets, 0.5)

    def sweep(mu: torch.Tensor, weight: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        return wmmse_sweep(v, g, targets, mu, weight, step)

    params = tuple(
        torch.tensor(value, dtype=torch.float64, requires_grad=True) for value in (0.1, 0.2, 0.7)
    )
    assert torch.autograd.gradcheck(sweep, params)


def test_qp_du_trains_one_step_and_serves_another_size(tmp_path: Path) -> None:
    train_set = pathloss_instances(32, 3, 2, seed=2)
    model = build_model(get_method("qp+du"), train_set)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    batch = train_set[:16].to(torch.float32)
    loss = model.loss(model(batch), batch)
    optimizer.zero_grad()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(grad is not None and torch.isfinite(grad).all() for grad in grads)
    assert any(float(grad.abs().sum()) > 0 for grad in grads if grad is not None)
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    config = TrainConfig(epochs=1, batch_size=16)
    train(
        get_method("correction+du"), train_set, train_set[:8], tmp_path, config, log=lambda *a: None
    )
    trained, _ = load_model(tmp_path)
    result = model_result(trained, pathloss_instances(6, 5, 2, seed=9))
    assert result.allocation.shape == (6, 5, 2) and bool(result.feasible.all())
