"""One training loop for every learned method, with checkpoints, resume and early stopping.

A run folder holds:

* ``checkpoint.pt`` — everything needed to resume (model, optimizer, scheduler, epoch, RNG
  state, history), rewritten atomically after every epoch;
* ``model.pt`` — the best model so far by the method's validation metric, loadable with
  ``torch.load(path, weights_only=True)``: plain tensors and primitives, carrying the method
  configuration, the (B, Q) size and the ranges of the training scalars;
* ``history.json`` — one row per epoch (loss, validation sum rate, violation probability).

Training is self-supervised: the loss is the problem's own objective (the soft loss
``-R / W + lambda V``), no labels needed.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from feasnet.atomic import atomic_path, write_text
from feasnet.methods import MethodConfig, PowerControlModel
from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances
from feasnet.progress import progress_bar
from feasnet.solvers.result import AllocationResult

MODEL_FORMAT = "feasnet-power-control-model"
MODEL_FORMAT_VERSION = 1


class TrainConfig(BaseModel):
    """Optimization settings (paper: Adam, lr 1e-3, decay 0.99, 20 epochs, batch 10).

    We use batch 64 instead of the paper's 10: on a CPU the per-step overhead dominates at
    batch 10, and 64 trains as well per epoch while running several times faster.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=2)
    learning_rate: float = Field(1e-3, gt=0)
    lr_decay: float = Field(0.99, gt=0, le=1)
    patience: int = Field(6, ge=1, description="epochs without improvement before stopping")
    max_train_samples: int | None = Field(None, ge=1)
    seed: int = 0
    device: str = "cpu"
    threads: int | None = Field(None, ge=1)


def _validation_metrics(
    model: PowerControlModel, instances: PowerControlInstances, batch_size: int = 2048
) -> dict[str, float]:
    """Mean sum rate (violations as 0) [bit/s] and violation probability, network only."""
    model.eval()
    rates, feasible = [], []
    with torch.no_grad():
        for start in range(0, len(instances), batch_size):
            chunk = instances[start : start + batch_size]
            x = model(chunk)
            inst64 = chunk.to(torch.float64, x.device)
            power = x.double() * inst64.pmax[:, None, None]
            ok = pc.is_feasible(power, inst64)
            rate = torch.nan_to_num(pc.sum_rate(power.clamp(min=0), inst64))
            rates.append(torch.where(ok, rate, torch.zeros_like(rate)).cpu())
            feasible.append(ok.cpu())
    model.train()
    all_rates = torch.cat(rates)
    all_ok = torch.cat(feasible)
    return {
        "sum_rate": float(all_rates.mean()),
        "violation_probability": float(1.0 - all_ok.double().mean()),
    }


def _score(config: MethodConfig, metrics: dict[str, float]) -> tuple[float, float]:
    """Larger is better: (primary, tie-breaker) by the method's selection rule."""
    if config.selection == "violation":
        return (-metrics["violation_probability"], metrics["sum_rate"])
    return (metrics["sum_rate"], -metrics["violation_probability"])


def scalar_ranges(instances: PowerControlInstances) -> dict[str, list[float]]:
    """``[min, max]`` of each per-instance scalar and of the rate targets."""
    return {
        name: [float(getattr(instances, name).min()), float(getattr(instances, name).max())]
        for name in ("pmax", "noise", "bandwidth", "min_rate")
    }


def model_payload(
    model: PowerControlModel, ranges: dict[str, list[float]], extra: dict[str, Any]
) -> dict[str, Any]:
    """What ``model.pt`` holds (only tensors and primitives: ``weights_only`` loads it)."""
    return {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "method": model.config.model_dump(mode="json"),
        "num_bs": model.num_bs,
        "num_channels": model.num_channels,
        "training_ranges": ranges,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }


