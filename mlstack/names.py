"""Names both halves of mlstack agree on: what the components create in a cluster and what jobs, pipelines
and ``mlstack doctor`` look for there.

One module, constants only (no imports beyond the standard library), so ``mlstack.components`` and the
runtime library (``mlstack.pipeline``, which loads hera) both import it instead of keeping copies in step.
"""

from types import MappingProxyType

JOBS_NAMESPACE = "ml-jobs"
"""Default namespace where jobs run (EksGpuCluster / ExistingEksCluster ``jobs_namespace``)."""
JOBS_SERVICE_ACCOUNT = "mlstack-jobs"
"""Default service account jobs run as, bound to the IRSA jobs role."""

MANIFEST_CONFIGMAP = "mlstack-manifest"
"""ConfigMap in the jobs namespace holding the stack manifest; workflow pods get it as MLSTACK_MANIFEST."""
MANIFEST_KEY = "mlstack.json"
"""Key of the manifest JSON in that ConfigMap."""

DATA_CREDENTIALS_SECRET = "mlstack-data-credentials"
"""Secret in the jobs namespace with the warehouse login files (MLStack writes it, pipelines mount it)."""
SNOWFLAKE_DIR = "/var/run/secrets/snowflake"
"""Where Snowflake steps mount connections.toml and the key."""
DATABRICKS_DIR = "/var/run/secrets/databricks"
"""Where Databricks steps mount their databrickscfg profile."""
DATA_CREDENTIALS_MODE = 0o400
"""File mode of the mounted login files (Snowflake's connector wants connections.toml private)."""

GPU_RESOURCE = "nvidia.com/gpu"
"""The extended resource GPU pods request (the NVIDIA device plugin advertises it)."""
GPU_LABEL = "mlstack.dev/gpu"
"""Node label every mlstack GPU group carries (value ``"true"``); the manifest's node selector uses it."""
ROLE_LABEL = "mlstack.dev/node-role"
"""Node label saying which group a node serves: ``system`` or ``gpu``."""
DEVICE_PLUGIN_LABEL = "mlstack.dev/device-plugin"
"""``daemonset`` on AL2023 GPU groups (mlstack runs the NVIDIA plugin), ``os`` on Bottlerocket (the OS runs it)."""
JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"
"""Label JobSet puts on its pods; the jobs namespace lets pods carrying it reach each other."""
GPU_TAINT = MappingProxyType({"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"})
"""The taint on every mlstack GPU node: only pods that tolerate it (GPU steps) land there."""
GPU_TOLERATION = MappingProxyType(
    {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
)
"""The toleration GPU steps carry to land on mlstack GPU nodes."""
NODE_POOL_LABEL = "mlstack.dev/node-pool"
"""Node label naming the GPU pool a node belongs to (Karpenter NodePools); ``@step(node_pool=...)`` selects it."""
RUN_LABEL = "mlstack.io/run"
"""Pod label with the run id (the Argo workflow's name) on a multi-node step's JobSet pods; doctor reads it."""
