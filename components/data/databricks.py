"""``DatabricksDataLayer``: Unity Catalog catalog/schema/volume, a SQL warehouse, a GPU-only cluster policy and a
least-privilege service principal for ML jobs (workspace-level provider).

Two fixed grant sets, never ``ALL_PRIVILEGES`` or ``MANAGE``:

- reader: ``USE_CATALOG``; ``USE_SCHEMA``, ``SELECT``, ``EXECUTE`` on the schema; ``READ_VOLUME`` on the volume;
  ``CAN_USE`` on the SQL warehouse.
- writer: the reader's, plus ``MODIFY``, ``CREATE_TABLE``, ``CREATE_MODEL``, ``CREATE_FUNCTION`` on the schema,
  ``WRITE_VOLUME`` on the volume and ``CAN_USE`` on the GPU cluster policy.

The jobs service principal gets one set (``job_access``); existing account groups may be given either set.
The writer set is what ``mlstack.data.write``'s bulk path needs: Files API uploads to and deletes from the
volume (``WRITE_VOLUME``), ``COPY INTO`` / ``read_files`` from it (``READ_VOLUME``), tables created or
replaced in the schema (``CREATE_TABLE``, ``MODIFY``). The manifest names the volume (``volume``).
Grants use ``databricks.Grant`` (one principal each, not authoritative) so grants made elsewhere survive.

Import cost: ``pulumi_databricks`` takes ~1.4 s to import; only this module imports it.
"""

import json
import re
from collections.abc import Sequence
from typing import Any, TypedDict

import pulumi
import pulumi_databricks as databricks

from mlstack.manifest import validate_section

from .. import _tokens
from .databricks_config import (
    DEFAULT_GPU_NODE_TYPES,
    GPU_ML_RUNTIME_REGEX,
    SQL_WAREHOUSE_SIZES,
    Access,
    DatabricksConfig,
    SqlWarehouseSize,
    base_name,
    resolve_databricks,
)

TYPE = _tokens.token("DatabricksDataLayer")
OLD_TYPE = "mlstack:data:DatabricksDataLayer"  # kept as an alias: deployed stacks replace nothing

READER_SCHEMA = ["USE_SCHEMA", "SELECT", "EXECUTE"]
WRITER_SCHEMA = [*READER_SCHEMA, "MODIFY", "CREATE_TABLE", "CREATE_MODEL", "CREATE_FUNCTION"]
READER_VOLUME = ["READ_VOLUME"]
WRITER_VOLUME = ["READ_VOLUME", "WRITE_VOLUME"]
FORBIDDEN_PRIVILEGES = ("ALL_PRIVILEGES", "MANAGE", "CREATE_SCHEMA", "CREATE_CATALOG", "EXTERNAL_USE_SCHEMA")

class DatabricksDataLayerArgs(TypedDict, total=False):
    """Arguments of :class:`DatabricksDataLayer`. Names default from the component name (``base``: lowercased,
    other characters turned into ``_``)."""

    host: str
    """Workspace URL for the manifest, e.g. ``https://dbc-123.cloud.databricks.com``. Default: the Pulumi
    config ``databricks:host``; one of the two is required."""

    catalog_name: str
    """Unity Catalog catalog name. Default: ``<base>``."""

    catalog_storage_root: str
    """Managed storage location of the catalog (``s3://...``), for metastores without default storage.
    Default: the metastore's default storage."""

    schema_name: str
    """Schema inside the catalog. Default: ``"ml"``."""

    volume_name: str
    """Managed volume in the schema for files (datasets, checkpoints); the manifest's ``volume``, where bulk
    writes (``mlstack.data.write``, ``mlstack data load``) upload Parquet files to load into tables.
    Default: ``"files"``."""

    warehouse_name: str
    """SQL warehouse name. Default: ``<base>-sql``."""

    warehouse_size: str
    """SQL warehouse cluster size (``2X-Small`` .. ``4X-Large``). Default: ``"2X-Small"``."""

    warehouse_auto_stop_minutes: int
    """Idle minutes before the SQL warehouse stops (serverless: at least 1; classic/pro: at least 10).
    Default: 10."""

    warehouse_serverless: bool
    """Use a serverless SQL warehouse (starts in seconds; needs serverless enabled on the workspace).
    Default: True."""

    warehouse_max_clusters: int
    """Most clusters the SQL warehouse scales out to. Default: 1."""

    gpu_node_types: list[str]
    """Node types the cluster policy allows (workers and driver). Default: AWS ``g5.xlarge``, ``g5.2xlarge``,
    ``g5.4xlarge``, ``g6.xlarge``, ``g6.2xlarge`` (pass Azure/GCP types on those clouds)."""

    gpu_runtimes: list[str]
    """Exact Databricks runtime versions the policy allows, each a GPU ML runtime (``...-gpu-ml-...``).
    Default: any GPU ML runtime (regex ``<major>.<minor>.x-gpu-ml-scala2.<n>``)."""

    max_workers: int
    """Most workers a policy cluster may have (fixed size or autoscaling). Default: 4."""

    auto_termination_minutes: int
    """Default idle minutes before a policy cluster terminates; users may lower it but never disable it.
    Default: 30."""

    max_auto_termination_minutes: int
    """Longest idle time a user may choose. Default: 120."""

    max_clusters_per_user: int
    """Clusters one user or principal may run under the policy at once. Default: 2."""

    service_principal_name: str
    """Display name of the jobs service principal. Default: ``<base>-jobs``."""

    job_access: str
    """Which grant set the jobs service principal gets: ``"reader"`` or ``"writer"``. Default: ``"writer"``
    (training jobs write tables, models and files)."""

    reader_groups: list[str]
    """Existing account groups given the reader grant set (and CAN_USE on the SQL warehouse).
    Default: none."""

    writer_groups: list[str]
    """Existing account groups given the writer grant set. Default: none."""

    create_oauth_secret: bool
    """Create an OAuth (M2M) secret for the service principal, exported only as a secret output
    (``client_secret``). Needs a provider allowed to manage service principal secrets. Default: False
    (create credentials out of band and put them in ``~/.databrickscfg``)."""

    profile: str
    """``~/.databrickscfg`` profile jobs use (the manifest's ``profile``). Default: none (the SDK's default)."""

    retain_on_delete: bool
    """Keep the catalog, schema and volume (the data) when the stack is destroyed. Default: True."""

    comment: str
    """Comment put on every object that takes one. Default: ``"managed by mlstack (<component name>)"``."""


