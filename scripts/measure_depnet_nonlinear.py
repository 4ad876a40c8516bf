"""DEPNet (``correction+mlp``) on the non-linear constraint sets of the power-control paper.

Trains the ``depnet`` preset on B = 4, Q = 2 path-loss instances written as

* ``rate``: the minimum rates as the non-linear rows ``1 - R_bq / alpha_bq`` (eq. 2), and
* ``energy-efficiency``: ``R_bq >= ee_bq P_bq`` (preset ``fig12-ee-20``, optionally with rates),

and reports the test split's violation count (float64 check, rtol 1e-6), mean sum rate and
time per sample. Usage::

    python scripts/measure_depnet_nonlinear.py --samples 2000 --epochs 5 [--sca]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from feasnet.data.generate import generate
from feasnet.data.presets import get_preset
from feasnet.methods import get_method
from feasnet.problems.power_control_problem import PowerControlProblem
from feasnet.training import TrainConfig, load_model, model_result, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sets", default="rate,energy-efficiency,energy-efficiency+rate")
    parser.add_argument("--sca", action="store_true", help="also solve the test split with SCA")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rate_network = get_preset("small").model_copy(
        update={"name": "path-loss-4x2", "num_bs": 4, "num_channels": 2}
    )
    scenarios = {
        "rate": (rate_network, PowerControlProblem("rate")),
        "energy-efficiency": (get_preset("fig12-ee-20"), None),
        "energy-efficiency+rate": (get_preset("fig12-ee-20-rate-2.5"), None),
    }
    for name in args.sets.split(","):
        scenario, problem = scenarios[name]
        instances, _ = generate(scenario, args.samples, seed=args.seed)
        n = len(instances)
        train_set, validation, test = (
            instances[: int(0.7 * n)],
            instances[int(0.7 * n) : int(0.8 * n)],
            instances[int(0.8 * n) :],
        )
        with tempfile.TemporaryDirectory() as folder:
            config = TrainConfig(epochs=args.epochs, seed=args.seed)
            train(get_method("depnet"), train_set, validation, Path(folder), config,
                  log=lambda _: None, problem=problem)  # fmt: skip
            model, _ = load_model(Path(folder))
        result = model_result(model, test)
        violations = int((~torch.as_tensor(result.feasible)).sum())
        print(
            f"{name} ({model.problem.name}, {scenario.name}): test {len(test)} instances, "
            f"violations {violations} ({100 * violations / len(test):.2f} %), mean sum rate "
            f"{float(result.sum_rate.mean()) / 1e6:.2f} Mbit/s, "
            f"{float(result.seconds.mean()) * 1e3:.3f} ms/sample",
            flush=True,
        )
        if args.sca:
            from feasnet import solvers

            reference = solvers.solve("sca", test)
            ok = torch.as_tensor(reference.feasible)
            print(
                f"  SCA: feasible {int(ok.sum())}/{len(test)}, mean sum rate "
                f"{float(reference.sum_rate.mean()) / 1e6:.2f} Mbit/s; DEPNet / SCA "
                f"{float(result.sum_rate.mean()) / float(reference.sum_rate.mean()):.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
