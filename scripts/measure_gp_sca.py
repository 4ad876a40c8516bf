"""Time per instance and sum-rate gains of the GP and SCA references (docs/solvers-gp-sca.md).

Runs the per-instance functions in-process on one thread and records, per instance, wall time
and process CPU time (the latter is what to quote on a machine shared with other jobs). The
first instance of each method pays cvxpy's one-off problem build and is reported separately.

Run from the repository root:
    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python scripts/measure_gp_sca.py 100
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tests.solvers.test_gp_sca import pathloss_instances

from feasnet.problems.instances import PowerControlInstances
from feasnet.solvers import gp, sca
from feasnet.solvers.result import AllocationResult

METHODS: list[tuple[str, Callable[..., tuple[np.ndarray, str]], dict[str, Any]]] = [
    ("gp", gp.solve_instance, {}),
    ("gp (log)", gp.solve_instance, {"formulation": "log"}),
    ("sca", sca.solve_instance, {}),
    ("sca multi", sca.solve_instance, {"starts": "multi"}),
]


def run(
    fn: Callable[..., tuple[np.ndarray, str]],
    options: dict[str, Any],
    instances: PowerControlInstances,
) -> tuple[AllocationResult, np.ndarray, np.ndarray]:
    """``(result, wall seconds (N,), CPU seconds (N,))`` of one per-instance method."""
    arrays = instances.as_numpy()
    powers, messages, wall, cpu = [], [], [], []
    for i in range(len(instances)):
        instance = {key: arrays[key][i] for key in ("H", "min_rate")}
        instance |= {key: float(arrays[key][i]) for key in ("pmax", "noise", "bandwidth")}
        w0, c0 = time.perf_counter(), time.process_time()
        power, message = fn(instance, options)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
        powers.append(power)
        messages.append(message)
    result = AllocationResult.checked("m", np.stack(powers), instances, np.array(wall), messages)
    return result, np.array(wall), np.array(cpu)


def main(n: int) -> None:
    torch.set_num_threads(1)
    for num_bs, num_channels in [(3, 2), (4, 5)]:
        inst = pathloss_instances(n, num_bs, num_channels, seed=2024)
        print(f"B={num_bs} Q={num_channels}, {n} path-loss instances:")
        results = {}
        for name, fn, options in METHODS:
            result, wall, cpu = run(fn, options, inst)
            results[name] = result
            print(
                f"  {name:10s} feasible {result.feasible.mean():4.0%}  per instance: CPU median "
                f"{1e3 * np.median(cpu[1:]):6.1f} ms, mean {1e3 * cpu[1:].mean():6.1f} ms; wall "
                f"median {1e3 * np.median(wall[1:]):6.1f} ms; first (incl. build) "
                f"{1e3 * wall[0]:5.0f} ms"
            )
        base = results["gp"].sum_rate
        for name in ("gp (log)", "sca", "sca multi"):
            gain = 100 * (results[name].sum_rate / base - 1)
            print(
                f"  {name:10s} over gp: mean {gain.mean():+.3f}%, median {np.median(gain):+.3f}%,"
                f" min {gain.min():+.4f}%, max {gain.max():+.3f}%"
            )
        notes = [m for m in results["sca"].messages if m]
        print(f"  sca messages: {sorted(set(notes))} ({len(notes)} instances)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
