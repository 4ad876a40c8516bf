"""Backbones by name and problem family.

A backbone maps instances (physical units) to ``(raw, extra)``: ``raw`` ``(N, *shape)`` in the
problem's normalized units (``shape = problem.variable_shape``) and ``extra`` ``(N, E)`` real
outputs a layer asked for (HoP's radius logit). It is a module with
``propose(instances) -> (raw, extra)`` and, optionally, ``fit_normalizer(instances)``.

A backbone's input features are family-specific (log gains for power control, phase-aligned
channel directions for MISO), so each name has one builder per family it serves; asking for
a pair that does not exist is an :class:`~feasnet.problems.base.UnsupportedProblemError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from feasnet.problems.base import UnsupportedProblemError


class MlpOptions(BaseModel):
    """Options of the ``mlp`` backbone; ``None`` means the family's default.

    Attributes:
        hidden: hidden widths (power control: 3 x 200 as the paper; MISO: 3 x 256).
        dropout: dropout rate (power control 0.1; MISO 0).
        batch_norm: batch normalization after each hidden layer.
        activation: power control only, final activation (default sigmoid; PNet: softmax).
        include_rate_targets: power control only, feed each user's rate target.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    hidden: tuple[int, ...] | None = None
    dropout: float | None = Field(None, ge=0, lt=1)
    batch_norm: bool = True
    activation: Literal["affine", "relu", "sigmoid", "softmax"] | None = None
    include_rate_targets: bool | None = None


class UnfoldedOptions(BaseModel):
    """Options of the ``du`` backbone (deep-unfolded WMMSE: MISO beamforming, and the
    interference-channel WMMSE for power control)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    unfolded_layers: int = Field(5, ge=1)


class GnnOptions(BaseModel):
    """Options of the ``gnn`` backbone (:mod:`feasnet.nets.gnn`); its weights do not depend
    on the size, so one model serves every ``(B, Q)`` or ``(Nt, K)``.

    Attributes:
        hidden: width of the node states.
        rounds: message-passing rounds.
        activation: power control only: ``sigmoid`` (default) or ``budget`` (each BS's
            powers scaled into its budget).
        min_power_feature: power control only: feed the minimal QoS powers (default on).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    hidden: int = Field(64, ge=1)
    rounds: int = Field(3, ge=0)
    activation: Literal["sigmoid", "budget"] | None = None
    min_power_feature: bool | None = None


def _gnn_power_control(options: BaseModel, shape: tuple[int, ...], extra: int) -> nn.Module:
    from feasnet.nets.gnn import PowerControlGNN

    assert isinstance(options, GnnOptions)
    return PowerControlGNN(
        hidden=options.hidden,
        rounds=options.rounds,
        activation=options.activation or "sigmoid",
        min_power_feature=(
            True if options.min_power_feature is None else options.min_power_feature
        ),
        extra_outputs=extra,
    )


def _gnn_miso(options: BaseModel, shape: tuple[int, ...], extra: int) -> nn.Module:
    from feasnet.nets.gnn import MisoGNN

    assert isinstance(options, GnnOptions)
    return MisoGNN(hidden=options.hidden, rounds=options.rounds, extra_outputs=extra)


def _unfolded_power_control(options: BaseModel, shape: tuple[int, ...], extra: int) -> nn.Module:
    from feasnet.nets.unfolded_power_control import UnfoldedPowerControlWMMSE

    assert isinstance(options, UnfoldedOptions)
    return UnfoldedPowerControlWMMSE(num_layers=options.unfolded_layers, extra_outputs=extra)


def _power_control_mlp(options: BaseModel, shape: tuple[int, ...], extra: int) -> nn.Module:
    from feasnet.nets.mlp import PowerControlMLP

    assert isinstance(options, MlpOptions)
    return PowerControlMLP(
        shape[0],
        shape[1],
        hidden=options.hidden or (200, 200, 200),
        dropout=0.1 if options.dropout is None else options.dropout,
        activation=options.activation or "sigmoid",
        batch_norm=options.batch_norm,
        include_rate_targets=(
            True if options.include_rate_targets is None else options.include_rate_targets
        ),
        extra_outputs=extra,
    )


def _miso_mlp(options: BaseModel, shape: tuple[int, ...], extra: int) -> nn.Module:
    from feasnet.nets.miso_mlp import MisoMLP

    assert isinstance(options, MlpOptions)
    return MisoMLP(
        shape[0],
        shape[1],
        hidden=options.hidden or (256, 256, 256),
        batch_norm=options.batch_norm,
        dropout=options.dropout or 0.0,
        extra_outputs=extra,
    )


