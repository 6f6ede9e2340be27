"""Preflight: before deploying, compare a plan's GPU needs with the account.

- EC2 vCPU quotas (Service Quotas ``GetServiceQuota``, applied values) against the vCPUs the node groups
  need at their maximum size, per quota code (``mlstack.plan`` computes the needs offline);
- each GPU instance type is offered in the chosen zones (EC2 ``DescribeInstanceTypeOfferings``).

Both checks run concurrently under the doctor's deadline; every shortfall comes with the command that fixes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mlstack.doctor.core import (
    DEFAULT_TIMEOUT,
    Check,
    Finding,
    Report,
    Sink,
    error_text,
    fail,
    ok,
    run_checks,
    warn,
)
from mlstack.errors import require

ClientFactory = Callable[[str, str], Any]  # (service, region) -> boto3 client


def client_factory(timeout: float, endpoint_url: str | None = None) -> ClientFactory:
    """boto3 clients that give up after ``timeout`` s with no retries (``endpoint_url`` for tests/proxies)."""
    boto3 = require("boto3", "aws", "the preflight checks")
    from botocore.config import Config

    cfg = Config(
        connect_timeout=timeout, read_timeout=timeout, retries={"mode": "standard", "total_max_attempts": 1}
    )
    session = boto3.session.Session()

    def make(service: str, region: str) -> Any:
        return session.client(service, region_name=region, endpoint_url=endpoint_url, config=cfg)

    return make


def _code(exc: BaseException) -> str:
    resp = getattr(exc, "response", None) or {}
    return str((resp.get("Error") or {}).get("Code") or "") if isinstance(resp, dict) else ""


def _credentials_problem(exc: BaseException) -> Finding | None:
    from botocore import exceptions as bx

    if isinstance(exc, bx.NoCredentialsError) or _code(exc) in (
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "AuthFailure",
    ):
        return fail(
            "preflight.credentials",
            f"AWS rejected or found no credentials: {error_text(exc)}",
            "aws configure / aws sso login (or export AWS_PROFILE) for the account you will deploy to",
        )
    return None


def quota_findings(needs: Sequence[dict[str, Any]], make: ClientFactory) -> list[Finding]:
    """One finding per quota code: applied value vs. vCPUs needed at the node groups' maximum size."""
    out: list[Finding] = []
    for need in needs:
        code = need.get("quota_code")
        if not code:
            out.append(
                warn(
                    "preflight.quota",
                    f"instance types {', '.join(need.get('instance_types') or [])} are not in mlstack's table: "
                    "their vCPU quota was not checked",
                    "check it by hand: aws service-quotas list-service-quotas --service-code ec2",
                )
            )
            continue
        region = str(need.get("region") or "us-east-1")
        if need.get("vcpus_needed") is None:  # a Karpenter NodePool without limits: no bound to check
            pools = ", ".join(g.get("name", "?") for g in need.get("node_groups") or [])
            out.append(
                warn(
                    "preflight.quota",
                    f"{code} ({need.get('name') or code}): the vCPUs needed are unbounded ({pools} without limits)",
                    "set limits on the NodePool (policy KARP-004), then run the preflight again",
                )
            )
            continue
        needed = float(need.get("vcpus_needed") or 0)
        name = need.get("name") or code
        increase = (
            f"aws service-quotas request-service-quota-increase --service-code ec2 --quota-code {code} "
            f"--desired-value {needed:g} --region {region}"
        )
        try:
            quota = make("service-quotas", region).get_service_quota(ServiceCode="ec2", QuotaCode=code)[
                "Quota"
            ]
            value, source = float(quota["Value"]), "applied"
        except Exception as exc:
            cred = _credentials_problem(exc)
            if cred:
                out.append(cred)
                return out
            default = need.get("aws_default_vcpus")
            if _code(exc) in ("NoSuchResourceException",) and default is not None:
                value, source = float(default), "AWS default (no applied value)"
            else:
                out.append(
                    warn(
                        "preflight.quota",
                        f"{code} ({name}) in {region}: cannot read the quota: {error_text(exc)}",
                        "allow servicequotas:GetServiceQuota for this identity, or check it in the Service Quotas console",
                    )
                )
                continue
        groups = ", ".join(
            f"{g['name']}×{g.get('max_size')}" for g in need.get("node_groups") or [] if "name" in g
        )
        detail = (
            f"{code} ({name}) in {region}: {needed:g} vCPUs needed"
            + (f" ({groups})" if groups else "")
            + f", quota {value:g} ({source})"
        )
        if needed > value:
            out.append(
                fail(
                    "preflight.quota", detail + ": the node groups cannot reach their maximum size", increase
                )
            )
        else:
            out.append(ok("preflight.quota", detail))
    return out


