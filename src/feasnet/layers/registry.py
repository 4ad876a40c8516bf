"""The feasibility layers by name: one line per layer.

Each entry is a :class:`~feasnet.layers.base.FeasibilityLayer` subclass; its ``Config``
validates the options a method gives it, and its ``check`` says where it does not apply.
Layer modules are imported on first use (cvxpylayers stays an optional dependency).
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel

from feasnet.layers.base import FeasibilityLayer
from feasnet.problems.base import Problem

LAYERS: dict[str, str] = {
    "penalty": "feasnet.layers.penalty:PenaltyLayer",
    "qp": "feasnet.layers.qp_projection:ProjectionLayer",
    "qp-cvxpylayers": "feasnet.layers.cvxpy_projection:CvxpyProjectionLayer",
    "correction": "feasnet.layers.correction:CorrectionLayer",
    "dc3": "feasnet.layers.dc3:DC3Layer",
    "hop": "feasnet.layers.hop:HopLayer",
    "gauge": "feasnet.layers.gauge:GaugeLayer",
    "hp": "feasnet.layers.homeomorphic:HomeomorphicProjectionLayer",
    "guard": "feasnet.layers.guard:GuardLayer",
    "primal-dual": "feasnet.layers.primal_dual:PrimalDualLayer",
}
"""Layer name -> ``module:class``."""


def layer_class(name: str) -> type[FeasibilityLayer]:
    """The layer class registered as ``name``."""
    if name not in LAYERS:
        raise KeyError(f"layer: unknown layer {name!r}; choose one of {', '.join(LAYERS)}")
    module, attribute = LAYERS[name].split(":")
    cls = getattr(importlib.import_module(module), attribute)
    assert issubclass(cls, FeasibilityLayer)
    return cls


def layer_options(name: str, options: dict[str, Any]) -> BaseModel:
    """The validated settings of layer ``name`` (unknown options are an error)."""
    return layer_class(name).Config.model_validate(options)


def build_layer(name: str, options: dict[str, Any], problem: Problem) -> FeasibilityLayer:
    """Layer ``name`` for ``problem``; raises
    :class:`~feasnet.problems.base.UnsupportedProblemError` where it does not apply."""
    cls = layer_class(name)
    return cls(problem, cls.Config.model_validate(options))
