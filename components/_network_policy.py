"""NetworkPolicies mlstack puts in the namespaces it owns (the jobs namespace, Argo's namespace).

Kubernetes NetworkPolicies are allow-lists that add up: once any policy selects a pod for a direction, only
what some policy allows gets through. mlstack writes, per namespace:

- ``default-deny-ingress``: every pod, no ingress (nothing calls into workflow pods; Argo reads their state
  and logs through the API server);
- ``allow-egress-dns-https``: every pod may reach cluster DNS (kube-dns in kube-system, UDP/TCP 53) and any
  address on TCP 443 -- the Kubernetes API (EKS serves it on 443), S3 and STS, warehouses (Snowflake,
  Databricks), registries -- and nothing else (no IMDS, no plain HTTP, no other port);
- extra egress rules the stack owner lists (``jobs_extra_egress`` / ``extra_egress``), as their own policy
  ``allow-egress-extra``, so what was added stays visible.

On EKS, the VPC CNI enforces them only with ``enableNetworkPolicy`` (EksGpuCluster sets it); on another
cluster, its CNI must (Calico, Cilium, the VPC CNI with the flag).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ._args import Problems

DNS_PORTS = ({"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53})
HTTPS_PORT = 443
LABELS = {"app.kubernetes.io/managed-by": "mlstack"}
_PEER_KEYS = {"ipBlock", "namespaceSelector", "podSelector"}
_RULE_KEYS = {"to", "ports"}
_PORT_KEYS = {"port", "protocol", "endPort"}


def dns_peer() -> dict[str, Any]:
    """Cluster DNS: the kube-dns pods (CoreDNS on EKS) in kube-system."""
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }


def baseline_egress() -> list[dict[str, Any]]:
    """DNS to kube-dns, and TCP 443 anywhere (the API server, AWS APIs, warehouses, registries)."""
    return [
        {"to": [dns_peer()], "ports": [dict(p) for p in DNS_PORTS]},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": HTTPS_PORT}]},
    ]


def check_egress_rules(problems: Problems, key: str, rules: Any) -> None:
    """Validate extra egress rules (NetworkPolicyEgressRule dicts, camelCase as in Kubernetes YAML)."""
    if rules is None:
        return
    if not isinstance(rules, list):
        problems.add(key, rules, "a list of NetworkPolicy egress rules ({'to': [...], 'ports': [...]})")
        return
    for i, r in enumerate(rules):
        path = f"{key}[{i}]"
        if not isinstance(r, Mapping) or not r or set(r) - _RULE_KEYS:
            problems.add(path, r, "an egress rule: a dict with 'to' and/or 'ports' only")
            continue
        for j, peer in enumerate(r.get("to", []) or []):
            if not isinstance(peer, Mapping) or not peer or set(peer) - _PEER_KEYS:
                problems.add(f"{path}.to[{j}]", peer, "a peer: ipBlock, namespaceSelector and/or podSelector")
            elif "ipBlock" in peer and not isinstance((peer["ipBlock"] or {}).get("cidr"), str):
                problems.add(f"{path}.to[{j}].ipBlock", peer["ipBlock"], "needs a cidr, e.g. 10.0.0.0/16")
        for j, port in enumerate(r.get("ports", []) or []):
            if not isinstance(port, Mapping) or set(port) - _PORT_KEYS:
                problems.add(f"{path}.ports[{j}]", port, "a port: {'protocol': 'TCP', 'port': 5432}")
            elif port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
                problems.add(f"{path}.ports[{j}].protocol", port.get("protocol"), "TCP, UDP or SCTP")


def namespace_policies(
    name: str,
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
    *,
    extra_egress: Sequence[Mapping[str, Any]] | None = None,
    ingress: Sequence[tuple[str, Mapping[str, Any], list[dict[str, Any]]]] = (),
    peers: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> list[k8s.networking.v1.NetworkPolicy]:
    """Default-deny ingress, DNS + HTTPS egress, the owner's extra egress, and named allowances.

    ``ingress`` holds ``(policy name, pod selector, ingress rules)`` for what a namespace must accept (the
    Argo server's port from the jobs namespace, say); ``peers`` holds ``(policy name, pod selector)`` for pods
    that may reach each other both ways on any port (the workers of one multi-node step).
    """
    meta = {"namespace": namespace, "labels": dict(LABELS)}
    out = [
        k8s.networking.v1.NetworkPolicy(  # type: ignore[call-overload]  # camelCase Kubernetes keys: pulumi_kubernetes types its dicts snake_case only
            f"{name}-deny-ingress",
            metadata={"name": "default-deny-ingress", **meta},
            spec={"podSelector": {}, "policyTypes": ["Ingress"]},
            opts=opts,
        ),
        k8s.networking.v1.NetworkPolicy(  # type: ignore[call-overload]  # camelCase Kubernetes keys: pulumi_kubernetes types its dicts snake_case only
            f"{name}-egress",
            metadata={"name": "allow-egress-dns-https", **meta},
            spec={"podSelector": {}, "policyTypes": ["Egress"], "egress": baseline_egress()},
            opts=opts,
        ),
    ]
    if extra_egress:
        out.append(
            k8s.networking.v1.NetworkPolicy(  # type: ignore[call-overload]  # camelCase Kubernetes keys: pulumi_kubernetes types its dicts snake_case only
                f"{name}-egress-extra",
                metadata={"name": "allow-egress-extra", **meta},
                spec={
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [dict(r) for r in extra_egress],
                },
                opts=opts,
            )
        )
    for policy, selector in peers:
        out.append(
            k8s.networking.v1.NetworkPolicy(  # type: ignore[call-overload]  # camelCase Kubernetes keys: pulumi_kubernetes types its dicts snake_case only
                f"{name}-{policy}",
                metadata={"name": policy, **meta},
                spec={
                    "podSelector": dict(selector),
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{"from": [{"podSelector": dict(selector)}]}],
                    "egress": [{"to": [{"podSelector": dict(selector)}]}],
                },
                opts=opts,
            )
        )
    for policy, selector, rules in ingress:
        out.append(
            k8s.networking.v1.NetworkPolicy(  # type: ignore[call-overload]  # camelCase Kubernetes keys: pulumi_kubernetes types its dicts snake_case only
                f"{name}-{policy}",
                metadata={"name": policy, **meta},
                spec={"podSelector": dict(selector), "policyTypes": ["Ingress"], "ingress": rules},
                opts=opts,
            )
        )
    return out
