"""mlstack's Pulumi components, imported as ``mlstack.components``.

Classes are exported lazily so that importing one component does not pay for every provider SDK
(``pulumi_snowflake`` and ``pulumi_databricks`` take 1.4-2 s each to import).
Type tokens are ``mlstack:<layer>:<Type>``.
"""

import importlib
from typing import Any

_EXPORTS = {
    "S3ArtifactStore": "mlstack.components.artifacts.s3",
    "S3ArtifactStoreArgs": "mlstack.components.artifacts.s3",
    "SnowflakeDataLayer": "mlstack.components.data.snowflake",
    "SnowflakeDataLayerArgs": "mlstack.components.data.snowflake",
    "DatabricksDataLayer": "mlstack.components.data.databricks",
    "DatabricksDataLayerArgs": "mlstack.components.data.databricks",
    "S3Lakehouse": "mlstack.components.data.lakehouse",
    "S3LakehouseArgs": "mlstack.components.data.lakehouse",
    "EksGpuCluster": "mlstack.components.compute.eks",
    "EksGpuClusterArgs": "mlstack.components.compute.args",
    "GpuNodeGroupArgs": "mlstack.components.compute.args",
    "SystemNodeGroupArgs": "mlstack.components.compute.args",
    "ExistingEksCluster": "mlstack.components.compute.existing",
    "ExistingEksClusterArgs": "mlstack.components.compute.args",
    "ArgoWorkflows": "mlstack.components.orchestrator.argo",
    "ArgoWorkflowsArgs": "mlstack.components.orchestrator.argo",
    "ArgoSsoArgs": "mlstack.components.orchestrator.argo",
    "MLStack": "mlstack.components.stack",
    "MLStackArgs": "mlstack.components.stack",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mlstack.components' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
