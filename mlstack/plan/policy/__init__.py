"""The built-in policy rules ``mlstack plan`` checks a recorded stack against.

Each rule has an id (``S3-001``), a severity (high, medium, low), the resource types it reads, a title and
a fix. A rule's check reads recorded inputs (wire format: camelCase keys, numbers as floats) and yields
one message per problem; a rule with no types runs once over the whole recording (stack-level checks).
The catalog is in docs/policy.md (generated from :data:`RULES`; a test keeps the two in step).
"""

from __future__ import annotations

from mlstack.plan.policy.engine import (
    RULES,
    SEVERITIES,
    Context,
    Finding,
    Rule,
    catalog_rows,
    evaluate,
    load_rules,
    rule,
)

__all__ = [
    "RULES",
    "SEVERITIES",
    "Context",
    "Finding",
    "Rule",
    "catalog_rows",
    "evaluate",
    "load_rules",
    "rule",
]
