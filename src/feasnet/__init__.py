"""feasnet: feasibility-guaranteed learning-to-optimize for wireless resource allocation.

The public API, importable from the package itself (loaded on first use, so that
``import feasnet`` stays light):

* problems: :class:`Problem` (the interface every family implements), the built-in families
  :class:`PowerControlProblem` and :class:`MisoProblem`, their instance types, the registry
  (:func:`register`, :func:`unregister`, :func:`family_of`, :func:`problem_of`) and
  :data:`DEFAULT_RTOL`;
* data: :func:`get_preset`, :func:`generate`, :func:`load_npz`, :func:`save_npz`;
* classical solvers: :func:`solve` and the result types;
* learned methods: :func:`get_method`, :class:`TrainConfig`, :func:`train`,
  :func:`load_model`, :func:`model_result`, :func:`register_backbone`;
* metrics: :func:`evaluate`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    "DEFAULT_RTOL": "feasnet.problems.base",
    "Feasibility": "feasnet.problems.base",
    "Problem": "feasnet.problems.base",
    "UnsupportedProblemError": "feasnet.problems.base",
    "InvalidInstanceError": "feasnet.problems.instances",
    "PowerControlInstances": "feasnet.problems.instances",
    "MisoInstances": "feasnet.problems.miso",
    "PowerControlProblem": "feasnet.problems.power_control_problem",
    "MisoProblem": "feasnet.problems.miso_problem",
    "family_of": "feasnet.problems.registry",
    "problem_of": "feasnet.problems.registry",
    "register": "feasnet.problems.registry",
    "unregister": "feasnet.problems.registry",
    "get_preset": "feasnet.data.presets",
    "generate": "feasnet.data.generate",
    "load_npz": "feasnet.data.exchange",
    "save_npz": "feasnet.data.exchange",
    "solve": "feasnet.solvers",
    "Result": "feasnet.solvers.result",
    "AllocationResult": "feasnet.solvers.result",
    "BeamformingResult": "feasnet.solvers.result",
    "get_method": "feasnet.methods",
    "TrainConfig": "feasnet.train_config",
    "train": "feasnet.training",
    "load_model": "feasnet.training",
    "model_result": "feasnet.training",
    "register_backbone": "feasnet.nets.registry",
    "evaluate": "feasnet.metrics",
}
"""Public name -> the module that defines it."""

__all__ = [
    "DEFAULT_RTOL",
    "AllocationResult",
    "BeamformingResult",
    "Feasibility",
    "InvalidInstanceError",
    "MisoInstances",
    "MisoProblem",
    "PowerControlInstances",
    "PowerControlProblem",
    "Problem",
    "Result",
    "TrainConfig",
    "UnsupportedProblemError",
    "__version__",
    "evaluate",
    "family_of",
    "generate",
    "get_method",
    "get_preset",
    "load_model",
    "load_npz",
    "model_result",
    "problem_of",
    "register",
    "register_backbone",
    "save_npz",
    "solve",
    "train",
    "unregister",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'feasnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # what type checkers and IDEs see
    from feasnet.data.exchange import load_npz, save_npz
    from feasnet.data.generate import generate
    from feasnet.data.presets import get_preset
    from feasnet.methods import get_method
    from feasnet.metrics import evaluate
    from feasnet.nets.registry import register_backbone
    from feasnet.problems.base import (
        DEFAULT_RTOL,
        Feasibility,
        Problem,
        UnsupportedProblemError,
    )
    from feasnet.problems.instances import InvalidInstanceError, PowerControlInstances
    from feasnet.problems.miso import MisoInstances
    from feasnet.problems.miso_problem import MisoProblem
    from feasnet.problems.power_control_problem import PowerControlProblem
    from feasnet.problems.registry import family_of, problem_of, register, unregister
    from feasnet.solvers import solve
    from feasnet.solvers.result import AllocationResult, BeamformingResult, Result
    from feasnet.train_config import TrainConfig
    from feasnet.training import load_model, model_result, train
