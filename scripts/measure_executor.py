"""Throughput of a classical solver through the local process pool and through Ray, side by side
(docs/scale-out.md).

Draws ``N`` instances of a preset, solves them with the process pool (``workers`` spawned
processes, one thread each) and with a local Ray instance of ``workers`` CPUs, alternately,
``repeats`` times each, and prints the instances per second of each run: end to end (the pool
starts its processes inside every solve, Ray keeps its workers between solves; ``ray.init`` is
timed separately) and the median per-instance time measured inside the workers. The two
executors' allocations are compared too (they differ only through cvxpy's warm start, see the
doc).

Run from the repository root:
    .venv/bin/python scripts/measure_executor.py --samples 200 --workers 2 --method sca
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from feasnet import solvers
from feasnet.data.generate import generate
from feasnet.data.presets import get_preset
from feasnet.solvers.executor import executor_scope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--method", default="sca")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    instances, _ = generate(get_preset(args.preset), num_samples=args.samples, seed=0)
    n = len(instances)
    print(f"{args.method} on {n} instances of {args.preset!r}, {args.workers} workers")

    start = time.perf_counter()
    with executor_scope("ray", workers=args.workers):
        ray_start = time.perf_counter() - start
        print(f"ray.init: {ray_start:.1f} s (once per scope; not in the figures below)")
        rates: dict[str, list[float]] = {"process": [], "ray": []}
        inside: dict[str, list[float]] = {"process": [], "ray": []}
        results = {}
        for repeat in range(args.repeats):
            for kind in ("process", "ray"):
                start = time.perf_counter()
                result = solvers.solve(args.method, instances, workers=args.workers, executor=kind)
                wall = time.perf_counter() - start
                rates[kind].append(n / wall)
                inside[kind].append(float(np.median(result.seconds)))
                results[kind] = result
                print(
                    f"  run {repeat + 1} {kind:>7}: {wall:6.1f} s, {n / wall:6.1f} instances/s, "
                    f"median {1e3 * np.median(result.seconds):6.1f} ms/instance in the worker"
                )
    for kind in ("process", "ray"):
        later = rates[kind][1:] or rates[kind]
        print(
            f"{kind:>7}: first run {rates[kind][0]:.1f} instances/s (worker start-up included), "
            f"later runs median {np.median(later):.1f}/s; median in-worker time "
            f"{1e3 * np.median(inside[kind]):.1f} ms"
        )
    ratio = np.median(rates["ray"][1:] or rates["ray"]) / np.median(
        rates["process"][1:] or rates["process"]
    )
    print(f"ray / process throughput, later runs: {ratio:.2f}")
    a, b = results["process"], results["ray"]
    rel = np.max(np.abs(a.power - b.power) / np.maximum(np.abs(a.power), 1e-300))
    rate = np.max(np.abs(a.sum_rate - b.sum_rate) / a.sum_rate)
    print(f"largest relative difference: power {rel:.1e}, sum rate {rate:.1e}")


if __name__ == "__main__":
    main()
