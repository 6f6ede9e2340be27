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

    def jobs_access(self) -> dict[str, Any]: ...


@runtime_checkable
class JobsCluster(Layer, Protocol):
    """A Kubernetes cluster jobs run in: EksGpuCluster, or ExistingEksCluster for one created elsewhere."""

    @property
    def provider(self) -> pulumi.ProviderResource: ...

    @property
    def jobs_namespace(self) -> pulumi.Output[str]: ...

    @property
    def jobs_namespace_name(self) -> str: ...

    @property
    def jobs_service_account_name(self) -> str: ...

    @property
    def jobs_role(self) -> pulumi.Resource: ...

    @property
    def gpu_tolerations(self) -> list[dict[str, str]]: ...

    @property
    def artifact_store(self) -> WriteGrantable | None: ...

    @property
    def data_layer(self) -> DataLayer | None: ...

    def irsa_role(
        self,
        resource_name: str,
        namespace: pulumi.Input[str],
        service_account: pulumi.Input[str],
        tags: Mapping[str, str] | None = None,
    ) -> pulumi.Resource: ...


@runtime_checkable
class Orchestrator(Layer, Protocol):
    """An orchestrator that publishes the whole manifest where its workflows read it."""

    def publish_manifest(self, manifest: pulumi.Input[Mapping[str, Any]]) -> pulumi.Resource: ...


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