def offering_findings(types: Sequence[dict[str, Any]], make: ClientFactory) -> list[Finding]:
    """One finding per GPU instance type: offered in the region, and in each zone the plan names."""
    out: list[Finding] = []
    by_region: dict[str, list[dict[str, Any]]] = {}
    for t in types:
        by_region.setdefault(str(t.get("region") or "us-east-1"), []).append(t)
    for region, entries in by_region.items():
        names = sorted({str(e["instance_type"]) for e in entries})
        offered: dict[str, set[str]] = {n: set() for n in names}
        try:
            ec2 = make("ec2", region)
            pages = ec2.get_paginator("describe_instance_type_offerings").paginate(
                LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": names}]
            )
            for page in pages:
                for o in page.get("InstanceTypeOfferings") or []:
                    offered.setdefault(o["InstanceType"], set()).add(o["Location"])
        except Exception as exc:
            cred = _credentials_problem(exc)
            out.append(
                cred
                or warn(
                    "preflight.offering",
                    f"cannot list instance type offerings in {region}: {error_text(exc)}",
                    "allow ec2:DescribeInstanceTypeOfferings for this identity",
                )
            )
            continue
        for e in entries:
            it = str(e["instance_type"])
            zones = sorted(offered.get(it) or set())
            wanted = [str(z) for z in e.get("zones") or []]
            groups = ", ".join(e.get("node_groups") or [])
            who = f"{it}" + (f" (node group {groups})" if groups else "")
            if not zones:
                out.append(
                    fail(
                        "preflight.offering",
                        f"{who} is not offered in any zone of {region}",
                        f"choose another GPU instance type or region: aws ec2 describe-instance-type-offerings "
                        f"--location-type region --filters Name=instance-type,Values={it}",
                    )
                )
                continue
            missing = [z for z in wanted if z not in zones]
            if wanted and len(missing) == len(wanted):
                out.append(
                    fail(
                        "preflight.offering",
                        f"{who} is offered in {', '.join(zones)} but none of the chosen zones ({', '.join(wanted)})",
                        f"put the GPU node group's subnets in {', '.join(zones)}, or choose another instance type",
                    )
                )
            elif missing:
                out.append(
                    warn(
                        "preflight.offering",
                        f"{who} is not offered in {', '.join(missing)}; nodes will only launch in "
                        f"{', '.join(z for z in wanted if z in zones)}",
                        f"use subnets in {', '.join(zones)} for the GPU node group to keep every zone usable",
                    )
                )
            else:
                where = ", ".join(wanted) if wanted else f"{len(zones)} zones of {region}"
                out.append(ok("preflight.offering", f"{who} offered in {where}"))
    return out


def preflight(
    quota_needs: Sequence[dict[str, Any]],
    gpu_instance_types: Sequence[dict[str, Any]],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    make: ClientFactory | None = None,
    endpoint_url: str | None = None,
) -> Report:
    """Check the needs of a plan against the account, concurrently, under one deadline."""
    factory = make or client_factory(timeout, endpoint_url)
    checks: list[Check] = []
    if quota_needs:
        checks.append(
            Check(
                "preflight.quota",
                lambda sink, t: sink.extend(quota_findings(quota_needs, factory)),
                "check that the Service Quotas endpoint is reachable from here",
            )
        )
    if gpu_instance_types:
        checks.append(
            Check(
                "preflight.offering",
                lambda sink, t: sink.extend(offering_findings(gpu_instance_types, factory)),
                "check that the EC2 endpoint is reachable from here",
            )
        )
    if not checks:

        def _none(sink: Sink, t: float) -> None:
            sink.add(ok("preflight.gpu", "the plan has no GPU node group: no quota or offering to check"))

        checks.append(Check("preflight.gpu", _none))
    return run_checks(checks, timeout)


def preflight_path(
    path: Any, *, timeout: float = DEFAULT_TIMEOUT, config_file: Any = None
) -> tuple[Report, dict[str, Any]]:
    """Plan the stack program at ``path`` offline, then :func:`preflight` its needs."""
    from mlstack.plan import run_plan

    result = run_plan(path, config_file)
    # boto3 honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_EC2 itself (a proxy or a test server)
    report = preflight(result.quota_needs, result.gpu_instance_types, timeout=timeout)
    meta = {
        "region": result.region,
        "quota_needs": result.quota_needs,
        "gpu_instance_types": result.gpu_instance_types,
    }
    return report, meta
