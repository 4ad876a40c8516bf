"""DC3-style correction of MISO beamformers on the constraint violations (hand-written).

DC3 (Donti et al., 2021) corrects a network's output by descending the squared violation of
the inequality constraints; there are no equality constraints here, so there is no completion
step. The constraints are :func:`feasnet.problems.miso.constraint_values`, ``g(V)`` of shape
``(N, 1 + K)``, ``<= 0`` where satisfied (row 0: ``||V||^2 / budget - 1``; row ``1 + k``:
``1 - SINR_k / gamma_k``).

Gradients. With the real inner product ``<A, B> = Re sum conj(A) B`` on ``(Nt, K)`` beams, each
row has the gradient (``d/dRe V + i d/dIm V``, PyTorch's convention for real functions of
complex tensors), in closed form (``G = H V``, ``S_k = |G_kk|^2``,
``T_k = sum_{j != k} |G_kj|^2 + sigma^2``)::

    grad g_0 = 2 V / budget
    grad g_k = 2 conj(h_k) c_k^T,   c_kk = -G_kk / (gamma_k T_k),
                                    c_kj = S_k G_kj / (gamma_k T_k^2)   (j != k)

(zero for users without a target). :func:`constraint_jacobian` returns them as
``(N, 1 + K, Nt, K)``; it is differentiable, so unrolled steps can be back-propagated.

Training rule (``self.training``): ``train_steps`` heavy-ball steps on
``F(V) = 0.5 sum_a relu(g_a)^2``, ``dV_t = clip(-step_size * grad F) + momentum * dV_{t-1}``,
unrolled and differentiated through (the closed-form gradients are differentiable, so no
``create_graph`` pass is needed). With ``equilibrate=True`` (default) each row is divided by its
gradient norm first, ``g_a / ||grad g_a||`` (the same zero set), so one step with
``step_size = 1`` on a single violated row is the projection onto its linearization. Without it
the QoS gradients grow with the channel gain (``~ SNR``), so a fixed step diverges at high SNR
and crawls at low SNR. ``clip`` scales each step to norm ``<= max_step_norm * sqrt(budget)``:
the linearization of ``1 - SINR_k / gamma_k`` at a weak beam overshoots by orders of magnitude
(``SINR ~ |v_k|^2``), and without the trust region 5 unrolled steps diverged on random starts.
``train_mode="gauss_newton"`` unrolls the test rule's full steps instead (also clipped).

Test rule (eval mode): damped Gauss-Newton / least-norm steps. Plain gradient descent does not
reach a 1e-7 slack in a useful number of steps, so each step solves, on the active rows ``A``,
``(M_AA + ridge) lambda = r_A + 2 margin``, ``dV = -sum_{a in A} lambda_a grad r_a``,
``M_ab = <grad r_a, grad r_b>``: the smallest step after which the linearized active rows sit at
``-2 margin``. Two details were needed to get every start to tolerance:

* the rows ``r`` are the cone form of the constraints (:func:`cone_rows`: ``||V|| / sqrt(budget)
  - 1`` and ``1 - sqrt(1 + 1/gamma_k) |h_k^T v_k| / R_k``, with ``R_k = sqrt(sum_j |h_k^T v_j|^2
  + sigma^2)`` held fixed), which are convex after a phase rotation that changes no SINR and
  much closer to linear than ``1 - SINR_k / gamma_k``. With the ratio rows the iteration stalled
  on ~0.1-0.4 % of random starts; with cone rows on none of ~12 000 (Nt = 20, K = 3 and others);
* a row left out of ``A`` whose linearized value after the step would cross ``-2 margin`` is
  added and the step recomputed (up to 3 passes); otherwise a row near its boundary is pushed
  across it by the step taken for the others, which then gets rejected by the line search.

A backtracking line search (``1, 1/2, ..., 2^-12``) keeps the largest step that lowers
``sum relu(g + 2 margin)^2`` and does not raise the violation ``sum relu(g)`` (``g`` the
:func:`miso.constraint_values` rows), so the violation never increases (by construction). A
sample is done (and frozen) once every ``g <= -margin``; the loop stops when all are done or
after ``max_test_steps``. The work is done in float64 and cast back; ``margin`` defaults to
``1e-7`` for complex128 beams and ``1e-5`` otherwise (the complex64 cast perturbs the SINRs by a
few 1e-7), so done samples pass :func:`feasnet.problems.miso.is_feasible` at its default
``rtol = 1e-6``. :attr:`DC3Correction.last_info` reports steps and done flags.

Units: whatever the instances are in (networks pass normalized beams with
:func:`feasnet.problems.miso.normalized_instances`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from feasnet.layers.base import FeasibilityLayer, unsupported
from feasnet.problems import miso
from feasnet.problems.base import Problem
from feasnet.problems.miso import MisoInstances

TrainMode = Literal["gradient", "gauss_newton"]
LINE_SEARCH_HALVINGS = 12
"""Step lengths ``2^0 .. 2^-12`` tried by the test-time line search."""


def constraint_jacobian(beams: Tensor, instances: MisoInstances) -> tuple[Tensor, Tensor]:
    """Constraint values and their gradients w.r.t. the beams, in closed form.

    Args:
        beams: ``(N, Nt, K)`` complex.
        instances: ``N`` instances (same units as the beams).

    Returns:
        ``(values, jacobian)``: ``(N, 1 + K)`` real, as :func:`miso.constraint_values`, and
        ``(N, 1 + K, Nt, K)`` complex, row ``a`` the gradient ``d g_a/d Re V + i d g_a/d Im V``.
    """
    inst = instances.to(beams.dtype, beams.device)
    values = miso.constraint_values(beams, inst)
    gains = miso.beam_gains(beams, inst)  # (N, K, K) [k, j] = h_k^T v_j
    power = gains.abs().square()
    signal = torch.diagonal(power, dim1=1, dim2=2)
    total = power.sum(dim=2) - signal + inst.noise[:, None]  # T_k
    gamma = inst.sinr_min
    has_target = gamma > 0
    inv_gamma = torch.where(has_target, 1 / gamma.clamp(min=1e-300), torch.zeros_like(gamma))
    cross = (signal * inv_gamma / total.square())[:, :, None] * gains  # j != k entries
    own = -(inv_gamma / total) * torch.diagonal(gains, dim1=1, dim2=2)  # j == k entries
    eye = torch.eye(inst.num_users, dtype=torch.bool, device=beams.device)
    coeff = torch.where(eye, torch.diag_embed(own), cross)  # (N, K, K) c_kj
    qos = 2 * inst.channel.conj()[:, :, :, None] * coeff[:, :, None, :]  # (N, K, Nt, K)
    budget = (2 * beams / inst.transmit_budget.to(beams.dtype)[:, None, None])[:, None]
    return values, torch.cat([budget, qos], dim=1)


def cone_rows(beams: Tensor, instances: MisoInstances) -> tuple[Tensor, Tensor]:
    """Convex (second-order cone) form of the constraints and their gradients.

    ``s_0 = ||V|| / sqrt(budget) - 1`` and, for each user with a target,
    ``s_k = (R_k - sqrt(1 + 1/gamma_k) |h_k^T v_k|) / R_k`` with
    ``R_k = sqrt(sum_j |h_k^T v_j|^2 + sigma^2)`` and the denominator held fixed (not
    differentiated): the numerator is convex in ``V`` once each beam's phase makes
    ``h_k^T v_k`` real (a rotation that changes no SINR), and ``s_k <= 0`` iff
    ``SINR_k >= gamma_k``. The gradient of ``|h_k^T v_k|`` is that of the phase-aligned real part,
    so no explicit rotation is needed. Returns ``(values (N, 1 + K), jacobian (N, 1 + K, Nt, K))``;
    rows of users without a target are ``-1`` with zero gradient.
    """
    inst = instances.to(beams.dtype, beams.device)
    real = inst.real_dtype
    tiny = torch.finfo(real).tiny ** 0.5
    sqrt_budget = torch.sqrt(inst.transmit_budget)
    norm = torch.linalg.vector_norm(beams.flatten(1), dim=1)
    budget_value = norm / sqrt_budget - 1
    budget_grad = beams / (norm.clamp(min=tiny) * sqrt_budget).to(beams.dtype)[:, None, None]
    gains = miso.beam_gains(beams, inst)
    radius = torch.sqrt(gains.abs().square().sum(dim=2) + inst.noise[:, None])  # R_k
    own = torch.diagonal(gains, dim1=1, dim2=2)
    own_abs = own.abs()
    gamma = inst.sinr_min
    has_target = gamma > 0
    factor = torch.sqrt(1 + 1 / gamma.clamp(min=1e-300))
    factor = torch.where(has_target, factor, torch.zeros_like(factor))
    qos_value = torch.where(has_target, 1 - factor * own_abs / radius, -torch.ones_like(radius))
    phase = own / own_abs.clamp(min=tiny).to(own.dtype)
    coeff = gains / radius.to(gains.dtype)[:, :, None]
    coeff = coeff - torch.diag_embed(factor.to(own.dtype) * phase)
    coeff = coeff * (has_target / radius).to(gains.dtype)[:, :, None]
    qos_grad = inst.channel.conj()[:, :, :, None] * coeff[:, :, None, :]
    values = torch.cat([budget_value[:, None], qos_value], dim=1)
    return values, torch.cat([budget_grad[:, None], qos_grad], dim=1)


def squared_violation(values: Tensor) -> Tensor:
    """``(N,)`` ``0.5 * sum relu(g)^2`` of constraint values ``(N, M)``."""
    return 0.5 * torch.relu(values).square().sum(dim=1)


def _inner(a: Tensor, b: Tensor) -> Tensor:
    """Real inner products of flattened gradient rows: ``(N, M, M)`` from ``(N, M, Nt, K)``."""
    fa, fb = a.flatten(2), b.flatten(2)
    return (fa.conj() @ fb.transpose(1, 2)).real


def gradient_step(
    beams: Tensor,
    instances: MisoInstances,
    step_size: float,
    equilibrate: bool = True,
    cone: bool = True,
) -> tuple[Tensor, Tensor]:
    """``(-step_size * grad F, values)`` for ``F = 0.5 sum relu(r)^2``. Differentiable.

    ``r`` are the rows of :func:`cone_rows` (``cone=True``) or of
    :func:`miso.constraint_values`; with ``equilibrate`` each row is first divided by its
    gradient norm (``r_a / ||grad r_a||``, the distance to its linearization). ``values`` are
    :func:`miso.constraint_values` either way.
    """
    values, jac = constraint_jacobian(beams, instances)
    rows = values
    if cone:
        rows, jac = cone_rows(beams, instances)
    real = values.dtype
    if equilibrate:
        norm = torch.linalg.vector_norm(jac.flatten(2), dim=2)  # (N, M)
        tiny = torch.finfo(real).tiny ** 0.5
        scale = torch.where(norm > tiny, 1 / norm.clamp(min=tiny), torch.zeros_like(norm))
        weight = torch.relu(rows) * scale.square()  # relu(r/|J|) * (1/|J|)
    else:
        weight = torch.relu(rows)
    step = -step_size * (weight.to(jac.dtype)[:, :, None, None] * jac).sum(dim=1)
    return step, values


def clip_step(step: Tensor, instances: MisoInstances, max_norm: float) -> Tensor:
    """Scale each ``(Nt, K)`` step down to norm ``<= max_norm * sqrt(budget)`` (trust region;
    differentiable)."""
    radius = max_norm * torch.sqrt(instances.transmit_budget.to(step.device).clamp(min=0))
    norm = torch.linalg.vector_norm(step.flatten(1), dim=1)
    factor = torch.clamp(
        radius.to(norm.dtype) / norm.clamp(min=torch.finfo(norm.dtype).tiny), max=1
    )
    return step * factor.to(step.dtype)[:, None, None]


def gauss_newton_step(
    beams: Tensor,
    instances: MisoInstances,
    target: float,
    ridge: float = 1e-10,
    passes: int = 3,
    cone: bool = True,
) -> tuple[Tensor, Tensor]:
    """Least-norm step that brings the linearized active rows to ``-target``.

    The active set starts as the rows with ``g > -target``; a row left out whose linearized
    value after the step would exceed ``-target`` is added and the step recomputed (at most
    ``passes`` times; a row close to its boundary is otherwise pushed across it by the step
    taken for the others). The Gram matrix of the active rows gets a relative ridge
    ``ridge * mean diag`` (plus the square root of the dtype's tiny).

    With ``cone=True`` the rows are :func:`cone_rows` (convex after phase alignment, closer to
    linear: one step lands much nearer its target), else :func:`constraint_jacobian`'s.

    Returns ``(step (N, Nt, K), values (N, 1 + K))``, ``values`` those of
    :func:`miso.constraint_values` either way. Differentiable.
    """
    values, jac = constraint_jacobian(beams, instances)
    if cone:
        rows, jac = cone_rows(beams, instances)
    else:
        rows = values
    active = rows > -target
    gram = _inner(jac, jac)
    eye = torch.eye(gram.shape[1], dtype=gram.dtype, device=gram.device)
    diag = torch.diagonal(gram, dim1=1, dim2=2)
    step = torch.zeros_like(beams)
    for _ in range(passes + 1):
        mask = (active[:, :, None] & active[:, None, :]).to(gram.dtype)
        scale = (diag * active).sum(dim=1) / active.sum(dim=1).clamp(min=1)
        eps = ridge * scale + torch.finfo(gram.dtype).tiny ** 0.5
        system = gram * mask + eye * (eps[:, None, None] + (~active).to(gram.dtype)[:, :, None])
        rhs = torch.where(active, rows + target, torch.zeros_like(rows))
        lam = torch.linalg.solve(system, rhs.unsqueeze(2)).squeeze(2)
        step = -(lam.to(jac.dtype)[:, :, None, None] * jac).sum(dim=1)
        predicted = rows - (gram * lam[:, None, :]).sum(dim=2)  # g + <J_a, step>
        grow = ~active & (predicted > -target)
        if not bool(grow.any()):
            break
        active = active | grow
    return step, values


@dataclass(frozen=True)
class CorrectionInfo:
    """Diagnostics of the last eval-mode correction.

    Attributes:
        steps: ``(N,)`` Gauss-Newton steps each sample took (0: already inside).
        done: ``(N,)`` bool, every constraint ``<= -margin`` at the end.
        max_violation: ``(N,)`` largest ``g`` at the end (float64).
    """

    steps: Tensor
    done: Tensor
    max_violation: Tensor


def correct_to_tolerance(
    beams: Tensor,
    instances: MisoInstances,
    margin: float,
    max_steps: int = 50,
    ridge: float = 1e-10,
    trace: list[Tensor] | None = None,
) -> tuple[Tensor, CorrectionInfo]:
    """Test-time rule: damped Gauss-Newton until every ``g <= -margin`` (see module doc).

    Args:
        beams: ``(N, Nt, K)`` complex start points (any complex dtype; worked on in complex128).
        instances: the instances (same units).
        margin: required slack on every row.
        max_steps: Gauss-Newton steps at most.
        trace: if a list, gets the ``(N,)`` violation ``sum relu(g)`` before every step and at
            the end.

    Returns:
        ``(beams, info)`` with beams in the input dtype.
    """
    v = beams.to(torch.complex128)
    inst = instances.to(torch.complex128, v.device)
    n = v.shape[0]
    target = 2 * margin
    steps = torch.zeros(n, dtype=torch.long, device=v.device)
    alphas = 0.5 ** torch.arange(LINE_SEARCH_HALVINGS + 1, dtype=torch.float64, device=v.device)
    values = miso.constraint_values(v, inst)
    for _ in range(max_steps):
        done = (values <= -margin).all(dim=1)
        if trace is not None:
            trace.append(torch.relu(values).sum(dim=1))
        if bool(done.all()):
            break
        idx = (~done).nonzero().squeeze(1)
        sub = inst[idx]
        vs = v[idx]
        step, vals = gauss_newton_step(vs, sub, target, ridge)
        merit = torch.relu(vals + target).square().sum(dim=1)
        violation = torch.relu(vals).sum(dim=1)
        # every step length at once: (L * k) candidates
        num = len(alphas)
        cand = vs[None] + alphas.to(vs.dtype)[:, None, None, None] * step[None]
        cand = cand.reshape(num * len(idx), *vs.shape[1:])
        rep = MisoInstances(*(t.repeat(num, *([1] * (t.ndim - 1))) for t in _fields(sub)))
        cvals = miso.constraint_values(cand, rep).reshape(num, len(idx), -1)
        cmerit = torch.relu(cvals + target).square().sum(dim=2)
        cviol = torch.relu(cvals).sum(dim=2)
        ok = (cmerit < merit[None]) & (cviol <= violation[None]) & torch.isfinite(cmerit)
        any_ok = ok.any(dim=0)
        first = torch.argmax(ok.to(torch.int8), dim=0)  # largest accepted step
        chosen = cand.reshape(num, len(idx), *vs.shape[1:])[first, torch.arange(len(idx))]
        new = torch.where(any_ok[:, None, None], chosen, vs)
        v = v.index_copy(0, idx, new)
        new_vals = cvals[first, torch.arange(len(idx))]
        values = values.index_copy(0, idx, torch.where(any_ok[:, None], new_vals, vals))
        steps = steps.index_add(0, idx, any_ok.to(torch.long))
    done = (values <= -margin).all(dim=1)
    if trace is not None and len(trace) <= max_steps:
        trace.append(torch.relu(values).sum(dim=1))
    info = CorrectionInfo(steps=steps, done=done, max_violation=values.amax(dim=1))
    return v.to(beams.dtype), info


def _fields(inst: MisoInstances) -> tuple[Tensor, ...]:
    return (
        inst.channel,
        inst.pmax,
        inst.circuit_power,
        inst.efficiency,
        inst.noise,
        inst.sinr_min,
        inst.weights,
    )


class DC3Correction(nn.Module):
    """DC3-style correction layer for MISO beams (see the module docstring).

    Args:
        train_steps: unrolled steps in training mode.
        step_size: step of the training rule (on equilibrated rows by default).
        momentum: heavy-ball momentum of the training rule, in ``[0, 1)``.
        equilibrate: scale rows to unit gradient norm in the gradient rule.
        max_step_norm: trust region of the training rule: each step is scaled down to norm
            ``<= max_step_norm * sqrt(budget)`` (the budget ball has radius ``sqrt(budget)``).
        train_mode: ``"gradient"`` (DC3) or ``"gauss_newton"`` (the test rule's full steps,
            unrolled without line search).
        test_tolerance: required slack ``margin`` at test time; None: ``1e-7`` for complex128
            beams, ``1e-5`` otherwise.
        max_test_steps: cap on test-time Gauss-Newton steps.
        ridge: relative ridge of the Gauss-Newton Gram matrix.

    Attributes:
        last_info: :class:`CorrectionInfo` of the last eval-mode call (None before).
    """

    def __init__(
        self,
        train_steps: int = 5,
        step_size: float = 1.0,
        momentum: float = 0.0,
        equilibrate: bool = True,
        max_step_norm: float = 1.0,
        train_mode: TrainMode = "gradient",
        test_tolerance: float | None = None,
        max_test_steps: int = 100,
        ridge: float = 1e-10,
    ) -> None:
        super().__init__()
        if train_steps < 0 or max_test_steps < 0:
            raise ValueError("train_steps / max_test_steps: expected values >= 0")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum: expected a value in [0, 1), got {momentum}")
        if max_step_norm <= 0:
            raise ValueError(f"max_step_norm: expected a value > 0, got {max_step_norm}")
        if step_size <= 0:
            raise ValueError(f"step_size: expected a value > 0, got {step_size}")
        if train_mode not in ("gradient", "gauss_newton"):
            raise ValueError(f"train_mode: expected 'gradient' or 'gauss_newton', got {train_mode}")
        if test_tolerance is not None and test_tolerance <= 0:
            raise ValueError(f"test_tolerance: expected a value > 0, got {test_tolerance}")
        self.train_steps = train_steps
        self.step_size = step_size
        self.momentum = momentum
        self.equilibrate = equilibrate
        self.max_step_norm = max_step_norm
        self.train_mode: TrainMode = train_mode
        self.test_tolerance = test_tolerance
        self.max_test_steps = max_test_steps
        self.ridge = ridge
        self.last_info: CorrectionInfo | None = None

    def margin_for(self, dtype: torch.dtype) -> float:
        """Test-time slack for beams of ``dtype``."""
        if self.test_tolerance is not None:
            return self.test_tolerance
        return 1e-7 if dtype == torch.complex128 else 1e-5

    def unrolled(self, beams: Tensor, instances: MisoInstances, steps: int) -> Tensor:
        """The training rule for ``steps`` steps (differentiable), in the beams' dtype."""
        inst = instances.to(beams.dtype, beams.device)
        v = beams
        velocity = torch.zeros_like(v)
        for _ in range(steps):
            if self.train_mode == "gradient":
                step, _ = gradient_step(v, inst, self.step_size, self.equilibrate, cone=False)
            else:
                step, _ = gauss_newton_step(v, inst, 0.0, self.ridge)
            velocity = clip_step(step, inst, self.max_step_norm) + self.momentum * velocity
            v = v + velocity
        return v

    def forward(self, beams: Tensor, instances: MisoInstances) -> Tensor:
        """Corrected beams ``(N, Nt, K)``, same dtype and units as ``beams``."""
        if self.training:
            return self.unrolled(beams, instances, self.train_steps)
        out, info = correct_to_tolerance(
            beams, instances, self.margin_for(beams.dtype), self.max_test_steps, self.ridge
        )
        self.last_info = info
        return out

    def extra_repr(self) -> str:
        return (
            f"train_steps={self.train_steps}, step_size={self.step_size}, "
            f"momentum={self.momentum}, equilibrate={self.equilibrate}, "
            f"max_step_norm={self.max_step_norm}, "
            f"train_mode={self.train_mode!r}, max_test_steps={self.max_test_steps}"
        )


__all__ = [
    "CorrectionInfo",
    "DC3Correction",
    "clip_step",
    "cone_rows",
    "constraint_jacobian",
    "correct_to_tolerance",
    "gauss_newton_step",
    "gradient_step",
    "squared_violation",
]


class DC3Config(BaseModel):
    """Settings of the ``dc3`` layer (see :class:`DC3Correction`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    train_steps: int = Field(5, ge=0)
    step_size: float = Field(0.1, gt=0)
    momentum: float = Field(0.5, ge=0, lt=1)
    test_tolerance: float = Field(1e-7, gt=0)
    max_test_steps: int = Field(1000, ge=0)


class DC3Layer(FeasibilityLayer):
    """``dc3``: :class:`DC3Correction` (gradient steps unrolled in training, Gauss-Newton on
    the second-order-cone rows to tolerance at test). Its test rule relies on the cone form of
    the SINR rows (:func:`cone_rows`), so it serves the MISO family; elsewhere use
    ``correction``, which works on any real-variable problem."""

    Config = DC3Config

    def __init__(self, problem: Problem, config: BaseModel | None = None) -> None:
        super().__init__(problem, config)
        assert isinstance(self.config, DC3Config)
        self.correction = DC3Correction(**self.config.model_dump())

    @classmethod
    def check(cls, problem: Problem) -> None:
        if problem.family != "miso":
            raise unsupported(
                "dc3", problem, "its test rule needs second-order-cone rows (MISO); use correction"
            )

    def forward(self, raw: Tensor, instances: Any, extra: Tensor | None = None) -> Tensor:
        """``(N, Nt, K)`` corrected normalized beams in ``raw``'s dtype."""
        normalized = miso.normalized_instances(instances).to(raw.dtype, raw.device)
        self.correction.train(self.training)
        return self.correction(raw, normalized)
