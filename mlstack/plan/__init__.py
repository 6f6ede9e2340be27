"""Offline planning: run a stack's Pulumi program under the mock runtime and report on what it builds.

``run_plan(path)`` returns a :class:`~mlstack.plan.result.PlanResult`: the resource tree, counts by type, an
hourly/monthly cost estimate from the shipped price table, EC2 vCPU quota needs, policy findings and the
graph. It is an offline estimate, not a Pulumi preview: no credentials, no Pulumi CLI, no provider plugins.

Nothing here is imported by ``import mlstack``; pulumi loads only when a plan runs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mlstack.plan.result import PlanResult

NOTICE = "offline estimate, not a Pulumi preview"

__all__ = ["NOTICE", "run_plan"]


def run_plan(
    path: str | os.PathLike[str],
    config_file: str | os.PathLike[str] | None = None,
    *,
    skip_rules: list[str] | None = None,
) -> PlanResult:
    """Plan the Pulumi project at ``path`` offline (config from ``config_file`` or Pulumi.example.yaml)."""
    from mlstack.errors import require

    require("pulumi", "components", "mlstack plan")
    from mlstack.plan.result import plan

    return plan(path, config_file, skip_rules=skip_rules)
