"""The artifact store's and the data layers' args, validated once into frozen config: the pure functions,
called directly (no Pulumi run).

What the components build from the config is covered by test_artifact_store.py, test_snowflake_layer.py,
test_databricks_layer.py, test_lakehouse.py and the golden recordings (tests/stacks/test_golden_resources.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mlstack.components._args import InputPropertiesError
from mlstack.components._s3 import BucketConfig
from mlstack.components.artifacts import config as artifacts
from mlstack.components.data import databricks_config as dbx
from mlstack.components.data import lakehouse_config as lake
from mlstack.components.data import snowflake_config as sf


def problems_of(fn: Any, *args: Any, **kwargs: Any) -> dict[str, tuple[Any, str]]:
    """path -> (value, why) of the one error ``fn`` raises (the last problem of a path wins)."""
    with pytest.raises(InputPropertiesError) as err:
        fn(*args, **kwargs)
    assert err.value.fix
    return {path: (value, why) for path, value, why in err.value.problems}


# ------------------------------------------------------------------ S3ArtifactStore
def test_store_defaults_are_filled_once() -> None:
    cfg = artifacts.resolve_store("artifacts", {})
    assert cfg == artifacts.StoreConfig(prefix="artifacts", bucket=BucketConfig())
    b = cfg.bucket
    assert (b.noncurrent_version_expiration_days, b.abort_incomplete_multipart_days) == (90, 7)
    assert (b.retain_on_delete, b.force_destroy, b.tags, b.tags_input) == (True, False, None, None)
    assert artifacts.resolve_store("a", None) == cfg


def test_store_config_is_frozen_and_owns_its_values() -> None:
    tags = {"team": "ml"}
    cfg = artifacts.resolve_store("artifacts", {"prefix": "/ml/runs/", "tags": tags})
    tags["team"] = "changed"
    assert cfg.prefix == "ml/runs"
    assert dict(cfg.bucket.tags or {}) == {"team": "ml"} and cfg.bucket.tags_input == {"team": "ml"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.prefix = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.bucket.tags["team"] = "x"  # type: ignore[index]


def test_store_reports_every_problem_at_once() -> None:
    got = problems_of(
        artifacts.resolve_store,
        "artifacts",
        {
            "prefix": "../up",
            "bucket_name": "Not_A_Bucket",
            "noncurrent_version_expiration_days": -1,
            "force_destroy": True,
            "tags": {"a": 1},
            "versioned": False,
        },
    )
    assert set(got) == {
        "prefix",
        "bucket_name",
        "noncurrent_version_expiration_days",
        "force_destroy",
        "tags",
        "versioned",
    }
    assert got["noncurrent_version_expiration_days"] == (-1, "a whole number of days from 0 to 36500")
    assert "retain_on_delete=False" in got["force_destroy"][1]
    assert got["versioned"][1].startswith("unknown argument; allowed: abort_incomplete_multipart_days")


def test_existing_store_takes_the_region_from_config_or_requires_it() -> None:
    cfg = artifacts.resolve_existing_store("s", "my-bucket", prefix="/ml/", default_region="eu-west-1")
    assert cfg == artifacts.ExistingStoreConfig("my-bucket", "ml", "eu-west-1", None)
    assert (
        artifacts.resolve_existing_store("s", "b-1", region="us-east-2", default_region="x").region
        == "us-east-2"
    )
    got = problems_of(artifacts.resolve_existing_store, "s", "Bad_Bucket", prefix=3)
    assert set(got) == {"prefix", "bucket_name", "region"}
    assert got["region"] == (None, "required when the aws:region config is not set; pass region=")


# ------------------------------------------------------------------ SnowflakeDataLayer
def test_snowflake_defaults_are_filled_once() -> None:
    cfg = sf.resolve_snowflake("ml-data", {"account": "org-acct"})
    assert cfg.base == "ML_DATA"
    assert (cfg.warehouse_name, cfg.database_name, cfg.schema_name, cfg.stage_name) == (
        "ML_DATA_WH",
        "ML_DATA",
        "ML",
        "MLSTACK_STAGE",
    )
    assert (cfg.reader_role_name, cfg.writer_role_name, cfg.user_name, cfg.parent_role) == (
        "ML_DATA_READER",
        "ML_DATA_WRITER",
        "ML_DATA_SVC",
        "SYSADMIN",
    )
    assert (cfg.warehouse_size, cfg.auto_suspend_seconds, cfg.statement_timeout_seconds) == (
        "XSMALL",
        60,
        14400,
    )
    assert (cfg.data_retention_days, cfg.credit_quota, cfg.notify_users, cfg.gpu_compute_pool) == (
        1,
        None,
        None,
        None,
    )
    assert (cfg.job_role, cfg.rsa_public_key, cfg.retain_on_delete) == (sf.JobRole.READER, None, True)
    assert cfg.comment == "managed by mlstack (ml-data)"
    # the account from the provider config when not passed
    cfg = sf.resolve_snowflake("d", {}, organization_name="org", account_name="acct")
    assert cfg.account == "org-acct" and cfg.base == "D"
    assert sf.resolve_snowflake("1x", {"account": "o-a"}).base == "_1X"


def test_snowflake_choices_are_enums_that_accept_plain_strings() -> None:
    cfg = sf.resolve_snowflake("d", {"account": "o-a", "warehouse_size": "x-large", "job_role": "writer"})
    assert cfg.warehouse_size is sf.WarehouseSize.XLARGE and cfg.job_role is sf.JobRole.WRITER
    cfg = sf.resolve_snowflake(
        "d", {"account": "o-a", "warehouse_size": sf.WarehouseSize.X4LARGE, "job_role": sf.JobRole.READER}
    )
    assert (cfg.warehouse_size, cfg.job_role) == ("X4LARGE", "reader")
    assert sf.WarehouseSize("2X-Large") is sf.WarehouseSize.XXLARGE
    # a value of the wrong type is a problem named by key, not a TypeError
    got = problems_of(
        sf.resolve_snowflake, "d", {"account": "o-a", "warehouse_size": ["XSMALL"], "job_role": 1}
    )
    assert got == {
        "warehouse_size": (["XSMALL"], "one of: " + ", ".join(sf.WAREHOUSE_SIZES)),
        "job_role": (1, "'reader' or 'writer'"),
    }
    assert sf.WAREHOUSE_SIZES[0] == "XSMALL" and len(sf.WAREHOUSE_SIZES) == 10


def test_snowflake_gpu_pool_defaults() -> None:
    cfg = sf.resolve_snowflake("d", {"account": "o-a", "gpu_compute_pool": {}})
    assert cfg.gpu_compute_pool == sf.GpuPoolConfig("D_GPU_POOL", "GPU_NV_S", 1, 1, 600)


def test_snowflake_reports_every_problem_at_once() -> None:
    got = problems_of(
        sf.resolve_snowflake,
        "d",
        {
            "warehouse_size": "HUGE",
            "auto_suspend_seconds": 5,
            "reader_role_name": "ACCOUNTADMIN",
            "job_role": "admin",
            "rsa_public_key": "-----BEGIN PRIVATE KEY-----",
            "notify_users": ["ops"],
            "gpu_compute_pool": {"instance_family": "CPU_X64_XS", "min_nodes": 3, "max_nodes": 2},
            "retain_on_delete": "yes",
        },
    )
    assert set(got) == {
        "account",
        "warehouse_size",
        "auto_suspend_seconds",
        "reader_role_name",
        "job_role",
        "rsa_public_key",
        "notify_users",
        "gpu_compute_pool.instance_family",
        "gpu_compute_pool.max_nodes",
        "retain_on_delete",
    }
    assert got["account"][1].startswith("required: pass account='<org>-<account>'")
    assert got["warehouse_size"] == ("HUGE", "one of: " + ", ".join(sf.WAREHOUSE_SIZES))
    assert got["auto_suspend_seconds"] == (5, "a whole number from 60 to 604800")
    assert got["reader_role_name"] == ("ACCOUNTADMIN", "a new role of its own, never a system/admin role")
    assert got["job_role"] == ("admin", "'reader' or 'writer'")
    assert got["rsa_public_key"][0] == "<redacted>"  # a private key is never echoed
    assert got["notify_users"] == (["ops"], "only used with credit_quota; set it too")
    assert got["gpu_compute_pool.max_nodes"] == (2, "at least min_nodes (3)")


# ------------------------------------------------------------------ DatabricksDataLayer
def test_databricks_defaults_are_filled_once() -> None:
    cfg = dbx.resolve_databricks("ML-Data", {"host": "https://dbc-1.cloud.databricks.com/"})
    assert cfg.host == "https://dbc-1.cloud.databricks.com" and cfg.base == "ml_data"
    assert (cfg.catalog_name, cfg.schema_name, cfg.volume_name, cfg.catalog_storage_root) == (
        "ml_data",
        "ml",
        "files",
        None,
    )
    assert (cfg.warehouse_name, cfg.warehouse_size, cfg.warehouse_auto_stop_minutes) == (
        "ml_data-sql",
        "2X-Small",
        10,
    )
    assert (cfg.warehouse_serverless, cfg.warehouse_max_clusters) == (True, 1)
    assert cfg.gpu_node_types == tuple(dbx.DEFAULT_GPU_NODE_TYPES) and cfg.gpu_runtimes is None
    assert (cfg.max_workers, cfg.auto_termination_minutes, cfg.max_auto_termination_minutes) == (4, 30, 120)
    assert (cfg.max_clusters_per_user, cfg.service_principal_name, cfg.job_access) == (
        2,
        "ml_data-jobs",
        "writer",
    )
    assert (cfg.reader_groups, cfg.writer_groups, cfg.create_oauth_secret, cfg.profile) == (
        (),
        (),
        False,
        None,
    )
    assert (cfg.retain_on_delete, cfg.comment) == (True, "managed by mlstack (ML-Data)")
    assert (
        dbx.resolve_databricks("d", {}, config_host="https://h.example.com").host == "https://h.example.com"
    )


def test_databricks_choices_are_enums_that_accept_plain_strings() -> None:
    cfg = dbx.resolve_databricks(
        "d", {"host": "https://h.io", "warehouse_size": "Medium", "job_access": "reader"}
    )
    assert cfg.warehouse_size is dbx.SqlWarehouseSize.MEDIUM and cfg.job_access is dbx.Access.READER
    cfg = dbx.resolve_databricks("d", {"host": "https://h.io", "job_access": dbx.Access.WRITER})
    assert cfg.job_access == "writer"


def test_databricks_reports_every_problem_at_once() -> None:
    got = problems_of(
        dbx.resolve_databricks,
        "d",
        {
            "warehouse_size": "Tiny",
            "warehouse_serverless": False,
            "warehouse_auto_stop_minutes": 5,
            "auto_termination_minutes": 200,
            "gpu_runtimes": ["15.4.x-scala2.12"],
            "job_access": "owner",
            "reader_groups": ["ds"],
            "writer_groups": ["ds"],
            "max_workers": None,
        },
    )
    assert set(got) == {
        "host",
        "warehouse_size",
        "warehouse_auto_stop_minutes",
        "auto_termination_minutes",
        "gpu_runtimes[0]",
        "job_access",
        "writer_groups",
        "max_workers",
    }
    assert got["warehouse_auto_stop_minutes"][1].startswith("a whole number from 10 to 1440")
    assert got["auto_termination_minutes"] == (200, "at most max_auto_termination_minutes (120)")
    assert got["writer_groups"] == ("ds", "already listed in reader_groups; a group gets one grant set")
    assert got["max_workers"] == (None, "a whole number from 0 to 1000")


# ------------------------------------------------------------------ S3Lakehouse
def test_lakehouse_defaults_are_filled_once() -> None:
    cfg = lake.resolve_lakehouse("my-lake.v1", {})
    assert cfg.prefix == "lakehouse" and cfg.artifact_store is None
    assert cfg.bucket == BucketConfig()
    assert (cfg.database_name, cfg.workgroup_name) == ("my_lake_v1", "my-lake.v1")
    assert (cfg.bytes_scanned_cutoff_per_query, cfg.engine_version, cfg.results_expiration_days) == (
        1024**4,
        "AUTO",
        30,
    )
    assert (cfg.retain_on_delete, cfg.force_destroy, cfg.tags) == (True, False, None)


def test_lakehouse_reports_every_problem_at_once() -> None:
    got = problems_of(
        lake.resolve_lakehouse,
        "my lake",
        {
            "prefix": "/",
            "bytes_scanned_cutoff_per_query": 5,
            "results_expiration_days": -1,
            "engine_version": "",
            "tags": ["x"],
        },
    )
    assert set(got) == {
        "prefix",
        "bytes_scanned_cutoff_per_query",
        "results_expiration_days",
        "engine_version",
        "tags",
        "bucket_name",
        "database_name",
        "workgroup_name",
    }
    assert got["prefix"][1].startswith("a non-empty prefix")
    assert got["database_name"][1].endswith("the default comes from the component name: pass one")
    assert got["bucket_name"][1].startswith("the bucket is auto-named from the component name 'my lake'")


def test_lakehouse_on_a_store_refuses_own_bucket_args_and_other_objects() -> None:
    got = problems_of(
        lake.resolve_lakehouse,
        "lake",
        {"artifact_store": object(), "bucket_name": "b-1", "region": "us-east-1", "force_destroy": "no"},
    )
    assert got["artifact_store"] == ("object", "an S3ArtifactStore component")
    assert got["bucket_name"] == (
        "b-1",
        "only for the lakehouse's own bucket; drop it or drop artifact_store",
    )
    assert set(got) == {"artifact_store", "bucket_name", "region", "force_destroy"}
