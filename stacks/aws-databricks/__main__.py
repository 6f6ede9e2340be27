"""aws-databricks: EKS GPU compute, Argo Workflows, S3 artifacts and a Databricks data layer (Unity Catalog).

Every key is listed in Pulumi.example.yaml and stacks/README.md. `mlstack plan stacks/aws-databricks` runs this
program offline; `pulumi up` (or `mlstack up`) deploys it.
"""

import pulumi

from mlstack.components import ArgoWorkflows, DatabricksDataLayer, EksGpuCluster, MLStack, S3ArtifactStore
from mlstack.components.stack import StackConfig, argo_args, artifact_store_args, gpu_cluster_args

SIZES = ("2X-Small", "X-Small", "Small", "Medium", "Large", "X-Large", "2X-Large", "3X-Large", "4X-Large")
NAME = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,254}"

cfg = StackConfig()
cluster_args = gpu_cluster_args(cfg)
store_args = artifact_store_args(cfg)
orchestrator_args = argo_args(cfg)
databricks_args = {
    "host": cfg.string("workspaceHost", None, pattern=r"https://[A-Za-z0-9.-]+(/)?", required=True),
    "catalog_name": cfg.string("catalogName", "ml", pattern=NAME),
    "schema_name": cfg.string("schemaName", "features", pattern=NAME),
    "warehouse_size": cfg.string("warehouseSize", "2X-Small", choices=SIZES),
    "warehouse_auto_stop_minutes": cfg.integer("warehouseAutoStopMinutes", 10, minimum=1, maximum=1440),
    "warehouse_serverless": cfg.boolean("warehouseServerless", True),
    "max_workers": cfg.integer("clusterMaxWorkers", 4, minimum=0, maximum=1000),
    "job_access": cfg.string("jobAccess", "writer", choices=("reader", "writer")),
}
cfg.check()

artifacts = S3ArtifactStore("artifacts", store_args)
databricks = DatabricksDataLayer("databricks", databricks_args)
cluster = EksGpuCluster("gpu", cluster_args)
argo = ArgoWorkflows("argo", {"cluster": cluster, "artifact_store": artifacts, **orchestrator_args})
stack = MLStack(
    "mlstack", {"data": databricks, "compute": cluster, "orchestrator": argo, "artifacts": artifacts}
)

pulumi.export("cluster_name", cluster.cluster_name)
pulumi.export("artifacts_bucket", artifacts.bucket_name)
pulumi.export("databricks_service_principal", databricks.service_principal_application_id)
pulumi.export("jobs_role_arn", cluster.jobs_role.arn)
