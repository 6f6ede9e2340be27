"""SnowflakeDataLayer under the mock runtime: objects, least-privilege grants, key-pair user, no secret leaks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlstack.plan.mock_runtime import contains_secret, is_secret, unwrap_secrets
from tests.components.test_artifact_store import _typed_dict_fields

ROOT = Path(__file__).resolve().parents[2]
LAYER = "mlstack:index:SnowflakeDataLayer"
GRANT = "snowflake:index/grantPrivilegesToAccountRole:GrantPrivilegesToAccountRole"
ROLE_GRANT = "snowflake:index/grantAccountRole:GrantAccountRole"
ACCOUNT = {"account": "acme-ml"}


@pytest.fixture(autouse=True)
def _fresh_pulumi_root() -> None:
    """Start each test without the previous program's root stack: mock_runtime.run reuses it, so a failed
    export of an earlier test would fail this one, and its exports would show up in this recording."""
    from pulumi.runtime import settings

    settings.ROOT.set(None)


def _layer(args: dict[str, Any] | None = None, name: str = "ml") -> Any:
    from mlstack.components import SnowflakeDataLayer

    return SnowflakeDataLayer(name, {**ACCOUNT, **(args or {})})  # type: ignore[arg-type]


def _run(pulumi_run, args: dict[str, Any] | None = None, **kw: Any):
    captured: dict[str, Any] = {}

    def program() -> None:
        import pulumi

        layer = _layer(args)
        captured["layer"] = layer
        pulumi.export("section", layer.manifest_section)
        pulumi.export("key", layer.private_key_pem)
        access = layer.jobs_access()
        pulumi.export("toml", access["connections_toml"])

    rec = pulumi_run(program, **kw)
    return rec, captured["layer"]


def _target(inputs: dict[str, Any]) -> str:
    if "onAccountObject" in inputs:
        o = inputs["onAccountObject"]
        return f"{o['objectType']} {o['objectName']}"
    if "onSchema" in inputs:
        return f"SCHEMA {inputs['onSchema']['schemaName']}"
    so = inputs["onSchemaObject"]
    if "all" in so:
        return f"ALL {so['all']['objectTypePlural']} IN {so['all']['inSchema']}"
    if "future" in so:
        return f"FUTURE {so['future']['objectTypePlural']} IN {so['future']['inSchema']}"
    return f"{so['objectType']} {so['objectName']}"


def _grants(rec) -> set[tuple[str, tuple[str, ...], str]]:
    return {
        (g.inputs["accountRoleName"], tuple(sorted(g.inputs["privileges"])), _target(g.inputs))
        for g in rec.by_type(GRANT)
    }


def test_objects_and_defaults(pulumi_run) -> None:
    rec, _ = _run(pulumi_run)
    wh = rec.one("snowflake:index/warehouse:Warehouse")
    assert wh.inputs["name"] == "ML_WH"
    assert wh.inputs["warehouseSize"] == "XSMALL"
    assert wh.inputs["autoSuspend"] == 60.0
    assert wh.inputs["autoResume"] == "true"
    assert wh.inputs["initiallySuspended"] is True
    assert "resourceMonitor" not in wh.inputs
    db = rec.one("snowflake:index/database:Database")
    assert db.inputs["name"] == "ML" and db.options["retainOnDelete"] is True
    sc = rec.one("snowflake:index/schema:Schema")
    assert sc.inputs == {**sc.inputs, "database": "ML", "name": "ML"} and sc.options["retainOnDelete"] is True
    st = rec.one("snowflake:index/stageInternal:StageInternal")
    assert st.options["retainOnDelete"] is True
    assert st.inputs["encryption"] == {"snowflakeSse": {}}
    assert not rec.by_type("snowflake:index/resourceMonitor:ResourceMonitor")
    assert not rec.by_type("snowflake:index/computePool:ComputePool")
    layer = rec.one(LAYER)
    for r in rec.resources:
        if r is not layer:
            assert r.parent == layer.urn, r.name


def test_least_privilege_grants(pulumi_run) -> None:
    rec, _ = _run(pulumi_run)
    schema = '"ML"."ML"'
    stage = '"ML"."ML"."MLSTACK_STAGE"'
    expected = {
        ("ML_READER", ("USAGE",), "WAREHOUSE ML_WH"),
        ("ML_READER", ("USAGE",), "DATABASE ML"),
        ("ML_READER", ("USAGE",), f"SCHEMA {schema}"),
        ("ML_READER", ("SELECT",), f"ALL TABLES IN {schema}"),
        ("ML_READER", ("SELECT",), f"FUTURE TABLES IN {schema}"),
        ("ML_READER", ("READ",), f"STAGE {stage}"),
        ("ML_WRITER", ("USAGE",), "WAREHOUSE ML_WH"),
        ("ML_WRITER", ("USAGE",), "DATABASE ML"),
        ("ML_WRITER", ("USAGE",), f"SCHEMA {schema}"),
        ("ML_WRITER", ("CREATE TABLE",), f"SCHEMA {schema}"),
        ("ML_WRITER", ("READ", "WRITE"), f"STAGE {stage}"),
    }
    assert _grants(rec) == expected
    for g in rec.by_type(GRANT):
        assert not g.inputs.get("allPrivileges"), g.name
        assert not g.inputs.get("withGrantOption"), g.name
        assert not g.inputs.get("onAccount"), g.name
    role_grants = {
        (g.inputs["roleName"], g.inputs.get("parentRoleName"), g.inputs.get("userName"))
        for g in rec.by_type(ROLE_GRANT)
    }
    assert role_grants == {
        ("ML_READER", "ML_WRITER", None),  # the writer inherits the reader
        ("ML_READER", "SYSADMIN", None),  # admins can manage what jobs create
        ("ML_WRITER", "SYSADMIN", None),
        ("ML_READER", None, "ML_SVC"),  # the job user gets only the reader role
    }
    # no admin role is ever granted to anything
    from mlstack.components.data.snowflake import ADMIN_ROLES

    assert not {g.inputs["roleName"] for g in rec.by_type(ROLE_GRANT)} & set(ADMIN_ROLES)


def test_service_user_uses_a_key_pair_only(pulumi_run) -> None:
    rec, _ = _run(pulumi_run)
    user = rec.one("snowflake:index/serviceUser:ServiceUser")
    key = rec.one("tls:index/privateKey:PrivateKey")
    assert key.inputs["algorithm"] == "RSA" and key.inputs["rsaBits"] == 4096.0
    assert {"privateKeyPem", "privateKeyPemPkcs8"} <= set(key.options["additionalSecretOutputs"])
    assert user.inputs["name"] == "ML_SVC"
    assert "password" not in user.inputs
    body = user.inputs["rsaPublicKey"]
    assert body.startswith("MIIFAKE") and "-----" not in body and "\n" not in body
    assert user.inputs["defaultRole"] == "ML_READER"
    assert user.inputs["defaultWarehouse"] == "ML_WH"
    assert user.inputs["defaultNamespace"] == '"ML"."ML"'
    assert user.inputs["defaultSecondaryRolesOption"] == "NONE"
    assert not rec.by_type("snowflake:index/user:User")  # a SERVICE user, not a person
    assert "networkPolicy" not in user.inputs


def test_network_policy_on_the_user(pulumi_run) -> None:
    rec, _ = _run(pulumi_run, {"network_policy": "EKS_NAT_ONLY"})
    assert rec.one("snowflake:index/serviceUser:ServiceUser").inputs["networkPolicy"] == "EKS_NAT_ONLY"


def test_private_key_is_only_a_secret_output(pulumi_run) -> None:
    rec, _ = _run(pulumi_run)
    assert is_secret(rec.stack_outputs["key"])
    assert "BEGIN PRIVATE KEY" in unwrap_secrets(rec.stack_outputs["key"])
    outputs = rec.one(LAYER).outputs
    assert outputs is not None
    assert is_secret(outputs["private_key_pem"])
    section = rec.stack_outputs["section"]
    assert not contains_secret(section)
    assert "PRIVATE" not in json.dumps(section) and "FAKE" not in json.dumps(section)
    assert not contains_secret(outputs["manifest_section"])


def test_manifest_section(pulumi_run) -> None:
    from mlstack.manifest import validate_section

    rec, _ = _run(pulumi_run, {"connection_name": "mlstack"})
    section = rec.stack_outputs["section"]
    assert section == {
        "kind": "snowflake",
        "account": "acme-ml",
        "warehouse": "ML_WH",
        "database": "ML",
        "schema": "ML",
        "role": "ML_READER",
        "user": "ML_SVC",
        "stage": "MLSTACK_STAGE",
        "connection_name": "mlstack",
    }
    assert validate_section("data", section) == section


def test_jobs_access_connections_toml(pulumi_run) -> None:
    rec, _ = _run(pulumi_run, {"connection_name": "mlstack", "job_role": "writer"})
    toml = rec.stack_outputs["toml"]
    assert is_secret(toml)
    text = unwrap_secrets(toml)
    import tomllib

    entry = tomllib.loads(text)["mlstack"]
    assert entry == {
        "account": "acme-ml",
        "user": "ML_SVC",
        "authenticator": "SNOWFLAKE_JWT",
        "private_key_file": "/var/run/secrets/snowflake/rsa_key.p8",
        "role": "ML_WRITER",
        "warehouse": "ML_WH",
        "database": "ML",
        "schema": "ML",
    }
    assert "PRIVATE KEY" not in text


def test_writer_job_role(pulumi_run) -> None:
    rec, _ = _run(pulumi_run, {"job_role": "writer", "parent_role": ""})
    assert rec.stack_outputs["section"]["role"] == "ML_WRITER"
    assert rec.one("snowflake:index/serviceUser:ServiceUser").inputs["defaultRole"] == "ML_WRITER"
    role_grants = {
        (g.inputs["roleName"], g.inputs.get("parentRoleName"), g.inputs.get("userName"))
        for g in rec.by_type(ROLE_GRANT)
    }
    assert role_grants == {("ML_READER", "ML_WRITER", None), ("ML_WRITER", None, "ML_SVC")}


def test_account_from_pulumi_config(pulumi_run) -> None:
    def program() -> None:
        import pulumi

        from mlstack.components import SnowflakeDataLayer

        pulumi.export("section", SnowflakeDataLayer("ml").manifest_section)

    rec = pulumi_run(program, config={"snowflake:organizationName": "ORG", "snowflake:accountName": "ACCT"})
    assert rec.stack_outputs["section"]["account"] == "ORG-ACCT"


def test_account_is_required(pulumi_run) -> None:
    from mlstack.components import SnowflakeDataLayer
    from mlstack.components._args import InputPropertiesError

    with pytest.raises(InputPropertiesError, match="snowflake:organizationName"):
        pulumi_run(lambda: SnowflakeDataLayer("ml"))


def test_resource_monitor(pulumi_run) -> None:
    rec, _ = _run(pulumi_run, {"credit_quota": 100, "notify_users": ["ALICE"]})
    mon = rec.one("snowflake:index/resourceMonitor:ResourceMonitor")
    assert mon.inputs["creditQuota"] == 100.0
    assert mon.inputs["frequency"] == "MONTHLY"
    assert mon.inputs["suspendTrigger"] == 100.0
    assert mon.inputs["suspendImmediateTrigger"] == 110.0
    assert mon.inputs["notifyTriggers"] == [75.0, 90.0]
    assert mon.inputs["notifyUsers"] == ["ALICE"]
    assert rec.one("snowflake:index/warehouse:Warehouse").inputs["resourceMonitor"] == mon.inputs["name"]


def test_gpu_compute_pool_behind_a_flag(pulumi_run) -> None:
    rec, _ = _run(pulumi_run, {"gpu_compute_pool": {"instance_family": "GPU_NV_M", "max_nodes": 2}})
    pool = rec.one("snowflake:index/computePool:ComputePool")
    assert pool.inputs["instanceFamily"] == "GPU_NV_M"
    assert pool.inputs["minNodes"] == 1.0 and pool.inputs["maxNodes"] == 2.0
    assert pool.inputs["autoSuspendSecs"] == 600.0 and pool.inputs["initiallySuspended"] == "true"
    grants = _grants(rec)
    assert ("ML_WRITER", ("MONITOR", "USAGE"), "COMPUTE POOL ML_GPU_POOL") in grants
    assert ("ML_WRITER", ("CREATE SERVICE", "CREATE TABLE"), 'SCHEMA "ML"."ML"') in grants
    assert not any(role == "ML_READER" and "POOL" in target for role, _, target in grants)


def test_bring_your_own_public_key(pulumi_run) -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nMIIBIjAN\nBgkqhkiG\n-----END PUBLIC KEY-----\n"
    rec, layer = _run(pulumi_run, {"rsa_public_key": pem})
    assert not rec.by_type("tls:index/privateKey:PrivateKey")
    assert rec.one("snowflake:index/serviceUser:ServiceUser").inputs["rsaPublicKey"] == "MIIBIjANBgkqhkiG"
    assert layer.private_key_pem is None


def test_custom_names_and_opt_out_of_retention(pulumi_run) -> None:
    rec, _ = _run(
        pulumi_run,
        {
            "warehouse_name": "TRAIN_WH",
            "warehouse_size": "x-large",
            "database_name": "FEATURES",
            "schema_name": "CHURN",
            "retain_on_delete": False,
        },
    )
    assert rec.one("snowflake:index/warehouse:Warehouse").inputs["warehouseSize"] == "XLARGE"
    assert rec.stack_outputs["section"]["database"] == "FEATURES"
    assert rec.stack_outputs["section"]["schema"] == "CHURN"
    assert rec.one("snowflake:index/database:Database").options["retainOnDelete"] is False


def test_invalid_args(pulumi_run) -> None:
    from mlstack.components._args import InputPropertiesError

    with pytest.raises(InputPropertiesError) as exc:
        pulumi_run(
            lambda: _layer(
                {
                    "account": "bad account!",
                    "warehouse_size": "HUGE",
                    "auto_suspend_seconds": 5,
                    "reader_role_name": "ACCOUNTADMIN",
                    "job_role": "admin",
                    "rsa_public_key": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----",
                    "gpu_compute_pool": {"instance_family": "CPU_X64_S", "min_nodes": 3, "max_nodes": 2},
                    "database_name": "1bad",
                    "notify_users": ["A"],
                    "extra": 1,
                }
            )
        )
    paths = {p for p, _, _ in exc.value.problems}
    assert paths == {
        "account",
        "warehouse_size",
        "auto_suspend_seconds",
        "reader_role_name",
        "job_role",
        "rsa_public_key",
        "gpu_compute_pool.instance_family",
        "gpu_compute_pool.max_nodes",
        "database_name",
        "notify_users",
        "extra",
    }
    assert "BEGIN PRIVATE" not in str(exc.value)  # a misplaced private key is never echoed


def test_every_args_field_documented() -> None:
    path = ROOT / "components/data/snowflake.py"
    for cls in ("SnowflakeDataLayerArgs", "SnowflakeGpuComputePoolArgs"):
        fields = _typed_dict_fields(path, cls)
        assert fields
        for fname, doc in fields:
            assert doc and "Default" in doc, f"{cls}.{fname}"
    assert "from __future__ import annotations" not in path.read_text()
