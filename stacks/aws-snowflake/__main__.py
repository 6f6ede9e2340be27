"""aws-snowflake: EKS GPU compute, Argo Workflows, S3 artifacts and a Snowflake data layer.

Every key is listed in Pulumi.example.yaml and stacks/README.md. `mlstack plan stacks/aws-snowflake` runs this
program offline; `pulumi up` (or `mlstack up`) deploys it.
"""

import pulumi

from mlstack.components import ArgoWorkflows, EksGpuCluster, MLStack, S3ArtifactStore, SnowflakeDataLayer
from mlstack.components.stack import StackConfig, argo_args, artifact_store_args, gpu_cluster_args

SIZES = (
    "XSMALL",
    "SMALL",
    "MEDIUM",
    "LARGE",
    "XLARGE",
    "XXLARGE",
    "XXXLARGE",
    "X4LARGE",
    "X5LARGE",
    "X6LARGE",
)
IDENT = r"[A-Za-z_][A-Za-z0-9_$]{0,254}"

cfg = StackConfig()
cluster_args = gpu_cluster_args(cfg)
store_args = artifact_store_args(cfg)
orchestrator_args = argo_args(cfg)
snowflake_args = {
    "warehouse_size": cfg.string("warehouseSize", "XSMALL", choices=SIZES),
    "auto_suspend_seconds": cfg.integer("autoSuspendSeconds", 60, minimum=60, maximum=3600),
    "database_name": cfg.string("databaseName", "ML", pattern=IDENT),
    "schema_name": cfg.string("schemaName", "FEATURES", pattern=IDENT),
    "job_role": cfg.string("jobRole", "reader", choices=("reader", "writer")),
}
quota = cfg.integer("creditQuota", 0, minimum=0, maximum=1_000_000)
if quota:
    snowflake_args["credit_quota"] = quota
cfg.check()

artifacts = S3ArtifactStore("artifacts", store_args)
snowflake = SnowflakeDataLayer("snowflake", snowflake_args)
cluster = EksGpuCluster("gpu", cluster_args)
argo = ArgoWorkflows("argo", {"cluster": cluster, "artifact_store": artifacts, **orchestrator_args})
stack = MLStack(
    "mlstack", {"data": snowflake, "compute": cluster, "orchestrator": argo, "artifacts": artifacts}
)

pulumi.export("cluster_name", cluster.cluster_name)
pulumi.export("artifacts_bucket", artifacts.bucket_name)
pulumi.export("snowflake_user", snowflake.user_name)
pulumi.export("jobs_role_arn", cluster.jobs_role.arn)
if snowflake.private_key_pem is not None:
    # a secret output: `pulumi stack output snowflake_private_key_pem --show-secrets` when wiring a job's connection
    pulumi.export("snowflake_private_key_pem", snowflake.private_key_pem)
