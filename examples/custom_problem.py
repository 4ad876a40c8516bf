"""A problem family defined outside feasnet, in one file: power allocation over parallel channels.

The family (``parallel-channels``): one transmitter splits a total power budget ``P`` [W] over
``K`` orthogonal channels (subcarriers, or users on orthogonal resources) with power gains
``g_k`` and noise power ``sigma`` [W]. It maximizes the sum spectral efficiency

    sum_k log2(1 + g_k p_k / sigma)        [bit/s/Hz]

subject to

* the total budget ``sum_k p_k <= P``;
* a per-channel peak ``p_k <= u_k`` [W];
* a minimum rate ``log2(1 + g_k p_k / sigma) >= r_k`` [bit/s/Hz], i.e. the linear floor
  ``p_k >= m_k = (2^r_k - 1) sigma / g_k`` [W] (``r_k = 0`` gives ``p_k >= 0``).

The feasible set is a box cut by one half-space (a polytope), the objective is concave, and the
optimum is water-filling with floors and caps: ``p_k = clip(w - sigma / g_k, m_k, u_k)`` with
the water level ``w`` making the budget tight (or every ``p_k = u_k`` when the caps fit the
budget). :func:`water_filling` computes it by bisection on ``w``; it is the independent
reference the tests compare the learned methods with (and is itself checked against cvxpy).

What this file does, in order:

1. :class:`ParallelChannelInstances`, the validated, batched instance type;
2. :class:`ParallelChannelProblem`, the :class:`feasnet.problems.Problem` subclass, and
   ``register`` (after which files, results and the training loop find the family);
3. :class:`ParallelChannelMLP`, a backbone, added to the ``mlp`` backbone entry for this family
   with :func:`feasnet.nets.registry.register_backbone` (see :func:`add_mlp_backbone`);
4. :func:`main`: draw data, train ``penalty+mlp`` and ``hop+mlp`` through
   :func:`feasnet.training.train`, evaluate both with :func:`feasnet.training.model_result` and
   compare with :func:`water_filling`.

Run it with ``python examples/custom_problem.py [--epochs 10] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel
from torch import Tensor, nn

from feasnet.problems import (
    Feasibility,
    FileKey,
    InvalidInstanceError,
    LinearForm,
    Problem,
    UnsupportedProblemError,
    register,
)
from feasnet.problems.base import DEFAULT_RTOL
from feasnet.problems.instances import field_tensor

FAMILY = "parallel-channels"
"""Registry name of the family."""

REAL_DTYPES = (torch.float32, torch.float64)

FIELDS: tuple[tuple[str, str], ...] = (
    ("gain", "per_channel"),
    ("noise", "per_instance"),
    ("budget", "per_instance"),
    ("peak", "per_channel"),
    ("min_rate", "per_channel"),
)
"""The instance fields in order, with their per-instance shape (``()`` or ``(K,)``)."""


# ------------------------------------------------------------------------------ instances
@dataclass(frozen=True)
class ParallelChannelInstances:
    """``N`` instances of the parallel-channel problem, all with ``K`` channels.

    Attributes:
        gain: ``(N, K)`` power gain of each channel [linear, > 0].
        noise: ``(N,)`` noise power [W, > 0].
        budget: ``(N,)`` total power budget ``P`` [W, > 0].
        peak: ``(N, K)`` per-channel power cap ``u`` [W, > 0].
        min_rate: ``(N, K)`` minimum spectral efficiency ``r`` [bit/s/Hz, >= 0].

    Every field is a float32 or float64 tensor, all of one dtype and device, finite and in
    range; a violation is an :class:`~feasnet.problems.InvalidInstanceError` naming the field.
    """

    gain: Tensor
    noise: Tensor
    budget: Tensor
    peak: Tensor
    min_rate: Tensor

    def __post_init__(self) -> None:
        n, k = _check_matrix("gain", self.gain)
        dtype, device = self.gain.dtype, self.gain.device
        for name, kind in FIELDS[1:]:
            value = getattr(self, name)
            if not isinstance(value, Tensor):
                raise InvalidInstanceError(f"{name}: expected a tensor, got {type(value).__name__}")
            expected = (n,) if kind == "per_instance" else (n, k)
            if tuple(value.shape) != expected:
                raise InvalidInstanceError(
                    f"{name}: expected shape {expected} (gain is {(n, k)}), got "
                    f"{tuple(value.shape)}"
                )
            if value.dtype != dtype or value.device != device:
                raise InvalidInstanceError(
                    f"{name}: expected {dtype} on {device} like gain, got {value.dtype} on "
                    f"{value.device}"
                )
        for name, _ in FIELDS:
            value = getattr(self, name)
            if not bool(torch.isfinite(value).all()):
                raise InvalidInstanceError(f"{name}: contains NaN or inf")
            if name == "min_rate":
                if bool((value < 0).any()):
                    raise InvalidInstanceError(f"{name}: expected values >= 0 [bit/s/Hz]")
            elif bool((value <= 0).any()):
                raise InvalidInstanceError(f"{name}: expected values > 0, got {value.min():.4g}")

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_arrays(
        cls,
        gain: Any,
        noise: Any,
        budget: Any,
        peak: Any,
        min_rate: Any,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> ParallelChannelInstances:
        """Instances from array-likes; ``gain`` sets ``(N, K)``, the others broadcast from a
        scalar (per-instance fields: ``(N,)``; per-channel fields: ``(K,)`` or ``(N, K)``)."""
        if dtype not in REAL_DTYPES:
            raise InvalidInstanceError(f"dtype: expected float32 or float64, got {dtype}")
        g = _as_tensor("gain", gain, dtype, device)
        n, k = _check_matrix("gain", g)
        given = {"noise": noise, "budget": budget, "peak": peak, "min_rate": min_rate}
        values: dict[str, Tensor] = {"gain": g}
        for name, kind in FIELDS[1:]:
            value = _as_tensor(name, given[name], dtype, g.device)
            target = (n,) if kind == "per_instance" else (n, k)
            try:
                values[name] = torch.broadcast_to(value, target).clone()
            except RuntimeError:
                raise InvalidInstanceError(
                    f"{name}: cannot broadcast shape {tuple(value.shape)} to {target}"
                ) from None
        return cls(**values)

    # ---------------------------------------------------------------- batching
    @property
    def num_instances(self) -> int:
        return int(self.gain.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self.gain.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        return self.gain.dtype

    @property
    def device(self) -> torch.device:
        return self.gain.device

    def __len__(self) -> int:
        return self.num_instances

    def __getitem__(self, index: int | slice | Tensor | Sequence[int]) -> ParallelChannelInstances:
        """The instances at ``index`` (an int keeps the batch dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return ParallelChannelInstances(**{name: getattr(self, name)[index] for name, _ in FIELDS})

    def to(
        self, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> ParallelChannelInstances:
        """The instances in ``dtype`` (float32 / float64) on ``device``."""
        if dtype is not None and dtype not in REAL_DTYPES:
            raise InvalidInstanceError(f"dtype: expected float32 or float64, got {dtype}")
        same_device = device is None or torch.device(device) == self.device
        if dtype in (None, self.dtype) and same_device:
            return self
        return ParallelChannelInstances(
            **{name: getattr(self, name).to(dtype=dtype, device=device) for name, _ in FIELDS}
        )

    # ---------------------------------------------------------------- derived quantities
    def floor_power(self) -> Tensor:
        """``(N, K)`` the power ``m_k = (2^r_k - 1) sigma / g_k`` [W] that meets each minimum
        rate with equality."""
        return torch.expm1(self.min_rate * math.log(2)) * self.noise[:, None] / self.gain


def _as_tensor(
    name: str, value: Any, dtype: torch.dtype, device: torch.device | str | None
) -> Tensor:
    """``value`` as a real tensor; feasnet's ``field_tensor`` names the field in its errors."""
    return field_tensor(name, value).to(dtype=dtype, device=device)


def _check_matrix(name: str, value: Any) -> tuple[int, int]:
    if not isinstance(value, Tensor):
        raise InvalidInstanceError(f"{name}: expected a tensor, got {type(value).__name__}")
    if value.dim() != 2 or value.shape[1] < 1:
        raise InvalidInstanceError(
            f"{name}: expected shape (N, K) with K >= 1, got {tuple(value.shape)}"
        )
    if value.dtype not in REAL_DTYPES:
        raise InvalidInstanceError(f"{name}: expected float32 or float64, got {value.dtype}")
    return int(value.shape[0]), int(value.shape[1])


# ------------------------------------------------------------------------------ result
@dataclass
class ParallelChannelResult:
    """Allocations for ``N`` instances with their float64 check (what ``Problem.result``
    returns; :mod:`feasnet.metrics` reads ``objective``, ``feasible`` and ``seconds``).

    Attributes:
        method: the method's name.
        power: ``(N, K)`` float64 [W]; NaN rows where the method gave nothing.
        feasible: ``(N,)`` bool, the float64 check at ``rtol``.
        objective: ``(N,)`` float64 sum spectral efficiency [bit/s/Hz].
        seconds: ``(N,)`` float64 wall time per instance [s].
        messages: one line per instance, ``""`` when nothing needs saying.
        rtol: relative tolerance of ``feasible``.
    """

    method: str
    power: np.ndarray
    feasible: np.ndarray
    objective: np.ndarray
    seconds: np.ndarray
    messages: list[str] = field(default_factory=list)
    rtol: float = DEFAULT_RTOL

    def __len__(self) -> int:
        return int(self.power.shape[0])


# ------------------------------------------------------------------------------ the problem
FILE_KEYS: dict[str, FileKey] = {
    "gain": FileKey("(N, K)", "linear", "power gain of each channel"),
    "noise": FileKey("scalar or (N,)", "W", "noise power"),
    "budget": FileKey("scalar or (N,)", "W", "total power budget P"),
    "peak": FileKey("scalar, (K,) or (N, K)", "W", "per-channel power cap u"),
    "min_rate": FileKey("scalar, (K,) or (N, K)", "bit/s/Hz", "minimum rate of each channel"),
}
"""The exchange format (``.npz`` keys)."""


@register
@dataclass
class ParallelChannelProblem(Problem):
    """Sum-rate power allocation over ``K`` parallel channels (see the module docstring).

    Normalized variable ``x = p / P`` ``(N, K)``: each channel's power as a fraction of the
    total budget. Constraint rows (``M = 2K + 1``, all in units of the budget ``P``)::

        row 0          sum_k x_k - 1          (budget)
        rows 1..K      m_k / P - x_k          (rate floor; 0 floor = non-negativity)
        rows K+1..2K   x_k - u_k / P          (peak)

    One constraint set, ``box-budget``; the rows are linear, so :meth:`linear_form` gives
    them as ``G x <= h`` and :meth:`boundary_exit` is the polytope's closed form.
    """

    family: ClassVar[str] = FAMILY
    objective_unit: ClassVar[str] = "bit/s/Hz"
    instances_type: ClassVar[type] = ParallelChannelInstances
    constraint_sets: ClassVar[tuple[str, ...]] = ("box-budget",)
    complex_variable: ClassVar[bool] = False
    file_keys: ClassVar[dict[str, FileKey]] = FILE_KEYS

    @classmethod
    def for_instances(
        cls, instances: ParallelChannelInstances, nonlinear: bool = False
    ) -> ParallelChannelProblem:
        """The problem the instances call for (one constraint set). ``problem_of`` calls it."""
        return cls()

    @classmethod
    def recognizes(cls, arrays: Mapping[str, Any]) -> bool:
        """A file with a 2-D ``gain`` is this family's (registry tie-break)."""
        return np.ndim(arrays.get("gain", np.zeros(0))) == 2

    # ---------------------------------------------------------------- variables
    def variable_shape(self, instances: ParallelChannelInstances) -> tuple[int, ...]:
        """``(K,)``."""
        return (instances.num_channels,)

    def to_physical(self, x: Tensor, instances: ParallelChannelInstances) -> Tensor:
        """Powers ``p = x P`` ``(N, K)`` [W]."""
        return x * instances.budget.to(x.dtype)[:, None]

    def from_physical(self, allocation: Tensor, instances: ParallelChannelInstances) -> Tensor:
        """``x = p / P`` ``(N, K)`` of powers [W]."""
        return allocation / instances.budget.to(allocation.dtype)[:, None]

    # ---------------------------------------------------------------- objective, constraints
    def objective(self, x: Tensor, instances: ParallelChannelInstances) -> Tensor:
        """``(N,)`` sum spectral efficiency ``sum_k log2(1 + g_k p_k / sigma)`` [bit/s/Hz]."""
        snr = instances.gain * instances.budget[:, None] / instances.noise[:, None]
        return torch.log1p(snr.to(x.dtype) * x).sum(dim=1) / math.log(2)

    def constraints(self, x: Tensor, instances: ParallelChannelInstances) -> Tensor:
        """``(N, 2K + 1)`` rows ``G x - h`` (see the class docstring), ``<= 0`` where met."""
        form = self.linear_form(instances.to(x.dtype, x.device))
        return torch.einsum("nmd,nd->nm", form.G, x) - form.h

    def linear_form(self, instances: ParallelChannelInstances) -> LinearForm:
        """``G (N, 2K + 1, K)``, ``h (N, 2K + 1)`` in the instances' dtype and device."""
        n, k = instances.num_instances, instances.num_channels
        eye = torch.eye(k, dtype=instances.dtype, device=instances.device).expand(n, k, k)
        ones = torch.ones(n, 1, k, dtype=instances.dtype, device=instances.device)
        G = torch.cat([ones, -eye, eye], dim=1)
        budget = instances.budget[:, None]
        h = torch.cat(
            [
                torch.ones_like(budget),
                -instances.floor_power() / budget,
                instances.peak / budget,
            ],
            dim=1,
        )
        return LinearForm(G=G, h=h)

    # ---------------------------------------------------------------- geometry
    def feasibility(self, instances: ParallelChannelInstances) -> Feasibility:
        """Exact: feasible iff every floor is at most its peak and the floors fit the budget."""
        inst = self.float64(instances)
        floor = inst.floor_power()
        above_peak = floor > inst.peak
        over_budget = floor.sum(dim=1) > inst.budget
        feasible = ~above_peak.any(dim=1) & ~over_budget
        reasons = [""] * len(inst)
        for i in (~feasible).nonzero().flatten().tolist():
            if bool(above_peak[i].any()):
                k = int(above_peak[i].nonzero()[0])
                reasons[i] = (
                    f"infeasible: minimum rate of channel {k} needs {float(floor[i, k]):.4g} W, "
                    f"above its peak {float(inst.peak[i, k]):.4g} W"
                )
            else:
                reasons[i] = (
                    f"infeasible: the minimum rates need {float(floor[i].sum()):.4g} W in all, "
                    f"above the budget {float(inst.budget[i]):.4g} W"
                )
        return Feasibility(feasible=feasible, reasons=reasons, exact=True)

    def anchor(self, instances: ParallelChannelInstances) -> Tensor:
        """``(N, K)`` strictly interior ``x`` (NaN rows where infeasible).

        ``a_k = lo_k + s_k`` with ``lo = m / P``, ``hi = u / P`` and
        ``s_k = (min(hi_k - lo_k, (1 - sum lo) / K)) / 2``: each entry sits strictly between
        its floor and its peak and the sum stays below 1 by at least half the slack. (An
        instance with no slack at all, ``m_k = u_k`` or ``sum m = P``, has no interior; the
        anchor is then a feasible boundary point.)
        """
        lo = instances.floor_power() / instances.budget[:, None]
        hi = instances.peak / instances.budget[:, None]
        slack = (1 - lo.sum(dim=1, keepdim=True)) / instances.num_channels
        step = 0.5 * torch.minimum(hi - lo, slack.expand_as(lo))
        x = lo + step
        feasible = self.feasibility(instances).feasible.to(x.device)
        return torch.where(feasible[:, None], x, torch.full_like(x, math.nan))

    def boundary_exit(
        self,
        anchor: Tensor,
        direction: Tensor,
        instances: ParallelChannelInstances,
        iterations: int = 60,
    ) -> Tensor:
        """``(N,)`` largest ``t`` with ``anchor + t d`` in the polytope: the closed form
        ``min over rows with (G d)_m > 0 of (h_m - G_m a) / (G_m d)`` (``inf`` where no row
        limits the ray). Differentiable in ``anchor`` and ``direction``; ``iterations`` is
        unused (the base class bisects)."""
        form = self.linear_form(instances.to(anchor.dtype, anchor.device))
        slack = (form.h - torch.einsum("nmd,nd->nm", form.G, anchor)).clamp(min=0)
        rate = torch.einsum("nmd,nd->nm", form.G, direction)
        limits = rate > 0
        safe_rate = torch.where(limits, rate, torch.ones_like(rate))
        steps = torch.where(limits, slack / safe_rate, torch.full_like(rate, math.inf))
        return steps.amin(dim=1)

    # ---------------------------------------------------------------- files and results
    def instances_from_arrays(
        self,
        arrays: Mapping[str, np.ndarray],
        source: str,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> ParallelChannelInstances:
        """Validated instances from exchange arrays; messages start with ``source``.

        (``dtype`` and ``device`` are keywords :func:`feasnet.data.exchange.load_npz` passes.)
        """
        self.check_arrays(arrays, source)
        try:
            return ParallelChannelInstances.from_arrays(
                *(arrays[name] for name, _ in FIELDS), dtype=dtype, device=device
            )
        except InvalidInstanceError as exc:
            raise InvalidInstanceError(f"{source}: {exc}") from exc

    def instances_to_arrays(self, instances: ParallelChannelInstances) -> dict[str, np.ndarray]:
        """Float64 arrays, one per key; a field equal everywhere is stored as a scalar."""
        out = {}
        for name, _ in FIELDS:
            value = getattr(instances, name).detach().to("cpu", torch.float64).numpy()
            flat = value.reshape(-1)
            constant = name != "gain" and flat.size > 0 and bool(np.all(flat == flat[0]))
            out[name] = np.asarray(flat[0]) if constant else value
        return out

    def result(
        self,
        method: str,
        allocation: Tensor,
        instances: ParallelChannelInstances,
        seconds: Tensor | np.ndarray | float,
        messages: list[str] | None = None,
        rtol: float = DEFAULT_RTOL,
    ) -> ParallelChannelResult:
        """Check powers ``(N, K)`` [W] in float64 and package them."""
        inst = self.float64(instances)
        power = torch.as_tensor(allocation).detach().to("cpu", torch.float64)
        if tuple(power.shape) != tuple(inst.gain.shape):
            raise ValueError(
                f"allocation: expected shape {tuple(inst.gain.shape)}, got {tuple(power.shape)}"
            )
        x = self.from_physical(power, inst)
        n = len(inst)
        msgs = list(messages) if messages is not None else [""] * n
        if len(msgs) != n:
            raise ValueError(f"messages: expected {n} entries, got {len(msgs)}")
        return ParallelChannelResult(
            method=method,
            power=power.numpy(),
            feasible=self.is_feasible(x, inst, rtol).numpy(),
            objective=self.objective(x, inst).numpy(),
            seconds=np.broadcast_to(np.asarray(seconds, dtype=np.float64), (n,)).copy(),
            messages=msgs,
            rtol=rtol,
        )


# ------------------------------------------------------------------------------ backbone
class ParallelChannelMLP(nn.Module):
    """Instances in, a normalized allocation ``x (N, K)`` in ``(0, 1)`` out (sigmoid).

    Features per channel (``4K`` in all, standardized with statistics fitted on the training
    set): ``log(g_k P / sigma)`` (SNR at full budget), ``m_k / P``, ``u_k / P`` and ``r_k``.

    Args:
        num_channels: ``K``.
        hidden: hidden widths.
        batch_norm: batch normalization after each hidden layer.
        dropout: dropout rate after each hidden layer.
        extra_outputs: width of a second linear head (1 for HoP's radius logit).
    """

    def __init__(
        self,
        num_channels: int,
        hidden: Sequence[int] = (64, 64),
        batch_norm: bool = True,
        dropout: float = 0.0,
        extra_outputs: int = 0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 4 * num_channels
        for size in hidden:
            layers += [nn.Linear(width, size)]
            layers += [nn.BatchNorm1d(size)] if batch_norm else []
            layers += [nn.ReLU()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_channels)
        self.extra_head = nn.Linear(width, extra_outputs) if extra_outputs else None
        self.extra_outputs = extra_outputs
        self.register_buffer("mean", torch.zeros(4 * num_channels))
        self.register_buffer("std", torch.ones(4 * num_channels))

    @staticmethod
    def features(instances: ParallelChannelInstances) -> Tensor:
        """``(N, 4K)`` raw features (see the class docstring)."""
        budget = instances.budget[:, None]
        snr = instances.gain * budget / instances.noise[:, None]
        parts = [snr.log(), instances.floor_power() / budget, instances.peak / budget]
        return torch.cat([*parts, instances.min_rate], dim=1)

    @torch.no_grad()
    def fit_normalizer(self, instances: ParallelChannelInstances) -> None:
        """Standardize features with the training set's mean and std (called by the loop)."""
        f = self.features(instances.to(self.mean.dtype, self.mean.device))
        self.mean.copy_(f.mean(dim=0))
        self.std.copy_(f.std(dim=0).clamp(min=1e-6) if len(f) > 1 else torch.ones_like(f[0]))

    def propose(self, instances: ParallelChannelInstances) -> tuple[Tensor, Tensor]:
        """``(raw (N, K), extra (N, extra_outputs))`` in the module's dtype."""
        inst = instances.to(self.mean.dtype, self.mean.device)
        hidden = self.body((self.features(inst) - self.mean) / self.std)
        raw = torch.sigmoid(self.head(hidden))
        if self.extra_head is None:
            return raw, hidden.new_zeros(len(inst), 0)
        return raw, self.extra_head(hidden)


def build_mlp(options: BaseModel, shape: tuple[int, ...], extra: int) -> nn.Module:
    """The ``mlp`` backbone builder for this family: ``options`` are feasnet's ``MlpOptions``
    (``hidden``, ``dropout``, ``batch_norm``; the power-control-only options are refused)."""
    for name in ("activation", "include_rate_targets"):
        if getattr(options, name, None) is not None:
            raise UnsupportedProblemError(f"backbone 'mlp' option {name} is for power control")
    hidden = getattr(options, "hidden", None) or (64, 64)
    return ParallelChannelMLP(
        shape[0],
        hidden=hidden,
        batch_norm=bool(getattr(options, "batch_norm", True)),
        dropout=getattr(options, "dropout", None) or 0.0,
        extra_outputs=extra,
    )


def add_mlp_backbone() -> None:
    """Let the ``mlp`` backbone serve this family, so that every ``LAYER+mlp`` method does."""
    from feasnet.nets.registry import register_backbone

    register_backbone("mlp", FAMILY, build_mlp)


add_mlp_backbone()


# ------------------------------------------------------------------------------ reference
def water_filling(instances: ParallelChannelInstances, iterations: int = 200) -> Tensor:
    """The optimal powers ``(N, K)`` [W] (float64; NaN rows where infeasible).

    KKT: ``p_k = clip(w - sigma / g_k, m_k, u_k)`` with one water level ``w`` per instance;
    when ``sum_k u_k <= P`` the caps are optimal, otherwise ``w`` solves ``sum_k p_k(w) = P``
    (the sum is non-decreasing in ``w``), found by ``iterations`` bisection steps.
    """
    inst = instances.to(torch.float64, "cpu")
    floor, peak = inst.floor_power(), inst.peak
    offset = inst.noise[:, None] / inst.gain

    def powers(level: Tensor) -> Tensor:
        return torch.minimum(torch.maximum(level[:, None] - offset, floor), peak)

    low = torch.zeros(len(inst), dtype=torch.float64)
    high = (peak + offset).amax(dim=1)
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        over = powers(mid).sum(dim=1) > inst.budget
        low, high = torch.where(over, low, mid), torch.where(over, mid, high)
    p = powers(low)
    p = torch.where((peak.sum(dim=1) <= inst.budget)[:, None], peak, p)
    feasible = ParallelChannelProblem().feasibility(inst).feasible
    return torch.where(feasible[:, None], p, torch.full_like(p, math.nan))


def draw_instances(
    n: int, num_channels: int = 4, seed: int = 0, dtype: torch.dtype = torch.float64
) -> ParallelChannelInstances:
    """``n`` feasible random instances: budget 1 W, noise 1 mW, SNR at full budget
    log-uniform in [0, 30] dB, peaks 0.6 W, minimum rates uniform in [0, 0.5] bit/s/Hz
    (draws whose floors do not fit are redrawn)."""
    g = torch.Generator().manual_seed(seed)
    kept: list[ParallelChannelInstances] = []
    total = 0
    while total < n:
        m = 2 * (n - total) + 8
        snr_db = 30 * torch.rand(m, num_channels, generator=g, dtype=torch.float64)
        rate = 0.5 * torch.rand(m, num_channels, generator=g, dtype=torch.float64)
        batch = ParallelChannelInstances.from_arrays(
            1e-3 * 10 ** (snr_db / 10), 1e-3, 1.0, 0.6, rate, dtype=dtype
        )
        batch = batch[ParallelChannelProblem().feasibility(batch).feasible]
        kept.append(batch)
        total += len(batch)
    fields = {name: torch.cat([getattr(b, name) for b in kept])[:n] for name, _ in FIELDS}
    return ParallelChannelInstances(**fields)


# ------------------------------------------------------------------------------ training
METHODS: dict[str, dict[str, Any]] = {
    "penalty+mlp": {"penalty_weight": 1000.0},
    "hop+mlp": {},
}
"""The two methods trained here, with their settings: a soft penalty (weight 1000: the
objective is ~14 bit/s/Hz and a violation is a fraction of the budget, squared) and a hard
ray layer."""


def train_and_evaluate(
    out_dir: Path,
    train_set: ParallelChannelInstances,
    validation_set: ParallelChannelInstances,
    test_set: ParallelChannelInstances,
    epochs: int = 10,
    methods: Mapping[str, dict[str, Any]] = METHODS,
    log: Any = print,
) -> dict[str, ParallelChannelResult]:
    """Train each method with :func:`feasnet.training.train` into ``out_dir/<method>`` and
    return its float64-checked result on ``test_set`` (:func:`feasnet.training.model_result`
    on the reloaded ``model.pt``)."""
    from feasnet.methods import get_method
    from feasnet.train_config import TrainConfig
    from feasnet.training import load_model, model_result, train

    config = TrainConfig(epochs=epochs, batch_size=32, learning_rate=3e-3, patience=epochs)
    results = {}
    backbone = {"kind": "mlp", "options": {"hidden": (64, 64)}}
    for name, settings in methods.items():
        method = get_method(name, backbone=backbone, **settings)
        folder = out_dir / name.replace("+", "_")
        train(method, train_set, validation_set, folder, config=config, log=log, force=True)
        model, _ = load_model(folder)
        results[name] = model_result(model, test_set)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None, help="run folders (default: temp)")
    args = parser.parse_args(argv)
    train_set = draw_instances(400, seed=0, dtype=torch.float32)
    validation_set = draw_instances(100, seed=1, dtype=torch.float32)
    test_set = draw_instances(200, seed=2)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        results = train_and_evaluate(out, train_set, validation_set, test_set, args.epochs)
    best = ParallelChannelProblem().objective(
        water_filling(test_set) / test_set.budget[:, None], test_set
    )
    print(f"water-filling optimum: {float(best.mean()):.3f} bit/s/Hz")
    for name, result in results.items():
        ratio = np.where(result.feasible, result.objective, 0).mean() / float(best.mean())
        print(
            f"{name:12s} objective {np.nanmean(result.objective):.3f} bit/s/Hz, "
            f"{ratio:.1%} of optimal (infeasible as 0), violation probability "
            f"{1 - result.feasible.mean():.3f}"
        )


if __name__ == "__main__":
    main()
