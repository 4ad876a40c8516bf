"""Convergence and timing of the DEPNet correction, the guard and the MLP backbone.

Figures in docs/layers-correction-penalty-guard.md and docs/nets-mlp.md. Run from the
repository root (about two minutes, most of it drawing the 4 x 5 path-loss instances):
    FEASNET_PROGRESS=0 PYTHONPATH=. .venv/bin/python scripts/measure_correction.py [threads]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import torch

from feasnet.data import generate, get_preset
from feasnet.layers.correction import (
    CorrectionLayer,
    correct,
    default_margin,
    equilibrate_rows,
    squared_violation,
    tighten,
)
from feasnet.layers.guard import FeasibilityGuard
from feasnet.nets import PowerControlMLP
from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.power_control_problem import PowerControlProblem

BATCH = 1024


def newton_steps_needed(
    x0: torch.Tensor, cons: pc.LinearConstraints, bound_passes: int, cap: int = 100
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample Newton steps until done (the early-exit test; -1: never) and the result."""
    accept = tighten(cons, 0.5 * default_margin(x0.dtype))
    x, steps = x0, torch.full((x0.shape[0],), -1)
    for k in range(cap + 1):
        done = (torch.einsum("nmu,nu->nm", accept.G, x) <= accept.h).all(dim=1)
        steps = torch.where((steps < 0) & done, torch.tensor(k), steps)
        if k < cap:  # Newton is memoryless: one step at a time, done samples frozen
            step = correct(x, cons, 1, "newton", bound_passes=bound_passes)
            x = torch.where(done[:, None], x, step)
    return steps, x


def median_ms(fn: Callable[[], object], repeat: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def feasible_fraction(x: torch.Tensor, inst: PowerControlInstances) -> float:
    b, q = inst.num_bs, inst.num_channels
    power = pc.to_matrix(x.double(), b, q) * inst.pmax[:, None, None]
    return float(pc.is_feasible(power, inst).double().mean())


def convergence(inst: PowerControlInstances, name: str) -> None:
    cons = pc.linear_constraints(inst)
    torch.manual_seed(0)
    net = PowerControlMLP(inst.num_bs, inst.num_channels).fit_normalizer(inst).eval()
    with torch.no_grad():
        starts = {
            "uniform [0,1]": torch.rand(len(inst), inst.num_users, dtype=torch.float64),
            "untrained MLP": pc.to_vector(net(inst).double()),
        }
    for label, x0 in starts.items():
        print(
            f"{name} {label}: feasible at start {feasible_fraction(x0, inst):.3f}, "
            f"V0 mean {squared_violation(x0, cons).mean():.3g}"
        )
        for bound_passes in (0, 2):
            steps, x = newton_steps_needed(x0, cons, bound_passes)
            ok = steps[steps >= 0].double()
            quant = [int(torch.quantile(ok, p)) for p in (0.5, 0.9, 0.99)] + [int(ok.max())]
            print(
                f"    Newton bound_passes={bound_passes}: steps to done (median/90%/99%/max) "
                f"{quant}, not done after 100: {int((steps < 0).sum())}, failing the float64 "
                f"check after 100: {round((1 - feasible_fraction(x, inst)) * len(inst))}"
            )
        for equilibrate in (False, True):
            rows = equilibrate_rows(cons) if equilibrate else cons
            ratios = []
            for step_size in (0.03, 0.1, 0.3, 0.5):
                x_in = x0.clone().requires_grad_()
                x5 = correct(
                    x_in, cons, 5, "gradient", step_size=step_size, equilibrate=equilibrate
                )
                (jac,) = torch.autograd.grad(x5.sum(), x_in)
                x5 = x5.detach()
                before = squared_violation(x0, rows)
                ratio = (squared_violation(x5, rows) / before)[before > 0].median()
                ratios.append(f"{step_size}: {ratio:.1e} (J {jac.abs().max():.1f})")
            print(
                f"    5 gradient steps, equilibrate={equilibrate}: median V after / before "
                f"(max |d sum(x5) / d x0|) by step size: {', '.join(ratios)}"
            )
        for n_steps in (5, 10, 20, 100):
            gd = correct(x0, cons, n_steps, "gradient")
            nt = correct(x0, cons, n_steps, "newton")
            print(
                f"    {n_steps:3d} steps: feasible Newton {feasible_fraction(nt, inst):.3f}, "
                f"gradient (default step 0.3) {feasible_fraction(gd, inst):.3f}"
            )


def timings(inst64: PowerControlInstances, name: str) -> None:
    b, q = inst64.num_bs, inst64.num_channels
    inst = inst64.to(torch.float32)
    torch.manual_seed(0)
    net = PowerControlMLP(b, q).fit_normalizer(inst64).eval()
    layer = CorrectionLayer(PowerControlProblem()).eval()
    guard = FeasibilityGuard()
    with torch.no_grad():
        raw = net(inst)
        uniform = torch.rand(raw.shape)
        corrected = layer(raw, inst)
        rows = {
            "linear_constraints": lambda: pc.linear_constraints(inst),
            "MLP forward (eval)": lambda: net(inst),
            "correction eval, untrained-MLP start": lambda: layer(raw, inst),
            "correction eval, uniform start": lambda: layer(uniform, inst),
            "guard alone, on the corrected output": lambda: guard(corrected, inst),
            "MLP + correction + guard": lambda: guard(layer(net(inst), inst), inst),
        }
        out = {key: median_ms(fn) for key, fn in rows.items()}
    train_layer = CorrectionLayer(PowerControlProblem()).train()
    raw_t = raw.clone().requires_grad_()

    def train_step() -> None:
        train_layer(raw_t, inst).sum().backward()

    out["correction train (5 GD steps), fwd+bwd"] = median_ms(train_step)
    guard.reset_counts()
    guard_out = guard(corrected, inst)
    assert bool(pc.is_feasible(guard_out * inst.pmax[:, None, None], inst).all())
    for key, ms in out.items():
        print(f"{name} batch {BATCH}: {key}: {ms:.2f} ms, {1e3 * ms / BATCH:.1f} us/sample")
    print(f"{name}: the guard fired on {guard.fired_count} of {BATCH} corrected outputs")


def main(threads: int) -> None:
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for preset in ("small", "table2-4"):
        inst, _ = generate(get_preset(preset), BATCH, seed=0)
        name = f"{preset} (B={inst.num_bs}, Q={inst.num_channels})"
        convergence(inst, name)
        timings(inst, name)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
