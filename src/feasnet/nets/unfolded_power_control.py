"""Deep-unfolded WMMSE for multi-cell, multi-channel power control (hand-written).

The classical WMMSE iteration for power control in the SISO interference channel (Shi,
Razaviyayn, Luo and He, "An iteratively weighted MMSE approach to distributed sum-utility
maximization for a MIMO interfering broadcast channel") unrolled into a fixed number of
layers with a few learned scalars per layer, then handed to the method's feasibility layer.

Units: powers ``x = P / pmax`` (so each BS's budget reads ``sum_q x[b, q] <= 1``), gains
``g[b, q, c] = H[b, q, c] pmax / sigma^2`` (noise 1), amplitudes ``v = sqrt(x)``. User
``i = (b, q)`` hears BS ``c`` on channel ``q`` with amplitude gain ``sqrt(g[b, q, c])``; users on
different channels do not interfere. One WMMSE sweep with rate weights 1:

    u_i = sqrt(g_ii) v_i / (sum_c g[b, q, c] v_cq^2 + 1)          (MMSE receiver)
    w_i = 1 / (1 - u_i sqrt(g_ii) v_i) = 1 + SINR_i                (MSE weight)
    v_i = w_i u_i sqrt(g_ii) / (sum_c w_cq u_cq^2 g[c, q, b] + mu)  (transmitter)

The exact method picks ``mu_b >= 0`` per BS by bisection so that ``sum_q v_bq^2 <= 1``.
Unrolled, each layer ``l`` learns (all initialized so that layer ``l`` is the classical step
with ``mu = 0`` followed by a budget rescaling):

* ``mu_l = softplus(theta_l) * mean_i(w_i u_i^2 g_ii)`` (scale-aware; starts at ~0),
* ``w_i <- w_i (1 + a_l t_i)``, ``a_l = softplus(phi_l)`` and ``t_i = alpha_i / W`` the user's
  target [bit/s/Hz], which leans the weights toward users with a rate target (starts at ~0),
* a damped step ``v <- (1 - s_l) v + s_l v_new``, ``s_l = sigmoid(sigma_l)`` (starts at ~0.98),

and ends with ``v_b <- v_b / max(1, ||v_b||)`` per BS, so every layer's powers meet the
budget. Initialization: equal split of the budget, ``x = 1 / Q``. The network returns ``x``
(``(N, B, Q)``, in ``[0, 1]``); the QoS rows are the feasibility layer's job. No learned
weight depends on ``B`` or ``Q``: one model serves every size (:attr:`any_size`).

Extra outputs (HoP's radius logit): ``Linear(8, 32) -> ReLU -> Linear(extra)`` on the mean
and max over users of ``log10 g_ii``, ``t_i``, ``log10(1 + interference at full power)`` and the
final ``x``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn.functional import softplus

from feasnet.problems.instances import PowerControlInstances

_INITIAL_STEP_LOGIT = 4.0
"""``sigmoid(4) = 0.982``: the first layers take nearly the full WMMSE step."""
_INITIAL_SOFTPLUS = -8.0
"""``softplus(-8) = 3.4e-4``: ``mu`` and the target weight start near 0."""


def normalized_gains(instances: PowerControlInstances) -> Tensor:
    """``(N, B, Q, B)`` gains in units of noise/pmax, ``g = H pmax / sigma^2``."""
    return instances.gain * (instances.pmax / instances.noise)[:, None, None, None]


def wmmse_sweep(
    v: Tensor, g: Tensor, targets: Tensor, mu_scale: Tensor, target_weight: Tensor, step: Tensor
) -> Tensor:
    """One unfolded WMMSE layer (module doc).

    Args:
        v: ``(N, B, Q)`` amplitudes ``sqrt(x)``.
        g: ``(N, B, Q, B)`` normalized gains.
        targets: ``(N, B, Q)`` rate targets ``alpha / W`` [bit/s/Hz].
        mu_scale, target_weight, step: scalars ``softplus(theta_l)``, ``a_l``, ``s_l``.

    Returns:
        ``(N, B, Q)`` amplitudes with ``sum_q v^2 <= 1`` per BS.
    """
    direct = torch.diagonal(g, dim1=1, dim2=3).transpose(1, 2)  # (N, B, Q)
    root = direct.sqrt()
    power = v.square()
    received = torch.einsum("nbqc,ncq->nbq", g, power) + 1.0
    u = root * v / received
    mse = (1.0 - u * root * v).clamp(min=torch.finfo(v.dtype).eps)
    w = (1.0 + target_weight * targets) / mse
    # sum over receivers (c, q) of w_cq u_cq^2 g[c, q, b]: the transmitter's cost at BS b
    cost = torch.einsum("ncq,ncqb->nbq", w * u.square(), g)
    mu = mu_scale * (w * u.square() * direct).mean(dim=(1, 2), keepdim=True)
    new = w * u * root / (cost + mu).clamp(min=torch.finfo(v.dtype).tiny)
    mixed = (1.0 - step) * v + step * new
    norm = torch.linalg.vector_norm(mixed, dim=2, keepdim=True)
    return mixed / norm.clamp(min=1.0)


class UnfoldedPowerControlWMMSE(nn.Module):
    """Deep-unfolded WMMSE for power control: instances of any ``(B, Q)`` in,
    ``(raw (N, B, Q) normalized powers, extra (N, extra_outputs))`` out.

    Args:
        num_layers: unfolded WMMSE iterations.
        extra_outputs: outputs of the extra head (e.g. 1 for HoP's radius logit).
        head_width: hidden width of the extra head.

    Computation runs in float64 on the instances' device (the gains span ~10 orders of
    magnitude); the outputs are cast to the parameters' dtype.
    """

    any_size: ClassVar[bool] = True
    """One model serves every ``(B, Q)`` (no weight depends on the size)."""

    def __init__(self, num_layers: int = 5, extra_outputs: int = 0, head_width: int = 32) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers: expected >= 1, got {num_layers}")
        if extra_outputs < 0:
            raise ValueError(f"extra_outputs: expected a value >= 0, got {extra_outputs}")
        self.num_layers = num_layers
        self.mu_logit = nn.Parameter(torch.full((num_layers,), _INITIAL_SOFTPLUS))
        self.target_logit = nn.Parameter(torch.full((num_layers,), _INITIAL_SOFTPLUS))
        self.step_logit = nn.Parameter(torch.full((num_layers,), _INITIAL_STEP_LOGIT))
        self.extra_head = (
            nn.Sequential(nn.Linear(8, head_width), nn.ReLU(), nn.Linear(head_width, extra_outputs))
            if extra_outputs
            else None
        )

    def iterate(self, inst: PowerControlInstances, g: Tensor) -> Tensor:
        """``(N, B, Q)`` float64 normalized powers after the unfolded layers, for float64
        instances ``inst`` on the parameters' device and their :func:`normalized_gains` ``g``."""
        targets = inst.min_rate / inst.bandwidth[:, None, None]
        q = inst.num_channels
        v = torch.full_like(targets, (1.0 / q) ** 0.5)
        mu = softplus(self.mu_logit.to(torch.float64))
        weight = softplus(self.target_logit.to(torch.float64))
        step = torch.sigmoid(self.step_logit.to(torch.float64))
        for layer in range(self.num_layers):
            v = wmmse_sweep(v, g, targets, mu[layer], weight[layer], step[layer])
        return v.square()

    def propose(self, instances: PowerControlInstances) -> tuple[Tensor, Tensor]:
        """The backbone contract of :mod:`feasnet.nets.registry`: ``(raw (N, B, Q)
        normalized powers in [0, 1], extra (N, extra_outputs))`` in the parameters' dtype."""
        dtype = self.mu_logit.dtype
        inst = instances.to(torch.float64, self.mu_logit.device)
        g = normalized_gains(inst)
        x = self.iterate(inst, g)
        if self.extra_head is None:
            return x.to(dtype), x.new_zeros(x.shape[0], 0, dtype=dtype)
        direct = torch.diagonal(g, dim1=1, dim2=3).transpose(1, 2)
        interference = torch.einsum("nbqc->nbq", g) - direct
        per_user = torch.stack(
            [
                torch.log10(direct.clamp(min=1e-12)),
                inst.min_rate / inst.bandwidth[:, None, None],
                torch.log1p(interference.clamp(min=0.0)) / torch.log(torch.tensor(10.0)),
                x,
            ],
            dim=-1,
        ).flatten(1, 2)
        summary = torch.cat([per_user.mean(dim=1), per_user.amax(dim=1)], dim=1)
        head_dtype = next(self.extra_head.parameters()).dtype
        return x.to(dtype), self.extra_head(summary.to(head_dtype)).to(dtype)

    def forward(self, instances: PowerControlInstances) -> Tensor:
        """Raw normalized powers ``(N, B, Q)``."""
        return self.propose(instances)[0]


__all__ = ["UnfoldedPowerControlWMMSE", "normalized_gains", "wmmse_sweep"]
