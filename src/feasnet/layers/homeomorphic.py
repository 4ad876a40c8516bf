"""Homeomorphic projection (``hp``) on any problem with an anchor (hand-written).

Homeomorphic projection (Liang, Chen & Low, "Low complexity homeomorphic projection to ensure
neural-network solution feasibility for optimization over (non-)convex set", 2023) learns an
invertible network (INN) ``Phi`` that maps a unit ball onto (approximately) the feasible set,
with the ball's center going to an interior point. At inference a network output ``x_hat``
that is feasible is kept; one that is not is moved back along the *curved* segment
``alpha -> Phi(alpha Phi^{-1}(x_hat))``, ``alpha`` in ``[0, 1]`` (the image of the straight
segment from the ball's center to ``Phi^{-1}(x_hat)``), by a bisection on ``alpha`` that keeps
the largest feasible value found. Because the segment starts at an interior point, the result
is always feasible, whatever the INN learned; a good INN only makes the path shorter (closer
to ``x_hat``).

Here, for ``N`` instances with anchors ``x0`` (``problem.anchor``) and ``D`` real coordinates
(:func:`feasnet.layers.gauge.flat_real`; complex beams give two per entry):

* *normalization* (ours, so that one INN serves instances of very different scales): the
  exits ``l_i^+`` and ``l_i^-`` of the rays from ``x0`` along ``+e_i`` and ``-e_i``
  (``problem.boundary_exit``) give ``u_i = (x_i - x0_i) / l_i^{sign}``, a piecewise-linear
  homeomorphism that sends the axis chords of the feasible set onto ``[-1, 1]``;
* *INN* ``T(s; c)``: ``coupling_layers`` affine coupling layers (RealNVP style: half the
  coordinates, alternating, are scaled by ``exp(tanh-bounded s)`` and shifted, both computed
  by a small MLP of the other half and of the condition ``c``), conditioned on ``c`` = the
  standardized ``log l^{+/-}`` (``2 D`` shape descriptors of the instance). Coupling layers
  are invertible in closed form with a triangular Jacobian (exact log-determinant), which is
  why we use them rather than the i-RevNet/ResNet flows of the paper: no fixed-point
  inversion, invertibility to rounding (tested to 1e-9 in float64), a few lines of torch;
* *map*: ``decode(s) = x0 + l (.) (T(s) - T(0))`` and ``encode = decode^{-1}``: the ball's
  center goes exactly to the anchor.
* *training of the INN* (:meth:`HomeomorphicProjectionLayer.fit`, called once on the training
  set before the backbone is trained, then frozen): samples ``s`` uniform in the unit ball,
  loss ``penalty * mean sum relu(g(decode(s)))^2 - mean log|det dT/ds| / D + distortion *
  anisotropy``, i.e. the paper's objective of a large image (volume) that stays inside
  (constraint penalty) with little distortion; our distortion measure is the spread of the
  coupling log-scales across coordinates (a conformal map has none), not the paper's.
* *projection*: the bisection on ``alpha`` runs in float64 on the point cast to the output
  dtype and checked at rtol 0, so the returned value itself is certified. Gradient: the
  bisection has none, so the implicit function theorem on the active row ``g_a`` at the
  exit gives ``d alpha = -d g_a / (d g_a / d alpha)``, attached straight-through (the value
  stays the certified point); feasible outputs pass through with the identity.

``inn="none"`` is the exact-ray special case (no INN; equivalently the identity INN, since
the normalization is linear along rays): an infeasible ``x_hat`` moves to
``x0 + (1 - eps) t (x_hat - x0)``, ``t`` the exit of the straight segment
(``problem.boundary_exit``: closed form on the polytope and the MISO cones), and a feasible one
is kept unless it lies within ``eps`` of the boundary. An unfitted coupling INN starts as the
identity too (zero-initialized output layers).

Where we differ from the paper: the INN is trained once per training set conditioned on
instance descriptors computed from the problem interface (axis exits), not on the raw problem
parameters; the backbone is trained through the projection (the implicit gradient) rather than
only with a penalty loss, and the projection is also applied in training.
Units: the problem's normalized ``x``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from feasnet.layers.base import FeasibilityLayer, expand_rows, finite_rows, ray_exit
from feasnet.layers.gauge import flat_real, unflat_real
from feasnet.progress import progress_bar

DEFAULT_EPS = 1e-4
"""Relative slack of the exact-ray variant (``inn="none"``)."""

GRID = 15
"""Points tested per round of the projection's search (4 halvings per round)."""

