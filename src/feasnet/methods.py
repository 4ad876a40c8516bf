"""Learned methods as compositions: backbone + feasibility layer + refinement + loss.

The papers' names (PNet, DIPNet, DEPNet, DIPNet+FW, DEPNet+FW) are presets of one
:class:`MethodConfig`, declared once in :data:`METHODS`; :class:`PowerControlModel` builds any
of them. Every method is trained by the same loop (:mod:`feasnet.train`) on the same
self-supervised objective, the soft loss ``-R / W + lambda V`` (eq. 14; ``lambda = 0`` for
methods whose layer already guarantees feasibility).
"""

from __future__ import annotations

import time
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from feasnet.layers.correction import IterativeCorrection
from feasnet.layers.guard import guard as guard_outputs
from feasnet.layers.penalty import Penalty, soft_loss
from feasnet.methods_miso import MISO_METHODS, MisoMethodConfig, MisoModel
from feasnet.nets.mlp import PowerControlMLP
from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.miso import MisoInstances

LayerKind = Literal["penalty", "qp", "qp-cvxpylayers", "correction"]


class CorrectionConfig(BaseModel):
    """Settings of DEPNet's iterative correction (defaults from the paper where it gives them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    train_steps: int = Field(5, ge=0)
    step_size: float = Field(0.3, gt=0)
    momentum: float = Field(0.5, ge=0, lt=1)
    test_steps: int = Field(100, ge=0)
    newton_regularization: float = Field(1e-8, gt=0)


class MethodConfig(BaseModel):
    """One learned method.

    Attributes:
        name: registry name.
        description: one line for ``feasnet methods``.
        layer: feasibility layer: ``penalty`` (soft, PNet), ``qp`` (our batched implicit QP
            projection, DIPNet), ``qp-cvxpylayers`` (the same projection on cvxpylayers, the
            paper's reference implementation), ``correction`` (DEPNet).
        activation: final activation of the backbone.
        refine: ``fw`` to refine the layer's output with Frank-Wolfe at inference.
        penalty_weight: ``lambda`` of the soft loss (0 for hard layers).
        equilibrate_penalty: measure the violation on unit-norm constraint rows (a sum of
            squared distances to the violated hyperplanes) instead of the raw rows of eq. (12).
            Measured on ``small`` (9,000 training instances, 10 epochs): DEPNet reaches
            104.2 Mbit/s with it against 101.0 without, but 1 of 500 test outputs then fails
            the float64 check, against none; so the default is the paper's raw penalty.
        selection: validation metric of early stopping: best sum rate, or lowest violation
            probability (PNet, as in the paper) with sum rate breaking ties.
        hidden, dropout, batch_norm: backbone (paper: three hidden layers of 200).
        include_rate_targets: feed each user's rate target to the backbone.
        correction: DEPNet correction settings.
        guard: move outputs that fail the float64 check toward the interior anchor.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    description: str = ""
    layer: LayerKind
    activation: Literal["affine", "relu", "sigmoid", "softmax"] = "sigmoid"
    refine: Literal["none", "fw"] = "none"
    penalty_weight: float = Field(0.0, ge=0)
    equilibrate_penalty: bool = False
    selection: Literal["objective", "violation"] = "objective"
    hidden: tuple[int, ...] = (200, 200, 200)
    dropout: float = Field(0.1, ge=0, lt=1)
    batch_norm: bool = True
    include_rate_targets: bool = True
    correction: CorrectionConfig = CorrectionConfig()
    guard: bool = False


METHODS: dict[str, MethodConfig] = {
    m.name: m
    for m in (
        MethodConfig(
            name="pnet",
            description="MLP, softmax per BS (budget met), QoS as a penalty in the loss",
            layer="penalty",
            activation="softmax",
            penalty_weight=10_000.0,  # the paper's value for path-loss data
            selection="violation",
        ),
        MethodConfig(
            name="dipnet",
            description="MLP + implicit QP projection onto the feasible set (batched, ours)",
            layer="qp",
        ),
        MethodConfig(
            name="depnet",
            description="MLP + unrolled correction (momentum GD in training, Newton at test)",
            layer="correction",
            penalty_weight=10.0,
        ),
        MethodConfig(
            name="dipnet+fw",
            description="DIPNet refined by Frank-Wolfe at inference",
            layer="qp",
            refine="fw",
        ),
        MethodConfig(
            name="depnet+fw",
            description="DEPNet refined by Frank-Wolfe at inference",
            layer="correction",
            penalty_weight=10.0,
            refine="fw",
        ),
        MethodConfig(
            name="dipnet-cvxpylayers",
            description="DIPNet with the projection on cvxpylayers (the paper's way; slow)",
            layer="qp-cvxpylayers",
        ),
    )
}


METHODS.update(MISO_METHODS)  # type: ignore[arg-type]  # one registry for both families

AnyMethodConfig = MethodConfig | MisoMethodConfig
"""A method of either problem family."""


def get_method(name: str, **overrides: Any) -> Any:
    """The preset ``name`` (case-insensitive), optionally with fields overridden.

    Returns a :class:`MethodConfig` (power control) or a
    :class:`~feasnet.methods_miso.MisoMethodConfig` (MISO beamforming).
    """
    key = name.strip().lower()
    if key not in METHODS:
        raise KeyError(f"method: unknown method {name!r}; choose one of {', '.join(METHODS)}")
    config = METHODS[key]
    if overrides:
        config = type(config).model_validate({**config.model_dump(), **overrides})
    return config


def method_family(config: Any) -> str:
    """``"miso"`` or ``"power-control"``: which problem family a method solves."""
    return "miso" if isinstance(config, MisoMethodConfig) else "power-control"


def config_from_dict(values: dict[str, Any]) -> Any:
    """Rebuild a method configuration stored in a model file (either family)."""
    if values.get("problem") == "miso":
        return MisoMethodConfig.model_validate(values)
    return MethodConfig.model_validate(values)


def build_model(config: Any, instances: Any = None, **size: int) -> Any:
    """The model of ``config`` sized for ``instances`` (or for explicit ``size`` keywords:
    ``num_bs``/``num_channels`` for power control, ``num_antennas``/``num_users`` for MISO)."""
    if isinstance(config, MisoMethodConfig):
        if instances is not None:
            size = {"num_antennas": instances.num_antennas, "num_users": instances.num_users}
        if instances is not None and not isinstance(instances, MisoInstances):
            raise ValueError(f"instances: method {config.name!r} needs MISO instances")
        return MisoModel(config, size["num_antennas"], size["num_users"])
    if instances is not None:
        if not isinstance(instances, PowerControlInstances):
            raise ValueError(f"instances: method {config.name!r} needs power-control instances")
        size = {"num_bs": instances.num_bs, "num_channels": instances.num_channels}
    return PowerControlModel(config, size["num_bs"], size["num_channels"])


def build_layer(config: MethodConfig) -> nn.Module:
    """The feasibility layer of a method: ``forward(raw (N,B,Q), instances) -> (N,B,Q)``."""
    if config.layer == "penalty":
        return Penalty(config.penalty_weight)
    if config.layer == "correction":
        return IterativeCorrection(**config.correction.model_dump())
    if config.layer == "qp":
        from feasnet.layers.qp_projection import QPProjection

        return QPProjection()
    from feasnet.layers.cvxpy_projection import CvxpyProjection

    return CvxpyProjection()


class PowerControlModel(nn.Module):
    """Backbone + feasibility layer for one (B, Q) size.

    ``forward`` maps instances to normalized powers ``(N, B, Q)`` (fraction of pmax) and is
    what training differentiates; :meth:`allocate` is inference in watts, with the optional
    Frank-Wolfe refinement and guard.
    """

    def __init__(self, config: MethodConfig, num_bs: int, num_channels: int) -> None:
        super().__init__()
        self.config = config
        self.num_bs = num_bs
        self.num_channels = num_channels
        self.backbone = PowerControlMLP(
            num_bs,
            num_channels,
            hidden=config.hidden,
            dropout=config.dropout,
            activation=config.activation,
            batch_norm=config.batch_norm,
            include_rate_targets=config.include_rate_targets,
        )
        self.layer = build_layer(config)

    # ---------------------------------------------------------------- shared interface
    objective_unit = "bit/s"
    range_fields = ("pmax", "noise", "bandwidth", "min_rate")

    def size(self) -> dict[str, int]:
        """What ``model.pt`` stores to rebuild the model."""
        return {"num_bs": self.num_bs, "num_channels": self.num_channels}

    def fit_normalizer(self, instances: PowerControlInstances) -> None:
        """Fit the backbone's input normalization on the training set."""
        self.backbone.fit_normalizer(instances)

    def objective_and_feasibility(
        self, instances: PowerControlInstances
    ) -> tuple[Tensor, Tensor]:
        """Network output's ``(sum rate (N,) [bit/s], feasible (N,) bool)``, float64 check."""
        x = self(instances)
        inst64 = instances.to(torch.float64, x.device)
        power = x.double() * inst64.pmax[:, None, None]
        rate = torch.nan_to_num(pc.sum_rate(power.clamp(min=0), inst64))
        return rate, pc.is_feasible(power, inst64)

    def check_size(self, instances: PowerControlInstances) -> None:
        """Raise a clear error for instances of another family or (B, Q) than the model's."""
        if not isinstance(instances, PowerControlInstances):
            raise ValueError(
                f"instances: this model is a power-control model, got {type(instances).__name__}"
            )
        if (instances.num_bs, instances.num_channels) != (self.num_bs, self.num_channels):
            raise ValueError(
                f"instances: this model was trained for B={self.num_bs} BSs and "
                f"Q={self.num_channels} channels, got B={instances.num_bs}, "
                f"Q={instances.num_channels}; train a model for that size"
            )

    def forward(self, instances: PowerControlInstances) -> Tensor:
        """Normalized powers ``(N, B, Q)`` after the feasibility layer."""
        self.check_size(instances)
        raw = self.backbone(instances)
        return self.layer(raw, instances.to(raw.dtype, raw.device))

    def loss(self, x: Tensor, instances: PowerControlInstances) -> Tensor:
        """Mean soft loss ``-R / W + lambda V`` over the batch (scalar)."""
        return soft_loss(
            x, instances, self.config.penalty_weight, equilibrate=self.config.equilibrate_penalty
        ).mean()

    @torch.no_grad()
    def allocate(
        self, instances: PowerControlInstances, guard: bool | None = None
    ) -> tuple[Tensor, Tensor, float]:
        """Inference: powers in watts for every instance.

        Args:
            instances: ``N`` instances of the model's (B, Q).
            guard: switch the feasibility guard on/off (default: the method's setting).

        Returns:
            ``(power, guard_fired, seconds)``: ``(N, B, Q)`` float64 [W], ``(N,)`` bool, and
            the wall time of the whole batch [s].
        """
        was_training = self.training
        self.eval()
        try:
            start = time.perf_counter()
            x = self(instances)
            inst64 = instances.to(torch.float64, x.device)
            power = x.to(torch.float64) * inst64.pmax[:, None, None]
            if self.config.refine == "fw":
                from feasnet.solvers.frank_wolfe import refine

                power, _ = refine(power, inst64)
            use_guard = self.config.guard if guard is None else guard
            fired = torch.zeros(len(instances), dtype=torch.bool, device=power.device)
            if use_guard:
                result = guard_outputs(power / inst64.pmax[:, None, None], inst64)
                power = result.x * inst64.pmax[:, None, None]
                fired = result.fired
            seconds = time.perf_counter() - start
        finally:
            self.train(was_training)
        return power, fired, seconds
