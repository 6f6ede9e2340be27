"""Karpenter rules: EC2NodeClass nodes require IMDSv2 with hop limit 1 and encrypt their volumes; every
NodePool has ``limits`` (Karpenter's only ceiling on what a pool can launch).

Recorded inputs are the custom resources' ``spec`` as the program declares it. Where a field is absent, the
rule uses what the API server and Karpenter would: ``metadataOptions`` defaults to IMDSv2 required with hop
limit 1 (the CRD's default), and without ``blockDeviceMappings`` Karpenter gives the AL2, AL2023, Bottlerocket
and Windows AMI families encrypted gp3 volumes (``DefaultEBS`` in Karpenter's amifamily package), while a
``Custom`` AMI family keeps the AMI's own mappings, whose encryption nothing here can see.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mlstack.plan.mock_runtime import Resource
from mlstack.plan.policy.engine import Context, as_list, rule

NODE_CLASS = ("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass",)
NODE_POOL = ("kubernetes:karpenter.sh/v1:NodePool",)
ENCRYPTED_DEFAULT_FAMILIES = {"al2", "al2023", "bottlerocket", "windows2019", "windows2022", "windows2025"}


def _spec(r: Resource, ctx: Context) -> dict[str, Any]:
    spec = ctx.inputs(r).get("spec")
    return spec if isinstance(spec, dict) else {}


def _name(r: Resource, ctx: Context) -> str:
    md = ctx.inputs(r).get("metadata") or {}
    return str(md.get("name") or r.name) if isinstance(md, dict) else r.name


def _metadata_options(spec: dict[str, Any]) -> dict[str, Any]:
    mo = spec.get("metadataOptions")
    # the CRD defaults the whole block, and each field inside it
    base = {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1}
    return {**base, **(mo if isinstance(mo, dict) else {})}


@rule(
    "KARP-001",
    "high",
    "karpenter",
    "EC2NodeClass allows instance metadata v1 (IMDSv2 not required)",
    "set spec.metadataOptions.httpTokens: required on the EC2NodeClass (the CRD's default; do not override it)",
    NODE_CLASS,
)
def _imdsv2(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    mo = _metadata_options(_spec(r, ctx))
    if mo.get("httpEndpoint") != "disabled" and mo.get("httpTokens") != "required":
        yield f"EC2NodeClass {_name(r, ctx)}: metadataOptions.httpTokens is {mo.get('httpTokens')!r}"


@rule(
    "KARP-002",
    "medium",
    "karpenter",
    "EC2NodeClass IMDS hop limit lets pods reach the node role",
    "set spec.metadataOptions.httpPutResponseHopLimit: 1 so pods cannot get the node role's credentials and "
    "use their own IRSA roles",
    NODE_CLASS,
)
def _hop_limit(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    mo = _metadata_options(_spec(r, ctx))
    hop = mo.get("httpPutResponseHopLimit")
    if mo.get("httpEndpoint") != "disabled" and (not isinstance(hop, int | float) or hop > 1):
        yield f"EC2NodeClass {_name(r, ctx)}: metadataOptions.httpPutResponseHopLimit is {hop!r}"


def _families(spec: dict[str, Any]) -> set[str]:
    out = {
        str(t.get("alias")).split("@", 1)[0].lower()
        for t in as_list(spec.get("amiSelectorTerms"))
        if isinstance(t, dict) and t.get("alias")
    }
    if spec.get("amiFamily"):
        out.add(str(spec["amiFamily"]).lower())
    return out


@rule(
    "KARP-003",
    "medium",
    "karpenter",
    "EC2NodeClass volume not encrypted",
    "declare spec.blockDeviceMappings with ebs.encrypted: true (and a kmsKeyID if you use your own key) for the "
    "root volume and every data volume",
    NODE_CLASS,
)
def _encrypted(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    spec = _spec(r, ctx)
    name = _name(r, ctx)
    mappings = [m for m in as_list(spec.get("blockDeviceMappings")) if isinstance(m, dict)]
    if not mappings:
        fams = _families(spec)
        if not fams or not fams <= ENCRYPTED_DEFAULT_FAMILIES:
            yield (
                f"EC2NodeClass {name}: no blockDeviceMappings with AMI family {', '.join(sorted(fams)) or 'unknown'}: "
                "the AMI's own volume mappings are used, and their encryption is not declared"
            )
        return
    for m in mappings:
        raw = m.get("ebs")
        ebs: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if ebs.get("encrypted") is not True:
            which = "root volume" if m.get("rootVolume") else "volume"
            yield f"EC2NodeClass {name}: {which} {m.get('deviceName') or '?'} has ebs.encrypted {ebs.get('encrypted')!r}"


@rule(
    "KARP-004",
    "high",
    "karpenter",
    "NodePool without limits (no ceiling on the nodes it launches)",
    "set spec.limits on the NodePool (e.g. nvidia.com/gpu, cpu and memory) to the most the pool may ever run; "
    "`mlstack plan` prices the pool at those limits",
    NODE_POOL,
)
def _limits(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    spec = _spec(r, ctx)
    limits = spec.get("limits")
    if isinstance(spec.get("replicas"), int | float):
        return  # a static pool: its size is spec.replicas
    if not isinstance(limits, dict) or not limits:
        yield f"NodePool {_name(r, ctx)} has no limits: Karpenter may launch nodes until EC2 quotas stop it"
