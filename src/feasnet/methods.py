"""Learned methods as compositions: backbone + feasibility layer + loss (+ refinement, guard).

A method is named ``LAYER+BACKBONE`` (``penalty+mlp``, ``correction+mlp``, ``hop+du``, ...):
one :class:`MethodConfig` whose parts name a backbone of :mod:`feasnet.nets.registry` and a
layer of :mod:`feasnet.layers.registry`, each with its own validated options. The same method
serves every problem (family and constraint set) its parts apply to; where one does not
(``qp`` on a non-convex set, ``du`` on power control) building the model is a one-line
:class:`~feasnet.problems.base.UnsupportedProblemError`.

The papers' names are aliases of compositions with the papers' settings:

==================  =================================================================
``pnet``            ``penalty+mlp``, softmax per BS, ``lambda = 10^4``, selection by violation
``dipnet``          ``qp+mlp`` (batched implicit QP projection)
``dipnet-cvxpylayers``  ``qp-cvxpylayers+mlp`` (the paper's reference implementation)
``depnet``          ``correction+mlp``, ``lambda = 10``
``dipnet+fw``, ``depnet+fw``  the same, refined by Frank-Wolfe at inference
``penalty+mlp`` ... the survey's MISO compositions ``{penalty, dc3, hop} + {mlp, du}``
==================  =================================================================

(the survey's six MISO names are themselves ``LAYER+BACKBONE`` names with the survey's
settings). The model class is :class:`feasnet.models.LearnedModel`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from feasnet.layers.registry import LAYERS, layer_class, layer_options
from feasnet.nets.registry import BACKBONES, backbone_families, backbone_options


class Part(BaseModel):
    """One part of a method: a registry name and its options (validated by the part's own
    settings model and stored complete, defaults included)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: str
    options: dict[str, Any] = Field(default_factory=dict)


class BackbonePart(Part):
    """A backbone of :data:`feasnet.nets.registry.BACKBONES` with its options."""

    @model_validator(mode="after")
    def _validate(self) -> BackbonePart:
        validated = backbone_options(self.kind, self.options).model_dump(mode="json")
        object.__setattr__(self, "options", validated)
        return self


class LayerPart(Part):
    """A layer of :data:`feasnet.layers.registry.LAYERS` with its options."""

    @model_validator(mode="after")
    def _validate(self) -> LayerPart:
        validated = layer_options(self.kind, self.options).model_dump(mode="json")
        object.__setattr__(self, "options", validated)
        return self