EXIT_CAP = 1e6
"""Axis exits larger than this (or infinite: the set is unbounded along the axis) count as
this, in normalized units."""


class HpConfig(BaseModel):
    """Settings of the ``hp`` layer.

    Attributes:
        inn: ``coupling`` (the learned INN) or ``none`` (exact ray toward the anchor).
        eps: relative slack of ``inn="none"``.
        coupling_layers: affine coupling layers of the INN.
        hidden: width of the two hidden layers of each coupling MLP.
        scale_limit: bound on each coupling log-scale (``scale_limit * tanh(. / limit)``).
        bisection_steps: halvings of ``alpha`` in eval mode (52 reach float64 resolution).
        train_bisection_steps: halvings in training mode (24: float32 resolution; the
            implicit gradient does not need more).
        fit_steps: Adam steps of :meth:`HomeomorphicProjectionLayer.fit`.
        fit_instances: instances per fit step.
        fit_samples: ball samples per instance and step.
        penalty: weight of the squared constraint violation in the fit loss.
        distortion: weight of the anisotropy term in the fit loss.
        learning_rate: Adam step size of the fit.
        seed: seed of the fit's sampling.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    inn: Literal["coupling", "none"] = "coupling"
    eps: float = Field(DEFAULT_EPS, ge=0, lt=1)
    coupling_layers: int = Field(4, ge=1)
    hidden: int = Field(32, ge=1)
    scale_limit: float = Field(2.0, gt=0)
    bisection_steps: int = Field(52, ge=1, le=200)
    train_bisection_steps: int = Field(24, ge=1, le=200)
    fit_steps: int = Field(300, ge=0)
    fit_instances: int = Field(64, ge=1)
    fit_samples: int = Field(8, ge=1)
    penalty: float = Field(100.0, ge=0)
    distortion: float = Field(0.1, ge=0)
    learning_rate: float = Field(2e-3, gt=0)
    seed: int = 0


class ConditionalCoupling(nn.Module):
    """A conditional INN ``T(s; c)`` of affine coupling layers, in float64.

    Args:
        dim: ``D``, real coordinates of the variable.
        condition: width of the condition ``c``.
        layers: coupling layers; layer ``k`` transforms the coordinates ``i`` with
            ``i % 2 != k % 2`` given the others.
        hidden: width of each coupling MLP's two hidden layers.
        scale_limit: bound on the log-scales.

    The last linear map of every coupling MLP starts at zero, so a new INN is the identity.
    """

    def __init__(
        self, dim: int, condition: int, layers: int, hidden: int, scale_limit: float
    ) -> None:
        super().__init__()
        self.dim, self.scale_limit = dim, scale_limit
        masks = torch.stack(
            [(torch.arange(dim) % 2 == k % 2).to(torch.float64) for k in range(layers)]
        )
        self.masks: Tensor
        self.register_buffer("masks", masks)
        self.nets = nn.ModuleList()
        for _ in range(layers):
            net = nn.Sequential(
                nn.Linear(dim + condition, hidden),
                nn.Tanh(),
                nn.Linear(hidden, hidden),
                nn.Tanh(),
                nn.Linear(hidden, 2 * dim),
            )
            last = net[-1]
            assert isinstance(last, nn.Linear)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.nets.append(net)
        self.double()

    def _scale_shift(self, k: int, kept: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        out = self.nets[k](torch.cat([kept, c], dim=1))
        log_scale, shift = out[:, : self.dim], out[:, self.dim :]
        log_scale = self.scale_limit * torch.tanh(log_scale / self.scale_limit)
        free = 1 - self.masks[k]
        return log_scale * free, shift * free

    def forward(self, s: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(u, logdet, anisotropy)``: ``u = T(s; c)`` ``(N, D)``, ``(N,)`` log|det dT/ds| and
        ``(N,)`` the spread (variance) of each layer's log-scales over its free coordinates,
        summed over layers. ``s`` ``(N, D)`` and ``c`` ``(N, C)`` float64."""
        logdet = s.new_zeros(s.shape[0])
        anisotropy = s.new_zeros(s.shape[0])
        for k in range(len(self.nets)):
            mask = self.masks[k]
            log_scale, shift = self._scale_shift(k, s * mask, c)
            s = s * mask + (1 - mask) * (s * torch.exp(log_scale) + shift)
            logdet = logdet + log_scale.sum(dim=1)
            free = float((1 - mask).sum())
            if free > 1:
                mean = log_scale.sum(dim=1, keepdim=True) / free
                anisotropy = anisotropy + ((log_scale - mean) * (1 - mask)).pow(2).sum(1) / free
        return s, logdet, anisotropy

    def inverse(self, u: Tensor, c: Tensor) -> Tensor:
        """``s = T^{-1}(u; c)`` ``(N, D)`` (closed form, layer by layer in reverse)."""
        for k in reversed(range(len(self.nets))):
            mask = self.masks[k]
            log_scale, shift = self._scale_shift(k, u * mask, c)
            u = u * mask + (1 - mask) * (u - shift) * torch.exp(-log_scale)
        return u