__all__ = [
    "DEFAULT_GPU_NODE_TYPES",
    "FORBIDDEN_PRIVILEGES",
    "GPU_ML_RUNTIME_REGEX",
    "SQL_WAREHOUSE_SIZES",
    "Access",
    "DatabricksConfig",
    "DatabricksDataLayer",
    "DatabricksDataLayerArgs",
    "SqlWarehouseSize",
    "cluster_policy_definition",
    "resolve_databricks",
]
_base = base_name


def cluster_policy_definition(
    node_types: Sequence[str],
    runtimes: Sequence[str] | None,
    *,
    max_workers: int,
    auto_termination_minutes: int,
    max_auto_termination_minutes: int,
    tag: str,
) -> dict[str, Any]:
    """The policy: GPU ML runtimes and listed GPU nodes only, auto-termination always on, bounded size,
    single-user (Unity Catalog) access mode, no instance pools (they would bypass the node allowlist)."""
    runtime_rule: dict[str, Any] = (
        {"type": "allowlist", "values": list(runtimes), "defaultValue": runtimes[0]}
        if runtimes
        else {"type": "regex", "pattern": GPU_ML_RUNTIME_REGEX}
    )
    nodes = {"type": "allowlist", "values": list(node_types), "defaultValue": node_types[0]}
    return {
        "spark_version": runtime_rule,
        "node_type_id": nodes,
        "driver_node_type_id": dict(nodes),
        "instance_pool_id": {"type": "forbidden", "hidden": True},
        "driver_instance_pool_id": {"type": "forbidden", "hidden": True},
        "autotermination_minutes": {
            "type": "range",
            "minValue": 1,
            "maxValue": max_auto_termination_minutes,
            "defaultValue": auto_termination_minutes,
        },
        "num_workers": {"type": "range", "minValue": 0, "maxValue": max_workers, "defaultValue": 1},
        "autoscale.max_workers": {"type": "range", "maxValue": max_workers, "defaultValue": max_workers},
        "data_security_mode": {"type": "fixed", "value": "SINGLE_USER"},
        "custom_tags.mlstack": {"type": "fixed", "value": tag},
    }


