"""What the shipped programs create must not change by accident: every resource and every plan figure, golden.

Each program (``stacks/*`` and ``examples/platform-repo``) runs under the mock runtime with its example config,
and its whole recording is compared with ``tests/golden/resources/<program>.json``:

- every resource: type token, name, parent, custom or component, wire-format inputs (secrets as envelopes),
  and the options the engine acts on (protect, retainOnDelete, ignoreChanges, replaceOnChanges, aliases,
  dependsOn, additionalSecretOutputs, deleteBeforeReplace, provider, providers, importId);
- the stack outputs (the manifest among them);
- ``mlstack plan``'s findings, cost lines and totals, EC2 quota needs and GPU instance types.

One normalisation is applied, explicitly: the component type tokens moved from ``mlstack:<layer>:<Type>`` to
``mlstack:index:<Type>`` (issue #13), each with an alias to its old token so a deployed stack replaces nothing.
:data:`RENAMED_TOKENS` maps old to new; before comparing, a recorded component with a new token must carry
exactly its old token as a type alias (that alias is then dropped), and the new tokens are written back as the
old ones wherever they appear (types and the URNs of parents, dependencies and providers). Nothing else is
rewritten, so any other difference fails.

Regenerate the golden files only when a change to what the stacks create is intended, then review the diff:

    MLSTACK_UPDATE_GOLDEN=1 .venv/bin/pytest tests/stacks/test_golden_resources.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "resources"
PROGRAMS = {
    **{p.name: p for p in sorted((ROOT / "stacks").iterdir()) if (p / "Pulumi.yaml").is_file()},
    "platform-repo": ROOT / "examples" / "platform-repo",
}

# old token -> new token (issue #13); every new token aliases its old one
RENAMED_TOKENS: dict[str, str] = {
    "mlstack:artifacts:S3ArtifactStore": "mlstack:index:S3ArtifactStore",
    "mlstack:artifacts:ExistingS3ArtifactStore": "mlstack:index:ExistingS3ArtifactStore",
    "mlstack:data:SnowflakeDataLayer": "mlstack:index:SnowflakeDataLayer",
    "mlstack:data:DatabricksDataLayer": "mlstack:index:DatabricksDataLayer",
    "mlstack:data:S3Lakehouse": "mlstack:index:S3Lakehouse",
    "mlstack:compute:EksGpuCluster": "mlstack:index:EksGpuCluster",
    "mlstack:compute:ExistingEksCluster": "mlstack:index:ExistingEksCluster",
    "mlstack:orchestrator:ArgoWorkflows": "mlstack:index:ArgoWorkflows",
    "mlstack:stack:MLStack": "mlstack:index:MLStack",
}
_BACK = {new: old for old, new in RENAMED_TOKENS.items()}
OPTIONS = (
    "protect",
    "retainOnDelete",
    "ignoreChanges",
    "replaceOnChanges",
    "aliases",
    "dependencies",
    "additionalSecretOutputs",
    "deleteBeforeReplace",
    "provider",
    "providers",
    "importId",
)


def _old_tokens(value: Any) -> Any:
    """Write every new token back as the old one, in strings (types, URNs) anywhere in ``value``."""
    if isinstance(value, str):
        for new, old in _BACK.items():
            # a token inside a URN ends at '$' (the next type in the chain) or '::' (the name)
            value = value.replace(new + "$", old + "$").replace(new + "::", old + "::")
            if value == new:
                value = old
        return value
    if isinstance(value, dict):
        return {_old_tokens(k): _old_tokens(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_old_tokens(v) for v in value]
    return value


def _drop_token_alias(resource: dict[str, Any]) -> None:
    """A component under a new token must alias exactly its old token; that one alias is not compared."""
    old = _BACK.get(resource["type"])
    if old is None:
        return
    aliases = resource["options"]["aliases"]
    wanted = {"type": old}
    assert wanted in aliases, f"{resource['type']} {resource['name']!r} has no alias to its old token {old}"
    aliases.remove(wanted)


def _sorted(items: list[Any]) -> list[Any]:
    return sorted(items, key=lambda x: json.dumps(x, sort_keys=True, default=str))


def snapshot(path: Path) -> dict[str, Any]:
    """The program's resources, stack outputs and plan figures, in a stable order."""
    from mlstack.plan import run_plan

    result = run_plan(path)
    resources = []
    for r in result.recording.resources:
        options = {k: r.options.get(k) for k in OPTIONS}
        options["dependencies"] = sorted(options["dependencies"] or [])
        entry = {
            "type": r.type,
            "name": r.name,
            "urn": r.urn,
            "parent": r.parent,
            "custom": r.custom,
            "inputs": r.inputs,
            "options": options,
        }
        _drop_token_alias(entry)
        entry = _old_tokens(entry)
        # sorted after the rewrite: the order of URNs must not depend on which token spelling they carry
        entry["options"]["dependencies"] = sorted(entry["options"]["dependencies"])
        resources.append(entry)
    resources.sort(key=lambda e: e["urn"])
    d = result.to_dict()
    # lists built in registration order, which varies from run to run: compared as sorted lists
    d["cost"]["lines"] = _sorted(d["cost"]["lines"])
    plan = {
        "summary": d["summary"],
        "counts_by_type": d["counts_by_type"],
        "findings": _sorted(d["findings"]),
        "cost": d["cost"],
        "quota_needs": _sorted(d["quota_needs"]),
        "gpu_instance_types": _sorted(d["gpu_instance_types"]),
        "node_pools": _sorted(d["node_pools"]),
        "gpu_slices": _sorted(d["gpu_slices"]),
    }
    return {
        "program": str(path.relative_to(ROOT)),
        "resources": resources,
        "stack_outputs": _old_tokens(result.recording.stack_outputs),
        "plan": _old_tokens(plan),
    }


