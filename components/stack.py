"""MLStack: the four layers of an ML stack wired together, and the manifest jobs read.

``MLStack`` takes one data layer, one compute, one orchestrator and one artifact store (components built
beside it), grants the jobs' role what it needs and nothing more (read the data, read and write the
artifacts), assembles the whole stack manifest (validated, never holding a secret), exports it as the stack
output ``manifest`` and, with Kubernetes compute, publishes it as the ConfigMap jobs read
(``mlstack-manifest`` / ``mlstack.json`` in the jobs namespace; every workflow pod gets it as
``MLSTACK_MANIFEST``).

``StackConfig`` reads a stack program's typed config and reports every bad key at once, naming it.
"""

import re
from collections.abc import Sequence
from typing import Any, Required, TypedDict

import pulumi

from mlstack import names
from mlstack.errors import ConfigError

from . import _tokens
from ._contracts import (
    ArtifactStoreRef,
    ClusterRef,
    DataLayerRef,
    GrantTarget,
    KubernetesJobs,
    Orchestrator,
    OrchestratorRef,
    ReadGrantable,
    UsesArtifactStore,
    UsesDataLayer,
    WarehouseAccess,
    WriteGrantable,
)
from .stack_config import MLStackConfig, resolve_mlstack

TYPE = _tokens.token("MLStack")
OLD_TYPE = "mlstack:stack:MLStack"  # kept as an alias: deployed stacks replace nothing
# the names pipelines look for (mlstack/pipeline/argo.py renders the mounts): one module both import
CONFIGMAP_NAME = names.MANIFEST_CONFIGMAP
CONFIGMAP_KEY = names.MANIFEST_KEY
CREDENTIALS_SECRET = names.DATA_CREDENTIALS_SECRET
SNOWFLAKE_DIR = names.SNOWFLAKE_DIR
DATABRICKS_DIR = names.DATABRICKS_DIR
CREDENTIALS_MODE = names.DATA_CREDENTIALS_MODE  # the volume's defaultMode
__all__ = ["MLStack", "MLStackArgs", "MLStackConfig", "StackConfig", "build_manifest", "resolve_mlstack"]


class MLStackArgs(TypedDict, total=False):
    """Arguments of :class:`MLStack`. ``data``, ``compute``, ``orchestrator`` and ``artifacts`` are required."""

    data: Required[DataLayerRef]
    """The data layer (SnowflakeDataLayer, DatabricksDataLayer or S3Lakehouse). Required. With an AWS-side
    grant (``grant_read``), the jobs role gets read access to it; warehouse layers grant through their own
    reader role, which the manifest names."""
    compute: Required[ClusterRef]
    """The compute layer (EksGpuCluster). Required. Its ``jobs_role`` is the role every grant goes to."""
    orchestrator: Required[OrchestratorRef]
    """The orchestrator (ArgoWorkflows). Required. Its ``publish_manifest`` writes the manifest ConfigMap."""
    artifacts: Required[ArtifactStoreRef]
    """The artifact store (S3ArtifactStore). Required. The jobs role gets read and write under its prefix."""
    project: str
    """The manifest's ``project``. Default: the Pulumi project name."""
    stack: str
    """The manifest's ``stack``. Default: the Pulumi stack name."""
    grant: bool
    """Grant the jobs role read on the data and read/write on the artifacts. Default: True. Grants the
    compute or orchestrator component already made (their ``artifact_store`` / ``data_layer`` args) are
    not repeated."""
    publish_configmap: bool
    """With Kubernetes compute, publish the manifest as the ConfigMap jobs read. Default: True."""
    export_manifest: bool
    """Export the manifest as the stack output ``manifest`` (what ``mlstack up`` and
    ``mlstack outputs PATH --stack S --manifest-out mlstack.json`` write for jobs). Default: True. From
    another language the program exports the component's ``manifest`` output itself (outputs:
    manifest: ${stack.manifest} in YAML)."""
    data_credentials: bool
    """With Kubernetes compute and a warehouse data layer that offers ``jobs_access()`` (Snowflake,
    Databricks), put the files jobs log in with (Snowflake ``connections.toml`` + key, a Databricks
    ``databrickscfg`` profile) in the Kubernetes Secret ``mlstack-data-credentials`` in the jobs namespace,
    from Pulumi secrets only; ``data_credentials_mount`` says where to mount it. Default: True."""


def _in_python_program() -> bool:
    """True in a Python Pulumi program; False when the mlstack provider builds this for another language."""
    from pulumi.runtime import known_types
    from pulumi.runtime.settings import get_root_resource

    return known_types.is_stack(get_root_resource())