def _power_control_only(
    options: BaseModel,
    backbone: str = "mlp",
    names: tuple[str, ...] = ("activation", "include_rate_targets"),
) -> None:
    for name in names:
        if getattr(options, name, None) is not None:
            raise UnsupportedProblemError(
                f"backbone {backbone!r} option {name} is for power control, not miso"
            )


def _unfolded_wmmse(options: BaseModel, shape: tuple[int, ...], extra: int) -> nn.Module:
    from feasnet.nets.unfolded_wmmse import UnfoldedWMMSE

    assert isinstance(options, UnfoldedOptions)
    return UnfoldedWMMSE(
        shape[0], shape[1], num_layers=options.unfolded_layers, extra_outputs=extra
    )


Builder = Callable[[BaseModel, tuple[int, ...], int], nn.Module]

BACKBONES: dict[str, tuple[type[BaseModel], dict[str, Builder]]] = {
    "mlp": (MlpOptions, {"power-control": _power_control_mlp, "miso": _miso_mlp}),
    "du": (
        UnfoldedOptions,
        {"miso": _unfolded_wmmse, "power-control": _unfolded_power_control},
    ),
    "gnn": (GnnOptions, {"power-control": _gnn_power_control, "miso": _gnn_miso}),
}
"""Backbone name -> (options model, {family: builder(options, variable shape, extra)})."""


def backbone_options(name: str, options: dict[str, object]) -> BaseModel:
    """The validated options of backbone ``name``."""
    if name not in BACKBONES:
        raise KeyError(f"backbone: unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name][0].model_validate(options)


def backbone_families(name: str) -> tuple[str, ...]:
    """The problem families backbone ``name`` serves."""
    return tuple(BACKBONES[name][1])


OPTION_CHECKS: dict[tuple[str, str], Callable[[BaseModel], None]] = {
    ("mlp", "miso"): _power_control_only,
    ("gnn", "miso"): lambda options: _power_control_only(
        options, "gnn", ("activation", "min_power_feature")
    ),
}
"""(backbone, family) -> raises UnsupportedProblemError for options the family cannot use."""


def check_backbone(name: str, options: dict[str, object], family: str) -> None:
    """Raise :class:`UnsupportedProblemError` unless backbone ``name`` with ``options`` serves
    ``family`` (builds nothing)."""
    validated = backbone_options(name, options)
    builders = BACKBONES[name][1]
    if family not in builders:
        raise UnsupportedProblemError(
            f"backbone {name!r} does not apply to {family}: it serves {', '.join(builders)}"
        )
    check = OPTION_CHECKS.get((name, family))
    if check is not None:
        check(validated)


def build_backbone(
    name: str, options: dict[str, object], family: str, shape: tuple[int, ...], extra: int = 0
) -> nn.Module:
    """Backbone ``name`` for ``family`` and per-instance variable ``shape``, with ``extra``
    extra outputs."""
    check_backbone(name, options, family)
    return BACKBONES[name][1][family](backbone_options(name, options), shape, extra)


def register_backbone(name: str, family: str, builder: Builder) -> None:
    """Let backbone ``name`` serve ``family`` (a family defined outside the package).

    ``builder(options, variable_shape, extra)`` returns the network; ``options`` is the
    backbone's validated options model (for ``mlp``: :class:`MlpOptions`), ``variable_shape`` the
    per-instance shape of the problem's ``x`` and ``extra`` the number of additional outputs a
    layer asks for (HoP's radius). Registering a name that does not exist yet creates a backbone
    with :class:`MlpOptions`-style options.
    """
    builders = BACKBONES.setdefault(name, (MlpOptions, {}))[1]
    if family in builders and builders[family] is not builder:
        raise ValueError(f"backbone {name!r} already serves {family}")
    builders[family] = builder


def unregister_backbone(name: str, family: str) -> None:
    """Undo :func:`register_backbone` for ``family`` (the built-in builders stay)."""
    if (name, family) in _BUILT_IN:
        raise ValueError(f"backbone {name!r} for {family} is built in")
    BACKBONES.get(name, (MlpOptions, {}))[1].pop(family, None)


_BUILT_IN = frozenset((name, family) for name, (_, fams) in BACKBONES.items() for family in fams)
