"""Fully connected backbone of the power-control paper (sections IV-B, VIII).

``features -> [Linear -> BatchNorm1d -> ReLU -> Dropout] x 3 (200 units) -> Linear(U)
-> final activation``, output reshaped to ``(N, B, Q)`` *normalized* powers (fraction of each
instance's pmax): output unit ``b*Q + q`` is the power of BS ``b`` on channel ``q``.

Final activations (section VIII-B-1):

* ``"affine"``: none (any real value);
* ``"relu"``: ``>= 0``;
* ``"sigmoid"``: in ``(0, 1)`` per entry (default; the paper's choice for DIPNet / DEPNet);
* ``"softmax"``: softmax over the ``Q`` channels of each BS, so each BS's entries are positive
  and sum to 1, i.e. the budget is met with equality (PNet).

The paper gives no dropout rate; we default to 0.1, a light regularizer that does not slow
training down noticeably at this width. Batch norm uses running statistics in eval mode, so
any batch size (1 included) works there; in training mode a batch needs at least 2 samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from feasnet.nets.features import DEFAULT_GAIN_FLOOR, ChannelFeatures
from feasnet.problems.instances import PowerControlInstances

FinalActivation = Literal["affine", "relu", "sigmoid", "softmax"]
ACTIVATIONS: tuple[str, ...] = ("affine", "relu", "sigmoid", "softmax")


def hidden_layers(
    num_inputs: int, hidden: Sequence[int], batch_norm: bool, dropout: float
) -> tuple[nn.Sequential, int]:
    """The fully connected body ``[Linear -> BatchNorm1d -> ReLU -> Dropout] x len(hidden)``
    shared by the MLP backbones (batch norm only with ``batch_norm``, dropout only when
    ``dropout > 0``).

    Args:
        num_inputs: width of the ``(N, num_inputs)`` input features.
        hidden: widths of the hidden layers (each ``>= 1``).
        batch_norm: batch normalization after each hidden affine map.
        dropout: dropout rate after each hidden layer, in ``[0, 1)``.

    Returns:
        ``(body, width)``: the module mapping ``(N, num_inputs)`` to ``(N, width)`` and the
        width of its output (``num_inputs`` when ``hidden`` is empty).
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout: expected a value in [0, 1), got {dropout}")
    if any(width < 1 for width in hidden):
        raise ValueError(f"hidden: expected positive widths, got {tuple(hidden)}")
    layers: list[nn.Module] = []
    width = num_inputs
    for size in hidden:
        layers.append(nn.Linear(width, size))
        if batch_norm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    return nn.Sequential(*layers), width


class PowerControlMLP(nn.Module):
    """The paper's fully connected backbone ``N_r``: instances in, normalized powers out.

    Args:
        num_bs: ``B``.
        num_channels: ``Q``.
        hidden: widths of the hidden layers (paper: three of 200).
        dropout: dropout rate after each hidden layer (paper: unstated; default 0.1).
        activation: final activation, one of ``"affine"``, ``"relu"``, ``"sigmoid"``,
            ``"softmax"`` (per BS over its channels).
        batch_norm: batch normalization after each hidden affine map (paper: yes).
        include_rate_targets: feed each user's ``alpha / W`` as extra features.
        gain_floor: floor on ``H * pmax / noise`` before the log.
        extra_outputs: width of a second linear head on the last hidden layer (e.g. 1 for
            HoP's radius logit; 0: none, and no parameters for it).
    """

    def __init__(
        self,
        num_bs: int,
        num_channels: int,
        hidden: Sequence[int] = (200, 200, 200),
        dropout: float = 0.1,
        activation: FinalActivation = "sigmoid",
        batch_norm: bool = True,
        include_rate_targets: bool = False,
        gain_floor: float = DEFAULT_GAIN_FLOOR,
        extra_outputs: int = 0,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {activation!r}")
        self.num_bs = num_bs
        self.num_channels = num_channels
        self.activation: FinalActivation = activation
        self.features = ChannelFeatures(num_bs, num_channels, include_rate_targets, gain_floor)
        self.body, width = hidden_layers(self.features.num_features, hidden, batch_norm, dropout)
        self.head = nn.Linear(width, num_bs * num_channels)
        self.extra_head = nn.Linear(width, extra_outputs) if extra_outputs > 0 else None

    def fit_normalizer(self, instances: PowerControlInstances) -> PowerControlMLP:
        """Fit the input standardization on the training set; returns ``self``."""
        self.features.fit_normalizer(instances)
        return self

    def _hidden(self, instances: PowerControlInstances) -> Tensor:
        dtype = self.head.weight.dtype
        return self.body(self.features(instances).to(dtype))

    def logits(self, instances: PowerControlInstances) -> Tensor:
        """Pre-activation outputs ``(N, B, Q)`` in the parameters' dtype."""
        return self.head(self._hidden(instances)).reshape(-1, self.num_bs, self.num_channels)

    def forward(self, instances: PowerControlInstances) -> Tensor:
        """Raw normalized powers ``(N, B, Q)`` (fraction of pmax) for the feasibility layer."""
        return self._activate(self.logits(instances))

    def propose(self, instances: PowerControlInstances) -> tuple[Tensor, Tensor]:
        """The backbone contract of :mod:`feasnet.nets.registry`: ``(raw (N, B, Q) normalized
        powers, extra (N, extra_outputs) real)`` in the parameters' dtype."""
        hidden = self._hidden(instances)
        raw = self._activate(self.head(hidden).reshape(-1, self.num_bs, self.num_channels))
        extra = hidden.new_zeros(hidden.shape[0], 0)
        return raw, extra if self.extra_head is None else self.extra_head(hidden)

    def _activate(self, z: Tensor) -> Tensor:
        if self.activation == "relu":
            return torch.relu(z)
        if self.activation == "sigmoid":
            return torch.sigmoid(z)
        if self.activation == "softmax":
            return torch.softmax(z, dim=2)
        return z
