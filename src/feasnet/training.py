"""One training loop for every learned method, with checkpoints, resume and early stopping.

A run folder holds:

* ``checkpoint.pt`` — everything needed to resume (model, optimizer, scheduler, epoch, RNG
  state, history), rewritten atomically after every epoch;
* ``model.pt`` — the best model so far by the method's validation metric, loadable with
  ``torch.load(path, weights_only=True)``: plain tensors and primitives, carrying the method
  configuration, the problem (family and constraint set), the variable shape and the ranges
  of the training scalars;
* ``history.json`` — one row per epoch (loss, validation sum rate, violation probability).

Training is self-supervised: the loss asks the problem (``-objective / objective_scale +
lambda * violation``; power control: the soft loss ``-R / W + lambda V``), no labels needed.
The loop never looks at the family: the model and the problem answer.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from feasnet.atomic import atomic_path, write_text
from feasnet.methods import MethodConfig, config_from_dict
from feasnet.models import LearnedModel, build_model
from feasnet.objectives import MissingLabelsError, label_targets, needs_labels, training_loss
from feasnet.problems.base import Problem
from feasnet.problems.registry import get_family
from feasnet.progress import progress_bar
from feasnet.run_folder import RunFolderError
from feasnet.solvers.result import Result
from feasnet.threads import intra_op_threads, model_work, threads_for
from feasnet.train_config import TrainConfig

MODEL_FORMAT = "feasnet-power-control-model"
"""``format`` key of every model file (the name predates the MISO family; kept so that older
files stay loadable)."""
MODEL_FORMAT_VERSION = 2
"""2: nested method configuration, problem and variable shape; 1: flat configuration and
per-family size keys (still loaded)."""

Instances = Any
"""A batch of instances of any registered family."""
VALIDATION_FRACTION_OF_TRAIN = 1 / 7
"""Share of the training split held out for early stopping when a data set has no validation
split (the MISO sets follow the survey's 7:3 train/test split)."""


def _validation_metrics(
    model: LearnedModel, instances: Instances, batch_size: int = 2048
) -> dict[str, float]:
    """Mean objective (violations as 0) and violation probability of the network output."""
    model.eval()
    values, feasible = [], []
    with torch.no_grad():
        for start in range(0, len(instances), batch_size):
            objective, ok = model.objective_and_feasibility(instances[start : start + batch_size])
            values.append(torch.where(ok, objective, torch.zeros_like(objective)).cpu())
            feasible.append(ok.cpu())
    model.train()
    all_values = torch.cat(values)
    all_ok = torch.cat(feasible)
    return {
        "objective": float(all_values.mean()),
        "violation_probability": float(1.0 - all_ok.double().mean()),
    }


def _score(config: MethodConfig, metrics: dict[str, float]) -> tuple[float, float]:
    """Larger is better: (primary, tie-breaker) by the method's selection rule."""
    if config.selection == "violation":
        return (-metrics["violation_probability"], metrics["objective"])
    return (metrics["objective"], -metrics["violation_probability"])


def _scalar_arrays(problem: Problem, instances: Instances) -> dict[str, np.ndarray]:
    """The real exchange arrays of ``instances`` with at most 3 dimensions (budgets, noise,
    targets; not the channel gains)."""
    arrays = problem.instances_to_arrays(instances)
    return {
        key: np.asarray(value)
        for key, value in arrays.items()
        if not np.iscomplexobj(value) and np.ndim(value) <= 3
    }


def scalar_ranges(problem: Problem, instances: Instances) -> dict[str, list[float]]:
    """``[min, max]`` of each scalar and target array of the exchange format."""
    return {
        key: [float(value.min()), float(value.max())]
        for key, value in _scalar_arrays(problem, instances).items()
        if value.size
    }


def model_payload(
    model: LearnedModel, ranges: dict[str, list[float]], extra: dict[str, Any]
) -> dict[str, Any]:
    """What ``model.pt`` holds (only tensors and primitives: ``weights_only`` loads it)."""
    return {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "family": model.problem.family,
        "constraint_set": model.problem.constraint_set,
        "method": model.config.model_dump(mode="json"),
        **model.size(),
        "training_ranges": ranges,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }


def _save(payload: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _under_thread_policy(train_fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``train_fn`` with ``threads_for(training work, config.threads)`` torch threads.

    The work is one training step of the method's model at the configured batch size (see
    :func:`feasnet.threads.model_work`); the caller's thread setting is restored afterwards.
    """
    signature = inspect.signature(train_fn)

    @functools.wraps(train_fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(*args, **kwargs).arguments
        config = arguments.get("config") or TrainConfig()
        probe = build_model(
            arguments["method"], arguments["train_set"], problem=arguments.get("problem")
        )  # only to size it
        work = model_work(probe, config.batch_size, training=True)
        with intra_op_threads(threads_for(work, config.threads)):
            return train_fn(*args, **kwargs)

    return wrapper


@_under_thread_policy
def train(
    method: MethodConfig,
    train_set: Instances,
    validation_set: Instances,
    out_dir: Path,
    config: TrainConfig | None = None,
    resume: bool = False,
    metadata: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
    force: bool = False,
    problem: Problem | None = None,
    labels: Any = None,
) -> dict[str, Any]:
    """Train ``method`` and write the run folder; returns the final summary.

    Args:
        method: the method (see :data:`feasnet.methods.METHODS`).
        train_set, validation_set: instances of one size and of the method's family. An empty
            validation set holds out the last :data:`VALIDATION_FRACTION_OF_TRAIN` of the
            training set instead.
        out_dir: run folder (created).
        config: optimization settings.
        resume: continue from ``out_dir/checkpoint.pt`` if it exists.
        metadata: extra primitives stored in ``model.pt`` (e.g. the scenario).
        log: where progress lines go.
        force: start over in a folder that already holds a run (its files are replaced).
        problem: the problem to train on (family and constraint set); default: the one the
            instances call for (:func:`feasnet.problems.registry.problem_of`).
        labels: ``(len(train_set), *shape)`` solver allocations in physical units, one per
            training instance (:func:`feasnet.data.labels.read_labels` ``.allocation``); needed
            by the supervised and hybrid objectives (:mod:`feasnet.objectives`).

    Raises:
        RunFolderError: ``out_dir`` holds a run (``checkpoint.pt`` or ``model.pt``) and neither
            ``resume`` nor ``force`` is set.
        ValueError: resuming a checkpoint of another method or model size.
    """
    config = config or TrainConfig()
    given = len(train_set)
    checkpoint_path, model_path = out_dir / "checkpoint.pt", out_dir / "model.pt"
    held = [p.name for p in (checkpoint_path, model_path) if p.exists()]
    if held and not (resume or force):
        raise RunFolderError(
            f"out: {out_dir} already holds a training run ({', '.join(held)}); pass --resume "
            "to continue it or --force to start over and replace it"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(config.device)
    if len(validation_set) == 0:
        held_out = max(1, round(len(train_set) * VALIDATION_FRACTION_OF_TRAIN))
        train_set, validation_set = train_set[:-held_out], train_set[-held_out:]
        log(f"no validation split: holding out the last {held_out} training instances")
    if config.max_train_samples is not None:
        train_set = train_set[: config.max_train_samples]
    if labels is not None and len(labels) != given:
        raise ValueError(f"labels: expected {given} (one per training instance), got {len(labels)}")
    if needs_labels(config) and labels is None:
        raise MissingLabelsError(
            f"objective: {config.objective!r} training needs labels (labels=, from "
            "feasnet.data.labels.read_labels; or run `feasnet data label DATASET`)"
        )
    torch.manual_seed(config.seed)
    model = build_model(method, train_set, problem=problem)
    model.fit_normalizer(train_set)
    model.to(device)
    train_dev = train_set.to(torch.float32, device)
    validation_dev = validation_set.to(torch.float32, device)
    objective_unit = model.objective_unit
    targets = None  # labels in normalized units, aligned with train_set (a prefix of the given)
    if needs_labels(config):
        targets = label_targets(model.problem, labels[: len(train_set)], train_set)
        targets = targets.to(
            torch.complex64 if model.problem.complex_variable else torch.float32
        ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    ranges = scalar_ranges(model.problem, train_set)
    extra = {"metadata": metadata or {}, "train_config": config.model_dump(mode="json")}

    start_epoch, history = 0, []
    best: tuple[float, float] = (-math.inf, -math.inf)
    if resume and checkpoint_path.exists():
        state = torch.load(checkpoint_path, weights_only=True, map_location=device)
        # re-validated, so an option added since (with its default) does not block a resume
        if config_from_dict(state["method"]).model_dump(mode="json") != method.model_dump(
            mode="json"
        ):
            raise ValueError(
                f"resume: {checkpoint_path} was written for another method configuration"
            )
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise ValueError(
                f"resume: {checkpoint_path} holds a model of another size than the one built "
                f"for this data ({model.size()}); use another --out, or --force to start over"
            ) from exc
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
        csi_generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch + 500_009)
        total = 0.0
        with progress_bar(f"{method.name} epoch {epoch + 1}/{config.epochs}", steps) as advance:
            for k in range(steps):
                index = order[k * config.batch_size : (k + 1) * config.batch_size]
                if len(index) < 2:  # batch norm needs two samples
                    continue
                batch = train_dev[index]
                seen = batch  # the loss sees distorted CSI with config.csi_distortion
                if config.csi_distortion:
                    from feasnet.problems.csi import distort

                    seen = distort(batch, config.csi_distortion, csi_generator)  # type: ignore[arg-type]
                target = None if targets is None else targets[index]
                loss = training_loss(model, config, model(batch), seen, target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                optimizer.step()
                total += float(loss.detach()) * len(index)
                advance(1)
        scheduler.step()
        after_epoch = getattr(model.layer, "after_epoch", None)  # e.g. primal-dual updates
        if after_epoch is not None:
            after_epoch(model, train_dev, epoch + 1, log)
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
            "validation_objective": metrics["objective"],
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
            f"{method.name} epoch {epoch + 1}: loss {row['train_loss']:.4f}, validation objective "
            f"{_format_objective(metrics['objective'], objective_unit)}, violation prob. "
            f"{metrics['violation_probability']:.4f}, {row['seconds']:.1f} s"
            + (" *" if improved else "")
        )
    return {"method": method.name, "best_epoch": _best_epoch(history), "history": history}


def _format_objective(value: float, unit: str) -> str:
    if unit == "bit/s":
        return f"{value / 1e6:.2f} Mbit/s"
    return f"{value:.3f} {unit}"


def _best_epoch(history: list[dict[str, Any]]) -> int:
    best = [row["epoch"] for row in history if row["best"]]
    return best[-1] if best else 0


def _epochs_since_best(history: list[dict[str, Any]]) -> int:
    return len(history) - _best_epoch(history)


def load_model(path: Path) -> tuple[LearnedModel, dict[str, Any]]:
    """Load ``model.pt`` (or a run folder holding one) with ``weights_only=True``.

    Files of format version 1 (flat method configuration, per-family size keys) load too.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.exists():
        raise FileNotFoundError(f"model: {path} does not exist (train one with `feasnet train`)")
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # torch's text may advise weights_only=False: never for any file
        raise ValueError(
            f"model: {path} is not a feasnet model file (it cannot be read as plain tensors "
            f"and values: {type(exc).__name__})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"model: {path} is not a feasnet model file")
    method = config_from_dict(payload["method"])
    family = get_family(payload.get("family") or "power-control")
    problem = family(payload.get("constraint_set") or "")
    if "variable_shape" in payload:
        shape = tuple(int(s) for s in payload["variable_shape"])
    else:  # format version 1
        keys = (
            ("num_antennas", "num_users")
            if "num_antennas" in payload
            else ("num_bs", "num_channels")
        )
        shape = tuple(int(payload[key]) for key in keys)
    model = build_model(method, problem=problem, shape=shape)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload


def model_result(
    model: LearnedModel,
    instances: Instances,
    guard: bool | None = None,
    name: str | None = None,
    threads: int | None = None,
) -> Result:
    """Allocate with a trained model and package the problem's float64-checked result.

    Infeasible instances carry the exact test's reason; samples the guard repaired say so.
    Time per sample is the batch's wall time divided by its size. ``threads`` sets the torch
    intra-op threads for the run (``None``: :func:`feasnet.threads.threads_for` the batch's
    work, one thread unless the batch is very large); the caller's setting is restored.
    """
    model.check_size(instances)
    problem = model.problem
    with intra_op_threads(threads_for(model_work(model, len(instances)), threads)):
        output, fired, seconds = model.allocate(instances, guard=guard)
        reasons = problem.feasibility(instances).reasons
    messages = [
        reason or ("guard fired" if was_fixed else "")
        for reason, was_fixed in zip(reasons, fired.tolist(), strict=True)
    ]
    label, per_sample = name or model.config.name, seconds / len(instances)
    return problem.result(label, output, instances, per_sample, messages)


def warn_if_outside_training(
    payload: dict[str, Any], instances: Instances, rtol: float = 1e-9
) -> list[str]:
    """Warn (and return the reasons) when instance scalars leave the training ranges.

    The layers read each instance's own constraints, so allocations stay feasible; only the
    quality of the backbone's guess may suffer.
    """
    family = get_family(payload.get("family") or "power-control")
    arrays = _scalar_arrays(family(payload.get("constraint_set") or ""), instances)
    reasons = []
    for name, (low, high) in payload["training_ranges"].items():
        values = arrays.get(name)
        if values is None or not values.size:
            continue
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
