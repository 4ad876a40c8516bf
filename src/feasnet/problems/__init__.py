"""Problem families: batched objectives, constraint violations, feasibility tests, anchors.

:class:`~feasnet.problems.base.Problem` is the interface every family implements;
:mod:`feasnet.problems.registry` holds the families and tells which family a thing belongs to.
"""

from feasnet.problems.base import (
    Feasibility,
    FileKey,
    LinearForm,
    Problem,
    UnsupportedProblemError,
)
from feasnet.problems.instances import InvalidInstanceError, PowerControlInstances
from feasnet.problems.miso_problem import MisoProblem
from feasnet.problems.power_control_problem import PowerControlProblem
from feasnet.problems.registry import FAMILIES, family_of, problem_of, register

__all__ = [
    "FAMILIES",
    "Feasibility",
    "FileKey",
    "InvalidInstanceError",
    "LinearForm",
    "MisoProblem",
    "PowerControlInstances",
    "PowerControlProblem",
    "Problem",
    "UnsupportedProblemError",
    "family_of",
    "problem_of",
    "register",
]