class DatabricksDataLayer(pulumi.ComponentResource):
    """Databricks data layer for ML jobs; exports the manifest ``data`` section (kind databricks).

    Outputs: ``catalog_name``, ``schema_name``, ``volume_name``, ``volume_path`` (``/Volumes/c/s/v``),
    ``warehouse_id``, ``cluster_policy_id``, ``service_principal_application_id``, ``host``,
    ``client_secret`` (secret; None unless ``create_oauth_secret``), ``manifest_section``.
    """

    catalog_name: pulumi.Output[str]
    schema_name: pulumi.Output[str]
    volume_name: pulumi.Output[str]
    volume_path: pulumi.Output[str]
    warehouse_id: pulumi.Output[str]
    cluster_policy_id: pulumi.Output[str]
    service_principal_application_id: pulumi.Output[str]
    host: str
    client_secret: pulumi.Output[str] | None
    manifest_section: pulumi.Output[dict[str, Any]]

    def __init__(
        self,
        name: str,
        args: DatabricksDataLayerArgs = {},  # noqa: B006 -- read once, never mutated
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE, name, None, _tokens.with_old_token(opts, OLD_TYPE))
        cfg = resolve_databricks(name, args, config_host=pulumi.Config("databricks").get("host"))
        self.config = cfg
        base = cfg.base
        comment = cfg.comment
        child = pulumi.ResourceOptions(parent=self)
        data_opts = pulumi.ResourceOptions(parent=self, retain_on_delete=cfg.retain_on_delete)
        self.host = cfg.host
        self.job_access: str = cfg.job_access.value

        # ---------------------------------------------------------- Unity Catalog objects (data: retained)
        self.catalog = databricks.Catalog(
            f"{name}-catalog",
            name=cfg.catalog_name,
            comment=comment,
            storage_root=cfg.catalog_storage_root,
            force_destroy=False,
            properties={"managed-by": "mlstack"},
            opts=data_opts,
        )
        self.schema = databricks.Schema(
            f"{name}-schema",
            catalog_name=self.catalog.name,
            name=cfg.schema_name,
            comment=comment,
            force_destroy=False,
            properties={"managed-by": "mlstack"},
            opts=data_opts,
        )
        self.volume = databricks.Volume(
            f"{name}-volume",
            catalog_name=self.catalog.name,
            schema_name=self.schema.name,
            name=cfg.volume_name,
            volume_type="MANAGED",
            comment=comment,
            opts=data_opts,
        )
        schema_full = pulumi.Output.concat(self.catalog.name, ".", self.schema.name)
        volume_full = pulumi.Output.concat(self.catalog.name, ".", self.schema.name, ".", self.volume.name)

        # ---------------------------------------------------------- compute
        serverless = cfg.warehouse_serverless
        self.warehouse = databricks.SqlEndpoint(
            f"{name}-sql",
            name=cfg.warehouse_name,
            cluster_size=cfg.warehouse_size.value,
            auto_stop_mins=cfg.warehouse_auto_stop_minutes,
            enable_serverless_compute=serverless,
            warehouse_type="PRO" if serverless else "CLASSIC",
            min_num_clusters=1,
            max_num_clusters=cfg.warehouse_max_clusters,
            spot_instance_policy="COST_OPTIMIZED",
            tags=databricks.SqlEndpointTagsArgs(
                custom_tags=[databricks.SqlEndpointTagsCustomTagArgs(key="mlstack", value=name)]
            ),
            opts=child,
        )
        definition = cluster_policy_definition(
            cfg.gpu_node_types,
            cfg.gpu_runtimes,
            max_workers=cfg.max_workers,
            auto_termination_minutes=cfg.auto_termination_minutes,
            max_auto_termination_minutes=cfg.max_auto_termination_minutes,
            tag=name,
        )
        self.cluster_policy = databricks.ClusterPolicy(
            f"{name}-gpu-policy",
            name=f"{base}-gpu-ml",
            description=f"mlstack ({name}): GPU ML runtimes on listed GPU nodes, auto-termination enforced",
            definition=json.dumps(definition, sort_keys=True),
            max_clusters_per_user=cfg.max_clusters_per_user,
            opts=child,
        )

        # ---------------------------------------------------------- identity
        self.service_principal = databricks.ServicePrincipal(
            f"{name}-jobs",
            display_name=cfg.service_principal_name,
            active=True,
            allow_cluster_create=False,  # clusters only through the GPU policy
            allow_instance_pool_create=False,
            databricks_sql_access=True,
            workspace_access=False,
            opts=child,
        )
        sp_id = self.service_principal.application_id
        self.client_secret = None
        self.oauth_secret: databricks.ServicePrincipalSecret | None = None
        if cfg.create_oauth_secret:
            self.oauth_secret = databricks.ServicePrincipalSecret(
                f"{name}-jobs-secret",
                service_principal_id=self.service_principal.id,
                lifetime=f"{90 * 86400}s",
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["secret"]),
            )
            self.client_secret = pulumi.Output.secret(self.oauth_secret.secret)

        # ---------------------------------------------------------- grants
        self.grants: list[pulumi.Resource] = []
        principals: list[tuple[str, pulumi.Input[str], str, str]] = [
            ("jobs", sp_id, "service_principal", self.job_access)
        ]
        principals += [(f"group-{_slug(g)}", g, "group", "reader") for g in cfg.reader_groups]
        principals += [(f"group-{_slug(g)}", g, "group", "writer") for g in cfg.writer_groups]
        warehouse_acl: list[databricks.PermissionsAccessControlArgs] = []
        policy_acl: list[databricks.PermissionsAccessControlArgs] = []
        for key, principal, kind, level in principals:
            writer = level == "writer"
            securables: list[tuple[str, dict[str, Any], list[str]]] = [
                ("catalog", {"catalog": self.catalog.name}, ["USE_CATALOG"]),
                ("schema", {"schema": schema_full}, WRITER_SCHEMA if writer else READER_SCHEMA),
                ("volume", {"volume": volume_full}, WRITER_VOLUME if writer else READER_VOLUME),
            ]
            for obj, securable, privileges in securables:
                self.grants.append(
                    databricks.Grant(
                        f"{name}-{key}-{obj}",
                        principal=principal,
                        privileges=list(privileges),
                        opts=child,
                        **securable,
                    )
                )
            who = (
                {"service_principal_name": principal}
                if kind == "service_principal"
                else {"group_name": principal}
            )
            warehouse_acl.append(databricks.PermissionsAccessControlArgs(permission_level="CAN_USE", **who))
            if writer:
                policy_acl.append(databricks.PermissionsAccessControlArgs(permission_level="CAN_USE", **who))
        self.grants.append(
            databricks.Permissions(
                f"{name}-sql-permissions",
                sql_endpoint_id=self.warehouse.id,
                access_controls=warehouse_acl,
                opts=child,
            )
        )
        if policy_acl:
            self.grants.append(
                databricks.Permissions(
                    f"{name}-gpu-policy-permissions",
                    cluster_policy_id=self.cluster_policy.policy_id,
                    access_controls=policy_acl,
                    opts=child,
                )
            )

        # ---------------------------------------------------------- outputs
        self.catalog_name = self.catalog.name
        self.schema_name = self.schema.name
        self.volume_name = self.volume.name
        self.volume_path = pulumi.Output.concat(
            "/Volumes/", self.catalog.name, "/", self.schema.name, "/", self.volume.name
        )
        self.warehouse_id = self.warehouse.id
        self.cluster_policy_id = self.cluster_policy.policy_id
        self.service_principal_application_id = sp_id
        host = self.host
        profile = cfg.profile

        def section(vals: list[Any]) -> dict[str, Any]:
            wid, cat, sch, vol = vals[:4]
            s = {
                "kind": "databricks",
                "host": host,
                "warehouse_id": wid,
                "catalog": cat,
                "schema": sch,
                "volume": vol,
            }
            if profile:
                s["profile"] = profile
            return validate_section("data", s)

        # ready only once every grant is in place
        self.manifest_section = pulumi.Output.all(
            self.warehouse_id,
            self.catalog_name,
            self.schema_name,
            self.volume_name,
            *[g.urn for g in self.grants],
        ).apply(section)
        self.register_outputs(
            {
                "host": self.host,
                "catalog_name": self.catalog_name,
                "schema_name": self.schema_name,
                "volume_name": self.volume_name,
                "volume_path": self.volume_path,
                "warehouse_id": self.warehouse_id,
                "cluster_policy_id": self.cluster_policy_id,
                "service_principal_application_id": self.service_principal_application_id,
                "client_secret": self.client_secret,
                "manifest_section": self.manifest_section,
            }
        )

    def jobs_access(self, profile: str | None = None) -> dict[str, Any]:
        """What a job platform must hand to jobs, for :class:`MLStack` to wire.

        ``databrickscfg`` is a secret Output holding a ``~/.databrickscfg`` profile (host, ``client_id`` = the
        service principal's application id, ``client_secret``) when ``create_oauth_secret`` is set, else None
        (add the secret to the profile yourself). Mount it as a file and point ``DATABRICKS_CONFIG_FILE`` at it;
        the manifest names only the profile. ``cluster_policy_id`` is what GPU job clusters must use.
        """
        entry = profile or "DEFAULT"
        host = self.host
        cfg: pulumi.Output[str] | None = None
        if self.client_secret is not None:
            text: pulumi.Output[str] = pulumi.Output.all(
                self.service_principal_application_id, self.client_secret
            ).apply(lambda v: f"[{entry}]\nhost = {host}\nclient_id = {v[0]}\nclient_secret = {v[1]}\n")
            cfg = pulumi.Output.secret(text)
        return {
            "profile": entry,
            "databrickscfg": cfg,
            "host": host,
            "client_id": self.service_principal_application_id,
            "warehouse_id": self.warehouse_id,
            "cluster_policy_id": self.cluster_policy_id,
            "access": self.job_access,
        }


def _slug(group: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", group.lower()).strip("-") or "group"
