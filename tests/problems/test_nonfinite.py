"""Unreachable rate/SINR targets and out-of-range gains are decided at once, never iterated."""

from __future__ import annotations

import time

import numpy as np
import torch

from feasnet.problems import miso
from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances

FAST = 2.0  # seconds: a verdict must come without iterating on non-finite numbers


def exponential_gains(n: int, b: int, q: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).exponential(size=(n, b, q, b))


def test_overflowing_rate_target_is_infeasible_at_once() -> None:
    # alpha / W = 1200 > 1024: 2^(alpha/W) - 1 overflows float64
    inst = PowerControlInstances.from_arrays(exponential_gains(2, 3, 2), 1.0, 1e-8, 5e6, 6e9)
    start = time.perf_counter()
    mp = pc.minimum_power(inst)
    assert time.perf_counter() - start < FAST
    assert not mp.feasible.any() and not mp.qos_reachable.any()
    assert torch.isinf(mp.spectral_radius).all()
    assert torch.isnan(mp.power).all()
    for reason in mp.reasons():
        assert reason.startswith("infeasible: rate target of user (b=0, q=0) unreachable")
        assert "overflows" in reason


def test_one_overflowing_user_does_not_change_the_other_instances() -> None:
    gains = exponential_gains(3, 3, 2, seed=1) * np.where(np.eye(3)[:, None, :] > 0, 20.0, 1.0)
    rates = np.full((3, 3, 2), 1e6)
    rates[1, 2, 1] = 6e9  # a single user of instance 1 asks for the impossible
    inst = PowerControlInstances.from_arrays(gains, 1.0, 1e-3, 5e6, rates)
    mp = pc.minimum_power(inst)
    alone = pc.minimum_power(inst[[0, 2]])
    assert not mp.feasible[1] and "(b=2, q=1)" in mp.reasons()[1]
    assert torch.equal(mp.feasible[[0, 2]], alone.feasible)
    torch.testing.assert_close(mp.power[[0, 2]], alone.power)


def test_user_without_target_may_face_an_overflowing_coefficient() -> None:
    # User (1, 0) has no target and sits at zero power; user (0, 0) sees it through a cross
    # gain 1e200 times its direct gain, so beta * H[0,0,1] / H[0,0,0] overflows.
    gains = np.ones((1, 2, 1, 2))
    gains[0, 0, 0, 0] = 1e-150
    gains[0, 0, 0, 1] = 1e150
    gains[0, 1, 0, 1] = 1.0
    rates = np.array([[[1e7], [0.0]]])  # beta = 2^10 - 1 for user (0, 0)
    inst = PowerControlInstances.from_arrays(gains, 1.0, 1e-154, 1e6, rates)
    mp = pc.minimum_power(inst)
    assert bool(mp.feasible[0])
    expected = 1023.0 * 1e-154 / 1e-150  # beta sigma^2 / H_00, alone on its channel
    np.testing.assert_allclose(mp.power[0, 0, 0].item(), expected, rtol=1e-12)
    assert mp.power[0, 1, 0].item() == 0.0
    assert pc.is_feasible(mp.power, inst, rtol=1e-9).all()


def test_gains_outside_float64_range_are_reported() -> None:
    inst = PowerControlInstances.from_arrays(
        exponential_gains(2, 3, 2) * 1e300, 1.0, 1e-8, 5e6, 0.0
    )
    start = time.perf_counter()
    mp = pc.minimum_power(inst)
    assert time.perf_counter() - start < FAST
    assert not mp.feasible.any()
    assert all(r.startswith("infeasible (outside float64 range)") for r in mp.reasons())


def miso_instances(scale: float, sinr_min: float, n: int = 2) -> miso.MisoInstances:
    rng = np.random.default_rng(3)
    h = (rng.normal(size=(n, 3, 4)) + 1j * rng.normal(size=(n, 3, 4))) / np.sqrt(2)
    return miso.MisoInstances.from_arrays(h * scale, 1.0, 0.1, 0.5, 1e-3, sinr_min)


def test_miso_huge_sinr_target_is_infeasible_at_once() -> None:
    start = time.perf_counter()
    mp = miso.minimum_power(miso_instances(1.0, 1e300))
    assert time.perf_counter() - start < FAST
    assert not mp.feasible.any()
    assert all(r.startswith("infeasible") for r in mp.reasons())


def test_miso_gains_outside_float64_range_are_reported_without_iterating() -> None:
    start = time.perf_counter()
    mp = miso.minimum_power(miso_instances(1e300, 1e300))
    assert time.perf_counter() - start < FAST
    assert mp.iterations == 1 and not mp.feasible.any()
    assert all(r.startswith("infeasible (outside float64 range)") for r in mp.reasons())


def test_miso_exact_test_is_scale_invariant() -> None:
    # Scaling every channel by c and the noise by c^2 leaves every SINR unchanged, and the
    # minimum power with it; 1e150 makes |h|^2 / sigma^2 alone overflow-prone in squares.
    base = miso_instances(1.0, 1.0)
    ref = miso.minimum_power(base)
    for c in (1e150, 1e-150):
        inst = miso.MisoInstances.from_arrays(base.channel * c, 1.0, 0.1, 0.5, 1e-3 * c**2, 1.0)
        mp = miso.minimum_power(inst)
        assert torch.equal(mp.feasible, ref.feasible)
        torch.testing.assert_close(mp.power, ref.power, rtol=1e-9, atol=0.0)
        assert miso.is_feasible(mp.beams, inst).all()


def test_miso_tiny_gains_without_targets_are_feasible() -> None:
    mp = miso.minimum_power(miso_instances(1e-300, 0.0))
    assert mp.feasible.all()
    assert (mp.power == 0).all()
