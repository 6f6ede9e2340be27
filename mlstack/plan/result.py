"""PlanResult: everything ``mlstack plan`` reports, as one object with ``to_dict()``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from mlstack.plan import NOTICE, cost, inventory, karpenter, quota, runner
from mlstack.plan.mock_runtime import Recording, is_secret
from mlstack.plan.policy import Finding, evaluate


@dataclass
class PlanResult:
    project: str
    path: str
    config_file: str | None
    region: str
    recording: Recording
    tree: list[dict[str, Any]]
    counts_by_type: dict[str, int]
    cost: dict[str, Any]
    quota_needs: list[dict[str, Any]]
    gpu_instance_types: list[dict[str, Any]]
    findings: list[Finding]
    node_groups: list[inventory.NodeGroupSpec] = field(default_factory=list)
    node_pools: list[karpenter.NodePoolSpec] = field(default_factory=list)
    gpu_slices: list[dict[str, Any]] = field(default_factory=list)
    notice: str = NOTICE

    @property
    def resource_count(self) -> int:
        return sum(1 for r in self.recording.resources if r.custom)

    @property
    def component_count(self) -> int:
        return sum(1 for r in self.recording.resources if r.is_component)

    @property
    def high_findings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "high"]

    def stack_outputs(self) -> dict[str, Any]:
        """Stack outputs with secret values replaced by '[secret]'."""

        def red(v: Any) -> Any:
            if is_secret(v):
                return "[secret]"
            if isinstance(v, dict):
                return {k: red(x) for k, x in v.items()}
            if isinstance(v, list):
                return [red(x) for x in v]
            return v

        return {k: red(v) for k, v in self.recording.stack_outputs.items()}

    def to_dict(self) -> dict[str, Any]:
        sev = {s: sum(1 for f in self.findings if f.severity == s) for s in ("high", "medium", "low")}
        return {
            "notice": self.notice,
            "project": self.project,
            "path": self.path,
            "config_file": self.config_file,
            "region": self.region,
            "summary": {
                "resources": self.resource_count,
                "components": self.component_count,
                "findings": sev,
                "hourly_usd_min": self.cost["totals"]["hourly_usd_min"],
                "hourly_usd_max": self.cost["totals"]["hourly_usd_max"],
                "monthly_usd_min": self.cost["totals"]["monthly_usd_min"],
                "monthly_usd_max": self.cost["totals"]["monthly_usd_max"],
            },
            "resources": [
                {
                    "type": r.type,
                    "name": r.name,
                    "urn": r.urn,
                    "parent": r.parent,
                    "component": r.is_component,
                }
                for r in self.recording.resources
            ],
            "tree": self.tree,
            "counts_by_type": self.counts_by_type,
            "cost": self.cost,
            "quota_needs": self.quota_needs,
            "gpu_instance_types": self.gpu_instance_types,
            "findings": [f.to_dict() for f in self.findings],
            "node_pools": [p.to_dict() for p in self.node_pools],
            "gpu_slices": self.gpu_slices,
            "stack_outputs": self.stack_outputs(),
        }


def analyse(
    recording: Recording,
    *,
    config: dict[str, str] | None = None,
    project: str | None = None,
    path: str = "",
    config_file: str | None = None,
    skip_rules: list[str] | None = None,
) -> PlanResult:
    """Build the report from a recording (also used by tests on hand-built programs)."""
    cfg = dict(config or {})
    region = inventory.region_of(recording, cfg)
    # by URN, not in registration order: node groups and pools register concurrently, and the cost lines,
    # assumptions, quota needs and instance types below are listed in this order (one stable plan per program)
    groups = sorted(inventory.node_groups(recording), key=lambda g: g.urn)
    pools = sorted(karpenter.node_pools(recording), key=lambda p: p.urn)
    return PlanResult(
        project=project or recording.project,
        path=path,
        config_file=config_file,
        region=region,
        recording=recording,
        tree=inventory.tree(recording),
        counts_by_type=inventory.counts_by_type(recording),
        cost=cost.estimate(recording, groups, region, cfg),
        quota_needs=karpenter.merge_quota(
            quota.quota_needs(groups, region), karpenter.quota_needs(pools, region)
        ),
        gpu_instance_types=quota.gpu_instance_types(groups, region)
        + karpenter.gpu_instance_types(pools, region),
        findings=evaluate(recording, skip=skip_rules or ()),
        node_groups=groups,
        node_pools=pools,
        gpu_slices=karpenter.gpu_slices(pools, groups, region),
    )


def _skip_from_config(config: dict[str, str]) -> list[str]:
    raw = config.get("mlstack:policySkip")
    if not raw:
        return []
    import json

    try:
        v = json.loads(raw)
    except ValueError:
        v = [x.strip() for x in raw.split(",")]
    return [str(x) for x in (v if isinstance(v, list) else [v]) if str(x)]


def plan(
    path: str | os.PathLike[str],
    config_file: str | os.PathLike[str] | None = None,
    *,
    skip_rules: list[str] | None = None,
) -> PlanResult:
    program = runner.load_program(path, config_file)
    recording = runner.execute(program)
    skips = list(skip_rules or []) + _skip_from_config(program.config)
    from mlstack.errors import ConfigError
    from mlstack.plan.policy import RULES, load_rules

    load_rules()
    unknown = [s for s in skips if s not in RULES]
    if unknown:
        raise ConfigError(
            f"mlstack:policySkip / --skip: no rule {', '.join(unknown)}",
            fix="see docs/policy.md for the rule ids",
        )
    return analyse(
        recording,
        config=program.config,
        project=program.project,
        path=str(program.path),
        config_file=str(program.config_file) if program.config_file else None,
        skip_rules=skips,
    )
