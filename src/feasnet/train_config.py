"""Optimization settings of the training loop (no torch import: the CLI shows them cheaply)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Objective = Literal["self-supervised", "supervised", "hybrid"]
"""Training objectives: the problem's own loss (no labels), the mean squared error to a
classical solver's labels (normalized units), or the sum of both (``hybrid_weight``)."""
OBJECTIVES: tuple[str, ...] = ("self-supervised", "supervised", "hybrid")


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
    objective: Objective = Field(
        "self-supervised",
        description="self-supervised (the problem's loss), supervised (MSE to labels) or "
        "hybrid (MSE + hybrid_weight * self-supervised loss)",
    )
    hybrid_weight: float = Field(
        0.01, ge=0, description="weight of the self-supervised term in the hybrid loss"
    )
    csi_distortion: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="artificially distorted CSI ([39] of the power-control paper): each "
        "batch's loss sees gains H(1 + e), e ~ U[-s, s] per entry (0: off)",
    )
    label_method: str | None = Field(
        None,
        description="classical solver whose labels the supervised and hybrid objectives fit "
        "(default: the family's reference, sca for power control, wmmse for MISO)",
    )
