"""aws-lakehouse: EKS GPU compute, Argo Workflows, S3 artifacts and an S3 lakehouse (Glue + Athena).

Every key is listed in Pulumi.example.yaml and stacks/README.md. `mlstack plan stacks/aws-lakehouse` runs this
program offline; `pulumi up` (or `mlstack up`) deploys it.
"""

import pulumi

from mlstack.components import ArgoWorkflows, EksGpuCluster, MLStack, S3ArtifactStore, S3Lakehouse
from mlstack.components.stack import StackConfig, argo_args, artifact_store_args, gpu_cluster_args

cfg = StackConfig()
cluster_args = gpu_cluster_args(cfg)
store_args = artifact_store_args(cfg)
orchestrator_args = argo_args(cfg)
lake_prefix = cfg.string("lakePrefix", "lake", pattern=r"[A-Za-z0-9][A-Za-z0-9._/-]{0,200}")
lake_database = cfg.string("lakeDatabase", None, pattern=r"[a-z0-9_]{1,255}")
cfg.check()

artifacts = S3ArtifactStore("artifacts", store_args)
lake = S3Lakehouse(
    "lake", {"prefix": lake_prefix, **({"database_name": lake_database} if lake_database else {})}
)
cluster = EksGpuCluster("gpu", cluster_args)
argo = ArgoWorkflows("argo", {"cluster": cluster, "artifact_store": artifacts, **orchestrator_args})
stack = MLStack("mlstack", {"data": lake, "compute": cluster, "orchestrator": argo, "artifacts": artifacts})

pulumi.export("cluster_name", cluster.cluster_name)
pulumi.export("artifacts_bucket", artifacts.bucket_name)
pulumi.export("jobs_role_arn", cluster.jobs_role.arn)
