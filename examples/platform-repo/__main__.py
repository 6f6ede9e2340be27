"""ACME's ML platform stack, built from mlstack components on infrastructure the platform team already runs.

- the network team's VPC and private subnets (no VPC created here);
- two GPU pools of different types, picked from the platform's catalogue (acme_platform.GPU_POOLS);
- Snowflake as the data layer, with a credit quota;
- Argo Workflows behind the company's SSO;
- MLStack wiring the grants and publishing the manifest.

`mlstack plan examples/platform-repo` runs it offline (cost, GPU quota, policy findings).
"""

import pulumi
from acme_platform import PlatformConfig, team_tags

from mlstack.components import ArgoWorkflows, EksGpuCluster, MLStack, S3ArtifactStore, SnowflakeDataLayer

cfg = PlatformConfig()
team = cfg.string("team", required=True, pattern=r"[a-z][a-z0-9-]{1,30}") or "team"
tags = team_tags(team, cfg.string("costCenter", "cc-0000", pattern=r"cc-\d{4}") or "cc-0000")
vpc_id = cfg.string("vpcId", required=True, pattern=r"vpc-[0-9a-f]{8,17}")
subnets = cfg.strings("privateSubnetIds")
if len(subnets) < 2:
    cfg.problem("privateSubnetIds", subnets, "at least two private subnets in two zones")
pools = cfg.pools()
sso_issuer = cfg.string("ssoIssuer", required=True, pattern=r"https://\S+")
argo_url = cfg.string("argoUrl", required=True, pattern=r"https://\S+")
cfg.check()

artifacts = S3ArtifactStore("artifacts", {"prefix": f"teams/{team}", "tags": tags})
snowflake = SnowflakeDataLayer(
    "warehouse",
    {"database_name": f"{team.upper().replace('-', '_')}_ML", "warehouse_size": "SMALL", "credit_quota": 200},
)
cluster = EksGpuCluster(
    "gpu",
    {
        "cluster_name": f"{team}-ml",
        "vpc_id": vpc_id,
        "private_subnet_ids": subnets,
        "gpu_node_groups": pools,
        "admin_role_arns": cfg.strings("adminRoleArns"),
        "tags": tags,
    },
)
argo = ArgoWorkflows(
    "argo",
    {
        "cluster": cluster,
        "artifact_store": artifacts,
        "auth_mode": "sso",
        "sso": {"issuer": sso_issuer, "redirect_url": f"{argo_url}/oauth2/callback"},
    },
)
MLStack("platform", {"data": snowflake, "compute": cluster, "orchestrator": argo, "artifacts": artifacts})

pulumi.export("cluster_name", cluster.cluster_name)
pulumi.export("kubeconfig", cluster.kubeconfig)  # a secret output
