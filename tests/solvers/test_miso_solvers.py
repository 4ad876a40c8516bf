"""MISO solvers: min-power SOCP vs duality, WMMSE monotonicity and feasibility, SDR, registry."""

from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np
import pytest
import torch

from feasnet import solvers
from feasnet.problems import miso
from feasnet.problems.instances import PowerControlInstances
from feasnet.solvers import miso_min_power as mmp
from feasnet.solvers import wmmse
from feasnet.solvers.parallel import instance_dicts, solve_each
from feasnet.solvers.result import AllocationResult, BeamformingResult


def rayleigh(
    n: int,
    nt: int,
    k: int,
    seed: int,
    snr_db: float = 13.0,
    gamma_db: float | np.ndarray = 3.0,
    weights: Any = 1.0,
    pmax: float = 2.0,
    pc: float = 0.5,
    eta: float = 0.8,
) -> miso.MisoInstances:
    """``n`` feasible instances (infeasible draws are redrawn): Rayleigh channels with
    ``budget E||h_k||^2 / noise = 10^(snr_db/10)``."""
    rng = np.random.default_rng(seed)
    budget = eta * (pmax - pc)
    noise = budget * nt * 10 ** (-snr_db / 10)
    gamma = 10 ** (np.asarray(gamma_db, dtype=np.float64) / 10)
    kept: list[np.ndarray] = []
    while len(kept) < n:
        h = (rng.standard_normal((1, k, nt)) + 1j * rng.standard_normal((1, k, nt))) / np.sqrt(2)
        one = miso.MisoInstances.from_arrays(h, pmax, pc, eta, noise, gamma, weights)
        if bool(miso.minimum_power(one).feasible[0]):
            kept.append(h[0])
    return miso.MisoInstances.from_arrays(np.stack(kept), pmax, pc, eta, noise, gamma, weights)


def batch_of(inst: miso.MisoInstances, i: int, copies: int) -> miso.MisoInstances:
    return miso.MisoInstances.concatenate([inst[i]] * copies)


# ---------------------------------------------------------------------------- min power
def test_min_power_socp_matches_duality_and_meets_targets_with_equality() -> None:
    inst = rayleigh(6, nt=6, k=3, seed=1, gamma_db=np.array([3.0, 6.0, 0.0]))
    result = mmp.solve(inst, workers=1)
    reference = miso.minimum_power(inst)
    assert isinstance(result, BeamformingResult) and result.method == "min-power"
    assert result.feasible.all() and reference.feasible.all(), result.messages
    power = np.sum(np.abs(result.beams) ** 2, axis=(1, 2))
    np.testing.assert_allclose(power, reference.power.numpy(), rtol=1e-5)
    ratio = miso.sinr(torch.as_tensor(result.beams), inst).numpy() / inst.sinr_min.numpy()
    assert ratio.min() >= 1.0 - 1e-12  # polished up to the targets
    np.testing.assert_allclose(ratio, 1.0, rtol=1e-6)


def test_min_power_reports_infeasible_instances_without_crashing() -> None:
    inst = rayleigh(3, nt=4, k=2, seed=2)
    p_min = miso.minimum_power(inst).power.numpy()
    arrays = inst.as_numpy()
    # instance 0: budget just below the min power; 1: pc >= pmax; 2: unchanged
    pmax = arrays["pmax"].copy()
    pc = arrays["pc"].copy()
    pmax[0] = pc[0] + 0.9 * p_min[0] / arrays["eta"][0]
    pc[1] = pmax[1]
    arrays.update(pmax=pmax, pc=pc)
    changed = miso.MisoInstances.from_numpy(arrays)
    result = solvers.solve("min-power", changed, workers=1)
    assert isinstance(result, BeamformingResult)
    assert result.feasible.tolist() == [False, False, True]
    assert result.feasible.tolist() == miso.minimum_power(changed).feasible.tolist()
    assert result.messages[0].startswith("infeasible: the minimum transmit power")
    assert result.messages[1].startswith("infeasible: pc >= pmax")
    assert np.isnan(result.beams[:2]).all() and result.messages[2] == ""


def test_min_power_unreachable_targets() -> None:
    # one antenna, two users: the targets need gamma_1 gamma_2 < 1
    inst = miso.MisoInstances.from_arrays(np.ones((1, 2, 1)), 1.0, 0.0, 1.0, 1e-3, 2.0)
    result = mmp.solve(inst, workers=1)
    assert not result.feasible[0]
    assert result.messages[0] == mmp.UNREACHABLE


