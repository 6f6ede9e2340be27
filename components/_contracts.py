"""The contracts between components, as Protocols instead of ``Any`` probed with ``hasattr``.

A component that takes another (``EksGpuCluster(artifact_store=...)``, ``ArgoWorkflows(cluster=...)``,
``MLStack(data=..., compute=...)``) states what it needs here; any object with those members fits, so a
platform team's own artifact store or data layer works without subclassing mlstack's. The Protocols are
``runtime_checkable``: argument validation uses ``isinstance`` to report a wrong object by name at
``pulumi preview`` (which checks the members exist, not their signatures; mypy checks those).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pulumi

from ._policy import RoleLike

if TYPE_CHECKING:
    import pulumi_aws as aws


@runtime_checkable
class Layer(Protocol):
    """Anything that contributes a section to the stack manifest."""

    @property
    def manifest_section(self) -> pulumi.Output[dict[str, Any]]: ...


@runtime_checkable
class ReadGrantable(Protocol):
    """Something a role can be given read access to (an inline policy, the returned resource)."""

    def grant_read(self, role: RoleLike, name: str | None = None) -> pulumi.Resource: ...


@runtime_checkable
class WriteGrantable(ReadGrantable, Protocol):
    """Something a role can be given read and write access to (what a cluster's jobs role gets on a store)."""

    def grant_write(self, role: RoleLike, name: str | None = None) -> pulumi.Resource: ...


@runtime_checkable
class ArtifactStore(Layer, WriteGrantable, Protocol):
    """An S3 artifact store: EKS jobs and Argo get read/write under ``prefix`` of ``bucket_name``."""

    @property
    def bucket_name(self) -> pulumi.Output[str]: ...

    @property
    def prefix(self) -> str: ...


@runtime_checkable
class DataLayer(Layer, Protocol):
    """A data layer (SnowflakeDataLayer, DatabricksDataLayer, S3Lakehouse). AWS-side layers also satisfy
    :class:`ReadGrantable` (the jobs role is granted read); warehouse layers grant through their own reader
    role and may offer :class:`WarehouseAccess`."""


@runtime_checkable
class WarehouseAccess(Protocol):
    """A warehouse data layer that can hand jobs their login files (Pulumi secrets only)."""

    def jobs_access(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...

    # (*args, **kwargs): Snowflake's takes private_key_path=, Databricks' profile=


@runtime_checkable
class S3Store(ArtifactStore, Protocol):
    """An artifact store that also names its bucket's region and KMS key (S3ArtifactStore): what Argo's
    artifact repository is configured from. A store without them gets the cluster's region and SSE-S3."""

    @property
    def region(self) -> pulumi.Output[str]: ...

    @property
    def kms_key_arn(self) -> pulumi.Output[str] | None: ...


@runtime_checkable
class GrantTarget(Protocol):
    """Compute whose jobs run as one IAM role: what MLStack grants the data and artifacts to."""

    @property
    def jobs_role(self) -> aws.iam.Role: ...


@runtime_checkable
class KubernetesJobs(Protocol):
    """Compute where jobs run in a Kubernetes namespace: where the manifest ConfigMap and the data
    credentials Secret go."""

    @property
    def provider(self) -> pulumi.ProviderResource: ...

    @property
    def jobs_namespace(self) -> pulumi.Output[str]: ...


@runtime_checkable
class UsesArtifactStore(Protocol):
    """A component that may already have granted its jobs role an artifact store (a cluster, Argo)."""

    @property
    def artifact_store(self) -> WriteGrantable | None: ...


@runtime_checkable
class UsesDataLayer(Protocol):
    """A component that may already have granted its jobs role a data layer (a cluster)."""

    @property
    def data_layer(self) -> DataLayer | None: ...


@runtime_checkable
class JobsCluster(Layer, GrantTarget, KubernetesJobs, UsesArtifactStore, UsesDataLayer, Protocol):
    """A Kubernetes cluster jobs run in: EksGpuCluster, or ExistingEksCluster for one created elsewhere."""

    @property
    def region(self) -> pulumi.Output[str]: ...

    @property
    def jobs_namespace_name(self) -> str: ...

    @property
    def jobs_service_account_name(self) -> str: ...

    @property
    def jobs_service_account(self) -> pulumi.Resource: ...

    @property
    def gpu_tolerations(self) -> list[dict[str, str]]: ...

    def irsa_role(
        self,
        resource_name: str,
        namespace: pulumi.Input[str],
        service_account: pulumi.Input[str],
        tags: Mapping[str, str] | None = None,
    ) -> aws.iam.Role: ...


@runtime_checkable
class Orchestrator(Layer, Protocol):
    """An orchestrator that publishes the whole manifest where its workflows read it."""

    def publish_manifest(self, manifest: pulumi.Input[Mapping[str, Any]]) -> pulumi.Resource: ...


def missing_members(obj: object, protocol: type) -> list[str]:
    """The public members of ``protocol`` (and the Protocols it extends) that ``obj`` lacks, for errors that
    say what a wrong object needs: ``missing: jobs_role, provider``."""
    wanted: set[str] = set()
    for base in protocol.__mro__:
        if getattr(base, "_is_protocol", False) and base is not Protocol:
            wanted |= {
                n for n in (*vars(base), *getattr(base, "__annotations__", {})) if not n.startswith("_")
            }
    return sorted(n for n in wanted if not hasattr(obj, n))


# Annotations of inputs that take another component. Python callers (and mypy) see the Protocol; Pulumi's
# analyzer sees Any, which the package schema types as pulumi.json#/Any: from another language the input is
# a resource reference, resolved by the provider to the live component (components/provider.py).
if TYPE_CHECKING:
    ClusterRef = JobsCluster
    ArtifactStoreRef = ArtifactStore
    DataLayerRef = DataLayer
    OrchestratorRef = Orchestrator
else:
    ClusterRef = ArtifactStoreRef = DataLayerRef = OrchestratorRef = Any
