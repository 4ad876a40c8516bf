"""One learned-model class: backbone + feasibility layer + loss, for any problem.

A :class:`LearnedModel` holds its :class:`~feasnet.problems.base.Problem` (family and
constraint set) and asks it for everything: the variable shape, the loss
``-objective / objective_scale + penalty_weight * violation`` (power control: ``-R / W +
lambda V``, eq. 14; MISO: ``-WSR + lambda sum relu(g)^2``), the float64 check, the physical
allocation and the result. The method it runs is a :class:`~feasnet.methods.MethodConfig`.

Units: ``forward`` returns the normalized ``x`` of the problem (``(N, *shape)``);
:meth:`LearnedModel.allocate` returns the allocation in physical units.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from feasnet.layers.guard import repair
from feasnet.layers.registry import build_layer
from feasnet.methods import MethodConfig
from feasnet.nets.registry import build_backbone
from feasnet.problems.base import Problem, UnsupportedProblemError
from feasnet.problems.registry import family_of


class LearnedModel(nn.Module):
    """Backbone + feasibility layer for one problem and one variable shape.

    Args:
        config: the method.
        problem: the problem it solves (family and constraint set).
        shape: per-instance variable shape (``problem.variable_shape``: power control
            ``(B, Q)``, MISO ``(Nt, K)``).

    Raises:
        UnsupportedProblemError: the backbone, layer or refinement does not apply to
            ``problem`` (one line naming both).
    """

    def __init__(self, config: MethodConfig, problem: Problem, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.config = config
        self.problem = problem
        self.shape = tuple(int(s) for s in shape)
        check_refinement(config, problem)
        self.layer = build_layer(config.layer.kind, config.layer.options, problem)
        self.backbone = build_backbone(
            config.backbone.kind,
            config.backbone.options,
            problem.family,
            self.shape,
            extra=self.layer.extra_outputs,
        )
        setup = getattr(self.layer, "setup", None)  # layers with shape-dependent parts (hp)
        if setup is not None:
            setup(self.shape)

    # ---------------------------------------------------------------- what the loop asks
    @property
    def objective_unit(self) -> str:
        return self.problem.objective_unit

    def size(self) -> dict[str, Any]:
        """What ``model.pt`` stores to rebuild the model."""
        return {"variable_shape": list(self.shape)}

    @property
    def any_size(self) -> bool:
        """Whether the model runs on instances of any size (``shape`` being the training
        size): its backbone says so (``any_size``: weights and input normalization do not
        depend on the size, e.g. ``gnn``, ``du`` on power control), and so does its layer,
        either by its own ``any_size`` attribute or, without one, by holding no learned state
        larger than a scalar (layers are built per problem and read each instance's own
        constraints; one whose state is sized to the variables, such as a fitted INN, is
        tied to the training size)."""
        if not getattr(self.backbone, "any_size", False):
            return False
        declared = getattr(self.layer, "any_size", None)
        if declared is not None:
            return bool(declared)
        return all(value.numel() <= 1 for value in self.layer.state_dict().values())

    def check_size(self, instances: Any) -> None:
        """Raise a clear error for instances of another family or shape than the model's."""
        family = family_of(instances).family
        if family != self.problem.family:
            raise ValueError(
                f"instances: this model is a {self.problem.family} model, got {family} "
                f"instances ({type(instances).__name__})"
            )
        shape = tuple(self.problem.variable_shape(instances))
        if shape != self.shape and not self.any_size:
            raise ValueError(
                f"instances: this model was trained for variables of shape {self.shape}, got "
                f"{shape} (another size); train a model for that size"
            )

    def fit_normalizer(self, instances: Any) -> None:
        """Let the backbone fit its input normalization on the training set, if it has one,
        and the layer whatever it learns before the backbone (``hp``'s INN), if anything."""
        fit = getattr(self.backbone, "fit_normalizer", None)
        if fit is not None:
            fit(instances)
        fit_layer = getattr(self.layer, "fit", None)
        if fit_layer is not None:
            fit_layer(instances)

    def forward(self, instances: Any) -> Tensor:
        """Normalized ``x`` ``(N, *shape)`` after the feasibility layer."""
        self.check_size(instances)
        propose: Callable[[Any], tuple[Tensor, Tensor]] = self.backbone.propose  # type: ignore[assignment]
        raw, extra = propose(instances)
        return self.layer(raw, instances.to(raw.dtype, raw.device), extra)

    def loss(self, x: Tensor, instances: Any) -> Tensor:
        """Mean ``-objective / objective_scale + penalty_weight * violation`` (scalar); a
        layer with its own constraint term (``constraint_loss(x, instances) -> (N,)``, e.g. the
        primal-dual layer's augmented Lagrangian) replaces the penalty term."""
        inst = instances.to(x.dtype, x.device)
        scale = self.problem.objective_scale(inst)
        loss = -self.problem.objective(x, inst) / scale
        constraint_loss = getattr(self.layer, "constraint_loss", None)
        if constraint_loss is not None:
            loss = loss + constraint_loss(x, inst)
        elif self.config.penalty_weight > 0:
            loss = loss + self.config.penalty_weight * self.problem.violation(x, inst)
        return loss.mean()

    def objective_and_feasibility(self, instances: Any) -> tuple[Tensor, Tensor]:
        """Network output's ``(objective (N,), feasible (N,) bool)``, float64 check."""
        x = self(instances)
        inst64 = self.problem.float64(instances, x.device)
        x64 = x.detach().to(torch.complex128 if x.is_complex() else torch.float64)
        value = torch.nan_to_num(self.problem.objective(_finite(x64), inst64))
        return value, self.problem.is_feasible(x64, inst64)

    @torch.no_grad()
    def allocate(self, instances: Any, guard: bool | None = None) -> tuple[Tensor, Tensor, float]:
        """Inference: the allocation in physical units for every instance.

        Args:
            instances: ``N`` instances of the model's family and shape.
            guard: switch the feasibility guard on/off (default: the method's setting).

        Returns:
            ``(allocation, guard_fired, seconds)``: ``(N, *shape)`` float64 (complex128) in
            physical units, ``(N,)`` bool, and the wall time of the whole batch [s].
        """
        was_training = self.training
        self.eval()
        try:
            start = time.perf_counter()
            x = self(instances)
            inst64 = self.problem.float64(instances, x.device)
            x = x.to(torch.complex128 if x.is_complex() else torch.float64)
            if self.config.refine != "none":
                x = REFINEMENTS[self.config.refine][1](self.problem, x, inst64)
            fired = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
            if self.config.guard if guard is None else guard:
                result = repair(self.problem, x, inst64)
                x, fired = result.x, result.fired
            allocation = self.problem.to_physical(x, inst64)
            seconds = time.perf_counter() - start
        finally:
            self.train(was_training)
        return allocation, fired, seconds