def _text(snap: dict[str, Any]) -> str:
    return json.dumps(snap, indent=1, sort_keys=True, default=str) + "\n"


def _diff(golden: dict[str, Any], now: dict[str, Any]) -> str:
    """A readable summary: resources added, removed or changed (by URN), then other sections that differ."""
    g = {r["urn"]: r for r in golden["resources"]}
    n = {r["urn"]: r for r in now["resources"]}
    lines = [f"+ {u}" for u in sorted(set(n) - set(g))] + [f"- {u}" for u in sorted(set(g) - set(n))]
    for u in sorted(set(g) & set(n)):
        for key in ("type", "name", "parent", "custom", "inputs", "options"):
            if g[u][key] != n[u][key]:
                if key in ("inputs", "options") and isinstance(g[u][key], dict):
                    for k in sorted(set(g[u][key]) | set(n[u][key])):
                        if g[u][key].get(k) != n[u][key].get(k):
                            lines.append(
                                f"~ {u} {key}.{k}: {json.dumps(g[u][key].get(k), default=str)[:300]} -> "
                                f"{json.dumps(n[u][key].get(k), default=str)[:300]}"
                            )
                else:
                    lines.append(f"~ {u} {key}: {g[u][key]!r} -> {n[u][key]!r}")
    for section in ("stack_outputs", "plan"):
        if golden[section] != now[section]:
            keys = sorted(set(golden[section]) | set(now[section]))
            changed = [k for k in keys if golden[section].get(k) != now[section].get(k)]
            lines.append(f"~ {section}: {', '.join(changed)}")
    return "\n".join(lines[:60])


@pytest.mark.slow
@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_program_creates_what_the_golden_file_says(program: str) -> None:
    now = json.loads(_text(snapshot(PROGRAMS[program])))  # through JSON, as the file holds it
    path = GOLDEN / f"{program}.json"
    if os.environ.get("MLSTACK_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(_text(now))
    assert path.is_file(), f"no golden file {path}; create it with MLSTACK_UPDATE_GOLDEN=1 and review it"
    golden = json.loads(path.read_text())
    assert now == golden, (
        f"{program} no longer creates what {path.relative_to(ROOT)} records:\n{_diff(golden, now)}\n"
        "if the change is intended, regenerate with MLSTACK_UPDATE_GOLDEN=1 (see this module's docstring) "
        "and review the diff"
    )


def test_every_program_has_a_golden_file_and_no_golden_file_is_orphaned() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == sorted(PROGRAMS)


def test_the_normalisation_rewrites_only_renamed_tokens() -> None:
    """The one allowed difference is undone, and only it: other tokens and look-alikes are left alone."""
    urn = "urn:pulumi:s::p::mlstack:index:EksGpuCluster$aws:eks/cluster:Cluster::gpu-cluster"
    assert (
        _old_tokens(urn)
        == "urn:pulumi:s::p::mlstack:compute:EksGpuCluster$aws:eks/cluster:Cluster::gpu-cluster"
    )
    assert (
        _old_tokens("urn:pulumi:s::p::mlstack:index:MLStack::x")
        == "urn:pulumi:s::p::mlstack:stack:MLStack::x"
    )
    assert _old_tokens("mlstack:index:EksGpuCluster") == "mlstack:compute:EksGpuCluster"
    for kept in ("mlstack:index:EksGpuClusterX", "mlstack:index:Other", "aws:eks/cluster:Cluster"):
        assert _old_tokens(kept) == kept
    entry = {
        "type": "mlstack:index:MLStack",
        "name": "m",
        "options": {"aliases": [{"type": "mlstack:stack:MLStack"}, {"name": "old"}]},
    }
    _drop_token_alias(entry)
    assert entry["options"]["aliases"] == [{"name": "old"}]  # other aliases stay and are compared
    with pytest.raises(AssertionError, match="no alias to its old token"):
        _drop_token_alias({"type": "mlstack:index:MLStack", "name": "m", "options": {"aliases": []}})