# ---------------------------------------------------------------------------- WMMSE
@pytest.mark.parametrize(
    ("seed", "gamma_db", "weights"),
    [(3, 3.0, 1.0), (4, 9.0, [1.0, 0.5, 2.0]), (5, np.array([8.0, 0.0, 8.0]), 1.0)],
)
def test_wmmse_iterates_are_feasible_and_monotone(seed: int, gamma_db: Any, weights: Any) -> None:
    inst = rayleigh(2, nt=6, k=3, seed=seed, gamma_db=gamma_db, weights=weights)
    anchor = miso.interior_anchor(inst)
    anchor_wsr = miso.weighted_sum_rate(anchor, inst).numpy()
    for i, item in enumerate(instance_dicts(inst)):
        beams, history = wmmse.wmmse_single(item, {"record_history": True, "start": "anchor"})
        iterates = torch.as_tensor(np.stack(history["beams"]))
        copies = batch_of(inst, i, len(iterates))
        assert miso.is_feasible(iterates, copies).all()
        wsr = miso.weighted_sum_rate(iterates, copies).numpy()
        np.testing.assert_allclose(wsr, history["wsr"], rtol=1e-9)
        assert np.all(np.diff(wsr) >= -1e-9 * np.abs(wsr[1:]))
        assert wsr[0] == pytest.approx(anchor_wsr[i], rel=1e-9)
        assert wsr[-1] > anchor_wsr[i]
        assert history["iterations"] >= 1 and history["stop"] in ("tol", "max_iterations")
        np.testing.assert_allclose(beams, history["beams"][-1])


def test_wmmse_solve_result_and_infeasible_instance() -> None:
    inst = rayleigh(3, nt=5, k=2, seed=6, gamma_db=6.0)
    arrays = inst.as_numpy()
    arrays["sinr_min"][1] = 1e4  # far beyond the budget
    changed = miso.MisoInstances.from_numpy(arrays)
    result = solvers.solve("wmmse", changed, workers=1)
    assert result.method == "wmmse"
    assert result.feasible.tolist() == [True, False, True]
    assert result.messages[1].startswith("infeasible:") and np.isnan(result.beams[1]).all()
    anchor = miso.interior_anchor(changed)
    anchor_wsr = miso.weighted_sum_rate(anchor, changed).numpy()
    assert np.all(result.wsr[[0, 2]] > anchor_wsr[[0, 2]])


def test_wmmse_update_matches_a_full_dimensional_complex_formulation() -> None:
    """The reduced real-variable update equals cvxpy's complex problem over all of V."""
    inst = rayleigh(1, nt=5, k=2, seed=7, gamma_db=8.0)
    prepared, reason = wmmse.prepare(instance_dicts(inst)[0])
    assert prepared is not None, reason
    current = wmmse.rotate(prepared.channel, prepared.anchor)
    u, c = wmmse.receivers(prepared.channel, current, prepared.alpha)
    reduced, _ = wmmse.socp_update(wmmse._Workspace(prepared), u, c, "CLARABEL")
    assert reduced is not None

    h = miso.normalized_instances(inst).channel[0].numpy()  # (K, Nt)
    gamma = inst.sinr_min[0].numpy()
    v = cp.Variable((h.shape[1], 2), complex=True)
    g = h @ v
    objective = sum(
        c[k] * abs(u[k]) ** 2 * cp.sum_squares(g[k, :]) - 2 * c[k] * cp.real(u[k] * g[k, k])
        for k in range(2)
    )
    constraints = [cp.sum_squares(v) <= 1]
    for k in range(2):
        constraints += [
            cp.imag(g[k, k]) == 0,
            cp.real(g[k, k]) >= np.sqrt(gamma[k]) * cp.norm(cp.hstack([g[k, 1 - k], 1.0])),
        ]
    full = cp.Problem(cp.Minimize(objective), constraints)
    full.solve(solver="CLARABEL")

    def value(beams: np.ndarray, channel: np.ndarray) -> float:
        gains = channel @ beams
        return float(
            np.sum(c * np.abs(u) ** 2 * np.sum(np.abs(gains) ** 2, axis=1))
            - 2 * np.sum(c * np.real(u * np.diag(gains)))
        )

    assert value(reduced, prepared.channel) == pytest.approx(full.value, rel=1e-6, abs=1e-8)
    assert value(prepared.basis @ reduced, h) == pytest.approx(full.value, rel=1e-6, abs=1e-8)