def _finite(x: Tensor) -> Tensor:
    """``x`` with non-finite entries set to 0 (their objective is reported as 0)."""
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


# ---------------------------------------------------------------- refinements at inference
def _frank_wolfe_applies(problem: Problem) -> str | None:
    if problem.family != "power-control" or problem.linear_form is Problem.linear_form:
        return "Frank-Wolfe refines power control on its polytope"
    if not problem.is_convex:
        return "Frank-Wolfe refines on a polytope; this constraint set is not one"
    return None


def _frank_wolfe(problem: Problem, x: Tensor, instances: Any) -> Tensor:
    from feasnet.solvers.frank_wolfe import refine

    power, _ = refine(problem.to_physical(x, instances), instances)
    return problem.from_physical(power, instances)


REFINEMENTS = {"fw": (_frank_wolfe_applies, _frank_wolfe)}
"""Refinement name -> (why it does not apply to a problem, or None; refine(problem, x, inst))."""


def check_refinement(config: MethodConfig, problem: Problem) -> None:
    """Raise :class:`UnsupportedProblemError` if the method's refinement does not apply."""
    if config.refine == "none":
        return
    why = REFINEMENTS[config.refine][0](problem)
    if why:
        raise UnsupportedProblemError(
            f"refinement {config.refine!r} does not apply to {problem.name}: {why}"
        )


def build_model(
    config: MethodConfig,
    instances: Any = None,
    problem: Problem | None = None,
    shape: tuple[int, ...] | None = None,
) -> LearnedModel:
    """The model of ``config`` for ``instances`` (their problem and shape), or for an explicit
    ``problem`` and ``shape``."""
    from feasnet.problems.registry import problem_of

    if problem is None:
        if instances is None:
            raise ValueError("build_model: give instances or a problem")
        problem = problem_of(instances)
    if shape is None:
        if instances is None:
            raise ValueError("build_model: give instances or a shape")
        shape = tuple(problem.variable_shape(instances))
    return LearnedModel(config, problem, shape)


def _check_parts(config: MethodConfig, problem: Problem) -> None:
    """Raise :class:`UnsupportedProblemError` when the method's backbone, layer or refinement
    does not apply to ``problem``."""
    from feasnet.layers.registry import layer_class
    from feasnet.nets.registry import check_backbone

    check_backbone(config.backbone.kind, config.backbone.options, problem.family)
    layer_class(config.layer.kind).check(problem)
    check_refinement(config, problem)


def _as_problem(problem: Problem | str) -> Problem:
    """``problem``, or the default constraint set of the family it names."""
    from feasnet.problems.registry import get_family

    return get_family(problem)() if isinstance(problem, str) else problem


def check_method(config: MethodConfig, problem: Problem | str) -> None:
    """Raise :class:`UnsupportedProblemError` (one line naming both) when the method's
    backbone, layer or refinement does not apply to ``problem`` (a problem, or a family name
    for its default constraint set). Builds nothing."""
    from feasnet.problems.registry import family_names

    problem = _as_problem(problem)
    try:
        _check_parts(config, problem)
    except UnsupportedProblemError as exc:
        where = [
            name
            for name in family_names()
            if name != problem.family and method_applies(config, name)
        ]
        serves = f" (it applies to {', '.join(where)})" if where else ""
        raise UnsupportedProblemError(f"method {config.name}{serves}: {exc}") from None


def method_applies(config: MethodConfig, problem: Problem | str) -> bool:
    """Whether :func:`check_method` passes."""
    try:
        _check_parts(config, _as_problem(problem))
    except UnsupportedProblemError:
        return False
    return True
