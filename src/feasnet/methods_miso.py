"""Learned MISO beamforming methods: backbone (MLP or deep-unfolded WMMSE) + feasibility layer.

The survey's case study combines two backbones with three ways of handling the constraints;
each combination is a preset of one :class:`MisoMethodConfig`, registered next to the
power-control presets in :data:`feasnet.methods.METHODS`:

=============  ======================================================================
``penalty``    soft: the loss is ``-WSR + lambda * sum relu(g)^2``; outputs may violate
``dc3``        DC3: gradient steps on the violations, unrolled in training, run to tolerance
               at test (the loss keeps the penalty, as DC3 does)
``hop``        HoP: the backbone gives a direction and a radius, mapped into the feasible set
               along the ray from the strictly interior anchor (closed-form boundary distance)
=============  ======================================================================

Networks and layers work in normalized units (:func:`feasnet.problems.miso.normalized_instances`:
noise 1, transmit budget 1); :meth:`MisoModel.allocate` returns beams in sqrt(W).
"""

from __future__ import annotations

import time
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from feasnet.problems import miso
from feasnet.problems.miso import MisoInstances


class DC3Config(BaseModel):
    """Settings of the DC3 correction (see :class:`feasnet.layers.dc3.DC3Correction`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    train_steps: int = Field(5, ge=0)
    step_size: float = Field(0.1, gt=0)
    momentum: float = Field(0.5, ge=0, lt=1)
    test_tolerance: float = Field(1e-7, gt=0)
    max_test_steps: int = Field(1000, ge=0)


class MisoMethodConfig(BaseModel):
    """One learned MISO method.

    Attributes:
        name: registry name (``<layer>+<backbone>``, as the survey writes them).
        description: one line for ``feasnet methods``.
        problem: always ``"miso"`` (tells the registry's two families apart).
        backbone: ``mlp`` or ``du`` (deep-unfolded WMMSE).
        layer: ``penalty``, ``dc3`` or ``hop``.
        penalty_weight: ``lambda`` of the soft loss (0 for HoP, whose outputs are feasible).
        hidden: MLP hidden widths.
        unfolded_layers: WMMSE iterations of the DU backbone.
        dc3: DC3 correction settings.
        guard: move outputs that fail the float64 check toward the interior anchor.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    description: str = ""
    problem: Literal["miso"] = "miso"
    backbone: Literal["mlp", "du"]
    layer: Literal["penalty", "dc3", "hop"]
    penalty_weight: float = Field(0.0, ge=0)
    hidden: tuple[int, ...] = (256, 256, 256)
    unfolded_layers: int = Field(5, ge=1)
    dc3: DC3Config = DC3Config()
    guard: bool = False


def _presets() -> list[MisoMethodConfig]:
    words = {"mlp": "MLP", "du": "deep-unfolded WMMSE"}
    layers = {
        "penalty": ("soft penalty on the violations (may violate)", 10.0),
        "dc3": ("DC3 gradient correction (unrolled in training, to tolerance at test)", 10.0),
        "hop": ("HoP: direction + radius mapped inside along the anchor ray", 0.0),
    }
    return [
        MisoMethodConfig(
            name=f"{layer}+{backbone}",
            description=f"MISO: {words[backbone]} + {text}",
            backbone=backbone,
            layer=layer,
            penalty_weight=weight,
        )
        for backbone in ("mlp", "du")
        for layer, (text, weight) in layers.items()
    ]


MISO_METHODS: dict[str, MisoMethodConfig] = {m.name: m for m in _presets()}
"""The survey's six combinations: ``{penalty,dc3,hop}+{mlp,du}``."""


class MisoModel(nn.Module):
    """Backbone + feasibility layer for one (Nt, K) size.

    ``forward`` maps instances to normalized beams ``(N, Nt, K)`` complex (units of
    ``sqrt(transmit budget)``) and is what training differentiates; :meth:`allocate` is
    inference in sqrt(W) with the optional guard.
    """

    def __init__(self, config: MisoMethodConfig, num_antennas: int, num_users: int) -> None:
        super().__init__()
        self.config = config
        self.num_antennas = num_antennas
        self.num_users = num_users
        extra = 1 if config.layer == "hop" else 0
        if config.backbone == "mlp":
            from feasnet.nets.miso_mlp import MisoMLP

            self.backbone: nn.Module = MisoMLP(
                num_antennas, num_users, hidden=config.hidden, extra_outputs=extra
            )
        else:
            from feasnet.nets.unfolded_wmmse import UnfoldedWMMSE

            self.backbone = UnfoldedWMMSE(
                num_antennas, num_users, num_layers=config.unfolded_layers, extra_outputs=extra
            )
        self.layer: nn.Module | None = None
        if config.layer == "hop":
            from feasnet.layers.hop import HoPLayer

            self.layer = HoPLayer()
        elif config.layer == "dc3":
            from feasnet.layers.dc3 import DC3Correction

            self.layer = DC3Correction(**config.dc3.model_dump())

    # ---------------------------------------------------------------- shared interface
    objective_unit = "bit/s/Hz"
    range_fields = ("pmax", "circuit_power", "efficiency", "noise", "sinr_min")

    def size(self) -> dict[str, int]:
        """What ``model.pt`` stores to rebuild the model."""
        return {"num_antennas": self.num_antennas, "num_users": self.num_users}

    def check_size(self, instances: Any) -> None:
        """Raise a clear error for instances of another family or (Nt, K) than the model's."""
        if not isinstance(instances, MisoInstances):
            raise ValueError(
                f"instances: this model is a MISO beamforming model, got {type(instances).__name__}"
            )
        if (instances.num_antennas, instances.num_users) != (self.num_antennas, self.num_users):
            raise ValueError(
                f"instances: this model was trained for Nt={self.num_antennas} antennas and "
                f"K={self.num_users} users, got Nt={instances.num_antennas}, "
                f"K={instances.num_users}; train a model for that size"
            )

    def fit_normalizer(self, instances: MisoInstances) -> None:
        """Let the backbone fit its input normalization on the training set, if it has one."""
        fit = getattr(self.backbone, "fit_normalizer", None)
        if fit is not None:
            fit(miso.normalized_instances(instances))

    def forward(self, instances: MisoInstances) -> Tensor:
        """Normalized beams ``(N, Nt, K)`` complex after the feasibility layer."""
        self.check_size(instances)
        normalized = miso.normalized_instances(instances)
        raw, extra = self.backbone(normalized)
        normalized = normalized.to(raw.dtype, raw.device)
        if self.config.layer == "hop":
            anchor = miso.interior_anchor(normalized).detach()
            direction = raw - anchor if self.config.backbone == "du" else raw
            return self.layer(direction, extra[:, 0], normalized, anchor)
        if self.config.layer == "dc3":
            return self.layer(raw, normalized)
        return raw

    def loss(self, beams: Tensor, instances: MisoInstances) -> Tensor:
        """Mean ``-WSR + lambda * penalty`` over the batch (scalar)."""
        from feasnet.layers.penalty import constraint_penalty

        normalized = miso.normalized_instances(instances).to(beams.dtype, beams.device)
        loss = -miso.weighted_sum_rate(beams, normalized)
        if self.config.penalty_weight > 0:
            values = miso.constraint_values(beams, normalized)
            loss = loss + self.config.penalty_weight * constraint_penalty(values)
        return loss.mean()

    def objective_and_feasibility(self, instances: MisoInstances) -> tuple[Tensor, Tensor]:
        """Network output's ``(WSR (N,) [bit/s/Hz], feasible (N,) bool)``, float64 check."""
        beams = self(instances)
        inst64 = instances.to(torch.complex128, beams.device)
        physical = miso.beams_from_normalized(beams.to(torch.complex128), inst64)
        wsr = torch.nan_to_num(miso.weighted_sum_rate(physical, inst64))
        return wsr, miso.is_feasible(physical, inst64)

    @torch.no_grad()
    def allocate(
        self, instances: MisoInstances, guard: bool | None = None
    ) -> tuple[Tensor, Tensor, float]:
        """Inference: beams in sqrt(W) for every instance.

        Returns:
            ``(beams, guard_fired, seconds)``: ``(N, Nt, K)`` complex128 [sqrt(W)], ``(N,)``
            bool, and the wall time of the whole batch [s].
        """
        was_training = self.training
        self.eval()
        try:
            start = time.perf_counter()
            inst64 = instances.to(torch.complex128)
            beams = miso.beams_from_normalized(self(instances).to(torch.complex128), inst64)
            use_guard = self.config.guard if guard is None else guard
            fired = torch.zeros(len(instances), dtype=torch.bool, device=beams.device)
            if use_guard:
                from feasnet.layers.guard import guard as guard_outputs

                result = guard_outputs(beams, inst64)
                beams, fired = result.x, result.fired
            seconds = time.perf_counter() - start
        finally:
            self.train(was_training)
        return beams, fired, seconds