def test_wmmse_sdr_is_feasible_and_close_to_wmmse() -> None:
    inst = rayleigh(2, nt=4, k=2, seed=8, gamma_db=6.0)
    plain = wmmse.solve(inst, workers=1)
    relaxed = solvers.solve("wmmse-sdr", inst, workers=1, max_iterations=15)
    assert relaxed.method == "wmmse-sdr"
    assert plain.feasible.all() and relaxed.feasible.all(), relaxed.messages
    np.testing.assert_allclose(relaxed.wsr, plain.wsr, rtol=0.03)
    _, history = wmmse.wmmse_single(
        instance_dicts(inst)[0], {"sdr": True, "max_iterations": 15, "record_history": True}
    )
    wsr = np.asarray(history["wsr"])
    assert np.all(np.diff(wsr) >= -1e-9 * np.abs(wsr[1:])) and all(history["feasible"])
    assert set(history["update"][1:]) <= {"sdr", "socp"}


# ---------------------------------------------------------------------------- bad input, registry
def test_bad_options_and_names() -> None:
    inst = rayleigh(1, nt=3, k=2, seed=9)
    item = instance_dicts(inst)[0]
    with pytest.raises(ValueError, match="unknown options"):
        wmmse.wmmse_single(item, {"bogus": 1})
    with pytest.raises(ValueError, match="tol"):
        wmmse.solve(inst, workers=1, tol=float("nan"))
    with pytest.raises(ValueError, match="max_iterations"):
        wmmse.solve(inst, workers=1, max_iterations=-1)
    with pytest.raises(KeyError, match="unknown miso solver"):
        solvers.solve("gp", inst)
    with pytest.raises(TypeError, match="instances"):
        solvers.solve("wmmse", object())  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="family"):
        solvers.available("nope")
    assert set(solvers.available("miso")) == {"min-power", "wmmse", "wmmse-sdr", "global"}
    assert "gp" in solvers.available() and "wmmse" not in solvers.available()
    # zero iterations: the anchor itself comes back
    beams, history = wmmse.wmmse_single(item, {"max_iterations": 0, "start": "anchor"})
    anchor = miso.interior_anchor(inst)[0].numpy()
    np.testing.assert_allclose(beams, anchor, rtol=1e-9, atol=1e-12)
    assert history["iterations"] == 0


def test_power_control_min_power_still_dispatches() -> None:
    gain = np.array([[[1e-8, 1e-11]], [[1e-11, 1e-8]]])  # (B=2, Q=1, B=2)
    inst = PowerControlInstances.from_arrays(gain[None], 1e-3, 1e-13, 1e6, 1e6)
    result = solvers.solve("min-power", inst, workers=1)
    assert isinstance(result, AllocationResult) and result.feasible.all()


def _raise_on_second(instance: dict[str, Any], options: dict[str, Any]) -> tuple[np.ndarray, str]:
    if instance["pmax"] > 1.5:
        raise RuntimeError("boom")
    return np.ones((3, 2), dtype=np.complex128) * 1j, ""


def test_solve_each_keeps_other_instances_and_complex_outputs() -> None:
    inst = rayleigh(3, nt=3, k=2, seed=10)
    arrays = inst.as_numpy()
    arrays["pmax"] = np.array([1.0, 2.0, 1.0])
    inst = miso.MisoInstances.from_numpy(arrays)
    out, seconds, messages = solve_each(
        _raise_on_second,
        inst,
        workers=1,
        output_shape=mmp.beam_shape,
        complex_output=True,
    )
    assert out.dtype == np.complex128 and out.shape == (3, 3, 2)
    assert np.isnan(out[1]).all() and messages[1].startswith("solver error: RuntimeError")
    np.testing.assert_array_equal(out[[0, 2]], 1j)
    assert seconds.shape == (3,)
    item = instance_dicts(inst)[0]
    assert isinstance(item["pmax"], float) and item["H"].shape == (2, 3)
    assert item["sinr_min"].shape == (2,)


def test_wmmse_best_start_is_feasible_and_not_worse_than_the_anchor_start() -> None:
    inst = rayleigh(4, nt=6, k=3, seed=8, gamma_db=3.0, weights=1.0)
    for item in instance_dicts(inst):
        _, history = wmmse.wmmse_single(item, {"record_history": True})
        _, anchor_history = wmmse.wmmse_single(item, {"start": "anchor"})
        assert history["wsr"][0] >= anchor_history["wsr"][0] - 1e-12
        assert all(history["feasible"])
        assert np.all(np.diff(history["wsr"]) >= -1e-9 * np.abs(history["wsr"][1:]))
    with pytest.raises(ValueError, match="start"):
        wmmse.wmmse_single(item, {"start": "random"})
