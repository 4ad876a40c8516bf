"""Time the projection layers: batched interior point (``qp``) vs cvxpylayers.

Run ``python -m feasnet.layers.bench_projection`` (``--help`` for options). For each problem
size it times, per sample, the forward pass (no autograd) and forward + backward of a random
linear functional, for both layers, prints a table and the speed-up of the batched layer.

Instances: ``B`` BSs, ``Q`` channels, direct gains ``(1 + U(0,1)) 1e-4``, cross gains
``U(0, 0.2) 1e-4``, noise 1e-8 W, ``pmax`` 1 mW, W = 5 MHz, 2.5 Mbit/s per user (all feasible
for the sizes below, checked). Raw outputs: ``sigmoid(N(0, 1))`` per entry, as DIPNet's
backbone ends with a sigmoid. Times are medians over repeats, after one warm-up call, and
include the per-batch set-up both layers share (constraints, exact feasibility test, anchor,
feasibility safeguard). Wall-clock and process CPU times are both reported: on a shared
machine the CPU time is the steadier of the two. ``--threads 1`` gives both layers one core
(torch threads and diffcp's thread pool).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from feasnet.layers.qp_projection import ProjectionLayer
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.power_control import is_feasible, minimum_power
from feasnet.problems.power_control_problem import PowerControlProblem

DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((3, 2), (4, 5), (6, 4))


def bench_instances(
    num: int, num_bs: int, num_channels: int, seed: int = 0
) -> PowerControlInstances:
    """Feasible-by-construction random instances (see the module docstring), float64."""
    g = torch.Generator().manual_seed(seed)
    gain = 0.2 * torch.rand(num, num_bs, num_channels, num_bs, generator=g, dtype=torch.float64)
    idx = torch.arange(num_bs)
    gain[:, idx, :, idx] = 1.0 + torch.rand(
        num_bs, num, num_channels, generator=g, dtype=torch.float64
    )
    inst = PowerControlInstances.from_arrays(gain * 1e-4, 1e-3, 1e-8, 5e6, 2.5e6)
    if not bool(minimum_power(inst).feasible.all()):  # pragma: no cover - recipe guard
        raise RuntimeError("bench_instances: drew an infeasible instance")
    return inst


@dataclass(frozen=True)
class Timing:
    """Median seconds per sample: wall clock and process CPU time (all threads)."""

    wall: float
    cpu: float


def _median_time(fn: Callable[[], object], repeats: int, per: int) -> Timing:
    fn()  # warm-up (cvxpylayers canonicalization, caches)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return Timing(statistics.median(walls) / per, statistics.median(cpus) / per)


def time_layer(
    layer: nn.Module,
    raw: Tensor,
    instances: PowerControlInstances,
    weights: Tensor,
    repeats: int,
) -> tuple[Timing, Timing, Tensor]:
    """Per-sample timings of forward (no autograd) and of forward + backward, and an output."""
    n = raw.shape[0]

    def forward() -> Tensor:
        with torch.no_grad():
            out = layer(raw, instances)
        if raw.is_cuda:
            torch.cuda.synchronize()
        return out

    def forward_backward() -> Tensor:
        v = raw.clone().requires_grad_()
        out = layer(v, instances)
        (out * weights).sum().backward()
        if raw.is_cuda:
            torch.cuda.synchronize()
        return out

    t_fwd = _median_time(forward, repeats, n)
    t_both = _median_time(forward_backward, repeats, n)
    return t_fwd, t_both, forward()


def _row(label: str, batch: int, fwd: Timing, both: Timing, extra: str) -> str:
    return (
        f"{label:<28} {batch:>5} {1e6 * fwd.wall:>9.1f} {1e6 * fwd.cpu:>9.1f} "
        f"{1e6 * both.wall:>9.1f} {1e6 * both.cpu:>9.1f}  {extra}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256, help="batch of the batched layer")
    parser.add_argument(
        "--cvx-batch", type=int, default=64, help="batch of the cvxpylayers layer (slow)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    parser.add_argument("--cvx-repeats", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads, and the size of diffcp's thread pool",
    )
    parser.add_argument("--device", default="cpu", help="device of the batched layer")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--no-cvxpy", action="store_true", help="skip cvxpylayers")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}, "
        f"dtype {args.dtype}; medians per sample in microseconds (wall clock / process CPU)"
    )
    header = (
        f"{'layer':<28} {'batch':>5} {'fwd wall':>9} {'fwd cpu':>9} {'f+b wall':>9} "
        f"{'f+b cpu':>9}  notes"
    )
    print(header)
    print("-" * (len(header) + 20))
    speedups: list[str] = []
    for b, q in DEFAULT_SIZES:
        inst = bench_instances(args.batch, b, q, seed=args.seed + 17 * b + q)
        g = torch.Generator().manual_seed(args.seed)
        raw64 = torch.sigmoid(torch.randn(args.batch, b, q, generator=g, dtype=torch.float64))
        weights64 = torch.randn(args.batch, b, q, generator=g, dtype=torch.float64)
        inst_d = inst.to(dtype, device)
        raw = raw64.to(dtype=dtype, device=device)
        weights = weights64.to(dtype=dtype, device=device)
        qp = ProjectionLayer(PowerControlProblem())
        q_fwd, q_both, out = time_layer(qp, raw, inst_d, weights, args.repeats)
        info = qp.last_info
        assert info is not None
        feasible = is_feasible(out.double().cpu() * inst.pmax[:, None, None], inst).all()
        if not bool(feasible):  # pragma: no cover - would be a bug
            raise RuntimeError("the qp layer returned an infeasible point")
        u, m = b * q, 2 * b * q + b
        notes = (
            f"iters mean {info.iterations.double().mean().item():.1f} max "
            f"{info.max_iterations}, polished {int(info.polished.sum())}/{args.batch}"
        )
        print(_row(f"B,Q={b},{q} U={u} M={m} batched", args.batch, q_fwd, q_both, notes))
        if args.no_cvxpy:
            continue
        from feasnet.layers.cvxpy_projection import DEFAULT_SOLVER_ARGS, CvxpyProjectionLayer

        nc = min(args.cvx_batch, args.batch)
        solver_args = dict(DEFAULT_SOLVER_ARGS)
        if args.threads is not None:  # same number of cores for diffcp's thread pool
            solver_args.update(n_jobs_forward=args.threads, n_jobs_backward=args.threads)
        cvx = CvxpyProjectionLayer(PowerControlProblem())
        cvx.solver_args = solver_args
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c_fwd, c_both, c_out = time_layer(
                cvx, raw[:nc].cpu(), inst_d[:nc].to(device="cpu"), weights[:nc].cpu(),
                args.cvx_repeats,
            )  # fmt: skip
        diff = (c_out.double() - out[:nc].double().cpu()).abs().max().item()
        print(_row(f"{'':>19}cvxpylayers", nc, c_fwd, c_both, f"max |x - x_cvx| {diff:.1e}"))
        speedups.append(
            f"(B,Q)=({b},{q}): batched layer faster per sample by "
            f"{c_fwd.wall / q_fwd.wall:.0f}x forward, {c_both.wall / q_both.wall:.0f}x "
            f"forward+backward (wall clock); {c_fwd.cpu / q_fwd.cpu:.0f}x / "
            f"{c_both.cpu / q_both.cpu:.0f}x (CPU time)"
        )
    if speedups:
        print()
        print("\n".join(speedups))


if __name__ == "__main__":
    main()
