"""Time per instance and sum rate of Frank-Wolfe and the genetic algorithm (docs/solvers-fw-ga.md).

Path-loss-like instances (cross gains ``10**U(-13, -9)``, direct gains ``10**U(-10, -9)``,
noise 6.3e-14 W, Pmax 1 mW, W 5 MHz, 2.5 Mbit/s targets; infeasible draws dropped), for
``B=3, Q=2`` and ``B=4, Q=5``. Frank-Wolfe (with and without away steps) and the GA run
batched in this process on one torch thread; wall and process CPU time are reported per
instance (CPU time is what to quote on a machine shared with other jobs). Also times the
LP oracle: warm-started HiGHS models against cold ``scipy.optimize.linprog(method="highs")``
calls.

Run from the repository root:
    FEASNET_PROGRESS=0 PYTHONPATH=. .venv/bin/python scripts/measure_fw_ga.py [N]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy.optimize import linprog
from tests.solvers.test_fw_ga import feasible_instances

from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances
from feasnet.solvers import frank_wolfe, genetic, min_power
from feasnet.solvers.frank_wolfe import _LinearOracle
from feasnet.solvers.result import AllocationResult


def timed(fn: Callable[[], AllocationResult]) -> tuple[AllocationResult, float, float]:
    """``(result, wall s, CPU s)`` of one batched call."""
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - w0, time.process_time() - c0


def lp_timing(inst: PowerControlInstances, per_instance: int = 20) -> tuple[float, float]:
    """Seconds per LP: warm-started HiGHS (``_LinearOracle``) and cold ``linprog``."""
    cons = pc.linear_constraints(inst)
    u = inst.num_users
    g, h = cons.G[:, u:].numpy(), cons.h[:, u:].numpy()
    rng = np.random.default_rng(0)
    costs = rng.normal(size=(len(inst), per_instance, u))
    oracle = _LinearOracle(g, h)
    oracle.solve(0, costs[0, 0])  # first model build outside the timing
    t0 = time.process_time()
    for i in range(len(inst)):
        for k in range(per_instance):
            oracle.solve(i, costs[i, k])
    warm = (time.process_time() - t0) / costs[..., 0].size
    t0 = time.process_time()
    for i in range(len(inst)):
        for k in range(per_instance):
            linprog(-costs[i, k], A_ub=g[i], b_ub=h[i], bounds=(0, None), method="highs")
    cold = (time.process_time() - t0) / costs[..., 0].size
    return warm, cold


def main(n: int) -> None:
    torch.set_num_threads(1)
    frank_wolfe.solve(feasible_instances(2, 2, 1, seed=0))  # imports and HiGHS start-up
    for num_bs, num_channels in [(3, 2), (4, 5)]:
        inst = feasible_instances(n, num_bs, num_channels, seed=2024)
        print(f"B={num_bs} Q={num_channels}, {n} path-loss instances:")
        base = min_power.solve(inst).sum_rate
        anchor = pc.sum_rate(pc.interior_anchor(inst), inst).numpy()
        results = {}
        for name, fn in [
            ("fw", lambda inst=inst: frank_wolfe.solve(inst)),
            ("fw plain", lambda inst=inst: frank_wolfe.solve(inst, away_steps=False)),
            ("ga", lambda inst=inst: genetic.solve(inst)),
        ]:
            result, wall, cpu = timed(fn)
            results[name] = result
            print(
                f"  {name:8s}: feasible {result.feasible.mean():4.0%}  per instance: wall "
                f"{1e3 * wall / n:6.1f} ms, CPU {1e3 * cpu / n:6.1f} ms;  sum rate / min-power: "
                f"mean {np.mean(result.sum_rate / base):.3f};  / anchor: mean "
                f"{np.mean(result.sum_rate / anchor):.3f}"
            )
        for away in (True, False):
            _, used = frank_wolfe.refine(pc.interior_anchor(inst), inst, away_steps=away)
            print(
                f"  fw iterations ({'away steps' if away else 'plain'}): mean "
                f"{used.double().mean():.1f}, median {used.median():.0f}, max {used.max()}, "
                f"at the limit {(used == frank_wolfe.DEFAULT_ITERATIONS).sum()}"
            )
        ratio = results["ga"].sum_rate / results["fw"].sum_rate
        print(
            f"  ga / fw: mean {ratio.mean():.4f}, min {ratio.min():.4f}, max {ratio.max():.4f}; "
            f"ga better by > 0.1% on {np.mean(ratio > 1.001):.0%}, worse on "
            f"{np.mean(ratio < 0.999):.0%}"
        )
        polished, _ = frank_wolfe.refine(torch.as_tensor(results["ga"].power), inst)
        best = np.maximum(results["fw"].sum_rate, results["ga"].sum_rate)
        ratio = pc.sum_rate(polished, inst).numpy() / best
        print(f"  fw(ga) / max(fw, ga): mean {ratio.mean():.4f}, max {ratio.max():.4f}")
        warm, cold = lp_timing(inst[:20])
        print(f"  LP: warm HiGHS {1e3 * warm:.3f} ms, cold linprog {1e3 * cold:.3f} ms (CPU)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
