"""Problem families: batched objectives, constraint violations, feasibility tests, anchors."""

from feasnet.problems.instances import InvalidInstanceError, PowerControlInstances

__all__ = ["InvalidInstanceError", "PowerControlInstances"]
