"""Deep-unfolded WMMSE for MISO weighted-sum-rate beamforming (hand-written).

Works on *normalized* instances (:func:`feasnet.problems.miso.normalized_instances`: noise 1,
budget ``||V||^2 <= 1``); returns ``(raw_beams (N, Nt, K) complex, extra (N, extra_outputs))``
like :class:`feasnet.nets.miso_mlp.MisoMLP`.

WMMSE with our convention ``y_k = h_k^T sum_j v_j s_j + n_k`` (``G = H V``, ``G_kj = h_k^T v_j``,
``T_k = sum_j |G_kj|^2 + 1``). Receiver ``u_k`` (estimate ``conj(u_k) y_k``) and MSE:

    u_k = G_kk / T_k,        e_k = 1 - |G_kk|^2 / T_k = 1 / (1 + SINR_k),

MSE weight ``w'_k = a_lk w_k / e_k`` (``w_k`` the rate weight, ``a_lk`` learned), and the
beamformer minimizing ``sum_k w'_k E|conj(u_k) y_k - s_k|^2 + mu ||V||^2``:

    v_k = w'_k u_k (mu I + sum_j w'_j |u_j|^2 conj(h_j) h_j^T)^{-1} conj(h_k).

(The gradient of ``-2 Re(conj(u_k) h_k^T v_k)`` w.r.t. ``conj(v_k)`` is ``-u_k conj(h_k)``.)
With ``B = H^H`` (columns ``conj(h_k)``), ``D = diag(w'_j |u_j|^2)`` and ``C = diag(w'_k u_k)``,
Woodbury gives ``V = B (mu I_K + D H H^H)^{-1} C``: one ``K x K`` solve per layer, so the beams
stay in the span of the channels (as the WMMSE fixed points do).

Learned parameters, per layer ``l``: ``log mu_l`` and per-user ``log a_lk`` (both initialized
at 0). Instead of the bisection on ``mu`` that enforces the budget exactly, ``mu`` is
``exp(log mu_l) * sum_k w'_k |u_k|^2`` (the closed-form choice ``sigma^2 / P * tr(W |U|^2)``
that makes the update scale-aware, here with ``sigma^2 = P = 1``), and every layer ends with
``V <- V / max(1, ||V||_F)`` (scaled down onto the budget if above).

Initialization: maximum-ratio transmission with equal power, ``v_k = conj(h_k) / (||h_k||
sqrt(K))`` (``||V|| = 1``). Extra outputs: a small MLP (``Linear(F, 32) -> ReLU ->
Linear(extra)``) on per-instance features: per user ``log10 ||h_k||^2``, ``w_k``,
``log(1 + gamma_k)``, the ``K (K - 1) / 2`` channel correlations ``|h_k^H h_j| / (||h_k||
||h_j||)``, and the constraint values of the final beams clamped to ``[-1, 1]``.

Computation runs in the instances' complex dtype (parameters are cast); outputs come back in
that dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from feasnet.problems import miso
from feasnet.problems.miso import MisoInstances


def mrt_beams(instances: MisoInstances) -> Tensor:
    """``(N, Nt, K)`` MRT with equal power: ``v_k = conj(h_k) / (||h_k|| sqrt(K))``."""
    h = instances.channel
    norm = torch.linalg.vector_norm(h, dim=2, keepdim=True)
    k = instances.num_users
    return (h.conj() / (norm * k**0.5).to(h.dtype)).transpose(1, 2)


def wmmse_layer(
    beams: Tensor, instances: MisoInstances, log_mu: Tensor, log_user_scale: Tensor
) -> Tensor:
    """One unfolded WMMSE iteration on normalized instances (see module doc), then the budget
    normalization. ``beams (N, Nt, K)``, ``log_mu`` scalar, ``log_user_scale (K,)`` real (the
    instances' real dtype). Returns ``(N, Nt, K)``."""
    h = instances.channel
    gains = h @ beams  # (N, K, K)
    power = gains.abs().square()
    total = power.sum(dim=2) + instances.noise[:, None]  # T_k
    own = torch.diagonal(gains, dim1=1, dim2=2)
    u = own / total.to(own.dtype)
    mse = (total - own.abs().square()) / total  # e_k = 1 / (1 + SINR_k) > 0
    mse = mse.clamp(min=torch.finfo(mse.dtype).eps)
    w = instances.weights * torch.exp(log_user_scale)[None, :] / mse  # w'_k
    d = w * u.abs().square()
    mu = torch.exp(log_mu) * d.sum(dim=1) + torch.finfo(d.dtype).tiny ** 0.5
    gram = h @ h.conj().transpose(1, 2)  # (N, K, K) [k, j] = h_k^T conj(h_j)
    eye = torch.eye(instances.num_users, dtype=gram.dtype, device=gram.device)
    system = mu.to(gram.dtype)[:, None, None] * eye + d.to(gram.dtype)[:, :, None] * gram
    coeff = torch.linalg.solve(system, torch.diag_embed(w.to(u.dtype) * u))
    new = h.conj().transpose(1, 2) @ coeff
    norm = torch.linalg.vector_norm(new.flatten(1), dim=1)
    return new / torch.clamp(norm, min=1.0).to(new.dtype)[:, None, None]


def instance_summary(instances: MisoInstances) -> Tensor:
    """``(N, 3 K + K (K - 1) / 2)`` real features for the extra head (see module doc)."""
    h = instances.channel
    norm = torch.linalg.vector_norm(h, dim=2)
    gain = torch.log10(norm.square().clamp(min=1e-30))
    unit = h / norm.to(h.dtype)[:, :, None]
    corr = (unit.conj() @ unit.transpose(1, 2)).abs()
    rows, cols = torch.triu_indices(instances.num_users, instances.num_users, offset=1)
    return torch.cat(
        [
            gain,
            instances.weights,
            torch.log1p(instances.sinr_min),
            corr[:, rows, cols],
        ],
        dim=1,
    )


class UnfoldedWMMSE(nn.Module):
    """Deep-unfolded WMMSE: normalized instances in, ``(raw_beams, extra)`` out.

    Args:
        num_antennas: ``Nt``.
        num_users: ``K``.
        num_layers: unfolded iterations.
        extra_outputs: outputs of the extra head (e.g. 1 for HoP's radius logit).
        head_width: hidden width of the extra head.
    """

    def __init__(
        self,
        num_antennas: int,
        num_users: int,
        num_layers: int = 5,
        extra_outputs: int = 0,
        head_width: int = 32,
    ) -> None:
        super().__init__()
        if num_antennas < 1 or num_users < 1 or num_layers < 1:
            raise ValueError("num_antennas / num_users / num_layers: expected positive sizes")
        if extra_outputs < 0:
            raise ValueError(f"extra_outputs: expected a value >= 0, got {extra_outputs}")
        self.num_antennas = num_antennas
        self.num_users = num_users
        self.num_layers = num_layers
        self.extra_outputs = extra_outputs
        self.log_mu = nn.Parameter(torch.zeros(num_layers))
        self.log_user_scale = nn.Parameter(torch.zeros(num_layers, num_users))
        features = 3 * num_users + num_users * (num_users - 1) // 2 + 1 + num_users
        self.num_head_features = features
        self.extra_head = (
            nn.Sequential(
                nn.Linear(features, head_width), nn.ReLU(), nn.Linear(head_width, extra_outputs)
            )
            if extra_outputs
            else None
        )

    def forward(self, instances: MisoInstances) -> tuple[Tensor, Tensor]:
        """``(raw_beams (N, Nt, K), extra (N, extra_outputs))`` in the instances' dtype."""
        if (instances.num_antennas, instances.num_users) != (self.num_antennas, self.num_users):
            raise ValueError(
                f"instances: expected (Nt, K) = ({self.num_antennas}, {self.num_users}), got "
                f"({instances.num_antennas}, {instances.num_users})"
            )
        real = instances.real_dtype
        v = mrt_beams(instances)
        for layer in range(self.num_layers):
            v = wmmse_layer(
                v, instances, self.log_mu[layer].to(real), self.log_user_scale[layer].to(real)
            )
        if self.extra_head is None:
            return v, v.real.new_zeros(v.shape[0], 0)
        values = miso.constraint_values(v, instances).clamp(-1.0, 1.0)
        features = torch.cat([instance_summary(instances), values], dim=1)
        head_dtype = next(self.extra_head.parameters()).dtype
        extra = self.extra_head(features.to(head_dtype)).to(real)
        return v, extra

    def propose(self, instances: MisoInstances) -> tuple[Tensor, Tensor]:
        """The backbone contract of :mod:`feasnet.nets.registry`: :meth:`forward` on the
        instances in normalized units."""
        return self(miso.normalized_instances(instances))


__all__ = ["UnfoldedWMMSE", "instance_summary", "mrt_beams", "wmmse_layer"]
