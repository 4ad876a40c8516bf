"""Network input features for power control: normalized log channel gains (+ rate targets).

Layout of the feature vector of one instance (``F = B*Q*B`` or ``B*Q*B + B*Q`` entries):

* ``f[b*Q*B + q*B + c] = log10(max(H[b, q, c] * pmax / noise, gain_floor))`` for
  ``b, c < B`` and ``q < Q``, i.e. ``gain`` flattened in C order. ``H * pmax / noise`` is the
  gain in units of noise/pmax (the SNR a full-budget transmission would give), so its log is
  the SNR in dB divided by 10; this removes the ~1e-10 scale of path-loss gains and makes the
  features independent of the absolute power and noise levels. Zero gains are floored at
  ``gain_floor`` (default 1e-12, i.e. -120 dB).
* with ``include_rate_targets=True``, then ``f[B*Q*B + b*Q + q] = alpha[b, q] / W``, each
  user's minimum spectral efficiency [bit/s/Hz], so that one model can serve instances whose
  rate targets differ.

Every feature is then standardized, ``(f - mean) / std``, with a per-feature mean and standard
deviation fitted on the training set by :meth:`ChannelFeatures.fit_normalizer` and stored as
buffers (so they travel with ``state_dict``). A feature that is constant on the training set
(for example the rate targets of a data set with one target) gets ``std = 1``. Before fitting,
the statistics are ``mean = 0``, ``std = 1`` (no standardization).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from feasnet.problems.instances import PowerControlInstances

DEFAULT_GAIN_FLOOR = 1e-12
"""Floor on ``H * pmax / noise`` before the log (-120 dB)."""

_MIN_STD = 1e-8
"""Standard deviations below this (constant features) are replaced by 1."""


def log_gain_features(
    instances: PowerControlInstances,
    include_rate_targets: bool = False,
    gain_floor: float = DEFAULT_GAIN_FLOOR,
) -> Tensor:
    """Unstandardized features, ``(N, F)`` float64 (layout in the module docstring)."""
    inst = instances.to(torch.float64)
    n = inst.num_instances
    scale = (inst.pmax / inst.noise)[:, None, None, None]
    gains = torch.log10(torch.clamp(inst.gain * scale, min=gain_floor)).reshape(n, -1)
    if not include_rate_targets:
        return gains
    targets = (inst.min_rate / inst.bandwidth[:, None, None]).reshape(n, -1)
    return torch.cat([gains, targets], dim=1)


class ChannelFeatures(nn.Module):
    """Standardized log-gain features of a batch of instances.

    Args:
        num_bs: ``B``.
        num_channels: ``Q``.
        include_rate_targets: append each user's ``alpha / W`` [bit/s/Hz].
        gain_floor: floor on ``H * pmax / noise`` before the log.

    Buffers:
        mean, std: ``(F,)`` float64 standardization statistics.
        fitted: 0-d bool, whether :meth:`fit_normalizer` has run.
    """

    mean: Tensor
    std: Tensor
    fitted: Tensor

    def __init__(
        self,
        num_bs: int,
        num_channels: int,
        include_rate_targets: bool = False,
        gain_floor: float = DEFAULT_GAIN_FLOOR,
    ) -> None:
        super().__init__()
        if num_bs < 1 or num_channels < 1:
            raise ValueError(f"num_bs, num_channels: expected >= 1, got {num_bs}, {num_channels}")
        if gain_floor <= 0:
            raise ValueError(f"gain_floor: expected a value > 0, got {gain_floor}")
        self.num_bs = num_bs
        self.num_channels = num_channels
        self.include_rate_targets = include_rate_targets
        self.gain_floor = gain_floor
        size = self.num_features
        self.register_buffer("mean", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("std", torch.ones(size, dtype=torch.float64))
        self.register_buffer("fitted", torch.tensor(False))

    @property
    def num_features(self) -> int:
        """``F = B*Q*B`` (+ ``B*Q`` with rate targets)."""
        users = self.num_bs * self.num_channels
        return users * self.num_bs + (users if self.include_rate_targets else 0)

    def _check(self, instances: PowerControlInstances) -> None:
        if (instances.num_bs, instances.num_channels) != (self.num_bs, self.num_channels):
            raise ValueError(
                f"instances: expected (B, Q) = ({self.num_bs}, {self.num_channels}), got "
                f"({instances.num_bs}, {instances.num_channels})"
            )

    def raw(self, instances: PowerControlInstances) -> Tensor:
        """Unstandardized features ``(N, F)`` float64 (see :func:`log_gain_features`)."""
        self._check(instances)
        return log_gain_features(instances, self.include_rate_targets, self.gain_floor)

    @torch.no_grad()
    def fit_normalizer(
        self, instances: PowerControlInstances, chunk_size: int = 65536
    ) -> ChannelFeatures:
        """Set ``mean`` and ``std`` to the per-feature statistics of ``instances``.

        Processed in chunks of ``chunk_size`` instances (exact two-pass statistics, float64).
        Returns ``self``.
        """
        self._check(instances)
        n = instances.num_instances
        total = torch.zeros(self.num_features, dtype=torch.float64)
        for start in range(0, n, chunk_size):
            total += self.raw(instances[start : start + chunk_size]).sum(dim=0).cpu()
        mean = total / n
        squares = torch.zeros_like(total)
        for start in range(0, n, chunk_size):
            centered = self.raw(instances[start : start + chunk_size]).cpu() - mean
            squares += centered.pow(2).sum(dim=0)
        std = (squares / max(n - 1, 1)).sqrt()
        std = torch.where(std < _MIN_STD, torch.ones_like(std), std)
        self.mean.copy_(mean.to(self.mean.device))
        self.std.copy_(std.to(self.std.device))
        self.fitted.fill_(True)
        return self

    def forward(self, instances: PowerControlInstances) -> Tensor:
        """Standardized features ``(N, F)`` in float64 (cast by the caller)."""
        raw = self.raw(instances).to(self.mean.device)
        return (raw - self.mean) / self.std

    def extra_repr(self) -> str:
        return (
            f"num_bs={self.num_bs}, num_channels={self.num_channels}, "
            f"include_rate_targets={self.include_rate_targets}, fitted={bool(self.fitted)}"
        )
