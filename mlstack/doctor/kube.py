"""Kubernetes and Argo checks as pure functions over objects, plus a thin fetch layer.

Objects are plain dicts in the API's JSON shape (what ``kubectl get -o json`` prints), so the checks run on
recorded fixtures in tests and on live objects from the client alike (:class:`Cluster` converts).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlstack import names
from mlstack.doctor.core import Finding, error_text, fail, ok, warn
from mlstack.manifest import KubernetesCompute, Toleration

IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
# EksGpuCluster labels GPU nodes with who runs their device plugin: "os" (Bottlerocket) or "daemonset"
DEVICE_PLUGIN_LABEL = names.DEVICE_PLUGIN_LABEL
DEVICE_PLUGIN_HINTS = ("nvidia-device-plugin", "nvidia-device-plugin-daemonset", "gpu-operator")
DEVICE_PLUGIN_INSTALL = (
    "helm repo add nvdp https://nvidia.github.io/k8s-device-plugin && helm upgrade -i nvdp "
    "nvdp/nvidia-device-plugin -n nvidia-device-plugin --create-namespace  (or redeploy with `mlstack up`)"
)
MANIFEST_KEYS = ("manifest.json", "mlstack.json", "MLSTACK_MANIFEST", "manifest")


def update_kubeconfig(c: KubernetesCompute) -> str:
    return f"aws eks update-kubeconfig --name {c.cluster_name} --region {c.region}"


# ---------------------------------------------------------------- kubeconfig
def find_context(kubeconfig: Mapping[str, Any], cluster_name: str, region: str | None = None) -> str | None:
    """The kubeconfig context that points at EKS cluster ``cluster_name`` (None when there is none).

    Matches what ``aws eks update-kubeconfig`` writes (context and cluster named by the cluster ARN, user
    exec args ``--cluster-name NAME``) as well as a context or cluster simply named after the cluster.
    """
    clusters = {c.get("name"): c.get("cluster") or {} for c in kubeconfig.get("clusters") or []}
    users = {u.get("name"): u.get("user") or {} for u in kubeconfig.get("users") or []}
    current = kubeconfig.get("current-context")
    best: list[tuple[int, str]] = []
    for ctx in kubeconfig.get("contexts") or []:
        name = str(ctx.get("name") or "")
        spec = ctx.get("context") or {}
        cname = str(spec.get("cluster") or "")
        user = users.get(spec.get("user")) or {}
        args = [str(a) for a in ((user.get("exec") or {}).get("args") or [])]
        score = 0
        for candidate in (name, cname):
            if candidate.endswith(f":cluster/{cluster_name}"):
                arn_region = candidate.split(":")[3] if candidate.count(":") >= 5 else None
                score = max(score, 3 if (region is None or arn_region in (None, region)) else 1)
            elif candidate == cluster_name:
                score = max(score, 2)
        for flag in ("--cluster-name", "-i", "--cluster-id"):
            if (
                flag in args
                and args.index(flag) + 1 < len(args)
                and args[args.index(flag) + 1] == cluster_name
            ):
                score = max(score, 3)
        server = str((clusters.get(cname) or {}).get("server") or "")
        if score and region and ".eks.amazonaws.com" in server and f".{region}." not in server:
            score = 1
        if score:
            best.append((score * 2 + (1 if name == current else 0), name))
    return max(best)[1] if best else None


def load_kubeconfig(path: str | None = None) -> tuple[dict[str, Any], str]:
    """The merged kubeconfig ($KUBECONFIG, else ~/.kube/config) as a dict, and where it came from."""
    import os

    import yaml

    raw = path or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    merged: dict[str, Any] = {"clusters": [], "contexts": [], "users": []}
    for p in [s for s in raw.split(os.pathsep) if s]:
        f = Path(p).expanduser()
        if not f.is_file():
            continue
        data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for key in ("clusters", "contexts", "users"):
            merged[key].extend(data.get(key) or [])
        merged.setdefault("current-context", data.get("current-context"))
        if not merged.get("current-context"):
            merged["current-context"] = data.get("current-context")
    return merged, raw


# ---------------------------------------------------------------- taints and tolerations
def _tol_dict(t: Toleration | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(t, Toleration):
        return t.model_dump(exclude_none=True)
    return dict(t)


def tolerates(tolerations: Iterable[Toleration | Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """Kubernetes' rule: a toleration matches a taint on key (empty key + Exists = all), value, effect."""
    for raw in tolerations:
        t = _tol_dict(raw)
        effect = t.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        op = t.get("operator") or "Equal"
        key = t.get("key")
        if not key:
            if op == "Exists":
                return True
            continue
        if key != taint.get("key"):
            continue
        if op == "Exists" or (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def blocking_taints(node: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Taints that keep pods off a node unless tolerated (PreferNoSchedule only discourages)."""
    return [
        t
        for t in ((node.get("spec") or {}).get("taints") or [])
        if t.get("effect") in ("NoSchedule", "NoExecute")
    ]


def taint_text(t: Mapping[str, Any]) -> str:
    return f"{t.get('key')}={t.get('value', '')}:{t.get('effect')}"


def toleration_for(t: Mapping[str, Any]) -> str:
    """The manifest JSON of a toleration matching taint ``t`` (for fixes)."""
    tol: dict[str, Any] = {"key": t.get("key")}
    if t.get("value"):
        tol.update(operator="Equal", value=t.get("value"))
    else:
        tol["operator"] = "Exists"
    tol["effect"] = t.get("effect")
    return json.dumps(tol)


# ---------------------------------------------------------------- quantities
def quantity(v: Any) -> float:
    """A Kubernetes quantity ('4', '500m', '16Gi') as a float."""
    if v is None:
        return 0.0
    s = str(v).strip()
    units = {
        "m": 1e-3,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "Ki": 1024.0,
        "Mi": 1024.0**2,
        "Gi": 1024.0**3,
        "Ti": 1024.0**4,
    }
    for suffix in sorted(units, key=len, reverse=True):
        if s.endswith(suffix):
            try:
                return float(s[: -len(suffix)]) * units[suffix]
            except ValueError:
                return 0.0
    try:
        return float(s)
    except ValueError:
        return 0.0


GPU = "nvidia.com/gpu"
SHARED_GPU = "nvidia.com/gpu.shared"  # time-slicing with renameByDefault
MIG_PREFIX = "nvidia.com/mig-"  # MIG, mixed strategy: nvidia.com/mig-1g.10gb, ...


def is_gpu_resource(name: str) -> bool:
    """Whole GPUs, time-sliced GPU slices and MIG devices of the NVIDIA device plugin."""
    return name in (GPU, SHARED_GPU) or name.startswith(MIG_PREFIX)


def gpu_capacity(node: Mapping[str, Any], resource: str = GPU) -> dict[str, float]:
    """The GPU resources a node offers (allocatable > 0): whole, shared and MIG, plus ``resource``."""
    alloc = (node.get("status") or {}).get("allocatable") or {}
    return {
        str(k): quantity(v)
        for k, v in alloc.items()
        if (is_gpu_resource(str(k)) or str(k) == resource) and quantity(v) > 0
    }


def gpu_nodes(nodes: Sequence[Mapping[str, Any]], resource: str) -> list[Mapping[str, Any]]:
    """Nodes offering ``resource`` or any shared/MIG GPU resource (a MIG node may offer no whole GPU)."""
    return [n for n in nodes if gpu_capacity(n, resource)]


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "?")


# ---------------------------------------------------------------- compute findings
def nodes_finding(nodes: Sequence[Mapping[str, Any]], c: KubernetesCompute) -> Finding:
    res = c.gpu.resource
    gpus = gpu_nodes(nodes, res)
    if not gpus:
        return warn(
            "compute.gpu_nodes",
            f"none of {len(nodes)} nodes has allocatable {res} now: fine if the GPU node group scales from zero, "
            "otherwise GPU jobs stay Pending",
            "check the GPU node group (aws eks describe-nodegroup ...) and the device plugin; "
            "`mlstack doctor job NAME` explains a Pending GPU pod",
        )
    totals: dict[str, float] = {}
    for n in gpus:
        for k, v in gpu_capacity(n, res).items():
            totals[k] = totals.get(k, 0.0) + v
    shared = ", ".join(f"{totals[k]:g} {k}" for k in sorted(totals) if k != res)
    return ok(
        "compute.gpu_nodes",
        f"{len(gpus)} of {len(nodes)} nodes offer {totals.get(res, 0.0):g} allocatable {res}"
        + (f" and shared GPU slices: {shared}" if shared else ""),
    )


def _label(obj: Mapping[str, Any], key: str) -> str | None:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(key)


def device_plugin_finding(
    daemonsets: Sequence[Mapping[str, Any]],
    gpu_node_count: int,
    nodes: Sequence[Mapping[str, Any]] = (),
    resource: str = "nvidia.com/gpu",
) -> Finding:
    """Is an NVIDIA device plugin advertising ``resource`` on the GPU nodes?

    Bottlerocket NVIDIA nodes run the plugin from the OS, without a DaemonSet: EksGpuCluster labels them
    ``mlstack.dev/device-plugin=os`` (and ``=daemonset`` the nodes that need the DaemonSet it installs). A GPU
    node that advertises ``resource`` is covered whatever runs its plugin."""
    os_nodes = [n for n in nodes if _label(n, DEVICE_PLUGIN_LABEL) == "os"]
    os_silent = [n for n in os_nodes if not gpu_nodes([n], resource)]
    if os_silent:
        names = ", ".join(_name(n) for n in os_silent[:3])
        return fail(
            "compute.device_plugin",
            f"{len(os_silent)} node(s) labelled {DEVICE_PLUGIN_LABEL}=os advertise no {resource} ({names}): "
            "the OS's NVIDIA device plugin is not running there",
            f"these must run a Bottlerocket NVIDIA AMI (ami_type BOTTLEROCKET_x86_64_NVIDIA); a node that just "
            f"joined advertises nothing for a minute. Check: kubectl describe node {_name(os_silent[0])}",
        )
    os_covered = len(os_nodes)  # every one advertises the resource (checked above)
    uncovered = max(gpu_node_count - os_covered, 0) if nodes else gpu_node_count
    found = [
        d
        for d in daemonsets
        if any(h in _name(d) for h in DEVICE_PLUGIN_HINTS)
        or "nvidia-device-plugin" in str(((d.get("metadata") or {}).get("labels") or {}).values())
    ]
    one = os_covered == 1
    from_os = f"{os_covered} GPU node{'' if one else 's'} run{'s' if one else ''} the plugin from the OS (Bottlerocket)"
    if not found:
        needing = [n for n in nodes if _label(n, DEVICE_PLUGIN_LABEL) == "daemonset"]
        if needing:
            names = ", ".join(_name(n) for n in needing[:3])
            return fail(
                "compute.device_plugin",
                f"no NVIDIA device plugin DaemonSet, and {len(needing)} node(s) labelled "
                f"{DEVICE_PLUGIN_LABEL}=daemonset need it ({names}): they will not advertise {resource}",
                DEVICE_PLUGIN_INSTALL,
            )
        if gpu_node_count or os_covered:
            what = from_os if os_covered else f"{gpu_node_count} GPU node(s) advertise {resource}"
            return ok("compute.device_plugin", f"no plugin DaemonSet needed: {what}")
        return warn(
            "compute.device_plugin",
            "no NVIDIA device plugin DaemonSet and no GPU node yet: fine for Bottlerocket GPU nodes (the OS "
            f"runs the plugin), but other AMIs will not advertise {resource}",
            DEVICE_PLUGIN_INSTALL + " — unless the GPU node groups use a Bottlerocket NVIDIA AMI",
        )
    ds = found[0]
    st = ds.get("status") or {}
    desired, ready = int(st.get("desiredNumberScheduled") or 0), int(st.get("numberReady") or 0)
    where = f"{(ds.get('metadata') or {}).get('namespace')}/{_name(ds)}"
    also = f"; {from_os}" if os_covered else ""
    if desired == 0:
        if uncovered:
            return fail(
                "compute.device_plugin",
                f"DaemonSet {where} schedules on no node although {uncovered} GPU nodes need it",
                f"compare its nodeSelector/tolerations with the GPU nodes: kubectl -n {where.split('/')[0]} "
                f"get ds {_name(ds)} -o yaml",
            )
        if os_covered:
            return ok("compute.device_plugin", f"DaemonSet {where} present, on no node{also}")
        return ok("compute.device_plugin", f"DaemonSet {where} present (no GPU node yet)")
    if ready < desired:
        return fail(
            "compute.device_plugin",
            f"DaemonSet {where}: {ready}/{desired} pods ready",
            f"kubectl -n {where.split('/')[0]} describe ds {_name(ds)}  (then the failing pods' events)",
        )
    return ok("compute.device_plugin", f"DaemonSet {where}: {ready}/{desired} ready{also}")


def taint_finding(nodes: Sequence[Mapping[str, Any]], c: KubernetesCompute) -> Finding:
    gpus = gpu_nodes(nodes, c.gpu.resource)
    taints: dict[str, dict[str, Any]] = {}
    for n in gpus:
        for t in blocking_taints(n):
            taints[taint_text(t)] = dict(t)
    if not gpus:
        # no GPU node to read taints from: check the usual GPU taint the EKS GPU node group sets
        assumed = {"key": c.gpu.resource, "value": "true", "effect": "NoSchedule"}
        if c.gpu.tolerations and not tolerates(c.gpu.tolerations, assumed):
            return warn(
                "compute.gpu_taint",
                f"no GPU node to read taints from, and the manifest's tolerations do not tolerate {taint_text(assumed)}",
                f"add {toleration_for(assumed)} to compute.gpu.tolerations if the GPU nodes carry that taint",
            )
        return ok("compute.gpu_taint", "no GPU node yet; nothing to compare the tolerations with")
    bad = [t for t in taints.values() if not tolerates(c.gpu.tolerations, t)]
    if bad:
        return fail(
            "compute.gpu_taint",
            f"GPU nodes carry taint {', '.join(taint_text(t) for t in bad)} that compute.gpu.tolerations "
            "does not tolerate: GPU pods will never schedule",
            "add to compute.gpu.tolerations in the manifest: " + ", ".join(toleration_for(t) for t in bad),
        )
    shown = ", ".join(taints) or "no taints"
    return ok("compute.gpu_taint", f"GPU node taints tolerated ({shown})")


def node_selector_finding(nodes: Sequence[Mapping[str, Any]], c: KubernetesCompute) -> Finding | None:
    sel = c.gpu.node_selector
    if not sel or not gpu_nodes(nodes, c.gpu.resource):
        return None
    match = [n for n in gpu_nodes(nodes, c.gpu.resource) if _labels_match(n, sel)]
    if not match:
        return fail(
            "compute.gpu_selector",
            f"no GPU node has the labels of compute.gpu.node_selector {sel}",
            "correct compute.gpu.node_selector to labels the GPU nodes carry (kubectl get nodes --show-labels)",
        )
    return ok("compute.gpu_selector", f"{len(match)} GPU nodes match node_selector {sel}")


def _labels_match(node: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def irsa_finding(sa: Mapping[str, Any] | None, c: KubernetesCompute) -> Finding:
    ref = f"{c.namespace}/{c.service_account}"
    if sa is None:
        return fail(
            "compute.irsa",
            f"service account {ref} does not exist",
            "deploy the stack (`mlstack up`) or correct compute.namespace / compute.service_account",
        )
    role = ((sa.get("metadata") or {}).get("annotations") or {}).get(IRSA_ANNOTATION)
    if not role:
        return fail(
            "compute.irsa",
            f"service account {ref} has no {IRSA_ANNOTATION} annotation: jobs get no AWS role",
            f"kubectl -n {c.namespace} annotate serviceaccount {c.service_account} "
            f"{IRSA_ANNOTATION}=arn:aws:iam::<account>:role/<jobs-role>  (or redeploy with `mlstack up`)",
        )
    return ok("compute.irsa", f"service account {ref} assumes {role}")


# ---------------------------------------------------------------- argo findings
def controller_finding(deployments: Sequence[Mapping[str, Any]]) -> Finding:
    found = [
        d
        for d in deployments
        if "workflow-controller" in _name(d)
        or "workflow-controller"
        in str(((d.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/component", ""))
    ]
    if not found:
        return fail(
            "orchestrator.controller",
            "no Argo workflow-controller Deployment found: workflows will never start",
            "install Argo Workflows (redeploy with `mlstack up`), then: kubectl get deploy -A | grep workflow-controller",
        )
    d = found[0]
    ns = (d.get("metadata") or {}).get("namespace")
    want = int((d.get("spec") or {}).get("replicas", 1) or 0)
    ready = int((d.get("status") or {}).get("readyReplicas") or 0)
    if want == 0 or ready < max(1, want):
        return fail(
            "orchestrator.controller",
            f"Argo controller {ns}/{_name(d)}: {ready}/{want} replicas ready",
            f"kubectl -n {ns} describe deploy {_name(d)}; kubectl -n {ns} logs deploy/{_name(d)}",
        )
    return ok("orchestrator.controller", f"Argo controller {ns}/{_name(d)}: {ready}/{want} ready")


def manifest_from_configmap(cm: Mapping[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """(key, parsed manifest) of the ConfigMap entry holding a manifest."""
    data = cm.get("data") or {}
    keys = [k for k in MANIFEST_KEYS if k in data] + [k for k in data if k not in MANIFEST_KEYS]
    for k in keys:
        try:
            parsed = json.loads(data[k])
        except (TypeError, ValueError):
            continue
        if isinstance(parsed, dict) and "version" in parsed and "artifacts" in parsed:
            return k, parsed
    return None, None


_ABSENT = "<absent>"


def diff(deployed: Any, local: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Every leaf where two manifests differ: (path, deployed value, local value)."""
    if isinstance(deployed, Mapping) and isinstance(local, Mapping):
        out: list[tuple[str, Any, Any]] = []
        for k in list(deployed) + [k for k in local if k not in deployed]:
            p = f"{path}.{k}" if path else str(k)
            out.extend(diff(deployed.get(k, _ABSENT), local.get(k, _ABSENT), p))
        return out
    if isinstance(deployed, list) and isinstance(local, list) and len(deployed) == len(local):
        out = []
        for i, (a, b) in enumerate(zip(deployed, local, strict=True)):
            out.extend(diff(a, b, f"{path}[{i}]"))
        return out
    return [] if deployed == local else [(path, deployed, local)]


MAX_DRIFT_FINDINGS = 20


def drift_findings(cm: Mapping[str, Any] | None, local: Mapping[str, Any], where: str) -> list[Finding]:
    """One ``orchestrator.drift`` finding per field that differs (path, deployed value, local value)."""
    if cm is None:
        return [
            fail(
                "orchestrator.manifest",
                f"ConfigMap {where} does not exist: workflow pods get no manifest",
                "deploy the stack (`mlstack up`) or correct orchestrator.configmap",
            )
        ]
    key, deployed = manifest_from_configmap(cm)
    if deployed is None:
        return [
            fail(
                "orchestrator.manifest",
                f"ConfigMap {where} holds no manifest JSON (keys: {', '.join(cm.get('data') or {}) or 'none'})",
                "redeploy the stack (`mlstack up`) so it writes the manifest",
            )
        ]
    changes = diff(deployed, local)
    if not changes:
        return [ok("orchestrator.drift", f"the manifest in use equals ConfigMap {where}[{key}]")]
    ns, _, name = where.partition("/")
    fix = (
        f"use the deployed manifest (kubectl -n {ns} get configmap {name} -o jsonpath='{{.data.{key}}}' "
        "> mlstack.json), or redeploy with `mlstack up` so the cluster matches this one"
    )
    out = [
        fail("orchestrator.drift", f"{path}: deployed {json.dumps(a)}, local {json.dumps(b)}", fix)
        for path, a, b in changes[:MAX_DRIFT_FINDINGS]
    ]
    if len(changes) > MAX_DRIFT_FINDINGS:
        out.append(
            fail("orchestrator.drift", f"... and {len(changes) - MAX_DRIFT_FINDINGS} more fields differ", fix)
        )
    return out


def drift_rows(cm: Mapping[str, Any], local: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The drift field by field as dicts (path, deployed, local)."""
    _key, deployed = manifest_from_configmap(cm)
    if deployed is None:
        return []
    return [{"path": p, "deployed": a, "local": b} for p, a, b in diff(deployed, local)]


# ---------------------------------------------------------------- the fetch layer
class Cluster:
    """A thin wrapper over the Kubernetes client: every call bounded by ``timeout``, results as dicts."""

    def __init__(self, api_client: Any, timeout: float) -> None:
        from kubernetes import client

        self._api = api_client
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.version = client.VersionApi(api_client)
        self.timeout = timeout

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Mapping[str, Any], context: str | None, timeout: float) -> Cluster:
        """A client for ``context`` of an already loaded kubeconfig (the client reads $KUBECONFIG only
        once, at import, so the doctor passes the config it resolved itself)."""
        from kubernetes import config

        return cls(config.new_client_from_config_dict(dict(kubeconfig), context=context), timeout)

    def _raw(self, fn: Any, *args: Any, **kw: Any) -> Any:
        """Call ``fn`` and return the JSON body as dicts: no model deserialisation (faster, and kubectl's shape)."""
        resp = fn(*args, _request_timeout=self.timeout, _preload_content=False, **kw)
        return json.loads(resp.data or b"null")

    def _items(self, fn: Any, *args: Any, **kw: Any) -> list[dict[str, Any]]:
        return list((self._raw(fn, *args, **kw) or {}).get("items") or [])

    def _get(self, fn: Any, *args: Any) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._raw(fn, *args)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def server_version(self) -> str:
        return str((self._raw(self.version.get_code) or {}).get("gitVersion") or "?")

    def nodes(self) -> list[dict[str, Any]]:
        return self._items(self.core.list_node)

    def daemonsets(self) -> list[dict[str, Any]]:
        return self._items(self.apps.list_daemon_set_for_all_namespaces)

    def deployments(self) -> list[dict[str, Any]]:
        return self._items(self.apps.list_deployment_for_all_namespaces)

    def service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(self.core.read_namespaced_service_account, name, namespace)

    def configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(self.core.read_namespaced_config_map, name, namespace)

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(self.core.read_namespaced_pod, name, namespace)

    def pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return self._items(self.core.list_namespaced_pod, namespace, label_selector=label_selector)

    def events(self, namespace: str, involved: str | None = None) -> list[dict[str, Any]]:
        if involved:
            return self._items(
                self.core.list_namespaced_event, namespace, field_selector=f"involvedObject.name={involved}"
            )
        return self._items(self.core.list_namespaced_event, namespace)

    def workflow(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(
            self.custom.get_namespaced_custom_object, "argoproj.io", "v1alpha1", namespace, "workflows", name
        )

    def nodeclaims(self) -> list[dict[str, Any]]:
        """Karpenter NodeClaims (cluster-scoped); [] where Karpenter is not installed."""
        return self._custom_list("karpenter.sh", "v1", "nodeclaims")

    def nodepools(self) -> list[dict[str, Any]]:
        return self._custom_list("karpenter.sh", "v1", "nodepools")

    def kind_events(self, kind: str, namespace: str = "default") -> list[dict[str, Any]]:
        """Events about cluster-scoped objects of ``kind`` (Karpenter records them in ``default``)."""
        return self._items(
            self.core.list_namespaced_event, namespace, field_selector=f"involvedObject.kind={kind}"
        )

    def _custom_list(self, group: str, version: str, plural: str) -> list[dict[str, Any]]:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._items(self.custom.list_cluster_custom_object, group, version, plural)
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise

    def namespace(self, name: str) -> dict[str, Any] | None:
        return self._get(self.core.read_namespace, name)

    def workflow_templates(self, namespace: str) -> list[dict[str, Any]]:
        """Argo WorkflowTemplates of ``namespace``; [] where Argo's CRDs are not installed."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self._items(
                self.custom.list_namespaced_custom_object,
                "argoproj.io",
                "v1alpha1",
                namespace,
                "workflowtemplates",
            )
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise

    def resource_quotas(self, namespace: str) -> list[dict[str, Any]]:
        return self._items(self.core.list_namespaced_resource_quota, namespace)


def api_error(exc: BaseException, c: KubernetesCompute, doing: str) -> Finding:
    """A finding for a failed API call: unreachable, unauthorised or forbidden, each with its fix."""
    status = getattr(exc, "status", None)
    if status in (401,):
        return fail(
            "compute.api",
            f"the API server of {c.cluster_name} rejected the credentials while {doing}",
            f"refresh them: {update_kubeconfig(c)}; check `aws sts get-caller-identity`",
        )
    if status == 403:
        return fail(
            "compute.api",
            f"forbidden while {doing}: {error_text(exc)[:160]}",
            "map your IAM identity in the cluster (EKS access entry) with read access to nodes, "
            "daemonsets, service accounts and configmaps",
        )
    return fail(
        "compute.api",
        f"cannot reach the API server of {c.cluster_name} while {doing}: {error_text(exc)[:200]}",
        f"check the network path to the cluster endpoint (VPN, endpoint access), then: {update_kubeconfig(c)}",
    )
