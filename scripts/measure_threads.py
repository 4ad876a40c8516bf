"""Measure the thread policy of :mod:`feasnet.threads` idle and next to a CPU-bound process.

Trains a DEPNet on the ``small`` preset (B=3, Q=2) for a couple of epochs (or loads
``--model``), then times inference on 512 instances under four conditions, side by side:

    {policy threads, torch's default threads} x {idle, with a busy-loop neighbour process}

and the end-to-end ``feasnet solve FILE --model RUN --out X.npz`` (its reported ms per
instance) idle and with the neighbour. The neighbour is started and killed by this script.
"Idle" means no neighbour of ours: other processes on the machine still count, so run it on a
quiet machine for clean figures.

    .venv/bin/python scripts/measure_threads.py            # about 1 min on 2 cores
    .venv/bin/python scripts/measure_threads.py --quick    # under 2 min
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from feasnet.data import exchange
from feasnet.data.generate import generate
from feasnet.data.presets import get_preset
from feasnet.methods import get_method
from feasnet.threads import available_cores, model_work, threads_for
from feasnet.training import TrainConfig, load_model, model_result, train

DEFAULT_THREADS = torch.get_num_threads()
"""torch's own default (the cores), read before anything changes it."""


def _busy_loop() -> None:  # pragma: no cover - runs in the neighbour process
    while True:
        pass


@contextmanager
def neighbour(active: bool) -> Iterator[None]:
    """A CPU-bound Python process running for the duration of the body (if ``active``)."""
    if not active:
        yield
        return
    process = mp.get_context("spawn").Process(target=_busy_loop, daemon=True)
    process.start()
    time.sleep(0.5)  # let it start spinning
    try:
        yield
    finally:
        process.kill()
        process.join()


def train_model(run_dir: Path, samples: int, epochs: int) -> Path:
    """A DEPNet trained on ``samples`` instances of ``small`` (10 % held out), in ``run_dir``."""
    instances, _ = generate(get_preset("small"), samples, seed=1)
    held_out = samples // 10
    train(
        get_method("depnet"),
        instances[:-held_out],
        instances[-held_out:],
        run_dir,
        TrainConfig(epochs=epochs),
        log=lambda _line: None,
    )
    return run_dir


def time_inference(net: torch.nn.Module, instances, threads: int | None, reps: int) -> float:  # type: ignore[no-untyped-def]
    """Median per-instance time [ms] that ``model_result`` reports over ``reps`` runs."""
    model_result(net, instances[:8], threads=threads)  # warm-up
    times = [
        float(model_result(net, instances, threads=threads).seconds[0]) * 1e3 for _ in range(reps)
    ]
    return statistics.median(times)


def time_cli(npz: Path, run_dir: Path, out: Path, reps: int) -> float:
    """Median ms per instance that ``feasnet solve --model`` reports over ``reps`` runs."""
    feasnet = Path(sys.executable).with_name("feasnet")
    values = []
    for _ in range(reps):
        done = subprocess.run(
            [str(feasnet), "solve", str(npz), "--model", str(run_dir), "--out", str(out)],
            capture_output=True,
            text=True,
            check=True,
        )
        match = re.search(r"([0-9.eE+-]+) ms per\s+instance", done.stdout)
        if match is None:
            raise RuntimeError(f"no 'ms per instance' in feasnet's output: {done.stdout!r}")
        values.append(float(match.group(1)))
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="reuse a trained DEPNet run folder")
    parser.add_argument("--instances", type=int, default=512, help="instances to solve")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (< 2 min)")
    args = parser.parse_args()
    reps, cli_reps = (5, 3) if args.quick else (15, 5)

    with tempfile.TemporaryDirectory(prefix="measure-threads-") as tmp:
        folder = Path(tmp)
        run_dir = args.model or train_model(folder / "depnet", 2000, 1 if args.quick else 2)
        net, _ = load_model(run_dir)
        instances, _ = generate(get_preset("small"), args.instances, seed=2)
        npz = exchange.save_npz(folder / "test.npz", instances)
        policy = threads_for(model_work(net, len(instances)))
        print(
            f"{available_cores()} cores, load average {os.getloadavg()[0]:.2f} before; DEPNet on "
            f"small (B=3, Q=2), {len(instances)} instances; policy: {policy} thread(s), torch "
            f"default: {DEFAULT_THREADS}; median of {reps} runs (CLI: {cli_reps})"
        )
        table: dict[tuple[str, bool], float] = {}
        for busy in (False, True):
            with neighbour(busy):
                table["policy", busy] = time_inference(net, instances, None, reps)
                table["default", busy] = time_inference(net, instances, DEFAULT_THREADS, reps)
                table["cli", busy] = time_cli(npz, run_dir, folder / "out.npz", cli_reps)

    rows = (
        ("policy", f"policy ({policy} thread)"),
        ("default", f"torch default ({DEFAULT_THREADS} threads)"),
        ("cli", "feasnet solve --model (policy)"),
    )
    print(f"\n{'ms per instance':34} {'idle':>9} {'neighbour':>10} {'neighbour/idle':>15}")
    for key, label in rows:
        idle, loaded = table[key, False], table[key, True]
        print(f"{label:34} {idle:9.4f} {loaded:10.4f} {loaded / idle:14.2f}x")
    for busy, label in ((False, "idle"), (True, "neighbour")):
        ratio = table["default", busy] / table["policy", busy]
        print(f"torch default / policy, {label}: {ratio:.1f}x")


if __name__ == "__main__":
    main()