def _save(payload: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def train(
    method: MethodConfig,
    train_set: PowerControlInstances,
    validation_set: PowerControlInstances,
    out_dir: Path,
    config: TrainConfig | None = None,
    resume: bool = False,
    metadata: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``method`` and write the run folder; returns the final summary.

    Args:
        method: the method preset (see :data:`feasnet.methods.METHODS`).
        train_set, validation_set: instances of one (B, Q) size.
        out_dir: run folder (created).
        config: optimization settings.
        resume: continue from ``out_dir/checkpoint.pt`` if it exists.
        metadata: extra primitives stored in ``model.pt`` (e.g. the scenario).
        log: where progress lines go.
    """
    config = config or TrainConfig()
    if config.threads:
        torch.set_num_threads(config.threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(config.device)
    if config.max_train_samples is not None:
        train_set = train_set[: config.max_train_samples]
    torch.manual_seed(config.seed)
    model = PowerControlModel(method, train_set.num_bs, train_set.num_channels)
    model.backbone.fit_normalizer(train_set)
    model.to(device)
    train_dev = train_set.to(torch.float32, device)
    validation_dev = validation_set.to(torch.float32, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    ranges = scalar_ranges(train_set)
    extra = {"metadata": metadata or {}, "train_config": config.model_dump(mode="json")}
    checkpoint_path, model_path = out_dir / "checkpoint.pt", out_dir / "model.pt"

    start_epoch, history = 0, []
    best: tuple[float, float] = (-math.inf, -math.inf)
    if resume and checkpoint_path.exists():
        state = torch.load(checkpoint_path, weights_only=True, map_location=device)
        if state["method"] != method.model_dump(mode="json"):
            raise ValueError(
                f"resume: {checkpoint_path} was written for another method configuration"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        start_epoch, history = int(state["epoch"]), list(state["history"])
        best = (float(state["best"][0]), float(state["best"][1]))
        log(f"resumed {method.name} from epoch {start_epoch}")

    stale = 0 if not history else _epochs_since_best(history)
    n = len(train_dev)
    steps = math.ceil(n / config.batch_size)
    for epoch in range(start_epoch, config.epochs):
        if stale >= config.patience:
            log(f"early stop: no improvement in {config.patience} epochs")
            break
        model.train()
        started = time.perf_counter()
        # one shuffle stream per epoch, so a resumed run sees the same batches
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=generator).to(device)
        total = 0.0
        with progress_bar(f"{method.name} epoch {epoch + 1}/{config.epochs}", steps) as advance:
            for k in range(steps):
                index = order[k * config.batch_size : (k + 1) * config.batch_size]
                if len(index) < 2:  # batch norm needs two samples
                    continue
                batch = train_dev[index]
                loss = model.loss(model(batch), batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                optimizer.step()
                total += float(loss.detach()) * len(index)
                advance(1)
        scheduler.step()
        metrics = _validation_metrics(model, validation_dev)
        score = _score(method, metrics)
        improved = score > best
        if improved:
            best, stale = score, 0
            _save(
                model_payload(model, ranges, {**extra, "epoch": epoch + 1, **metrics}), model_path
            )
        else:
            stale += 1
        row = {
            "epoch": epoch + 1,
            "train_loss": total / n,
            "validation_sum_rate": metrics["sum_rate"],
            "validation_violation_probability": metrics["violation_probability"],
            "seconds": time.perf_counter() - started,
            "best": improved,
        }
        history.append(row)
        _save(
            {
                "method": method.model_dump(mode="json"),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "epoch": epoch + 1,
                "history": history,
                "best": list(best),
            },
            checkpoint_path,
        )
        write_text(out_dir / "history.json", json.dumps(history, indent=2) + "\n")
        log(
            f"{method.name} epoch {epoch + 1}: loss {row['train_loss']:.4f}, validation sum rate "
            f"{metrics['sum_rate'] / 1e6:.2f} Mbit/s, violation prob. "
            f"{metrics['violation_probability']:.4f}, {row['seconds']:.1f} s"
            + (" *" if improved else "")
        )
    return {"method": method.name, "best_epoch": _best_epoch(history), "history": history}


def _best_epoch(history: list[dict[str, Any]]) -> int:
    best = [row["epoch"] for row in history if row["best"]]
    return best[-1] if best else 0


def _epochs_since_best(history: list[dict[str, Any]]) -> int:
    return len(history) - _best_epoch(history)


def load_model(path: Path) -> tuple[PowerControlModel, dict[str, Any]]:
    """Load ``model.pt`` (or a run folder holding one) with ``weights_only=True``."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.exists():
        raise FileNotFoundError(f"model: {path} does not exist (train one with `feasnet train`)")
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        raise ValueError(f"model: {path} is not a feasnet model file ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"model: {path} is not a feasnet model file")
    method = MethodConfig.model_validate(payload["method"])
    model = PowerControlModel(method, int(payload["num_bs"]), int(payload["num_channels"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload


def model_result(
    model: PowerControlModel,
    instances: PowerControlInstances,
    guard: bool | None = None,
    name: str | None = None,
) -> AllocationResult:
    """Allocate with a trained model and package the float64-checked result.

    Infeasible instances carry the exact test's reason; samples the guard repaired say so.
    Time per sample is the batch's wall time divided by its size.
    """
    model.check_size(instances)
    power, fired, seconds = model.allocate(instances, guard=guard)
    reasons = pc.minimum_power(instances).reasons()
    messages = [
        reason or ("guard fired" if was_fixed else "")
        for reason, was_fixed in zip(reasons, fired.tolist(), strict=True)
    ]
    return AllocationResult.from_power(
        name or model.config.name, power, instances, seconds / len(instances), messages
    )


def warn_if_outside_training(
    payload: dict[str, Any], instances: PowerControlInstances, rtol: float = 1e-9
) -> list[str]:
    """Warn (and return the reasons) when instance scalars leave the training ranges.

    The layers read each instance's own constraints, so allocations stay feasible; only the
    quality of the backbone's guess may suffer.
    """
    reasons = []
    for name, (low, high) in payload["training_ranges"].items():
        values = getattr(instances, name)
        if float(values.min()) < low * (1 - rtol) or float(values.max()) > high * (1 + rtol):
            reasons.append(
                f"{name} in [{float(values.min()):.4g}, {float(values.max()):.4g}] is outside "
                f"the training range [{low:.4g}, {high:.4g}]"
            )
    for reason in reasons:
        warnings.warn(
            f"running outside the training distribution: {reason}", UserWarning, stacklevel=2
        )
    return reasons
