"""Fully connected backbone and its input features."""

from __future__ import annotations

import math

import pytest
import torch

from feasnet.nets import ACTIVATIONS, ChannelFeatures, PowerControlMLP, log_gain_features
from feasnet.problems.instances import PowerControlInstances
from tests.conftest import random_instances


@pytest.fixture
def train_set() -> PowerControlInstances:
    return random_instances(256, 3, 2, seed=0, pathloss=True)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_output_shape_and_range(train_set: PowerControlInstances, activation: str) -> None:
    torch.manual_seed(0)
    net = PowerControlMLP(3, 2, activation=activation).fit_normalizer(train_set)  # type: ignore[arg-type]
    out = net(train_set[:32])
    assert out.shape == (32, 3, 2) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    if activation == "relu":
        assert (out >= 0).all()
    elif activation == "sigmoid":
        assert ((out > 0) & (out < 1)).all()
    elif activation == "softmax":
        assert (out > 0).all()
        torch.testing.assert_close(out.sum(dim=2), torch.ones(32, 3))
    else:
        assert (out < 0).any() and (out > 0).any()  # unconstrained
    out.sum().backward()
    assert net.head.weight.grad is not None


def test_architecture_matches_the_paper() -> None:
    net = PowerControlMLP(4, 5)
    linear = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [200, 200, 200, 20]
    assert linear[0].in_features == 4 * 5 * 4
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules()) == 3
    assert sum(isinstance(m, torch.nn.Dropout) for m in net.modules()) == 3
    with pytest.raises(ValueError, match="activation"):
        PowerControlMLP(2, 2, activation="tanh")  # type: ignore[arg-type]


def test_feature_layout_and_values() -> None:
    inst = random_instances(4, 3, 2, seed=1, pathloss=True)
    features = log_gain_features(inst)
    assert features.shape == (4, 3 * 2 * 3)
    n, b, q, c = 2, 1, 1, 2
    expected = math.log10(float(inst.gain[n, b, q, c] * inst.pmax[n] / inst.noise[n]))
    assert features[n, b * 2 * 3 + q * 3 + c].item() == pytest.approx(expected)
    with_targets = log_gain_features(inst, include_rate_targets=True)
    assert with_targets.shape == (4, 3 * 2 * 3 + 3 * 2)
    torch.testing.assert_close(with_targets[:, 18:], (inst.min_rate / 5e6).reshape(4, 6))


def test_zero_gains_are_floored() -> None:
    inst = random_instances(2, 2, 2, seed=2, pathloss=True)
    gain = inst.gain.clone()
    gain[:, 0, 0, 1] = 0.0
    inst = PowerControlInstances(gain, inst.pmax, inst.noise, inst.bandwidth, inst.min_rate)
    features = log_gain_features(inst, gain_floor=1e-12)
    assert (features[:, 0 * 4 + 0 * 2 + 1] == -12.0).all()


def test_fit_normalizer_standardizes_the_training_set(train_set: PowerControlInstances) -> None:
    feats = ChannelFeatures(3, 2, include_rate_targets=True)
    assert not bool(feats.fitted)
    feats.fit_normalizer(train_set, chunk_size=100)  # chunks give the same statistics
    raw = log_gain_features(train_set, include_rate_targets=True)
    torch.testing.assert_close(feats.mean, raw.mean(dim=0))
    # the rate targets are constant in this set: std replaced by 1, feature centred at 0
    torch.testing.assert_close(feats.std[:18], raw.std(dim=0)[:18])
    assert (feats.std[18:] == 1).all()
    z = feats(train_set)
    torch.testing.assert_close(z[:, :18].mean(dim=0), torch.zeros(18, dtype=torch.float64))
    torch.testing.assert_close(z[:, :18].std(dim=0), torch.ones(18, dtype=torch.float64))
    assert (z[:, 18:] == 0).all()
    state = feats.state_dict()
    assert {"mean", "std", "fitted"} <= set(state)
    restored = ChannelFeatures(3, 2, include_rate_targets=True)
    restored.load_state_dict(state)
    torch.testing.assert_close(restored(train_set), z)


def test_rate_targets_change_the_output(train_set: PowerControlInstances) -> None:
    torch.manual_seed(1)
    net = PowerControlMLP(3, 2, include_rate_targets=True).fit_normalizer(train_set).eval()
    other = PowerControlInstances(
        train_set.gain[:8],
        train_set.pmax[:8],
        train_set.noise[:8],
        train_set.bandwidth[:8],
        train_set.min_rate[:8] * 2,
    )
    assert not torch.equal(net(train_set[:8]), net(other))


def test_batch_of_one_in_eval_mode(train_set: PowerControlInstances) -> None:
    torch.manual_seed(2)
    net = PowerControlMLP(3, 2).fit_normalizer(train_set)
    net.train()
    net(train_set[:16])  # updates the running statistics
    net.eval()
    single = net(train_set[3])
    assert single.shape == (1, 3, 2)
    torch.testing.assert_close(single, net(train_set[:16])[3:4])


def test_wrong_problem_size_is_rejected(train_set: PowerControlInstances) -> None:
    net = PowerControlMLP(4, 2)
    with pytest.raises(ValueError, match=r"\(B, Q\)"):
        net(train_set)
