"""Graph neural network backbones whose parameters do not depend on the network size.

Users are the nodes of a graph and every learned map acts on one node or one pair of nodes,
with a mean / max over the neighbours, so the same weights serve any number of BSs ``B``,
channels ``Q`` (power control) or users ``K`` and antennas ``Nt`` (MISO). The input
standardization is per feature *kind* (one mean and standard deviation for every node's
direct gain, one for every edge's cross gain, ...), fitted on the training set, so it does
not depend on the size either. A model trained on one size therefore loads and runs on any
other (:attr:`PowerControlGNN.any_size`).

Message passing is dense and batched over all pairs of users (plain torch). At the sizes of
the papers (``B Q <= 48`` users, ``K <= 10``) the all-pairs tensors are small; a sparse
graph library would add a heavy dependency and scatter overhead without saving work, because
every pair of users on one channel interferes (the interference graph is complete).

Power control (:class:`PowerControlGNN`)
----------------------------------------

Node ``i = (b, q)``: the user served by BS ``b`` on channel ``q``. Gains in units of
noise/pmax, ``g[b, q, c] = H[b, q, c] pmax / sigma^2``. Node features (log10 of gains, floored
at ``gain_floor``):

* ``log10 g[b, q, b]``, the direct gain;
* ``alpha_bq / W``, the rate target [bit/s/Hz];
* ``log10(sum_{c != b} g[b, q, c])``, interference received at full power from every other BS;
* ``log10(sum_{c != b} g[c, q, b])``, interference caused at full power to every other user;
* ``log10 x_min[b, q]`` and ``log10 sum_q' x_min[b, q']``, the componentwise-minimal QoS
  powers (fraction of pmax, :func:`feasnet.problems.power_control.minimum_power`) of the user
  and of its BS: how much of the budget the targets already take (with ``min_power_feature``).

Two relations between users, each with its own message function:

* *interference*: users on the same channel ``q`` at other BSs ``c != b``; edge features
  ``log10 g[b, q, c]`` (gain of the interferer's BS at this user) and ``log10 g[c, q, b]`` (gain
  of this user's BS at the interferer);
* *budget*: users of the same BS ``b`` on other channels ``q' != q`` (they share ``pmax``); no
  edge features.

One round: ``m_ij = MLP_r([h_i, h_j, e_ij])`` per relation ``r``; the node update is
``h_i <- h_i + MLP_u([h_i, mean_j m_ij (interference), max_j m_ij (interference), mean_j m_ij
(budget)])`` (an empty neighbourhood, ``B = 1`` or ``Q = 1``, contributes zeros). Output per
node: ``sigmoid(MLP_o(h_i))``, a normalized power in ``(0, 1)`` (``activation="budget"``
further divides each BS's powers by ``max(1, sum_q)``, so the budget always holds). Extra
outputs (HoP's radius): ``Linear([mean_i h_i, max_i h_i])``.

Symmetries: relabelling the BSs (``b`` in every index of ``H``) or the channels permutes the
output the same way (tested in float64).

MISO (:class:`MisoGNN`)
-----------------------

Node ``k``: user ``k`` of normalized instances (noise 1, budget ``||V||^2 <= 1``). Node
features ``log10 ||h_k||^2``, ``w_k``, ``log(1 + gamma_k)``; edge features of ``(k, j)``:
``|rho_kj| = |h_k^H h_j| / (||h_k|| ||h_j||)`` and ``log10(||h_k||^2 |rho_kj|^2)`` (the gain at
user ``k`` of a unit beam matched to user ``j``). The same rounds over all pairs, then per user
a power logit ``s_k`` and a dual logit ``l_k``. The beams follow the optimal beamforming
structure (the uplink-downlink duality form)::

    lambda = softmax(l),  p = total * softmax(s),  total = (1 - 1e-6) sigmoid(t)
    v_k = sqrt(p_k) d_k / ||d_k||,  d_k = (I + sum_j lambda_j conj(h_j) h_j^T)^{-1} conj(h_k),

``t`` a readout of the graph. With ``H`` the ``(K, Nt)`` channel,
``D = [d_1 .. d_K] = H^H (I_K + diag(lambda) H H^H)^{-1}`` (one ``K x K`` solve), so the
computation never looks at ``Nt`` beyond the Gram matrix: one model serves any ``(Nt, K)``.
``||V||^2 = total < 1``: the budget always holds; a per-user phase rotation of ``h_k`` only
rotates ``v_k``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from feasnet.problems import power_control as pc
from feasnet.problems.instances import PowerControlInstances
from feasnet.problems.miso import MisoInstances, normalized_instances

DEFAULT_GAIN_FLOOR = 1e-12
"""Floor on normalized gains and powers before the log10 (-120 dB)."""
_MIN_STD = 1e-8
"""Standard deviations below this (constant features) are replaced by 1."""
NODE_FEATURES_POWER_CONTROL = 6
EDGE_FEATURES_POWER_CONTROL = 2
NODE_FEATURES_MISO = 3
EDGE_FEATURES_MISO = 2

GnnActivation = Literal["sigmoid", "budget"]


def _mlp(inputs: int, width: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, outputs))


def _log(values: Tensor, floor: float) -> Tensor:
    return torch.log10(torch.clamp(torch.nan_to_num(values, nan=floor), min=floor))


class FeatureScaler(nn.Module):
    """Per-kind standardization ``(f - mean) / std`` of node or edge features.

    The statistics are one value per feature kind (the last dimension), pooled over every
    instance, node and valid edge of the training set, so they do not depend on the size.

    Buffers:
        mean, std: ``(F,)`` float64.
        fitted: 0-d bool, whether :meth:`fit` has run.
    """

    mean: Tensor
    std: Tensor
    fitted: Tensor

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_features, dtype=torch.float64))
        self.register_buffer("std", torch.ones(num_features, dtype=torch.float64))
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit(self, values: Tensor) -> None:
        """Fit on ``values (M, F)`` float64 (the pooled nodes or edges)."""
        if values.shape[0] == 0:
            return
        values = values.to(torch.float64)
        mean = values.mean(dim=0)
        std = values.std(dim=0) if values.shape[0] > 1 else torch.ones_like(mean)
        std = torch.where(std < _MIN_STD, torch.ones_like(std), std)
        self.mean.copy_(mean.to(self.mean.device))
        self.std.copy_(std.to(self.std.device))
        self.fitted.fill_(True)

    def forward(self, values: Tensor) -> Tensor:
        """``(..., F)`` standardized, in ``values``' dtype."""
        return (values - self.mean.to(values)) / self.std.to(values)


