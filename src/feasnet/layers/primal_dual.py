"""Primal-dual learning (PDL): a primal network trained as an augmented Lagrangian method,
with a dual network that predicts each instance's multipliers.

After "Self-Supervised Primal-Dual Learning for Constrained Optimization" (Park and Van
Hentenryck). Written once against the problem interface (:mod:`feasnet.problems.base`): the
constraints are the problem's scale-free rows ``g(x) <= 0`` (``M`` of them per instance), so
the layer serves every family and constraint set.

* The **primal network** is the method's backbone; the layer passes its output through
  unchanged (a soft method: nothing forces feasibility, see ``hard = False``).
* The **dual network** maps an instance to ``M`` multipliers ``lambda(d) >= 0``. It is the
  family's ``mlp`` backbone (no dropout) whose extra head has ``M`` outputs; only that head is
  read, through a ReLU. It is built by :meth:`PrimalDualLayer.fit` on the training set (which
  fixes ``M``) and travels with the model's ``state_dict``.
* **Primal loss** of outer iteration ``k`` (per instance, added to ``-objective / scale`` by
  :meth:`feasnet.models.LearnedModel.loss`)::

      lambda_k(d) . g(x) + rho_k / 2 * || max(g(x), 0) ||^2

  with ``lambda_k`` the dual network frozen during the primal epochs (``lambda_0 = 0``).
* **Dual update** at the end of every ``primal_epochs`` epochs (the training loop's
  ``after_epoch`` hook): the targets ``max(lambda_k(d) + rho_k g(x_k(d)), 0)`` are computed on
  the whole training set with the current primal network, then the dual network is regressed
  onto them (mean squared error, ``dual_epochs`` passes of Adam) to give ``lambda_{k+1}``.
* **Penalty schedule**: with ``v_k`` the mean over training instances of the largest
  violation ``max_m max(g_m(x_k), 0)``, ``rho_{k+1} = min(rho_growth * rho_k, rho_max)`` when
  ``v_k > violation_ratio * v_{k-1}`` (not enough progress), else ``rho_k``.

State (``rho``, the last ``v``, the outer-iteration count, ``M``) lives in buffers, so a
checkpoint resumes the schedule exactly; the dual optimizer is created afresh at every dual
update, so no optimizer state is lost by resuming.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from feasnet.layers.base import FeasibilityLayer

DUAL_CHUNK = 2048
"""Instances per forward pass when the whole training set is evaluated."""


class PrimalDualOptions(BaseModel):
    """Settings of the ``primal-dual`` layer.

    Attributes:
        rho: initial penalty coefficient ``rho_0``.
        rho_growth: factor ``alpha`` applied to ``rho`` when the violation did not shrink.
        rho_max: cap on ``rho``.
        violation_ratio: ``tau``: the violation must fall below ``tau`` times the previous one
            for ``rho`` to stay.
        primal_epochs: primal training epochs per outer iteration.
        dual_epochs: passes over the training set of each dual regression.
        dual_learning_rate: Adam step of the dual regression.
        dual_batch_size: mini-batch of the dual regression.
        dual_hidden: hidden widths of the dual network (default: the family's mlp widths).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    rho: float = Field(1.0, gt=0)
    rho_growth: float = Field(2.0, ge=1)
    rho_max: float = Field(1e4, gt=0)
    violation_ratio: float = Field(0.8, gt=0, le=1)
    primal_epochs: int = Field(1, ge=1)
    dual_epochs: int = Field(5, ge=1)
    dual_learning_rate: float = Field(1e-3, gt=0)
    dual_batch_size: int = Field(256, ge=2)
    dual_hidden: tuple[int, ...] | None = None


class PrimalDualLayer(FeasibilityLayer):
    """``primal-dual``: identity on the primal output; the augmented Lagrangian enters the
    loss (:meth:`constraint_loss`) and the dual network is updated between epochs
    (:meth:`after_epoch`). Applies to every problem; not hard.

    Buffers:
        rho: 0-d float64, the current penalty coefficient.
        last_violation: 0-d float64, ``v`` of the last outer iteration (``inf`` before any).
        outer_iterations: 0-d int64, dual updates done.
        epochs_since_update: 0-d int64, primal epochs since the last dual update.
        num_constraints: 0-d int64, ``M`` (0 until :meth:`fit` builds the dual network).
    """

    Config = PrimalDualOptions
    hard = False

    rho: Tensor
    last_violation: Tensor
    outer_iterations: Tensor
    epochs_since_update: Tensor
    num_constraints: Tensor

    def __init__(self, problem: Any, config: BaseModel | None = None) -> None:
        super().__init__(problem, config)
        options = self.options
        self.register_buffer("rho", torch.tensor(options.rho, dtype=torch.float64))
        self.register_buffer("last_violation", torch.tensor(math.inf, dtype=torch.float64))
        self.register_buffer("outer_iterations", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("epochs_since_update", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("num_constraints", torch.tensor(0, dtype=torch.int64))
        self.dual: nn.Module | None = None
        self.shape: tuple[int, ...] | None = None
        self._register_load_state_dict_pre_hook(self._build_before_load)

    @property
    def options(self) -> PrimalDualOptions:
        assert isinstance(self.config, PrimalDualOptions)
        return self.config

    # ---------------------------------------------------------------- building the dual net
    def setup(self, shape: tuple[int, ...]) -> None:
        """Remember the per-instance variable shape (called by the model after building)."""
        self.shape = tuple(int(s) for s in shape)

    def _build_dual(self, num_constraints: int) -> None:
        from feasnet.nets.registry import build_backbone

        if self.shape is None:
            raise ValueError(
                "primal-dual: the layer needs the variable shape before its dual network is "
                "built (use it through feasnet.models.build_model)"
            )
        options: dict[str, object] = {"dropout": 0.0}
        if self.options.dual_hidden is not None:
            options["hidden"] = tuple(self.options.dual_hidden)
        self.dual = build_backbone(
            "mlp", options, self.problem.family, self.shape, extra=num_constraints
        )
        self.num_constraints.fill_(num_constraints)

    def fit(self, instances: Any) -> None:
        """Build the dual network for the problem's ``M`` rows and fit its input
        normalization on the training instances (called once before training)."""
        sample = self.problem.float64(instances[:1])
        dtype = torch.complex128 if self.problem.complex_variable else torch.float64
        zero = torch.zeros(1, *self.problem.variable_shape(sample), dtype=dtype)
        num_constraints = int(self.problem.constraints(zero, sample).shape[1])
        if self.dual is None or int(self.num_constraints) != num_constraints:
            self._build_dual(num_constraints)
        assert self.dual is not None
        fit = getattr(self.dual, "fit_normalizer", None)
        if fit is not None:
            fit(instances)
        reference = next(iter(self.buffers()))
        self.dual.to(reference.device)

    def _build_before_load(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        """Load-state-dict pre-hook: build the dual network a saved model carries."""
        key = prefix + "num_constraints"
        if self.dual is None and key in state_dict and int(state_dict[key]) > 0:
            self._build_dual(int(state_dict[key]))

    # ---------------------------------------------------------------- the loss
    def forward(self, raw: Tensor, instances: Any, extra: Tensor | None = None) -> Tensor:
        """``raw`` unchanged, ``(N, *shape)`` (the primal network's output)."""
        return raw

    def multipliers(self, instances: Any) -> Tensor:
        """``(N, M)`` current multipliers ``lambda(d) >= 0`` (no gradient; zeros before the
        first dual update), in the real dtype of the instances."""
        n = len(instances)
        count = int(self.num_constraints)
        if self.dual is None or count == 0:
            raise ValueError("primal-dual: the dual network is not built yet (call fit first)")
        if int(self.outer_iterations) == 0:
            return torch.zeros(n, count, device=self.rho.device)
        was_training = self.dual.training
        self.dual.eval()
        try:
            with torch.no_grad():
                _, extra = self.dual.propose(instances)  # type: ignore[operator]
        finally:
            self.dual.train(was_training)
        return torch.relu(extra)

    def constraint_loss(self, x: Tensor, instances: Any) -> Tensor:
        """``(N,)`` the augmented Lagrangian terms ``lambda . g(x) + rho/2 ||max(g, 0)||^2``
        of the primal loss (``x`` ``(N, *shape)`` normalized, ``instances`` in its dtype)."""
        g = self.problem.constraints(x, instances)
        lam = self.multipliers(instances).to(g.dtype)
        rho = self.rho.to(g.dtype)
        return (lam * g).sum(dim=1) + 0.5 * rho * torch.relu(g).pow(2).sum(dim=1)

    # ---------------------------------------------------------------- the outer iteration
    def dual_targets(self, lam: Tensor, g: Tensor) -> Tensor:
        """``(N, M)`` the next multipliers of the method of multipliers,
        ``max(lam + rho * g, 0)``, for multipliers ``lam`` and constraint values ``g``."""
        return torch.clamp(lam + self.rho.to(g.dtype) * g, min=0.0)

    def update_rho(self, violation: float) -> None:
        """Grow ``rho`` (capped) when ``violation`` is above ``violation_ratio`` times the
        last one; remember ``violation``."""
        opts = self.options
        if violation > opts.violation_ratio * float(self.last_violation):
            self.rho.fill_(min(opts.rho_growth * float(self.rho), opts.rho_max))
        self.last_violation.fill_(violation)

    def after_epoch(
        self, model: nn.Module, train_set: Any, epoch: int, log: Callable[[str], None] = print
    ) -> None:
        """End of a primal epoch: every ``primal_epochs`` epochs, one dual update (targets,
        regression of the dual network, penalty schedule). ``train_set`` is the training
        instances on the model's device and dtype."""
        self.epochs_since_update += 1
        if int(self.epochs_since_update) < self.options.primal_epochs:
            return
        self.epochs_since_update.zero_()
        was_training = model.training
        model.eval()
        with torch.no_grad():
            gs, lams = [], []
            for start in range(0, len(train_set), DUAL_CHUNK):
                chunk = train_set[start : start + DUAL_CHUNK]
                x = model(chunk)
                g = self.problem.constraints(x, chunk.to(x.dtype, x.device))
                gs.append(torch.nan_to_num(g, nan=0.0, posinf=1e6, neginf=-1e6))
                lams.append(self.multipliers(chunk).to(g.dtype))
            g_all, lam_all = torch.cat(gs), torch.cat(lams)
            targets = self.dual_targets(lam_all, g_all)
            violation = float(torch.relu(g_all).amax(dim=1).mean())
        error = self._regress_dual(train_set, targets, seed=epoch)
        rho_used = float(self.rho)
        self.update_rho(violation)
        self.outer_iterations += 1
        model.train(was_training)
        log(
            f"primal-dual: outer iteration {int(self.outer_iterations)}: mean largest violation "
            f"{violation:.3g}, rho {rho_used:g} -> {float(self.rho):g}, mean multiplier "
            f"{float(targets.mean()):.3g}, dual fit MSE {error:.3g}"
        )

    def _regress_dual(self, train_set: Any, targets: Tensor, seed: int) -> float:
        """Fit the dual network's multiplier head to ``targets`` ``(N, M)``; returns the
        final mean squared error over the training set."""
        assert self.dual is not None
        opts = self.options
        dual = self.dual
        optimizer = torch.optim.Adam(dual.parameters(), lr=opts.dual_learning_rate)
        generator = torch.Generator().manual_seed(1_000_003 * seed + 17)
        n = len(train_set)
        dual.train()
        for _ in range(opts.dual_epochs):
            order = torch.randperm(n, generator=generator).to(targets.device)
            for start in range(0, n, opts.dual_batch_size):
                index = order[start : start + opts.dual_batch_size]
                if len(index) < 2:  # batch norm needs two samples
                    continue
                with torch.enable_grad():
                    _, extra = dual.propose(train_set[index])  # type: ignore[operator]
                    loss = (extra - targets[index].to(extra.dtype)).pow(2).mean()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                optimizer.step()
        dual.eval()
        with torch.no_grad():
            errors = []
            for start in range(0, n, DUAL_CHUNK):
                _, extra = dual.propose(train_set[start : start + DUAL_CHUNK])  # type: ignore[operator]
                fitted = torch.relu(extra)
                errors.append((fitted - targets[start : start + DUAL_CHUNK]).pow(2).sum())
        return float(torch.stack(errors).sum()) / max(1, targets.numel())


__all__ = ["PrimalDualLayer", "PrimalDualOptions"]
