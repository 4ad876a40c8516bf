"""The gnn backbone: symmetries (float64), one model on several sizes, model files across
sizes, and every hard layer's guarantee on a size the model was not trained on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from feasnet.methods import get_method
from feasnet.models import build_model
from feasnet.nets.gnn import MisoGNN, PowerControlGNN, structured_beams
from feasnet.nets.registry import backbone_options, build_backbone
from feasnet.problems import miso
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.miso import MisoInstances
from feasnet.training import TrainConfig, load_model, model_result, train
from tests.conftest import pathloss_instances, snr_miso_instances


def _pc_net(instances: PowerControlInstances, extra: int = 2) -> PowerControlGNN:
    torch.manual_seed(0)
    net = build_backbone("gnn", {"hidden": 16, "rounds": 2}, "power-control", (1, 1), extra)
    assert isinstance(net, PowerControlGNN)
    return net.double().eval().fit_normalizer(instances)


def _permute_power_control(
    inst: PowerControlInstances, bs: torch.Tensor, channels: torch.Tensor
) -> PowerControlInstances:
    gain = inst.gain[:, bs][:, :, channels][:, :, :, bs]
    return dataclasses.replace(inst, gain=gain, min_rate=inst.min_rate[:, bs][:, :, channels])


def test_power_control_gnn_is_equivariant_to_relabelling_bss_and_channels() -> None:
    inst = pathloss_instances(6, 4, 3, seed=1)
    targets = torch.rand(
        inst.min_rate.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    inst = dataclasses.replace(inst, min_rate=inst.min_rate * (0.5 + targets))  # users differ
    net = _pc_net(inst)
    bs, channels = torch.tensor([2, 0, 3, 1]), torch.tensor([1, 2, 0])
    raw, extra = net.propose(inst)
    raw_p, extra_p = net.propose(_permute_power_control(inst, bs, channels))
    assert raw.dtype == torch.float64
    torch.testing.assert_close(raw_p, raw[:, bs][:, :, channels], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(extra_p, extra, rtol=1e-10, atol=1e-12)
    # not a trivially symmetric map: users get different powers
    assert float(raw.detach().std()) > 1e-4


def test_miso_gnn_is_equivariant_to_permuting_users_and_blind_to_their_phases() -> None:
    inst = snr_miso_instances(8, antennas=5, users=4, seed=3)
    torch.manual_seed(0)
    net = MisoGNN(hidden=16, rounds=2, extra_outputs=1).double().eval().fit_normalizer(inst)
    perm = torch.tensor([3, 1, 0, 2])
    permuted = dataclasses.replace(
        inst,
        channel=inst.channel[:, perm],
        sinr_min=inst.sinr_min[:, perm],
        weights=inst.weights[:, perm],
    )
    beams, extra = net.propose(inst)
    beams_p, extra_p = net.propose(permuted)
    assert beams.dtype == torch.complex128
    torch.testing.assert_close(beams_p, beams[:, :, perm], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(extra_p, extra, rtol=1e-9, atol=1e-12)
    phases = torch.exp(1j * torch.rand(inst.channel.shape[:2], dtype=torch.float64) * 6.28)
    rotated = dataclasses.replace(inst, channel=inst.channel * phases[..., None])
    sinr = miso.sinr(miso.beams_from_normalized(beams, inst), inst)
    beams_r, _ = net.propose(rotated)
    torch.testing.assert_close(
        miso.sinr(miso.beams_from_normalized(beams_r, rotated), rotated), sinr, rtol=1e-9, atol=0
    )
    assert bool((miso.transmit_power(beams) < 1).all())  # inside the budget by construction


def test_structured_beams_match_the_matrix_inverse_form() -> None:
    inst = miso.normalized_instances(snr_miso_instances(4, antennas=5, users=3, seed=0))
    dual = torch.tensor([[0.2, 0.5, 0.3]], dtype=torch.float64).expand(len(inst), 3)
    power = torch.tensor([[0.1, 0.6, 0.3]], dtype=torch.float64).expand(len(inst), 3)
    beams = structured_beams(inst.channel, dual, power)
    for n in range(len(inst)):
        h = inst.channel[n]  # (K, Nt), rows h_k^T
        a = torch.eye(5, dtype=h.dtype) + sum(
            dual[n, j] * torch.outer(h[j].conj(), h[j]) for j in range(3)
        )
        for k in range(3):
            d = torch.linalg.solve(a, h[k].conj())
            expected = d / torch.linalg.vector_norm(d) * power[n, k].sqrt()
            torch.testing.assert_close(beams[n, :, k], expected, rtol=1e-10, atol=1e-12)


def test_one_model_runs_on_several_sizes_with_size_free_normalizers() -> None:
    small, large = pathloss_instances(5, 3, 2, seed=0), pathloss_instances(5, 6, 3, seed=1)
    net = _pc_net(small)
    shapes = {name: tuple(b.shape) for name, b in net.state_dict().items()}
    for inst in (small, large):
        raw, extra = net.propose(inst)
        assert raw.shape == (5, inst.num_bs, inst.num_channels) and extra.shape == (5, 2)
        assert bool(((raw > 0) & (raw < 1)).all())
    net.fit_normalizer(large)  # refitting on another size keeps every buffer's shape
    assert {name: tuple(b.shape) for name, b in net.state_dict().items()} == shapes
    budget = build_backbone("gnn", {"activation": "budget"}, "power-control", (1, 1)).eval()
    raw, _ = budget.propose(large)
    assert bool((raw.sum(dim=2) <= 1 + 1e-6).all())
    m = MisoGNN(hidden=8, rounds=1).eval()
    for antennas, users in ((6, 3), (8, 5)):
        inst = snr_miso_instances(8, antennas=antennas, users=users, seed=users)
        beams, _ = m.propose(inst)
        assert beams.shape == (len(inst), antennas, users)


def test_options_are_validated_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="hidden"):
        backbone_options("gnn", {"hidden": 0})
    with pytest.raises(ValueError, match="rounds"):
        backbone_options("gnn", {"rounds": -1})


def _train_tiny(method: str, train_set: object, out: Path) -> None:
    config = TrainConfig(epochs=1, batch_size=16, seed=0)
    train(get_method(method), train_set, train_set[:8], out, config, log=lambda *a: None)


@pytest.mark.parametrize("method", ["qp+gnn", "correction+gnn", "hop+gnn"])
def test_model_file_loads_and_stays_feasible_on_other_sizes(method: str, tmp_path: Path) -> None:
    train_set = pathloss_instances(32, 3, 2, seed=4)
    _train_tiny(method, train_set, tmp_path)
    model, payload = load_model(tmp_path)
    assert payload["variable_shape"] == [3, 2] and model.any_size
    for b, q in ((2, 2), (5, 2), (4, 3)):
        other = pathloss_instances(6, b, q, seed=10 * b + q)
        result = model_result(model, other)
        assert result.allocation.shape == (6, b, q)
        assert bool(result.feasible.all()) and result.rtol == 1e-6, (b, q, result.messages)


def test_miso_model_file_runs_on_other_numbers_of_users(tmp_path: Path) -> None:
    train_set: MisoInstances = snr_miso_instances(40, antennas=4, users=3, seed=5)
    _train_tiny("hop+gnn", train_set, tmp_path)
    model, payload = load_model(tmp_path)
    assert payload["variable_shape"] == [4, 3]
    for antennas, users in ((4, 2), (8, 5)):
        result = model_result(model, snr_miso_instances(8, antennas=antennas, users=users))
        assert result.allocation.shape[1:] == (antennas, users)
        assert bool(result.feasible.all())  # HoP is hard at every size


def test_size_bound_backbones_still_refuse_another_size(tmp_path: Path) -> None:
    train_set = pathloss_instances(24, 3, 2, seed=6)
    _train_tiny("qp+mlp", train_set, tmp_path)
    model, _ = load_model(tmp_path)
    assert not model.any_size
    with pytest.raises(ValueError, match="another size"):
        model_result(model, pathloss_instances(4, 4, 2, seed=7))


def test_a_layer_with_state_sized_to_the_variables_ties_the_model_to_its_size() -> None:
    inst = pathloss_instances(4, 3, 2, seed=8)
    model = build_model(get_method("qp+gnn"), inst)
    assert model.any_size
    model.layer.register_buffer("sized", torch.zeros(6))  # e.g. an INN fitted on B Q = 6
    assert not model.any_size
    with pytest.raises(ValueError, match="another size"):
        model.check_size(pathloss_instances(2, 4, 2, seed=9))
