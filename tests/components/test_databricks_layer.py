"""DatabricksDataLayer under the mock runtime: UC objects, warehouse, GPU policy, least-privilege grants."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlstack.plan.mock_runtime import contains_secret, is_secret, unwrap_secrets
from tests.components.test_artifact_store import _typed_dict_fields

ROOT = Path(__file__).resolve().parents[2]
LAYER = "mlstack:index:DatabricksDataLayer"
GRANT = "databricks:index/grant:Grant"
PERMS = "databricks:index/permissions:Permissions"
SP = "databricks:index/servicePrincipal:ServicePrincipal"
HOST = "https://dbc-123.cloud.databricks.com"


@pytest.fixture(autouse=True)
def _fresh_pulumi_root() -> None:
    """Start each test without the previous program's root stack: mock_runtime.run reuses it, so a failed
    export of an earlier test would fail this one, and its exports would show up in this recording."""
    from pulumi.runtime import settings

    settings.ROOT.set(None)


def _run(pulumi_run, args: dict[str, Any] | None = None, name: str = "dbx", **kw: Any):
    captured: dict[str, Any] = {}

    def program() -> None:
        import pulumi

        from mlstack.components import DatabricksDataLayer

        layer = DatabricksDataLayer(name, {"host": HOST, **(args or {})})  # type: ignore[typeddict-item]
        captured["layer"] = layer
        pulumi.export("section", layer.manifest_section)
        pulumi.export("cfg", layer.jobs_access("mlstack")["databrickscfg"])
        pulumi.export("volume_path", layer.volume_path)

    rec = pulumi_run(program, **kw)
    return rec, captured["layer"]


def _grants(rec) -> set[tuple[str, str, tuple[str, ...]]]:
    out = set()
    for g in rec.by_type(GRANT):
        (kind,) = [k for k in ("catalog", "schema", "volume") if k in g.inputs]
        out.add((g.inputs["principal"], f"{kind} {g.inputs[kind]}", tuple(sorted(g.inputs["privileges"]))))
    return out


def test_unity_catalog_objects_retained(pulumi_run) -> None:
    rec, _ = _run(pulumi_run)
    cat = rec.one("databricks:index/catalog:Catalog")
    sch = rec.one("databricks:index/schema:Schema")
    vol = rec.one("databricks:index/volume:Volume")
    assert cat.inputs["name"] == "dbx" and cat.inputs["forceDestroy"] is False
    assert (
        sch.inputs["catalogName"] == "dbx"
        and sch.inputs["name"] == "ml"
        and sch.inputs["forceDestroy"] is False
    )
    assert vol.inputs["volumeType"] == "MANAGED" and vol.inputs["name"] == "files"
    for r in (cat, sch, vol):
        assert r.options["retainOnDelete"] is True, r.type
    assert rec.stack_outputs["volume_path"] == "/Volumes/dbx/ml/files"
    layer = rec.one(LAYER)
    for r in rec.resources:
        if r is not layer:
            assert r.parent == layer.urn, r.name


def test_sql_warehouse_auto_stops(pulumi_run) -> None:
    rec, _ = _run(pulumi_run)
    wh = rec.one("databricks:index/sqlEndpoint:SqlEndpoint")
    assert wh.inputs["autoStopMins"] == 10.0
    assert wh.inputs["clusterSize"] == "2X-Small"
    assert wh.inputs["enableServerlessCompute"] is True and wh.inputs["warehouseType"] == "PRO"
    assert wh.inputs["maxNumClusters"] == 1.0


def test_cluster_policy_gpu_only_and_auto_termination(pulumi_run) -> None:
    import re

    rec, _ = _run(pulumi_run, {"gpu_node_types": ["g5.xlarge", "p4d.24xlarge"], "max_workers": 8})
    pol = rec.one("databricks:index/clusterPolicy:ClusterPolicy")
    d = json.loads(pol.inputs["definition"])
    assert d["node_type_id"] == {
        "type": "allowlist",
        "values": ["g5.xlarge", "p4d.24xlarge"],
        "defaultValue": "g5.xlarge",
    }
    assert d["driver_node_type_id"]["values"] == ["g5.xlarge", "p4d.24xlarge"]
    pattern = d["spark_version"]["pattern"]
    assert re.match(pattern, "15.4.x-gpu-ml-scala2.12")
    for not_allowed in ("15.4.x-scala2.12", "15.4.x-cpu-ml-scala2.12", "15.4.x-photon-scala2.12"):
        assert not re.match(pattern, not_allowed), not_allowed
    at = d["autotermination_minutes"]
    assert (
        at["type"] == "range" and at["minValue"] >= 1 and at["maxValue"] == 120 and at["defaultValue"] == 30
    )
    assert d["num_workers"]["maxValue"] == 8 and d["autoscale.max_workers"]["maxValue"] == 8
    assert d["instance_pool_id"]["type"] == "forbidden"
    assert d["data_security_mode"] == {"type": "fixed", "value": "SINGLE_USER"}
    assert pol.inputs["maxClustersPerUser"] == 2.0


def test_explicit_runtime_allowlist(pulumi_run) -> None:
    rec, _ = _run(pulumi_run, {"gpu_runtimes": ["15.4.x-gpu-ml-scala2.12"]})
    d = json.loads(rec.one("databricks:index/clusterPolicy:ClusterPolicy").inputs["definition"])
    assert d["spark_version"] == {
        "type": "allowlist",
        "values": ["15.4.x-gpu-ml-scala2.12"],
        "defaultValue": "15.4.x-gpu-ml-scala2.12",
    }


def test_service_principal_least_privilege(pulumi_run) -> None:
    rec, layer = _run(pulumi_run, {"reader_groups": ["analysts"], "writer_groups": ["ml-engineers"]})
    sp = rec.one(SP)
    assert sp.inputs["allowClusterCreate"] is False
    assert sp.inputs["allowInstancePoolCreate"] is False
    assert sp.inputs["databricksSqlAccess"] is True
    app_id = sp.state["applicationId"]
    reader = ("USE_SCHEMA", "SELECT", "EXECUTE")
    writer = (*reader, "MODIFY", "CREATE_TABLE", "CREATE_MODEL", "CREATE_FUNCTION")

    def expected(principal: str, schema_privs: tuple[str, ...], volume_privs: tuple[str, ...]) -> set:
        return {
            (principal, "catalog dbx", ("USE_CATALOG",)),
            (principal, "schema dbx.ml", tuple(sorted(schema_privs))),
            (principal, "volume dbx.ml.files", tuple(sorted(volume_privs))),
        }

    assert _grants(rec) == (
        expected(app_id, writer, ("READ_VOLUME", "WRITE_VOLUME"))  # job_access defaults to writer
        | expected("analysts", reader, ("READ_VOLUME",))
        | expected("ml-engineers", writer, ("READ_VOLUME", "WRITE_VOLUME"))
    )
    from mlstack.components.data.databricks import FORBIDDEN_PRIVILEGES

    for g in rec.by_type(GRANT):
        assert not set(g.inputs["privileges"]) & set(FORBIDDEN_PRIVILEGES), g.name

    perms = {r.name: r for r in rec.by_type(PERMS)}
    wh = perms["dbx-sql-permissions"]
    assert wh.inputs["sqlEndpointId"] == rec.one("databricks:index/sqlEndpoint:SqlEndpoint").id
    assert {json.dumps(acl, sort_keys=True) for acl in wh.inputs["accessControls"]} == {
        json.dumps(x, sort_keys=True)
        for x in (
            {"servicePrincipalName": app_id, "permissionLevel": "CAN_USE"},
            {"groupName": "analysts", "permissionLevel": "CAN_USE"},
            {"groupName": "ml-engineers", "permissionLevel": "CAN_USE"},
        )
    }
    pol = perms["dbx-gpu-policy-permissions"]
    assert (
        pol.inputs["clusterPolicyId"]
        == rec.one("databricks:index/clusterPolicy:ClusterPolicy").state["policyId"]
    )
    # readers never get the GPU cluster policy
    assert {
        acl.get("groupName") or acl.get("servicePrincipalName") for acl in pol.inputs["accessControls"]
    } == {
        app_id,
        "ml-engineers",
    }
    assert all(
        acl["permissionLevel"] == "CAN_USE" for p in perms.values() for acl in p.inputs["accessControls"]
    )
    assert layer.job_access == "writer"


def test_reader_jobs(pulumi_run) -> None:
    rec, _ = _run(pulumi_run, {"job_access": "reader"})
    app_id = rec.one(SP).state["applicationId"]
    privs = {target: p for principal, target, p in _grants(rec) if principal == app_id}
    assert privs["schema dbx.ml"] == tuple(sorted(("USE_SCHEMA", "SELECT", "EXECUTE")))
    assert privs["volume dbx.ml.files"] == ("READ_VOLUME",)
    assert [r.name for r in rec.by_type(PERMS)] == ["dbx-sql-permissions"]  # no cluster policy use


def test_manifest_section(pulumi_run) -> None:
    from mlstack.manifest import validate_section

    rec, _ = _run(pulumi_run, {"profile": "mlstack"})
    wh = rec.one("databricks:index/sqlEndpoint:SqlEndpoint")
    section = rec.stack_outputs["section"]
    assert section == {
        "kind": "databricks",
        "host": HOST,
        "warehouse_id": wh.id,
        "catalog": "dbx",
        "schema": "ml",
        "profile": "mlstack",
        "volume": "files",
    }
    assert validate_section("data", section) == section
    assert not contains_secret(section)
    assert rec.stack_outputs["cfg"] is None  # no OAuth secret unless asked for


def test_oauth_secret_only_as_secret_output(pulumi_run) -> None:
    rec, _ = _run(pulumi_run, {"create_oauth_secret": True})
    sec = rec.one("databricks:index/servicePrincipalSecret:ServicePrincipalSecret")
    assert sec.inputs["servicePrincipalId"] == rec.one(SP).id
    assert "secret" in sec.options["additionalSecretOutputs"]
    outputs = rec.one(LAYER).outputs
    assert outputs is not None and is_secret(outputs["client_secret"])
    assert not contains_secret(outputs["manifest_section"])
    secret_value = sec.state["secret"]
    assert secret_value not in json.dumps(rec.stack_outputs["section"])
    cfg = rec.stack_outputs["cfg"]
    assert is_secret(cfg)
    text = unwrap_secrets(cfg)
    assert text.startswith("[mlstack]\n") and f"client_secret = {secret_value}" in text
    assert f"client_id = {rec.one(SP).state['applicationId']}" in text and f"host = {HOST}" in text


def test_host_from_config_and_required(pulumi_run) -> None:
    from mlstack.components import DatabricksDataLayer
    from mlstack.components._args import InputPropertiesError

    def program() -> None:
        import pulumi

        pulumi.export("s", DatabricksDataLayer("dbx").manifest_section)

    rec = pulumi_run(program, config={"databricks:host": HOST})
    assert rec.stack_outputs["s"]["host"] == HOST
    with pytest.raises(InputPropertiesError, match="databricks:host"):
        pulumi_run(program)


def test_opt_out_of_retention_and_custom_names(pulumi_run) -> None:
    rec, _ = _run(
        pulumi_run,
        {"retain_on_delete": False, "catalog_name": "features", "schema_name": "churn", "volume_name": "raw"},
    )
    for t in ("catalog", "schema", "volume"):
        assert rec.one(f"databricks:index/{t}:{t.capitalize()}").options["retainOnDelete"] is False
    assert rec.stack_outputs["volume_path"] == "/Volumes/features/churn/raw"


def test_invalid_args(pulumi_run) -> None:
    from mlstack.components._args import InputPropertiesError

    with pytest.raises(InputPropertiesError) as exc:
        _run(
            pulumi_run,
            {
                "host": "http://insecure.example.com/path",
                "catalog_name": "bad.name",
                "warehouse_size": "Huge",
                "warehouse_serverless": False,
                "warehouse_auto_stop_minutes": 5,
                "gpu_node_types": [],
                "gpu_runtimes": ["15.4.x-scala2.12"],
                "auto_termination_minutes": 500,
                "job_access": "admin",
                "reader_groups": ["a"],
                "writer_groups": ["a"],
                "unknown": True,
            },
        )
    paths = {p for p, _, _ in exc.value.problems}
    assert paths == {
        "host",
        "catalog_name",
        "warehouse_size",
        "warehouse_auto_stop_minutes",
        "gpu_node_types",
        "gpu_runtimes[0]",
        "auto_termination_minutes",
        "job_access",
        "writer_groups",
        "unknown",
    }


def test_every_args_field_documented() -> None:
    path = ROOT / "components/data/databricks.py"
    fields = _typed_dict_fields(path, "DatabricksDataLayerArgs")
    assert len(fields) >= 20
    for fname, doc in fields:
        assert doc and "Default" in doc, fname
    assert "from __future__ import annotations" not in path.read_text()
