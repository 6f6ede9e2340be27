"""Compute checks (Kubernetes): kubeconfig context, API reachable, GPU nodes, device plugin, GPU taint
tolerated, IRSA on the jobs' service account. The logic lives in :mod:`mlstack.doctor.kube`."""

from __future__ import annotations

import os
from typing import Any

from mlstack.doctor import kube
from mlstack.doctor.core import Check, Finding, Sink, error_text, fail, ok
from mlstack.errors import require
from mlstack.manifest import KubernetesCompute, LocalCompute, Manifest


def connect(c: KubernetesCompute, timeout: float, sink: Sink | None = None) -> kube.Cluster | None:
    """A client for the manifest's cluster, or None after adding the finding that says why not."""
    require("kubernetes", "k8s", "the Kubernetes checks")
    try:
        cfg, where = kube.load_kubeconfig()
    except Exception as exc:  # unreadable YAML
        if sink:
            sink.add(
                fail(
                    "compute.context", f"cannot read kubeconfig: {error_text(exc)}", kube.update_kubeconfig(c)
                )
            )
        return None
    ctx = kube.find_context(cfg, c.cluster_name, c.region)
    if ctx is None:
        if sink:
            sink.add(
                fail(
                    "compute.context",
                    f"no kubeconfig context for EKS cluster {c.cluster_name} ({c.region}) in {where}",
                    kube.update_kubeconfig(c),
                )
            )
        return None
    if sink:
        sink.add(ok("compute.context", f"kubeconfig context {ctx}"))
    try:
        return kube.Cluster.from_kubeconfig(cfg, ctx, timeout)
    except Exception as exc:
        if sink:
            sink.add(
                fail(
                    "compute.context",
                    f"kubeconfig context {ctx} is unusable: {error_text(exc)}",
                    kube.update_kubeconfig(c),
                )
            )
        return None


def cluster_findings(cluster: Any, c: KubernetesCompute, sink: Sink) -> None:
    """Every compute finding from a live (or fake) :class:`kube.Cluster`."""
    try:
        version = cluster.server_version()
    except Exception as exc:
        sink.add(kube.api_error(exc, c, "reading the server version"))
        return
    sink.add(ok("compute.api", f"API server of {c.cluster_name} answers (Kubernetes {version})"))
    try:
        nodes = cluster.nodes()
    except Exception as exc:
        sink.add(kube.api_error(exc, c, "listing nodes"))
        return
    sink.add(kube.nodes_finding(nodes, c))
    sink.add(kube.taint_finding(nodes, c))
    sel = kube.node_selector_finding(nodes, c)
    if sel:
        sink.add(sel)
    try:
        gpu_count = len(kube.gpu_nodes(nodes, c.gpu.resource))
        sink.add(kube.device_plugin_finding(cluster.daemonsets(), gpu_count, nodes, c.gpu.resource))
    except Exception as exc:
        sink.add(kube.api_error(exc, c, "listing daemonsets"))
    try:
        sink.add(kube.irsa_finding(cluster.service_account(c.namespace, c.service_account), c))
    except Exception as exc:
        sink.add(kube.api_error(exc, c, f"reading service account {c.namespace}/{c.service_account}"))


def local_finding(c: LocalCompute) -> Finding:
    n = os.cpu_count() or 1
    return ok("compute.local", f"local processes, up to {c.max_parallel or n} in parallel ({n} cores here)")


def checks(m: Manifest) -> list[Check]:
    c = m.compute
    if isinstance(c, LocalCompute):
        lc = c
        return [Check("compute.local", lambda sink, t: sink.add(local_finding(lc)))]
    kc = c

    def _k8s(sink: Sink, timeout: float) -> None:
        cluster = connect(kc, timeout, sink)
        if cluster is not None:
            cluster_findings(cluster, kc, sink)

    return [
        Check(
            "compute.api",
            _k8s,
            f"check the network path to the {kc.cluster_name} endpoint (VPN, public/private endpoint access), "
            f"then: {kube.update_kubeconfig(kc)}",
        )
    ]