def ball_samples(n: int, dim: int, generator: torch.Generator) -> Tensor:
    """``(n, dim)`` float64 points uniform in the unit ball."""
    direction = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    direction = direction / torch.linalg.vector_norm(direction, dim=1, keepdim=True)
    radius = torch.rand(n, 1, generator=generator, dtype=torch.float64) ** (1.0 / dim)
    return direction * radius


class HomeomorphicProjectionLayer(FeasibilityLayer):
    """``hp``: keep feasible outputs, bisect infeasible ones back toward the anchor along the
    INN's curved segment (``inn="coupling"``) or the straight one (``inn="none"``); see the
    module docstring. Hard on every problem with an anchor; the INN needs
    :meth:`fit` on training instances to be useful (unfitted it is the identity)."""

    Config = HpConfig

    def __init__(self, problem: Any, config: BaseModel | None = None) -> None:
        super().__init__(problem, config)
        self.inn: ConditionalCoupling | None = None
        self.register_buffer("condition_mean", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("condition_std", torch.ones(0, dtype=torch.float64))
        self.fitted: Tensor
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @property
    def settings(self) -> HpConfig:
        config = self.config
        assert isinstance(config, HpConfig)
        return config

    @property
    def active_inn(self) -> ConditionalCoupling | None:
        """The INN once fitted; None before (a new INN is exactly the identity, so the map
        skips it)."""
        return self.inn if bool(self.fitted) else None

    # ---------------------------------------------------------------- set-up
    def setup(self, shape: tuple[int, ...]) -> None:
        """Build the INN for per-instance variable ``shape`` (called by the model, so that
        its parameters exist before a state dict is loaded; else on first use)."""
        config = self.settings
        if config.inn == "none" or self.inn is not None:
            return
        dim = math.prod(shape) * (2 if self.problem.complex_variable else 1)
        self.inn = ConditionalCoupling(
            dim, 2 * dim, config.coupling_layers, config.hidden, config.scale_limit
        )
        self.inn.requires_grad_(False)
        self.condition_mean = torch.zeros(2 * dim, dtype=torch.float64)
        self.condition_std = torch.ones(2 * dim, dtype=torch.float64)

    def axis_exits(self, anchor: Tensor, instances: Any) -> tuple[Tensor, Tensor]:
        """``(l_plus, l_minus)``, each ``(N, D)`` float64: exits of the rays from ``anchor``
        (``(N, *shape)`` float64/complex128, finite rows) along ``+e_i`` / ``-e_i`` (capped at
        :data:`EXIT_CAP`); ``instances`` in float64."""
        n, dim = anchor.shape[0], flat_real(anchor).shape[1]
        eye = torch.eye(dim, dtype=torch.float64, device=anchor.device)
        directions = torch.cat([eye, -eye]).repeat(n, 1)  # (n * 2D, D)
        like = anchor.repeat_interleave(2 * dim, dim=0)
        index = torch.arange(n, device=anchor.device).repeat_interleave(2 * dim)
        with torch.no_grad():
            t = self.problem.boundary_exit(like, unflat_real(directions, like), instances[index])
        t = torch.nan_to_num(t.to(torch.float64), nan=0.0, posinf=EXIT_CAP).clamp(max=EXIT_CAP)
        t = t.reshape(n, 2, dim)
        return t[:, 0], t[:, 1]

    def geometry(self, instances: Any) -> tuple[Tensor, ...]:
        """``(anchor, has_anchor, l_plus, l_minus, condition, base)`` of ``instances`` in
        float64, ``base = T(0; condition)`` (anchors of instances without a feasible point
        replaced by 0, their exits by 1), remembered for the last batch seen."""
        cached = getattr(self, "_geometry_cache", None)
        if cached is not None and cached[0] is instances:
            return cached[1]
        anchor = self.anchor_of(instances)
        has_anchor = finite_rows(anchor)
        anchor = torch.where(expand_rows(has_anchor, anchor), anchor, torch.zeros_like(anchor))
        inst64 = self.problem.float64(instances, anchor.device)
        dim = flat_real(anchor).shape[1]
        plus = torch.ones(anchor.shape[0], dim, dtype=torch.float64, device=anchor.device)
        minus = plus.clone()
        rows = has_anchor.nonzero().squeeze(1)
        if len(rows):
            p, m = self.axis_exits(anchor[rows], inst64[rows])
            plus[rows], minus[rows] = p.clamp(min=1e-12), m.clamp(min=1e-12)
        condition = torch.cat([plus.log(), minus.log()], dim=1)
        if self.condition_mean.numel() == condition.shape[1]:
            condition = (condition - self.condition_mean) / self.condition_std
        if self.active_inn is not None:
            with torch.no_grad():
                base = self.active_inn(torch.zeros_like(plus), condition)[0]
        else:
            base = torch.zeros_like(plus)
        value = (anchor, has_anchor, plus, minus, condition, base)
        self._geometry_cache = (instances, value)
        return value

    # ---------------------------------------------------------------- the map
    def decode(self, s: Tensor, geometry: tuple[Tensor, ...]) -> Tensor:
        """``x`` ``(N, D)`` float64 of latent ``s`` ``(N, D)``:
        ``x0 + l (.) (T(s) - T(0))`` (``x0 + l (.) s`` without an INN)."""
        anchor, _, plus, minus, condition, base = geometry
        inn = self.active_inn
        u = inn(s, condition)[0] - base if inn is not None else s
        return flat_real(anchor) + torch.where(u >= 0, plus, minus) * u

    def encode(self, x: Tensor, geometry: tuple[Tensor, ...]) -> Tensor:
        """The inverse of :meth:`decode`: latent ``s`` ``(N, D)`` of ``x`` ``(N, D)``."""
        anchor, _, plus, minus, condition, base = geometry
        offset = x - flat_real(anchor)
        u = offset / torch.where(offset >= 0, plus, minus)
        inn = self.active_inn
        if inn is None:
            return u
        return inn.inverse(u + base, condition)

    def _forget(self) -> None:
        """Drop the remembered anchor and geometry (the INN or its condition changed)."""
        self.__dict__.pop("_geometry_cache", None)
        self.__dict__.pop("_anchor_cache", None)

    # ---------------------------------------------------------------- fit
    def fit(self, instances: Any, log: Any = None) -> dict[str, float]:
        """Train the INN on ``instances`` (physical units; those without a feasible point are
        skipped), then freeze it. Returns the last step's loss terms; a no-op for
        ``inn="none"``."""
        config = self.settings
        if config.inn == "none" or config.fit_steps == 0:
            return {}
        inst64 = self.problem.float64(instances)
        shape = tuple(self.problem.variable_shape(inst64))
        self.setup(shape)
        assert self.inn is not None
        self.condition_mean = torch.zeros(0, dtype=torch.float64)
        self.condition_std = torch.ones(0, dtype=torch.float64)
        self._forget()
        feasible = finite_rows(self.anchor_of(inst64))
        inst64 = inst64[feasible.nonzero().squeeze(1)]
        self._forget()
        if len(inst64) == 0:
            return {}
        generator = torch.Generator().manual_seed(config.seed)
        pool = inst64[torch.randperm(len(inst64), generator=generator)[:2048]]
        pool_geometry = self.geometry(pool)
        raw_condition = pool_geometry[4]
        self.condition_mean = raw_condition.mean(dim=0)
        self.condition_std = (
            raw_condition.std(dim=0).clamp(min=1e-3)
            if len(pool) > 1
            else (torch.ones_like(self.condition_mean))
        )
        self._forget()
        pool_geometry = (
            *pool_geometry[:4],
            (raw_condition - self.condition_mean) / self.condition_std,
        )
        self.inn.to(torch.float64).requires_grad_(True)
        optimizer = torch.optim.Adam(self.inn.parameters(), lr=config.learning_rate)
        dim = self.inn.dim
        terms: dict[str, float] = {}
        try:
            with progress_bar("hp: fitting the INN", config.fit_steps) as advance:
                for _ in range(config.fit_steps):
                    pick = torch.randint(len(pool), (config.fit_instances,), generator=generator)
                    rows = pick.repeat_interleave(config.fit_samples)
                    batch = pool[rows]
                    geometry = tuple(g[rows] for g in pool_geometry)
                    s = ball_samples(len(batch), dim, generator)
                    u, logdet, anisotropy = self.inn(s, geometry[4])
                    u = u - self.inn(torch.zeros_like(s), geometry[4])[0]
                    x = flat_real(geometry[0]) + torch.where(u >= 0, geometry[2], geometry[3]) * u
                    violation = self._fit_violation(x, u, geometry[0], batch)
                    volume = logdet.mean() / dim
                    loss = config.penalty * violation - volume
                    loss = loss + config.distortion * anisotropy.mean()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.inn.parameters(), 10.0)
                    optimizer.step()
                    terms = {
                        "loss": float(loss.detach()),
                        "violation": float(violation.detach()),
                        "log_volume": float(volume.detach()),
                        "anisotropy": float(anisotropy.mean().detach()),
                    }
                    advance(1)
        finally:
            self.inn.requires_grad_(False)
            self.fitted = torch.ones((), dtype=torch.bool)
            self._forget()
        if log is not None:
            log(
                f"hp: INN fitted ({config.fit_steps} steps), "
                + ", ".join(f"{k} {v:.4g}" for k, v in terms.items())
            )
        return terms

    def _fit_violation(self, x: Tensor, u: Tensor, like: Tensor, batch: Any) -> Tensor:
        """Mean squared violation of the fit samples ``x`` ``(M, D)``. Samples where a
        constraint is not even defined (non-finite values, e.g. a rate at negative power) get
        ``||u||^2`` instead, which pulls their image toward the anchor."""
        point = unflat_real(x, like)
        with torch.no_grad():
            finite = torch.isfinite(self.problem.constraints(point, batch)).all(dim=1)
        total = x.new_zeros(())
        rows = finite.nonzero().squeeze(1)
        if len(rows):
            g = self.problem.constraints(point[rows], batch[rows])
            total = total + torch.relu(g).pow(2).sum(dim=1).sum()
        bad = (~finite).nonzero().squeeze(1)
        if len(bad):
            total = total + u[bad].pow(2).sum(dim=1).sum()
        return total / x.shape[0]

    # ---------------------------------------------------------------- forward
    def forward(self, raw: Tensor, instances: Any, extra: Tensor | None = None) -> Tensor:
        """``(N, *shape)`` feasible normalized points in ``raw``'s dtype: feasible rows of
        ``raw`` unchanged (``inn="none"``: unless within ``eps`` of the boundary), the others
        projected (NaN rows for instances without a feasible point, the anchor for
        non-finite raw rows)."""
        if self.settings.inn == "none":
            return self._exact_ray(raw, instances)
        if self.inn is None:
            self.setup(tuple(raw.shape[1:]))
        assert self.inn is not None
        size = math.prod(raw.shape[1:]) * (2 if raw.is_complex() else 1)
        if size != self.inn.dim:
            raise ValueError(
                f"raw: the hp layer's INN was built for {self.inn.dim} real coordinates per "
                f"instance, got {size} (shape {tuple(raw.shape[1:])}); train a model for this "
                "size, or use inn: none"
            )
        return self._curved(raw, instances)

    def _exact_ray(self, raw: Tensor, instances: Any) -> Tensor:
        config = self.settings
        inst = instances.to(raw.dtype, raw.device)
        center, has_anchor = self.center_of(instances, raw)
        ok = finite_rows(raw)
        direction = torch.where(expand_rows(ok, raw), raw - center, torch.zeros_like(raw))
        moving = ok & (flat_real(direction).abs().amax(dim=1) > 0)
        probe = torch.where(expand_rows(moving, direction), direction, torch.ones_like(direction))
        t = ray_exit(self.problem, center, probe, inst).to(raw.real.dtype)
        fraction = torch.clamp((1 - config.eps) * t, max=1.0)
        fraction = torch.where(moving & torch.isfinite(fraction), fraction, torch.ones_like(t))
        fraction = torch.where(moving, fraction, torch.zeros_like(fraction))
        x = center + expand_rows(fraction, probe).to(probe.dtype) * probe
        return torch.where(expand_rows(has_anchor, x), x, torch.full_like(x, float("nan")))

    def _curved(self, raw: Tensor, instances: Any) -> Tensor:
        geometry = self.geometry(instances)
        anchor, has_anchor = geometry[0], geometry[1]
        dev = anchor.device
        inst64 = self.problem.float64(instances, dev)
        ok = finite_rows(raw).to(dev)
        raw_dev = raw.to(dev)
        safe = torch.where(expand_rows(ok, raw_dev), raw_dev, anchor.to(raw.dtype))
        wide = torch.complex128 if raw.is_complex() else torch.float64

        def cast(v: Tensor) -> Tensor:
            """``(M, D)`` float64 -> the output dtype and back: the value that is returned."""
            like = anchor[:1].expand(v.shape[0], *anchor.shape[1:])
            return unflat_real(v, like).to(raw.dtype).to(wide)

        with torch.no_grad():
            kept = self.problem.is_feasible(safe.to(wide), inst64, rtol=0.0) & ok
            s = self.encode(flat_real(safe.to(wide)), geometry)
            low = torch.ones_like(s[:, 0])
            todo = (ok & ~kept).nonzero().squeeze(1)  # the search runs on these rows only
            if len(todo):
                part = tuple(g[todo] for g in geometry)
                low[todo] = self.search(s[todo], part, inst64[todo], cast)
            low = torch.where(ok, low, torch.zeros_like(low))
            certified = cast(self.decode(low[:, None] * s, geometry))
            # alpha = 0 is the anchor itself (also if the INN's output were not finite)
            certified = torch.where(expand_rows(low > 0, certified), certified, anchor)
            certified = certified.to(raw.dtype)
        x = certified
        if torch.is_grad_enabled() and raw.requires_grad:
            moved = ok & ~kept
            x = certified + self._implicit_gradient(safe.to(wide), low, moved, geometry, inst64).to(
                raw.dtype
            )
        x = torch.where(expand_rows(kept, x), safe.to(raw.dtype), x)
        x = torch.where(expand_rows(has_anchor, x), x, torch.full_like(x, float("nan")))
        return x.to(raw.device)

    def search(self, s: Tensor, geometry: tuple[Tensor, ...], inst64: Any, cast: Any) -> Tensor:
        """``(N,)`` float64 ``alpha`` in ``[0, 1]``: ``decode(alpha s)`` (after ``cast``) passes
        the float64 check at rtol 0, and ``alpha`` is within ``2^-bisection_steps`` of the
        first failure found along the path.

        A bisection that tests :data:`GRID` points per round instead of one (``log2(GRID + 1)``
        halvings per batched check): the bracket becomes the first failing grid point and the
        point before it, so the lower end is always a point that passed (``alpha = 0``, the
        anchor, passes by construction).
        """
        n = s.shape[0]
        low = torch.zeros(n, dtype=torch.float64, device=s.device)
        high = torch.ones_like(low)
        fractions = torch.arange(1, GRID + 1, dtype=torch.float64, device=s.device) / (GRID + 1)
        steps = self.settings.train_bisection_steps if self.training else None
        steps = steps or self.settings.bisection_steps
        rounds = math.ceil(steps / math.log2(GRID + 1))
        index = torch.arange(n, device=s.device).repeat_interleave(GRID)
        for _ in range(rounds):
            alphas = low[:, None] + (high - low)[:, None] * fractions  # (n, GRID)
            points = self.decode(
                alphas.reshape(-1, 1) * s[index], tuple(g[index] for g in geometry)
            )
            passed = self.problem.is_feasible(cast(points), inst64[index], rtol=0.0)
            passed = passed.reshape(n, GRID)
            # first failing grid point (GRID where none fails)
            failing = (~passed).to(torch.int64)
            first = torch.where(
                failing.any(dim=1), failing.argmax(dim=1), torch.full_like(low, GRID).long()
            )
            edges = torch.cat([low[:, None], alphas, high[:, None]], dim=1)
            low, high = (
                edges.gather(1, first[:, None]).squeeze(1),
                edges.gather(1, first[:, None] + 1).squeeze(1),
            )
        return low

    def _implicit_gradient(
        self,
        point: Tensor,
        alpha: Tensor,
        moved: Tensor,
        geometry: tuple[Tensor, ...],
        inst64: Any,
    ) -> Tensor:
        """A zero-valued ``(N, *shape)`` term (output dtype) carrying the gradient of
        ``decode(alpha s)`` with ``s = encode(point)`` and ``alpha`` the exit of the active
        row (implicit function theorem); ``point`` float64 with its graph."""
        s = self.encode(flat_real(point), geometry)
        usable = moved & (alpha > 0)
        a0 = alpha.detach().requires_grad_()
        g = self.problem.constraints(
            unflat_real(self.decode(a0[:, None] * s, geometry), geometry[0]), inst64
        )
        active = g.detach().argmax(dim=1, keepdim=True)
        g_active = g.gather(1, active).squeeze(1)
        (slope,) = torch.autograd.grad(g_active.sum(), a0, retain_graph=True)
        usable = usable & (slope > 0)
        slope = torch.where(usable, slope, torch.ones_like(slope)).detach()
        shift = -g_active / slope
        shift = torch.where(usable, shift - shift.detach(), torch.zeros_like(shift))
        moving = self.decode((alpha.detach() + shift)[:, None] * s, geometry)
        moving = torch.where(moved[:, None], moving - moving.detach(), torch.zeros_like(moving))
        return unflat_real(moving, geometry[0]).to(point.dtype)


__all__ = [
    "ConditionalCoupling",
    "HomeomorphicProjectionLayer",
    "HpConfig",
    "ball_samples",
]