def build_manifest(project: str, stack: str, sections: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The whole manifest from the four layer sections, validated (raises ManifestError on a secret)."""
    from mlstack import manifest

    artifacts, data, compute, orchestrator = sections
    doc = {
        "version": 1,
        "project": project,
        "stack": stack,
        "artifacts": artifacts,
        "data": data,
        "compute": compute,
        "orchestrator": orchestrator,
    }
    return manifest.from_dict(doc, source=f"MLStack manifest ({project}/{stack})").to_dict()


class MLStack(pulumi.ComponentResource):
    """Wires data, compute, orchestrator and artifacts into one stack and publishes its manifest."""

    manifest: pulumi.Output[dict[str, Any]]
    """The whole stack manifest (validated; names and endpoints, never a secret)."""
    jobs_role_arn: pulumi.Output[str] | None
    """ARN of the role jobs run as (every grant goes to it); none without Kubernetes compute."""
    data_credentials_mount: dict[str, Any] | None
    """Where steps mount the warehouse login files (Secret name, files, path, env); none without them."""

    def __init__(
        self,
        name: str,
        args: MLStackArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE, name, None, _tokens.with_old_token(opts, OLD_TYPE))
        cfg = resolve_mlstack(name, args, project=pulumi.get_project(), stack=pulumi.get_stack())
        self.config = cfg
        self.data, self.compute = cfg.data, cfg.compute
        self.orchestrator, self.artifacts = cfg.orchestrator, cfg.artifacts
        project, stack = cfg.project, cfg.stack
        self.grants: list[pulumi.Resource] = []

        role = self.compute.jobs_role if isinstance(self.compute, GrantTarget) else None
        self.jobs_role_arn = role.arn if role is not None else None
        if cfg.grant and role is not None:
            # the compute or orchestrator component may already have granted (their artifact_store /
            # data_layer args): one grant per store and role, never duplicates
            granted = [
                c.artifact_store
                for c in (self.compute, self.orchestrator)
                if isinstance(c, UsesArtifactStore)
            ]
            if not any(g is self.artifacts for g in granted):
                assert isinstance(self.artifacts, WriteGrantable)  # resolve_mlstack: required with grant
                self.grants.append(self.artifacts.grant_write(role, f"{name}-jobs-artifacts-rw"))
            compute_data = self.compute.data_layer if isinstance(self.compute, UsesDataLayer) else None
            if compute_data is not self.data and isinstance(self.data, ReadGrantable):
                self.grants.append(self.data.grant_read(role, f"{name}-jobs-data-read"))

        sections = [
            self.artifacts.manifest_section,
            self.data.manifest_section,
            self.compute.manifest_section,
            self.orchestrator.manifest_section,
        ]
        self.manifest = pulumi.Output.all(*sections).apply(lambda s: build_manifest(project, stack, s))

        self.manifest_configmap = None
        if cfg.publish_configmap:
            self.manifest_configmap = self._publish(name)

        self.data_credentials_secret: Any = None
        self.data_credentials_mount: dict[str, Any] | None = None
        if cfg.data_credentials:
            self._data_credentials(name)

        # a program in another language has no Python stack to export to: it exports ${stack.manifest} itself
        if cfg.export_manifest and _in_python_program():
            pulumi.export("manifest", self.manifest)
        self.register_outputs(
            {
                "manifest": self.manifest,
                "jobs_role_arn": self.jobs_role_arn,
                "data_credentials_mount": self.data_credentials_mount,
            }
        )

    def _data_credentials(self, name: str) -> None:
        """The warehouse login files as a Kubernetes Secret in the jobs namespace (secret values only)."""
        if not isinstance(self.compute, KubernetesJobs) or not isinstance(self.data, WarehouseAccess):
            return
        provider, namespace, access_fn = (
            self.compute.provider,
            self.compute.jobs_namespace,
            self.data.jobs_access,
        )
        if provider is None or namespace is None:
            return
        import inspect

        params = inspect.signature(access_fn).parameters
        files: dict[str, Any] = {}
        mount: dict[str, Any]
        if "private_key_path" in params:  # Snowflake: connections.toml + the key it points at
            key_file = "rsa_key.p8"
            access = access_fn(private_key_path=f"{SNOWFLAKE_DIR}/{key_file}")
            if access.get("private_key_pem") is None:
                return  # the caller keeps the private key (own rsa_public_key): they provision the login
            files["connections.toml"] = access.get("connections_toml")
            files[key_file] = access.get("private_key_pem")
            mount = {"path": SNOWFLAKE_DIR, "env": {"SNOWFLAKE_HOME": SNOWFLAKE_DIR}}
        else:  # Databricks: a ~/.databrickscfg profile
            access = access_fn()
            files["databrickscfg"] = access.get("databrickscfg")
            mount = {
                "path": DATABRICKS_DIR,
                "env": {"DATABRICKS_CONFIG_FILE": f"{DATABRICKS_DIR}/databrickscfg"},
            }
        files = {k: v for k, v in files.items() if v is not None}
        if not files:
            return  # the caller keeps the credentials (own key pair, no OAuth secret): nothing to publish
        import pulumi_kubernetes as k8s

        self.data_credentials_secret = k8s.core.v1.Secret(
            f"{name}-data-credentials",
            metadata={
                "name": CREDENTIALS_SECRET,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/part-of": "mlstack"},
            },
            type="Opaque",
            # only ever Pulumi secrets: encrypted in the state, never printed
            string_data={k: pulumi.Output.secret(v) for k, v in files.items()},
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        self.data_credentials_mount = {
            "secret": CREDENTIALS_SECRET,
            "files": sorted(files),
            **mount,
            "default_mode": CREDENTIALS_MODE,
        }

    def _publish(self, name: str) -> Any:
        """The manifest ConfigMap in the jobs namespace (Kubernetes compute only)."""
        if isinstance(self.orchestrator, Orchestrator):
            return self.orchestrator.publish_manifest(self.manifest)
        if not isinstance(self.compute, KubernetesJobs):
            return None  # not Kubernetes: jobs read the manifest from the stack output instead
        provider, namespace = self.compute.provider, self.compute.jobs_namespace
        if provider is None or namespace is None:
            return None  # not Kubernetes: jobs read the manifest from the stack output instead
        import json

        import pulumi_kubernetes as k8s

        return k8s.core.v1.ConfigMap(
            f"{name}-manifest",
            metadata={
                "name": CONFIGMAP_NAME,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/part-of": "mlstack"},
            },
            data={CONFIGMAP_KEY: self.manifest.apply(lambda m: json.dumps(m, indent=2, sort_keys=True))},
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )


# ------------------------------------------------------------------ typed stack config
_SECRETISH = re.compile(r"(password|secret|private[_-]?key|token|credential|access[_-]?key)", re.IGNORECASE)


class StackConfig:
    """Typed reads of a stack program's config; every bad key is collected and reported at once by ``check()``.

    ``cfg = StackConfig(); size = cfg.integer("gpuMaxSize", 4, minimum=0); cfg.check()``. Keys are the
    project's (``<project>:key``). Keys that look like credentials are refused: a stack never pins
    credentials in config (providers read them from the environment or their own profiles).
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or pulumi.get_project()
        self._cfg = pulumi.Config(self.namespace)
        self.problems: list[tuple[str, Any, str]] = []

    def full_key(self, key: str) -> str:
        """``key`` with the project namespace, as errors name it (``aws-snowflake:gpuMaxSize``)."""
        return f"{self.namespace}:{key}"

    def problem(self, key: str, value: Any, why: str) -> None:
        """Record a problem found by the program's own checks (reported with the others by ``check()``)."""
        self.problems.append((self.full_key(key), value, why))

    def raw(self, key: str) -> str | None:
        """The raw string value (structured values as JSON text), None when unset; credential-like keys refused."""
        if _SECRETISH.search(key):
            self.problems.append((self.full_key(key), "<not read>", "credentials never go in stack config"))
            return None
        return self._cfg.get(key)

    def string(
        self,
        key: str,
        default: str | None = None,
        *,
        choices: Sequence[str] | None = None,
        pattern: str | None = None,
        required: bool = False,
    ) -> str | None:
        v = self.raw(key)
        if v is None:
            if required:
                self.problems.append(
                    (
                        self.full_key(key),
                        None,
                        "required" + (f": one of {', '.join(choices)}" if choices else ""),
                    )
                )
            return default
        if choices is not None and v not in choices:
            self.problems.append((self.full_key(key), v, f"one of: {', '.join(choices)}"))
            return default
        if pattern is not None and not re.fullmatch(pattern, v):
            self.problems.append((self.full_key(key), v, f"must match {pattern}"))
            return default
        return v

    def integer(
        self, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        v = self.raw(key)
        if v is None:
            return default
        try:
            n = int(v)
        except ValueError:
            self.problems.append((self.full_key(key), v, "an integer"))
            return default
        if (minimum is not None and n < minimum) or (maximum is not None and n > maximum):
            self.problems.append((self.full_key(key), n, f"between {minimum} and {maximum}"))
            return default
        return n

    def boolean(self, key: str, default: bool) -> bool:
        v = self.raw(key)
        if v is None:
            return default
        if v.lower() in ("true", "false"):
            return v.lower() == "true"
        self.problems.append((self.full_key(key), v, "true or false"))
        return default

    def strings(self, key: str, default: Sequence[str] = ()) -> list[str]:
        v = self.raw(key)
        if v is None:
            return list(default)
        import json

        try:
            parsed = json.loads(v)
        except ValueError:
            parsed = [x.strip() for x in v.split(",") if x.strip()]
        if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
            self.problems.append((self.full_key(key), v, "a list of strings"))
            return list(default)
        return parsed

    def check(self) -> None:
        """Raise one ConfigError listing every problem (key, value, what is allowed)."""
        if self.problems:
            lines = "\n".join(f"  {k}: got {v!r}; {why}" for k, v, why in self.problems)
            keys = ", ".join(k for k, _, _ in self.problems)
            raise ConfigError(
                f"stack config: {len(self.problems)} invalid key{'s' if len(self.problems) != 1 else ''} ({keys})\n{lines}",
                fix="fix the keys above in Pulumi.<stack>.yaml (see stacks/README.md for every key)",
            )


# ------------------------------------------------------------------ config keys every shipped stack shares
GPU_CAPACITY_TYPES = ("ON_DEMAND", "SPOT")
GPU_AMI_TYPES = ("AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA")


def gpu_cluster_args(cfg: StackConfig) -> dict[str, Any]:
    """EksGpuClusterArgs from the shared compute keys (see stacks/README.md); problems go to ``cfg``."""
    from mlstack import prices

    types = cfg.strings("gpuInstanceTypes", ["g5.xlarge"])
    known = prices.gpu_instance_types()
    for t in types:
        if t not in known:
            cfg.problems.append(
                (
                    cfg.full_key("gpuInstanceTypes"),
                    t,
                    "a GPU instance type in the shipped table: " + ", ".join(sorted(known)),
                )
            )
    lo = cfg.integer("gpuMinSize", 0, minimum=0, maximum=1000)
    hi = cfg.integer("gpuMaxSize", 4, minimum=1, maximum=1000)
    if lo > hi:
        cfg.problems.append((cfg.full_key("gpuMinSize"), lo, f"at most gpuMaxSize ({hi})"))
    group: dict[str, Any] = {
        "name": cfg.string("gpuNodeGroupName", "gpu", pattern=r"[a-z0-9][a-z0-9-]{0,30}") or "gpu",
        "instance_types": types,
        "min_size": lo,
        "desired_size": lo,
        "max_size": hi,
        "capacity_type": cfg.string("gpuCapacityType", "ON_DEMAND", choices=GPU_CAPACITY_TYPES),
        "ami_type": cfg.string("gpuAmiType", "AL2023_x86_64_NVIDIA", choices=GPU_AMI_TYPES),
        "disk_size_gib": cfg.integer("gpuDiskSizeGib", 200, minimum=20, maximum=16384),
    }
    args: dict[str, Any] = {
        "gpu_node_groups": [group],
        "public_access_cidrs": cfg.strings("publicAccessCidrs", []),
        "nat_gateways": cfg.string("natGateways", "single", choices=("single", "per_zone")),
        "jobs_namespace": cfg.string(
            "jobsNamespace", "ml-jobs", pattern=r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
        ),
    }
    for c in args["public_access_cidrs"]:
        if c in ("0.0.0.0/0", "::/0"):
            cfg.problems.append(
                (cfg.full_key("publicAccessCidrs"), c, "your office/VPN/CI CIDRs, never the whole internet")
            )
    zones = cfg.strings("availabilityZones", [])
    if zones:
        args["availability_zones"] = zones
    version = cfg.string("kubernetesVersion", None, pattern=r"1\.\d{2}")
    if version:
        args["kubernetes_version"] = version
    image = cfg.string("defaultImage", None)
    if image:
        args["default_image"] = image
    return args


def artifact_store_args(cfg: StackConfig) -> dict[str, Any]:
    """S3ArtifactStoreArgs from the shared artifact keys."""
    return {
        "prefix": cfg.string("artifactsPrefix", "ml", pattern=r"[A-Za-z0-9][A-Za-z0-9._/-]{0,200}") or "ml",
        "noncurrent_version_expiration_days": cfg.integer(
            "artifactsNoncurrentDays", 30, minimum=1, maximum=3650
        ),
    }


def argo_args(cfg: StackConfig) -> dict[str, Any]:
    """ArgoWorkflowsArgs (without cluster / artifact_store) from the shared orchestrator keys."""
    out: dict[str, Any] = {"auth_mode": cfg.string("argoAuthMode", "client", choices=("client",))}
    ttl = cfg.integer("argoWorkflowTtlHours", 168, minimum=1, maximum=24 * 365)
    out["workflow_ttl_hours"] = ttl
    return out
