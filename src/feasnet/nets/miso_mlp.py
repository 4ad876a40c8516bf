"""Fully connected backbone for MISO beamforming (hand-written).

Input: *normalized* instances (:func:`feasnet.problems.miso.normalized_instances`: noise 1,
budget ``||V||^2 <= 1``). Output: ``(raw_beams, extra)``, ``(N, Nt, K)`` complex beams in
normalized units and ``(N, extra_outputs)`` real values (e.g. HoP's radius logit).

Features (``K (2 Nt + 3)`` per instance, computed in float64, then cast to the parameters'
dtype), chosen to be robust to the > 30 dB spread of channel strengths:

* each user's channel direction ``h_k / ||h_k||`` with its phase rotated so that the first
  antenna's entry is real and non-negative, real and imaginary parts (``2 Nt`` per user). A
  per-user phase rotation of ``h_k`` changes no ``|h_k^T v_j|``, hence no SINR, so this removes
  an exact symmetry without losing information;
* ``log10 ||h_k||^2`` in normalized units (the SNR of a full-budget beam matched to user ``k``,
  in dB / 10);
* the rate weight ``w_k`` and ``log(1 + gamma_k)`` (``gamma_k = 0``, no target, maps to 0).

Body: ``[Linear -> BatchNorm1d -> ReLU -> Dropout] x len(hidden)`` (default 3 x 256), then a
``Linear`` head to ``2 Nt K`` reals ``z`` (real parts, then imaginary parts, each ``(Nt, K)``
row-major) and a separate ``Linear`` head for the extra outputs.

Output scale: ``V = z tanh(||z||_F) / ||z||_F``, a smooth bijection of ``R^{2 Nt K}`` onto
the open unit ball, so the budget holds for every output (strictly up to rounding: ``tanh``
rounds to 1 for ``||z|| > ~9`` in float32, ``~19`` in float64, which puts the beams on the
budget boundary; only QoS rows can be violated, the penalty and DC3 methods act on those), and
full power is reachable.
HoP only uses the direction ``V / ||V||``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from feasnet.nets.mlp import hidden_layers
from feasnet.problems.miso import MisoInstances, normalized_instances


def miso_features(instances: MisoInstances) -> Tensor:
    """``(N, K (2 Nt + 3))`` float64 features of normalized instances (see module doc).

    Layout: for each user ``k`` in turn, ``[Re dir (Nt), Im dir (Nt), log10 gain, w, log1p
    gamma]``.
    """
    h = instances.channel.to(torch.complex128)
    norm = torch.linalg.vector_norm(h, dim=2)  # (N, K), > 0 by validation
    first = h[:, :, 0]
    phase = torch.where(
        first.abs() > 0, first.conj() / first.abs().clamp(min=1e-300), torch.ones_like(first)
    )
    direction = h * (phase / norm.to(h.dtype))[:, :, None]
    gain = torch.log10(norm.square().clamp(min=1e-30))
    weights = instances.weights.to(torch.float64)
    targets = torch.log1p(instances.sinr_min.to(torch.float64))
    per_user = torch.cat(
        [direction.real, direction.imag, gain[..., None], weights[..., None], targets[..., None]],
        dim=2,
    )
    return per_user.flatten(1)


def to_unit_ball(z: Tensor) -> Tensor:
    """``z tanh(||z||) / ||z||`` per sample for ``z (N, ...)`` (0 maps to 0; smooth)."""
    norm = torch.linalg.vector_norm(z.flatten(1), dim=1)
    # tanh(r)/r -> 1 as r -> 0; the series keeps the gradient finite there
    safe = norm.clamp(min=1e-4)
    factor = torch.where(norm > 1e-4, torch.tanh(safe) / safe, 1 - norm.square() / 3)
    return z * factor.reshape(-1, *([1] * (z.ndim - 1))).to(z.dtype)


class MisoMLP(nn.Module):
    """Fully connected MISO backbone: normalized instances in, ``(raw_beams, extra)`` out.

    Args:
        num_antennas: ``Nt``.
        num_users: ``K``.
        hidden: widths of the hidden layers.
        batch_norm: batch normalization after each hidden affine map.
        dropout: dropout rate after each hidden layer.
        extra_outputs: number of extra real outputs (e.g. 1 for HoP's radius logit).
    """

    def __init__(
        self,
        num_antennas: int,
        num_users: int,
        hidden: Sequence[int] = (256, 256, 256),
        batch_norm: bool = True,
        dropout: float = 0.0,
        extra_outputs: int = 0,
    ) -> None:
        super().__init__()
        if num_antennas < 1 or num_users < 1:
            raise ValueError("num_antennas / num_users: expected positive sizes")
        if extra_outputs < 0:
            raise ValueError(f"extra_outputs: expected a value >= 0, got {extra_outputs}")
        self.num_antennas = num_antennas
        self.num_users = num_users
        self.extra_outputs = extra_outputs
        self.num_features = num_users * (2 * num_antennas + 3)
        self.body, width = hidden_layers(self.num_features, hidden, batch_norm, dropout)
        self.head = nn.Linear(width, 2 * num_antennas * num_users)
        self.extra_head = nn.Linear(width, extra_outputs) if extra_outputs else None

    def forward(self, instances: MisoInstances) -> tuple[Tensor, Tensor]:
        """``(raw_beams (N, Nt, K) complex, extra (N, extra_outputs) real)`` in the
        parameters' dtype (complex64 for float32 parameters); normalized units."""
        if (instances.num_antennas, instances.num_users) != (self.num_antennas, self.num_users):
            raise ValueError(
                f"instances: expected (Nt, K) = ({self.num_antennas}, {self.num_users}), got "
                f"({instances.num_antennas}, {instances.num_users})"
            )
        dtype = self.head.weight.dtype
        device = self.head.weight.device
        features = miso_features(instances).to(dtype=dtype, device=device)
        hidden = self.body(features)
        z = self.head(hidden).reshape(-1, 2, self.num_antennas, self.num_users)
        beams = to_unit_ball(torch.complex(z[:, 0], z[:, 1]))
        if self.extra_head is None:
            extra = hidden.new_zeros(hidden.shape[0], 0)
        else:
            extra = self.extra_head(hidden)
        return beams, extra

    def propose(self, instances: MisoInstances) -> tuple[Tensor, Tensor]:
        """The backbone contract of :mod:`feasnet.nets.registry`: :meth:`forward` on the
        instances in normalized units (physical or normalized instances give the same)."""
        return self(normalized_instances(instances))


__all__ = ["MisoMLP", "miso_features", "to_unit_ball"]
