"""Rule registry and evaluation."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from mlstack.plan.mock_runtime import Recording, Resource, unwrap_secrets

SEVERITIES = ("high", "medium", "low")
RULE_MODULES = (
    "mlstack.plan.policy.aws_s3",
    "mlstack.plan.policy.aws_iam",
    "mlstack.plan.policy.aws_eks",
    "mlstack.plan.policy.kubernetes",
    "mlstack.plan.policy.karpenter",
    "mlstack.plan.policy.warehouses",
    "mlstack.plan.policy.outputs",
    "mlstack.plan.policy.hardening",
)

Check = Callable[["Resource | None", "Context"], Iterable[str]]


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    service: str
    title: str
    fix: str
    types: tuple[str, ...]
    check: Check

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity,
            "service": self.service,
            "title": self.title,
            "fix": self.fix,
            "types": list(self.types),
        }


@dataclass(frozen=True)
class Finding:
    rule_id: str
    severity: str
    service: str
    title: str
    resource_type: str | None
    resource_name: str | None
    resource_urn: str | None
    message: str
    fix: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "severity": self.severity,
            "service": self.service,
            "title": self.title,
            "resource": {"type": self.resource_type, "name": self.resource_name, "urn": self.resource_urn},
            "message": self.message,
            "fix": self.fix,
        }


RULES: dict[str, Rule] = {}


def rule(
    rule_id: str, severity: str, service: str, title: str, fix: str, types: Iterable[str] = ()
) -> Callable[[Check], Check]:
    """Register a check function as a rule (decorator)."""
    if severity not in SEVERITIES:  # pragma: no cover - programming error
        raise ValueError(f"{rule_id}: severity {severity!r} not in {SEVERITIES}")

    def deco(fn: Check) -> Check:
        if rule_id in RULES:  # pragma: no cover - programming error
            raise ValueError(f"duplicate rule id {rule_id}")
        RULES[rule_id] = Rule(rule_id, severity, service, title, fix, tuple(types), fn)
        return fn

    return deco


class Context:
    """The recording plus lookups rules share (resources by id, parsed policy documents)."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording

    @cached_property
    def by_id(self) -> dict[str, Resource]:
        return {r.id: r for r in self.recording.resources if r.id}

    def inputs(self, r: Resource) -> dict[str, Any]:
        return unwrap_secrets(r.inputs)

    def of_type(self, *types: str) -> list[Resource]:
        return [r for r in self.recording.resources if r.type in types]

    def referencing(self, types: Iterable[str], key: str, value: Any) -> list[Resource]:
        """Resources of ``types`` whose input ``key`` equals ``value`` (e.g. a bucket's id)."""
        tt = set(types)
        return [
            r for r in self.recording.resources if r.type in tt and unwrap_secrets(r.inputs.get(key)) == value
        ]


def load_rules() -> dict[str, Rule]:
    for m in RULE_MODULES:
        importlib.import_module(m)
    return RULES


def parse_policy(doc: Any) -> dict[str, Any] | None:
    """An IAM/KMS/S3 policy document from a recorded input (a JSON string or a mapping)."""
    doc = unwrap_secrets(doc)
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError:
            return None
    return doc if isinstance(doc, dict) else None


def statements(doc: Any) -> list[dict[str, Any]]:
    p = parse_policy(doc)
    if p is None:
        return []
    st = p.get("Statement", [])
    if isinstance(st, dict):
        st = [st]
    return [s for s in st if isinstance(s, dict)]


def as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return list(v) if isinstance(v, list | tuple) else [v]


def evaluate(recording: Recording, *, skip: Iterable[str] = ()) -> list[Finding]:
    """Run every rule (but ``skip``) over the recording; findings sorted by severity, then rule id."""
    load_rules()
    ctx = Context(recording)
    skipped = set(skip)
    out: list[Finding] = []
    for r in RULES.values():
        if r.id in skipped:
            continue
        targets: list[Resource | None] = list(ctx.of_type(*r.types)) if r.types else [None]
        for res in targets:
            for msg in r.check(res, ctx):
                out.append(
                    Finding(
                        rule_id=r.id,
                        severity=r.severity,
                        service=r.service,
                        title=r.title,
                        resource_type=res.type if res is not None else None,
                        resource_name=res.name if res is not None else None,
                        resource_urn=res.urn if res is not None else None,
                        message=msg,
                        fix=r.fix,
                    )
                )
    order = {s: i for i, s in enumerate(SEVERITIES)}
    out.sort(key=lambda f: (order[f.severity], f.rule_id, f.resource_urn or ""))
    return out


def catalog_rows() -> list[str]:
    """One Markdown table row per rule (docs/policy.md embeds these; a test keeps them in step)."""
    load_rules()
    rows = []
    for r in sorted(RULES.values(), key=lambda r: (RULE_MODULES_ORDER.get(r.service, 99), r.id)):
        types = ", ".join(f"`{t}`" for t in r.types) or "stack outputs"
        rows.append(f"| {r.id} | {r.severity} | {r.title} | {types} | {r.fix} |")
    return rows


RULE_MODULES_ORDER = {
    s: n
    for n, s in enumerate(
        (
            "s3",
            "iam",
            "kms",
            "eks",
            "ec2",
            "karpenter",
            "kubernetes",
            "argo",
            "snowflake",
            "databricks",
            "outputs",
        )
    )
}
