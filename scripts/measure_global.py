"""Time per instance and certified gaps of ``--method global`` (docs/solvers-global.md).

Power control: draws feasible instances of the path-loss preset ``small`` with ``B`` and ``Q``
overridden, solves each in-process on one thread with the global solver and with SCA (GP start),
and reports the global solver's time, its certified gap, and how far SCA is below the bound.
MISO: draws feasible instances of ``miso-snr-<point>`` and compares WMMSE with the certified
optimum the same way. Wall time and process CPU time are recorded per instance (CPU time is
what to quote on a machine shared with other jobs).

Run from the repository root, for example:
    OMP_NUM_THREADS=1 .venv/bin/python scripts/measure_global.py pc --num-bs 3 --samples 20
    OMP_NUM_THREADS=1 .venv/bin/python scripts/measure_global.py pc --num-bs 3 --indices 10
    OMP_NUM_THREADS=1 .venv/bin/python scripts/measure_global.py miso --points 0,10 --samples 20
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from feasnet.data.generate import generate
from feasnet.data.presets import get_preset
from feasnet.solvers import global_miso, global_power_control, sca, wmmse
from feasnet.solvers.parallel import instance_dicts


def timed(
    fn: Callable[[dict[str, Any], dict[str, Any]], tuple[np.ndarray, str]],
    instance: dict[str, Any],
    options: dict[str, Any],
) -> tuple[np.ndarray, str, float, float]:
    """``(output, message, wall seconds, CPU seconds)`` of one per-instance call."""
    wall, cpu = time.perf_counter(), time.process_time()
    output, message = fn(instance, options)
    return output, message, time.perf_counter() - wall, time.process_time() - cpu


def parse_indices(text: str | None, count: int) -> set[int]:
    """Instance indices to run: ``"3,10"`` or None for all ``count``."""
    if text is None:
        return set(range(count))
    wanted = {int(part) for part in text.split(",") if part.strip()}
    bad = sorted(i for i in wanted if not 0 <= i < count)
    if bad:
        raise SystemExit(f"--indices: {bad} outside 0..{count - 1} (--samples {count})")
    return wanted


def summary(values: list[float]) -> dict[str, float]:
    """Median, mean and max of a list."""
    arr = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(arr)), "mean": float(arr.mean()), "max": float(arr.max())}


def power_control(args: argparse.Namespace) -> dict[str, Any]:
    """Global vs SCA on ``small`` with ``B = args.num_bs``, ``Q = args.num_channels``."""
    from feasnet.problems import power_control as pc
    from feasnet.problems.instances import PowerControlInstances

    scenario = get_preset("small").with_overrides(
        num_bs=args.num_bs, num_channels=args.num_channels
    )
    instances, _ = generate(scenario, num_samples=args.samples, seed=args.seed)
    assert isinstance(instances, PowerControlInstances)
    options = {"time_limit": args.time_limit, "gap": args.gap}
    rows = []
    wanted = parse_indices(args.indices, len(instances))
    for i, item in enumerate(instance_dicts(instances)):
        if i not in wanted:
            continue
        packed, message, wall, cpu = timed(
            global_power_control.solve_instance_with_bound, item, options
        )
        b, q = args.num_bs, args.num_channels
        one = instances[i : i + 1]
        power = torch.as_tensor(packed[: b * q].reshape(1, b, q))
        value = float(pc.sum_rate(power, one)[0])
        feasible = bool(pc.is_feasible(power, one)[0])
        row = {
            "index": i,
            "wall_s": wall,
            "cpu_s": cpu,
            "sum_rate": value,
            "upper_bound": float(packed[-2]),
            "gap": (float(packed[-2]) - value) / float(packed[-2]),
            "converged": bool(packed[-1] == 1.0),
            "feasible": feasible,
            "message": message,
        }
        if args.reference:
            sca_power, _, sca_wall, _ = timed(sca.solve_instance, item, {})
            sca_value = float(pc.sum_rate(torch.as_tensor(sca_power)[None], one)[0])
            row["sca_sum_rate"] = sca_value
            row["sca_below_bound"] = (float(packed[-2]) - sca_value) / float(packed[-2])
            row["sca_wall_s"] = sca_wall
        rows.append(row)
        print(f"instance {i}: {wall:7.2f} s wall, {cpu:7.2f} s CPU, {message}", flush=True)
    return {"scenario": scenario.summary(), "rows": rows, **aggregate(rows, "sca")}


def miso(args: argparse.Namespace) -> dict[str, Any]:
    """Global vs WMMSE on ``miso-snr-<point>`` for every point."""
    from feasnet.problems import miso as miso_problem
    from feasnet.problems.miso import MisoInstances

    out: dict[str, Any] = {}
    for point in args.points.split(","):
        scenario = get_preset(f"miso-snr-{point}")
        instances, _ = generate(scenario, num_samples=args.samples, seed=args.seed)
        assert isinstance(instances, MisoInstances)
        options = {"time_limit": args.time_limit, "gap": args.gap}
        rows = []
        for i, item in enumerate(instance_dicts(instances)):
            packed, message, wall, cpu = timed(global_miso.solve_instance_with_bound, item, options)
            one = instances[i : i + 1]
            k, nt = instances.num_users, instances.num_antennas
            beams = torch.as_tensor(packed[: nt * k].reshape(1, nt, k))
            value = float(miso_problem.weighted_sum_rate(beams, one)[0])
            bound = float(np.real(packed[-2]))
            row = {
                "wall_s": wall,
                "cpu_s": cpu,
                "wsr": value,
                "upper_bound": bound,
                "gap": (bound - value) / bound,
                "converged": bool(np.real(packed[-1]) == 1.0),
                "feasible": bool(miso_problem.is_feasible(beams, one)[0]),
                "message": message,
            }
            if args.reference:
                w_beams, _, w_wall, _ = timed(wmmse.solve_instance, item, {})
                w_value = float(
                    miso_problem.weighted_sum_rate(torch.as_tensor(w_beams)[None], one)[0]
                )
                row["wmmse_wsr"] = w_value
                row["wmmse_below_bound"] = (bound - w_value) / bound
                row["wmmse_wall_s"] = w_wall
            rows.append(row)
            print(f"{point} dB instance {i}: {wall:6.2f} s wall, {message}", flush=True)
        out[point] = {"scenario": scenario.summary(), "rows": rows, **aggregate(rows, "wmmse")}
    return out


def aggregate(rows: list[dict[str, Any]], reference: str) -> dict[str, Any]:
    """Summary figures over the instances of one run."""
    result: dict[str, Any] = {
        "instances": len(rows),
        "converged": sum(r["converged"] for r in rows),
        "feasible": sum(r["feasible"] for r in rows),
        "wall_s": summary([r["wall_s"] for r in rows]),
        "cpu_s": summary([r["cpu_s"] for r in rows]),
        "gap": summary([r["gap"] for r in rows]),
    }
    key = f"{reference}_below_bound"
    if rows and key in rows[0]:
        result[key] = summary([r[key] for r in rows])
        result[f"{reference}_within_gap"] = sum(r[key] <= 1e-3 for r in rows)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", choices=("pc", "miso"))
    parser.add_argument("--num-bs", type=int, default=3)
    parser.add_argument("--num-channels", type=int, default=2)
    parser.add_argument("--points", default="0,5,10,15,20", help="MISO SNR points [dB]")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=600.0)
    parser.add_argument("--gap", type=float, default=1e-3)
    parser.add_argument(
        "--indices", default=None, help="power control: only these instances, e.g. 10 or 3,10"
    )
    parser.add_argument(
        "--no-reference", dest="reference", action="store_false", help="skip SCA / WMMSE"
    )
    parser.add_argument("--out", default=None, help="JSON file for the per-instance figures")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = power_control(args) if args.family == "pc" else miso(args)
    printable = {k: v for k, v in result.items() if k != "rows"}
    if args.family == "miso":
        printable = {p: {k: v for k, v in r.items() if k != "rows"} for p, r in result.items()}
    print(json.dumps(printable, indent=1))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