class MethodConfig(BaseModel):
    """One learned method.

    Attributes:
        name: registry name (``LAYER+BACKBONE`` or a paper's alias).
        description: one line for ``feasnet methods``.
        backbone: the network (``mlp``, ``du``) and its options.
        layer: the feasibility layer (``penalty``, ``qp``, ``qp-cvxpylayers``, ``correction``,
            ``dc3``, ``hop``, ``guard``) and its options.
        penalty_weight: ``lambda`` of the loss ``-objective / scale + lambda * violation``.
        selection: validation metric of early stopping: best objective, or lowest violation
            probability with the objective breaking ties (PNet, as in the paper).
        refine: ``fw`` to refine the output with Frank-Wolfe at inference (power control on
            its polytope).
        guard: move outputs that fail the float64 check toward the interior anchor.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    description: str = ""
    backbone: BackbonePart
    layer: LayerPart
    penalty_weight: float = Field(0.0, ge=0)
    selection: Literal["objective", "violation"] = "objective"
    refine: Literal["none", "fw"] = "none"
    guard: bool = False


def compose(
    layer: str,
    backbone: str,
    name: str | None = None,
    description: str = "",
    layer_options: dict[str, Any] | None = None,
    backbone_options: dict[str, Any] | None = None,
    **settings: Any,
) -> MethodConfig:
    """The method ``LAYER+BACKBONE`` with the given options (``settings``: penalty_weight,
    selection, refine, guard)."""
    weight = settings.pop("penalty_weight", None)
    if weight is None:
        weight = 0.0 if layer_class(layer).hard and layer != "dc3" else 10.0
    return MethodConfig(
        name=name or f"{layer}+{backbone}",
        description=description,
        backbone=BackbonePart(kind=backbone, options=backbone_options or {}),
        layer=LayerPart(kind=layer, options=layer_options or {}),
        penalty_weight=weight,
        **settings,
    )


def _presets() -> list[MethodConfig]:
    papers = [
        compose(
            "penalty",
            name="pnet",
            description="MLP, softmax per BS (budget met), QoS as a penalty in the loss",
            backbone_options={"activation": "softmax"},
            penalty_weight=10_000.0,  # the paper's value for path-loss data
            selection="violation",
            backbone="mlp",
        ),
        compose(
            "qp",
            name="dipnet",
            description="MLP + implicit QP projection onto the feasible set (batched, ours)",
            backbone="mlp",
        ),
        compose(
            "correction",
            name="depnet",
            description="MLP + unrolled correction (momentum GD in training, Newton at test)",
            penalty_weight=10.0,
            backbone="mlp",
        ),
        compose(
            "qp",
            name="dipnet+fw",
            description="DIPNet refined by Frank-Wolfe at inference",
            refine="fw",
            backbone="mlp",
        ),
        compose(
            "correction",
            name="depnet+fw",
            description="DEPNet refined by Frank-Wolfe at inference",
            penalty_weight=10.0,
            refine="fw",
            backbone="mlp",
        ),
        compose(
            "qp-cvxpylayers",
            name="dipnet-cvxpylayers",
            description="DIPNet with the projection on cvxpylayers (the paper's way; slow)",
            backbone="mlp",
        ),
    ]
    words = {"mlp": "MLP", "du": "deep-unfolded WMMSE"}
    survey = {
        "penalty": ("soft penalty on the violations (may violate)", 10.0),
        "dc3": ("DC3 gradient correction (unrolled in training, to tolerance at test)", 10.0),
        "hop": ("HoP: direction + radius mapped inside along the anchor ray", 0.0),
    }
    miso = [
        compose(
            layer,
            backbone,
            description=f"{words[backbone]} + {text}",
            penalty_weight=weight,
            layer_options={"direction": "auto"} if (layer, backbone) == ("hop", "mlp") else None,
        )
        for backbone in ("mlp", "du")
        for layer, (text, weight) in survey.items()
    ]
    generic = [
        compose("qp", "mlp", description="MLP + QP projection onto the polytope (DIPNet's layer)"),
        compose(
            "correction",
            "mlp",
            description="MLP + correction on any real-variable set (DEPNet's layer)",
            penalty_weight=10.0,
        ),
        compose(
            "guard",
            "mlp",
            description="MLP trained with the penalty, guard toward the anchor as the layer",
            penalty_weight=10.0,
        ),
        compose(
            "primal-dual",
            "mlp",
            description="MLP primal + MLP dual network trained as an augmented Lagrangian "
            "method (PDL; soft)",
            penalty_weight=0.0,
        ),
    ]
    ray_layers = {
        "gauge": "gauge map of the unit cube onto the set around the anchor (no iterations)",
        "hp": "homeomorphic projection: learned INN, bisection toward the anchor if infeasible",
    }
    generic += [
        compose(layer, backbone, description=f"{words[backbone]} + {text}")
        for backbone in ("mlp", "du")
        for layer, text in ray_layers.items()
    ]
    any_size = {  # backbones whose weights serve every size (docs/nets-gnn.md, generalize.md)
        ("qp", "gnn"): "GNN (any B, Q) + QP projection onto the polytope",
        ("correction", "gnn"): "GNN (any B, Q) + correction (DEPNet's layer)",
        ("penalty", "gnn"): "GNN (any size) + soft penalty on the violations (may violate)",
        ("hop", "gnn"): "GNN (any size) + HoP ray toward the anchor",
        ("dc3", "gnn"): "GNN (any Nt, K) + DC3 gradient correction",
        ("qp", "du"): "unfolded interference-channel WMMSE (any B, Q) + QP projection",
        ("correction", "du"): "unfolded interference-channel WMMSE (any B, Q) + correction",
    }
    generic += [compose(layer, net, description=text) for (layer, net), text in any_size.items()]
    return papers + miso + generic


METHODS: dict[str, MethodConfig] = {m.name: m for m in _presets()}
"""Every named method: the papers' aliases and the ``LAYER+BACKBONE`` compositions."""

