"""S3Lakehouse under the mock runtime: Glue + Athena over a prefix, grants, the manifest section."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from mlstack.plan.mock_runtime import contains_secret
from tests.components.test_artifact_store import _actions, _statements, _typed_dict_fields

ROOT = Path(__file__).resolve().parents[2]
LAKE = "mlstack:index:S3Lakehouse"
DB = "aws:glue/catalogDatabase:CatalogDatabase"
WG = "aws:athena/workgroup:Workgroup"
BUCKET = "aws:s3/bucket:Bucket"
KEY = "aws:kms/key:Key"
POLICY = "aws:iam/rolePolicy:RolePolicy"


@pytest.fixture(autouse=True)
def _fresh_pulumi_root() -> None:
    """Start each test without the previous program's root stack: mock_runtime.run reuses it, so a failed
    export of an earlier test would fail this one, and its exports would show up in this recording."""
    from pulumi.runtime import settings

    settings.ROOT.set(None)


def _lake(args: dict[str, Any] | None = None, name: str = "lake") -> Any:
    from mlstack.components import S3Lakehouse

    return S3Lakehouse(name, args)  # type: ignore[arg-type]


def _store(args: dict[str, Any] | None = None) -> Any:
    from mlstack.components import S3ArtifactStore

    return S3ArtifactStore("artifacts", args)  # type: ignore[arg-type]


def test_own_bucket_is_a_secure_bucket(pulumi_run) -> None:
    def program() -> None:
        import pulumi

        pulumi.export("section", _lake().manifest_section)

    rec = pulumi_run(program)
    lake = rec.one(LAKE)
    bucket = rec.one(BUCKET)
    assert bucket.parent == lake.urn
    # the same secure-bucket builder as the artifact store: every setting present and retained
    for t in (
        "aws:s3/bucketVersioning:BucketVersioning",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        "aws:s3/bucketPolicy:BucketPolicy",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    ):
        assert rec.one(t).options["retainOnDelete"] is True, t
    assert rec.one(KEY).inputs["enableKeyRotation"] is True
    assert rec.stack_outputs["section"] == {
        "kind": "lakehouse",
        "database": "lake",
        "workgroup": "lake",
        "location": f"s3://{bucket.state['bucket']}/lakehouse",
        "region": "us-east-1",
    }


def test_own_bucket_expires_athena_results(pulumi_run) -> None:
    rec = pulumi_run(lambda: _lake({"results_expiration_days": 7}))
    rules = {
        r["id"]: r
        for r in rec.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"]
    }
    assert rules["expire-athena-results"]["filter"] == {"prefix": "lakehouse/_athena_results/"}
    assert rules["expire-athena-results"]["expiration"] == {"days": 7.0}
    assert "abort-incomplete-multipart-uploads" in rules and "expire-noncurrent-versions" in rules
    rec0 = pulumi_run(lambda: _lake({"results_expiration_days": 0}))
    lc = rec0.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    assert "expire-athena-results" not in {r["id"] for r in lc.inputs["rules"]}


def test_glue_and_athena_configuration(pulumi_run) -> None:
    rec = pulumi_run(
        lambda: _lake({"prefix": "/tables/", "bytes_scanned_cutoff_per_query": 10 * 1024**3}, "ml-lake")
    )
    bucket = rec.one(BUCKET).state["bucket"]
    key_arn = rec.one(KEY).state["arn"]
    db = rec.one(DB)
    assert db.inputs["name"] == "ml_lake"
    assert db.inputs["locationUri"] == f"s3://{bucket}/tables/"
    assert db.options["retainOnDelete"] is True
    wg = rec.one(WG)
    assert wg.inputs["name"] == "ml-lake"
    assert wg.inputs["state"] == "ENABLED"
    assert wg.inputs["forceDestroy"] is False
    assert wg.options["retainOnDelete"] is True
    cfg = wg.inputs["configuration"]
    assert cfg["enforceWorkgroupConfiguration"] is True
    assert cfg["enableMinimumEncryptionConfiguration"] is True
    assert cfg["publishCloudwatchMetricsEnabled"] is True
    assert cfg["bytesScannedCutoffPerQuery"] == float(10 * 1024**3)
    assert cfg["engineVersion"] == {"selectedEngineVersion": "AUTO"}
    res = cfg["resultConfiguration"]
    assert res["outputLocation"] == f"s3://{bucket}/tables/_athena_results/"
    assert res["encryptionConfiguration"] == {"encryptionOption": "SSE_KMS", "kmsKeyArn": key_arn}
    for r in (db, wg):
        assert r.parent == rec.one(LAKE).urn


def test_on_the_artifact_store_bucket(pulumi_run) -> None:
    def program() -> None:
        import pulumi

        store = _store({"prefix": "artifacts", "region": "eu-west-1"})
        lake = _lake({"artifact_store": store})
        pulumi.export("section", lake.manifest_section)

    rec = pulumi_run(program)
    assert len(rec.by_type(BUCKET)) == 1 and len(rec.by_type(KEY)) == 1  # the store's, nothing new
    assert rec.one(BUCKET).parent == rec.one("mlstack:index:S3ArtifactStore").urn
    bucket = rec.one(BUCKET).state["bucket"]
    assert rec.stack_outputs["section"]["location"] == f"s3://{bucket}/lakehouse"
    assert rec.stack_outputs["section"]["region"] == "eu-west-1"
    wg = rec.one(WG)
    assert wg.inputs["region"] == "eu-west-1" and rec.one(DB).inputs["region"] == "eu-west-1"
    enc = wg.inputs["configuration"]["resultConfiguration"]["encryptionConfiguration"]
    assert enc["kmsKeyArn"] == rec.one(KEY).state["arn"]


def test_overlapping_prefixes_warn(pulumi_run, caplog) -> None:
    def program() -> None:
        _lake({"artifact_store": _store({"prefix": "ml"}), "prefix": "ml/lake"})

    with caplog.at_level(logging.WARNING):
        pulumi_run(program)
    assert any("overlaps" in m for m in caplog.messages)


def test_existing_store_without_key_uses_sse_s3(pulumi_run) -> None:
    def program() -> None:
        from mlstack.components import S3ArtifactStore

        store = S3ArtifactStore.from_bucket_name("old", "acme-old", prefix="art")
        lake = _lake({"artifact_store": store})
        lake.grant_read("analyst")

    rec = pulumi_run(program)
    enc = rec.one(WG).inputs["configuration"]["resultConfiguration"]["encryptionConfiguration"]
    assert enc == {"encryptionOption": "SSE_S3"}
    assert not any(a.startswith("kms:") for a in _actions(_statements(rec.one(POLICY).inputs["policy"])))


def test_grant_read_least_privilege(pulumi_run) -> None:
    def program() -> None:
        _lake().grant_read("analyst")

    rec = pulumi_run(program)
    pol = rec.one(POLICY)
    assert pol.name == "lake-read-analyst" and pol.inputs["role"] == "analyst"
    assert pol.parent == rec.one(LAKE).urn
    stmts = _statements(pol.inputs["policy"])
    assert len({s["Sid"] for s in json.loads(pol.inputs["policy"])["Statement"]}) == len(stmts)  # unique Sids
    bucket_arn = rec.one(BUCKET).state["arn"]
    db_arn = rec.one(DB).state["arn"]
    assert stmts["AthenaQuery"]["Resource"] == [rec.one(WG).state["arn"]]
    assert stmts["AthenaMetadata"]["Resource"] == [
        "arn:aws:athena:us-east-1:123456789012:datacatalog/AwsDataCatalog"
    ]
    glue_res = stmts["GlueRead"]["Resource"]
    assert db_arn in glue_res
    assert "arn:aws:glue:us-east-1:123456789012:catalog" in glue_res
    assert "arn:aws:glue:us-east-1:123456789012:table/lake/*" in glue_res
    assert stmts["ReadObjects"]["Resource"] == [f"{bucket_arn}/lakehouse/*"]
    assert stmts["WriteObjectsResults"]["Resource"] == [f"{bucket_arn}/lakehouse/_athena_results/*"]
    assert stmts["BucketLocation"]["Resource"] == [bucket_arn] and "Condition" not in stmts["BucketLocation"]
    actions = _actions(stmts)
    assert not {
        a
        for a in actions
        if a.startswith("glue:") and not a.startswith("glue:Get") and a != "glue:BatchGetPartition"
    }
    assert "glue:CreateTable" not in actions
    assert not any(a.endswith("*") for a in actions)
    # the only S3 write a reader has is to the results prefix
    writes = [s for s in stmts.values() if "s3:PutObject" in s["Action"]]
    assert [s["Sid"] for s in writes] == ["WriteObjectsResults"]


def test_grant_write_adds_ddl_and_data_writes(pulumi_run) -> None:
    def program() -> None:
        import pulumi_aws as aws

        from mlstack.components._policy import service_trust_policy

        role = aws.iam.Role("trainer", assume_role_policy=service_trust_policy("ec2.amazonaws.com"))
        _lake().grant_write(role)

    rec = pulumi_run(program)
    pol = rec.one(POLICY)
    assert pol.name == "lake-write-trainer"
    stmts = _statements(pol.inputs["policy"])
    bucket_arn = rec.one(BUCKET).state["arn"]
    assert stmts["WriteObjects"]["Resource"] == [f"{bucket_arn}/lakehouse/*"]
    actions = _actions(stmts)
    assert {
        "glue:CreateTable",
        "glue:UpdateTable",
        "glue:BatchCreatePartition",
        "athena:StartQueryExecution",
    } <= actions
    assert not actions & {
        "glue:DeleteDatabase",
        "glue:CreateDatabase",
        "athena:DeleteWorkGroup",
        "s3:DeleteObjectVersion",
    }


def test_opt_out_of_retention(pulumi_run) -> None:
    rec = pulumi_run(lambda: _lake({"retain_on_delete": False, "force_destroy": True}))
    for r in rec.descendants(rec.one(LAKE)):
        assert r.options["retainOnDelete"] is False, r.name
    assert rec.one(WG).inputs["forceDestroy"] is True


def test_invalid_args(pulumi_run) -> None:
    from mlstack.components._args import InputPropertiesError

    with pytest.raises(InputPropertiesError) as exc:
        pulumi_run(
            lambda: _lake(
                {
                    "artifact_store": "my-bucket",
                    "bucket_name": "x-bucket",
                    "results_expiration_days": 3,
                    "prefix": "",
                    "database_name": "Bad-Name",
                    "workgroup_name": "no spaces",
                    "bytes_scanned_cutoff_per_query": 5,
                    "engine_version": "",
                }
            )
        )
    paths = {p for p, _, _ in exc.value.problems}
    assert paths == {
        "artifact_store",
        "bucket_name",
        "results_expiration_days",
        "prefix",
        "database_name",
        "workgroup_name",
        "bytes_scanned_cutoff_per_query",
        "engine_version",
    }


def test_no_secret_in_outputs(pulumi_run) -> None:
    rec = pulumi_run(lambda: _lake())
    outputs = rec.one(LAKE).outputs
    assert outputs is not None and not contains_secret(outputs)


def test_every_args_field_documented() -> None:
    fields = _typed_dict_fields(ROOT / "components/data/lakehouse.py", "S3LakehouseArgs")
    assert len(fields) >= 16
    for fname, doc in fields:
        assert doc and ("Default" in doc or "Requires" in doc), fname
    assert "from __future__ import annotations" not in (ROOT / "components/data/lakehouse.py").read_text()