def _check_sizes(hidden: int, rounds: int, extra_outputs: int) -> None:
    """ValueError naming the field unless ``hidden >= 1``, ``rounds >= 0`` and
    ``extra_outputs >= 0``."""
    if hidden < 1 or rounds < 0:
        raise ValueError(f"hidden, rounds: expected >= 1, >= 0, got {hidden}, {rounds}")
    if extra_outputs < 0:
        raise ValueError(f"extra_outputs: expected a value >= 0, got {extra_outputs}")


def _masked_mean_max(messages: Tensor, mask: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Mean and max of ``messages`` over ``dim`` where ``mask`` (broadcast) holds; zeros where
    no entry does. ``mask`` has ``messages``' shape without the last (feature) dimension."""
    weight = mask.expand(messages.shape[:-1]).to(messages.dtype).unsqueeze(-1)
    count = weight.sum(dim=dim)
    mean = (messages * weight).sum(dim=dim) / count.clamp(min=1.0)
    low = torch.finfo(messages.dtype).min
    masked = torch.where(weight > 0, messages, torch.full_like(messages, low))
    peak = masked.amax(dim=dim)
    peak = torch.where(count > 0, peak, torch.zeros_like(peak))
    return mean, peak


class PairMessage(nn.Module):
    """``m_ij = MLP([h_i, h_j, e_ij])`` with the first affine map split into per-node parts
    (computed once per node, then broadcast over the pairs)."""

    def __init__(self, width: int, edge_features: int) -> None:
        super().__init__()
        self.own = nn.Linear(width, width)
        self.other = nn.Linear(width, width, bias=False)
        self.edge = nn.Linear(edge_features, width, bias=False) if edge_features else None
        self.out = nn.Linear(width, width)

    def forward(self, own: Tensor, other: Tensor, edge: Tensor | None) -> Tensor:
        """``own`` and ``other`` broadcastable ``(..., width)``; ``edge`` ``(..., E)``."""
        z = self.own(own) + self.other(other)
        if self.edge is not None and edge is not None:
            z = z + self.edge(edge)
        return self.out(torch.relu(z))


# ============================================================================ power control
def power_control_graph(
    instances: PowerControlInstances,
    gain_floor: float = DEFAULT_GAIN_FLOOR,
    min_power_feature: bool = True,
) -> tuple[Tensor, Tensor]:
    """Unstandardized graph features of power-control instances, float64.

    Returns:
        ``(nodes, edges)``: ``(N, B, Q, F_node)`` node features and ``(N, B, Q, B, 2)``
        interference-edge features (entry ``[n, b, q, c]`` for the edge from user ``(c, q)``
        to user ``(b, q)``; the diagonal ``c = b`` is not an edge). Layout in the module doc.
    """
    inst = instances.to(torch.float64)
    scale = (inst.pmax / inst.noise)[:, None, None, None]
    g = inst.gain * scale  # (N, B, Q, C) normalized gains
    b = inst.num_bs
    eye = torch.eye(b, dtype=torch.bool, device=g.device)[:, None, :]  # (B, 1, C)
    direct = torch.diagonal(g, dim1=1, dim2=3).transpose(1, 2)  # (N, B, Q)
    g_out = g.permute(0, 3, 2, 1)  # [n, b, q, c] = g[n, c, q, b]
    cross_in = torch.where(eye, torch.zeros_like(g), g).sum(dim=3)
    cross_out = torch.where(eye, torch.zeros_like(g), g_out).sum(dim=3)
    target = inst.min_rate / inst.bandwidth[:, None, None]
    columns = [
        _log(direct, gain_floor),
        target,
        _log(cross_in, gain_floor),
        _log(cross_out, gain_floor),
    ]
    if min_power_feature:
        x_min = pc.minimum_power(inst).power / inst.pmax[:, None, None]
        columns += [
            _log(x_min, gain_floor),
            _log(x_min.sum(dim=2, keepdim=True).expand_as(x_min), gain_floor),
        ]
    else:
        columns += [torch.zeros_like(direct), torch.zeros_like(direct)]
    nodes = torch.stack(columns, dim=-1)
    edges = torch.stack([_log(g, gain_floor), _log(g_out, gain_floor)], dim=-1)
    return nodes, edges


class PowerControlGNN(nn.Module):
    """Size-independent GNN backbone for power control (module doc): instances of any
    ``(B, Q)`` in, ``(raw (N, B, Q) normalized powers, extra (N, extra_outputs))`` out.

    Args:
        hidden: node state width.
        rounds: message-passing rounds.
        activation: ``"sigmoid"`` (each power in ``(0, 1)``) or ``"budget"`` (then each BS's
            powers divided by ``max(1, their sum)``).
        min_power_feature: feed the minimal QoS powers as node features.
        gain_floor: floor on normalized gains before the log.
        extra_outputs: width of the graph-level extra head (HoP's radius logit).
    """

    any_size: ClassVar[bool] = True
    """One model serves every ``(B, Q)``: :class:`feasnet.models.LearnedModel` lets it run on
    instances of another size than the training one."""

    def __init__(
        self,
        hidden: int = 64,
        rounds: int = 3,
        activation: GnnActivation = "sigmoid",
        min_power_feature: bool = True,
        gain_floor: float = DEFAULT_GAIN_FLOOR,
        extra_outputs: int = 0,
    ) -> None:
        super().__init__()
        _check_sizes(hidden, rounds, extra_outputs)
        if activation not in ("sigmoid", "budget"):
            raise ValueError(f"activation: expected 'sigmoid' or 'budget', got {activation!r}")
        self.activation: GnnActivation = activation
        self.min_power_feature = min_power_feature
        self.gain_floor = gain_floor
        self.node_scaler = FeatureScaler(NODE_FEATURES_POWER_CONTROL)
        self.edge_scaler = FeatureScaler(EDGE_FEATURES_POWER_CONTROL)
        self.encode = nn.Linear(NODE_FEATURES_POWER_CONTROL, hidden)
        self.interference = nn.ModuleList(
            PairMessage(hidden, EDGE_FEATURES_POWER_CONTROL) for _ in range(rounds)
        )
        self.budget = nn.ModuleList(PairMessage(hidden, 0) for _ in range(rounds))
        self.update = nn.ModuleList(_mlp(4 * hidden, hidden, hidden) for _ in range(rounds))
        self.head = _mlp(hidden, hidden, 1)
        self.extra_head = nn.Linear(2 * hidden, extra_outputs) if extra_outputs else None

    def graph(self, instances: PowerControlInstances) -> tuple[Tensor, Tensor]:
        """Unstandardized ``(nodes, edges)`` (see :func:`power_control_graph`)."""
        return power_control_graph(instances, self.gain_floor, self.min_power_feature)

    @torch.no_grad()
    def fit_normalizer(
        self, instances: PowerControlInstances, chunk_size: int = 16384
    ) -> PowerControlGNN:
        """Fit the per-kind standardization on (the first 65,536 of) the training instances;
        returns ``self``."""
        nodes, edges = [], []
        sample = instances[: 4 * chunk_size]
        b = sample.num_bs
        off_diagonal = ~torch.eye(b, dtype=torch.bool)[:, None, :].expand(b, sample.num_channels, b)
        for start in range(0, len(sample), chunk_size):
            n, e = self.graph(sample[start : start + chunk_size])
            nodes.append(n.reshape(-1, n.shape[-1]).cpu())
            edges.append(e[:, off_diagonal.to(e.device)].reshape(-1, e.shape[-1]).cpu())
        self.node_scaler.fit(torch.cat(nodes))
        self.edge_scaler.fit(torch.cat(edges))
        return self

    def embed(self, instances: PowerControlInstances) -> Tensor:
        """Final node states ``(N, B, Q, hidden)`` in the parameters' dtype."""
        dtype, device = self.encode.weight.dtype, self.encode.weight.device
        nodes, edges = self.graph(instances.to(torch.float64, device))
        nodes = self.node_scaler(nodes).to(dtype)
        edges = self.edge_scaler(edges).to(dtype)
        b, q = nodes.shape[1], nodes.shape[2]
        interferers = ~torch.eye(b, dtype=torch.bool, device=device)[:, None, :].expand(b, q, b)
        siblings = ~torch.eye(q, dtype=torch.bool, device=device)[None, :, :].expand(b, q, q)
        h = torch.relu(self.encode(nodes))
        for interference, budget, update in zip(
            self.interference, self.budget, self.update, strict=True
        ):
            # interference: pair [n, b, q, c] joins user (b, q) and user (c, q)
            other = h.permute(0, 2, 1, 3)[:, None]  # (N, 1, Q, C, H)
            m = interference(h[:, :, :, None], other, edges)
            mean_i, max_i = _masked_mean_max(m, interferers, dim=3)
            # budget: pair [n, b, q, r] joins user (b, q) and user (b, r)
            m = budget(h[:, :, :, None], h[:, :, None], None)
            mean_b, _ = _masked_mean_max(m, siblings, dim=3)
            h = h + update(torch.cat([h, mean_i, max_i, mean_b], dim=-1))
        return h

    def propose(self, instances: PowerControlInstances) -> tuple[Tensor, Tensor]:
        """The backbone contract of :mod:`feasnet.nets.registry`: ``(raw (N, B, Q) normalized
        powers, extra (N, extra_outputs))`` in the parameters' dtype."""
        h = self.embed(instances)
        raw = torch.sigmoid(self.head(h).squeeze(-1))
        if self.activation == "budget":
            raw = raw / raw.sum(dim=2, keepdim=True).clamp(min=1.0)
        flat = h.flatten(1, 2)
        if self.extra_head is None:
            return raw, h.new_zeros(h.shape[0], 0)
        return raw, self.extra_head(torch.cat([flat.mean(dim=1), flat.amax(dim=1)], dim=1))

    def forward(self, instances: PowerControlInstances) -> Tensor:
        """Raw normalized powers ``(N, B, Q)``."""
        return self.propose(instances)[0]


# ============================================================================ MISO
def miso_graph(
    instances: MisoInstances, gain_floor: float = DEFAULT_GAIN_FLOOR
) -> tuple[Tensor, Tensor]:
    """Unstandardized graph features of *normalized* MISO instances, float64.

    Returns:
        ``(nodes, edges)``: ``(N, K, 3)`` and ``(N, K, K, 2)`` (entry ``[n, k, j]``: the pair
        of users ``k`` and ``j``; the diagonal is not an edge). Layout in the module doc.
    """
    h = instances.channel.to(torch.complex128)
    gain = torch.linalg.vector_norm(h, dim=2).square()  # (N, K)
    gram = h.conj() @ h.transpose(1, 2)  # [k, j] = h_k^H h_j
    norm = gain.sqrt().clamp(min=1e-300)
    rho = gram.abs() / (norm[:, :, None] * norm[:, None, :])
    nodes = torch.stack(
        [
            _log(gain, gain_floor),
            instances.weights.to(torch.float64),
            torch.log1p(instances.sinr_min.to(torch.float64)),
        ],
        dim=-1,
    )
    edges = torch.stack([rho, _log(gain[:, :, None] * rho.square(), gain_floor)], dim=-1)
    return nodes, edges


def structured_beams(channel: Tensor, dual: Tensor, power: Tensor) -> Tensor:
    """Beams of the optimal-structure form ``v_k = sqrt(p_k) d_k / ||d_k||``.

    Args:
        channel: ``(N, K, Nt)`` complex normalized channel (noise 1).
        dual: ``(N, K)`` real, non-negative uplink powers ``lambda``.
        power: ``(N, K)`` real, non-negative beam powers ``p`` (fraction of the budget).

    Returns:
        ``(N, Nt, K)`` complex beams with ``||v_k||^2 = p_k``.
    """
    k = channel.shape[1]
    gram = channel @ channel.conj().transpose(1, 2)  # [k, j] = h_k^T conj(h_j)
    eye = torch.eye(k, dtype=channel.dtype, device=channel.device)
    system = eye + dual.to(channel.dtype)[:, :, None] * gram
    directions = channel.conj().transpose(1, 2) @ torch.linalg.inv(system)  # (N, Nt, K)
    norm = torch.linalg.vector_norm(directions, dim=1, keepdim=True)
    unit = directions / norm.clamp(min=1e-30).to(directions.dtype)
    return unit * power.sqrt().to(channel.dtype)[:, None, :]


class MisoGNN(nn.Module):
    """Size-independent GNN backbone for MISO (module doc): instances of any ``(Nt, K)`` in,
    ``(raw_beams (N, Nt, K) complex, extra (N, extra_outputs))`` out (normalized units).

    Args:
        hidden: node state width.
        rounds: message-passing rounds.
        gain_floor: floor on normalized gains before the log.
        extra_outputs: width of the graph-level extra head (HoP's radius logit).
    """

    any_size: ClassVar[bool] = True

    def __init__(
        self,
        hidden: int = 64,
        rounds: int = 3,
        gain_floor: float = DEFAULT_GAIN_FLOOR,
        extra_outputs: int = 0,
    ) -> None:
        super().__init__()
        _check_sizes(hidden, rounds, extra_outputs)
        self.gain_floor = gain_floor
        self.node_scaler = FeatureScaler(NODE_FEATURES_MISO)
        self.edge_scaler = FeatureScaler(EDGE_FEATURES_MISO)
        self.encode = nn.Linear(NODE_FEATURES_MISO, hidden)
        self.messages = nn.ModuleList(
            PairMessage(hidden, EDGE_FEATURES_MISO) for _ in range(rounds)
        )
        self.update = nn.ModuleList(_mlp(3 * hidden, hidden, hidden) for _ in range(rounds))
        self.head = _mlp(hidden, hidden, 2)
        self.total_head = nn.Linear(2 * hidden, 1)
        with torch.no_grad():  # start near full power
            self.total_head.bias.fill_(4.0)
        self.extra_head = nn.Linear(2 * hidden, extra_outputs) if extra_outputs else None

    @torch.no_grad()
    def fit_normalizer(self, instances: MisoInstances, limit: int = 65536) -> MisoGNN:
        """Fit the per-kind standardization on (the first ``limit`` of) the training
        instances; returns ``self``."""
        nodes, edges = miso_graph(normalized_instances(instances[:limit]), self.gain_floor)
        k = nodes.shape[1]
        off_diagonal = ~torch.eye(k, dtype=torch.bool, device=edges.device)
        self.node_scaler.fit(nodes.reshape(-1, nodes.shape[-1]).cpu())
        self.edge_scaler.fit(edges[:, off_diagonal].reshape(-1, edges.shape[-1]).cpu())
        return self

    def propose(self, instances: MisoInstances) -> tuple[Tensor, Tensor]:
        """The backbone contract: ``(raw_beams (N, Nt, K), extra (N, extra_outputs))``; beams
        in the complex dtype of the parameters' precision, normalized units (physical or
        normalized instances give the same)."""
        dtype, device = self.encode.weight.dtype, self.encode.weight.device
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        inst = normalized_instances(instances.to(torch.float64, device))
        nodes, edges = miso_graph(inst, self.gain_floor)
        nodes = self.node_scaler(nodes).to(dtype)
        edges = self.edge_scaler(edges).to(dtype)
        k = nodes.shape[1]
        others = ~torch.eye(k, dtype=torch.bool, device=device)
        h = torch.relu(self.encode(nodes))
        for message, update in zip(self.messages, self.update, strict=True):
            m = message(h[:, :, None], h[:, None, :], edges)  # (N, K, K, H)
            mean, peak = _masked_mean_max(m, others.expand(h.shape[0], k, k), dim=2)
            h = h + update(torch.cat([h, mean, peak], dim=-1))
        out = self.head(h)  # (N, K, 2)
        pooled = torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=1)
        total = (1.0 - 1e-6) * torch.sigmoid(self.total_head(pooled))  # (N, 1)
        power = total * torch.softmax(out[..., 0], dim=1)
        dual = torch.softmax(out[..., 1], dim=1)
        beams = structured_beams(inst.channel.to(complex_dtype), dual, power)
        if self.extra_head is None:
            return beams, h.new_zeros(h.shape[0], 0)
        return beams, self.extra_head(pooled)

    def forward(self, instances: MisoInstances) -> tuple[Tensor, Tensor]:
        """Same as :meth:`propose`."""
        return self.propose(instances)


__all__ = [
    "FeatureScaler",
    "MisoGNN",
    "PowerControlGNN",
    "miso_graph",
    "power_control_graph",
    "structured_beams",
]
