"""How pipeline pods run: as a non-root user, read-only root filesystem, no privilege escalation.

One place for the security settings every Argo pod of a pipeline gets (WorkflowTemplates, CronWorkflows, and
the chart's workflow defaults in :class:`mlstack.components.ArgoWorkflows`), as plain Kubernetes dicts in the
API's camelCase shape. Only the standard library is imported, so components and the CLI use it without hera.

Defaults meet the Pod Security Standard ``restricted`` (the jobs namespace enforces it):

- pod: ``runAsNonRoot``, uid/gid :data:`JOB_UID`/:data:`JOB_GID`, ``fsGroup`` (mounted Secrets and volumes
  readable by that group), ``seccompProfile: RuntimeDefault``;
- container: ``allowPrivilegeEscalation: false``, every capability dropped, ``readOnlyRootFilesystem: true``;
  an ``emptyDir`` at ``/tmp`` (:data:`WRITABLE_PATHS`) is where the step runtime and libraries write, and
  ``HOME`` points there.

A step can opt out with ``@step(run_as_root=True)`` (e.g. an image that installs packages at start): its pod
runs as uid 0 with a writable root filesystem and the runtime's default capabilities, still without privilege
escalation and with the RuntimeDefault seccomp profile. A restricted namespace refuses such a pod: the stack
must relax the jobs namespace (``EksGpuCluster(jobs_pod_security="baseline")``), which ``mlstack plan``
reports (rule ARGO-004/K8S-008); ``mlstack render`` notes every such step on stderr.
"""

from __future__ import annotations

from typing import Any

JOB_UID = 1000
"""uid every pipeline pod runs as (any non-zero id works: images need no passwd entry for it)."""
JOB_GID = 1000
"""gid of the step's processes, also the pod's ``fsGroup`` (owner group of mounted volumes and Secrets)."""
DEFAULT_SERVICE_ACCOUNT = "mlstack-jobs"
"""Service account a rendered template names when the manifest names none (EksGpuCluster's default)."""
TMP_VOLUME = "tmp"
WRITABLE_PATHS = {"/tmp": TMP_VOLUME}
"""Writable emptyDir mounts of every step container (path -> volume name); the rest of the image is read-only."""
HOME = "/tmp"
"""``HOME`` of every step: caches (pip, snowflake OCSP, matplotlib, ...) land in the writable emptyDir."""
RUNTIME_DEFAULT = {"type": "RuntimeDefault"}


def pod_security_context(*, run_as_root: bool = False, fs_group: int = JOB_GID) -> dict[str, Any]:
    """The pod-level ``securityContext`` of a pipeline pod (Argo: ``spec.securityContext`` or a template's)."""
    if run_as_root:
        return {
            "runAsNonRoot": False,
            "runAsUser": 0,
            "runAsGroup": 0,
            "fsGroup": fs_group,
            "seccompProfile": dict(RUNTIME_DEFAULT),
        }
    return {
        "runAsNonRoot": True,
        "runAsUser": JOB_UID,
        "runAsGroup": JOB_GID,
        "fsGroup": fs_group,
        "seccompProfile": dict(RUNTIME_DEFAULT),
    }


def container_security_context(*, run_as_root: bool = False) -> dict[str, Any]:
    """The container-level ``securityContext`` of a step's main container."""
    if run_as_root:
        # root steps exist to change the image's filesystem (package installs): writable root, default caps
        return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": False, "privileged": False}
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "runAsNonRoot": True,
    }


def executor_security_context() -> dict[str, Any]:
    """Argo's own init/wait containers (the chart's ``executor.securityContext``): restricted, read-only."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": dict(RUNTIME_DEFAULT),
    }


def volumes() -> list[dict[str, Any]]:
    """The writable scratch volumes every pipeline pod declares (emptyDir, node-local, gone with the pod)."""
    return [{"name": name, "emptyDir": {}} for name in sorted(set(WRITABLE_PATHS.values()))]


def volume_mounts() -> list[dict[str, Any]]:
    return [{"name": name, "mountPath": path} for path, name in sorted(WRITABLE_PATHS.items())]


def runs_as_root(pod: dict[str, Any] | None, container: dict[str, Any] | None = None) -> bool:
    """Whether a pod/container securityContext pair lets the process run as root (unknown counts as root)."""
    pod = pod or {}
    container = container or {}
    non_root = container.get("runAsNonRoot", pod.get("runAsNonRoot"))
    uid = container.get("runAsUser", pod.get("runAsUser"))
    if uid is not None:
        try:
            if float(uid) == 0:
                return True
        except (TypeError, ValueError):
            return True
    return non_root is not True