ALIASES: dict[str, str] = {
    name: composition
    for name, m in METHODS.items()
    if name != (composition := f"{m.layer.kind}+{m.backbone.kind}")
}
"""Paper name -> the composition it is (with the paper's settings); read off :data:`METHODS`."""


def get_method(name: str, **overrides: Any) -> MethodConfig:
    """The method ``name`` (case-insensitive), optionally with fields overridden.

    Unnamed compositions ``LAYER+BACKBONE`` of registered parts are accepted too (with
    default options).
    """
    key = name.strip().lower()
    if key in METHODS:
        config = METHODS[key]
    else:
        layer, _, backbone = key.partition("+")
        if layer not in LAYERS or backbone not in BACKBONES:
            raise KeyError(
                f"method: unknown method {name!r}; choose one of {', '.join(METHODS)} or "
                f"LAYER+BACKBONE with LAYER in {', '.join(LAYERS)} and BACKBONE in "
                f"{', '.join(BACKBONES)}"
            )
        config = compose(layer, backbone)
    if overrides:
        config = MethodConfig.model_validate({**config.model_dump(), **overrides})
    return config


def method_families(config: MethodConfig) -> tuple[str, ...]:
    """The registered problem families the method applies to in their default constraint set
    (another set may still be refused: :func:`feasnet.models.check_method` says so)."""
    from feasnet.models import method_applies
    from feasnet.problems.registry import family_names

    return tuple(
        family
        for family in family_names()
        if family in backbone_families(config.backbone.kind) and method_applies(config, family)
    )


def method_family(config: MethodConfig) -> str:
    """The families of :func:`method_families`, comma-separated (for listings)."""
    return ", ".join(method_families(config))


def config_from_dict(values: dict[str, Any]) -> MethodConfig:
    """Rebuild a method configuration stored in a model file, today's nested form or the
    flat form of model files written before methods were compositions."""
    if isinstance(values.get("backbone"), dict):
        return MethodConfig.model_validate(values)
    return _from_flat(values)


def _from_flat(values: dict[str, Any]) -> MethodConfig:
    """The nested configuration of a flat (version 1) power-control or MISO method."""
    common = {
        k: values[k] for k in ("name", "description", "penalty_weight", "guard") if k in values
    }
    if values.get("problem") == "miso":
        backbone = values["backbone"]
        options: dict[str, Any] = (
            {"hidden": tuple(values.get("hidden", (256, 256, 256)))}
            if backbone == "mlp"
            else {"unfolded_layers": values.get("unfolded_layers", 5)}
        )
        layer = values["layer"]
        layer_opts: dict[str, Any] = {}
        if layer == "dc3":
            layer_opts = dict(values.get("dc3", {}))
        elif layer == "hop":
            layer_opts = {"direction": "from-anchor" if backbone == "du" else "raw"}
        return MethodConfig(
            backbone=BackbonePart(kind=backbone, options=options),
            layer=LayerPart(kind=layer, options=layer_opts),
            **common,
        )
    backbone_opts: dict[str, Any] = {
        k: (tuple(values[k]) if k == "hidden" else values[k])
        for k in ("hidden", "dropout", "batch_norm", "activation", "include_rate_targets")
        if k in values
    }
    layer = values["layer"]
    layer_opts = dict(values.get("correction", {})) if layer == "correction" else {}
    return MethodConfig(
        backbone=BackbonePart(kind="mlp", options=backbone_opts),
        layer=LayerPart(kind=layer, options=layer_opts),
        selection=values.get("selection", "objective"),
        refine=values.get("refine", "none"),
        **common,
    )


def __getattr__(name: str) -> Any:
    """``build_model`` lives in :mod:`feasnet.models` (kept importable from here)."""
    if name == "build_model":
        from feasnet.models import build_model

        return build_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
