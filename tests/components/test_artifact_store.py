"""S3ArtifactStore under the mock runtime: every secure default, the grants and the manifest section."""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from mlstack import _astutil
from mlstack.plan.mock_runtime import ACCOUNT_ID, contains_secret

ROOT = Path(__file__).resolve().parents[2]
STORE = "mlstack:index:S3ArtifactStore"
BUCKET = "aws:s3/bucket:Bucket"
KEY = "aws:kms/key:Key"
POLICY = "aws:iam/rolePolicy:RolePolicy"


@pytest.fixture(autouse=True)
def _fresh_pulumi_root() -> None:
    """Start each test without the previous program's root stack: mock_runtime.run reuses it, so a failed
    export of an earlier test would fail this one, and its exports would show up in this recording."""
    from pulumi.runtime import settings

    settings.ROOT.set(None)


def _store(args: dict[str, Any] | None = None, name: str = "artifacts") -> Any:
    from mlstack.components import S3ArtifactStore

    return S3ArtifactStore(name, args)  # type: ignore[arg-type]


def _statements(policy_input: str) -> dict[str, dict[str, Any]]:
    doc = json.loads(policy_input)
    assert doc["Version"] == "2012-10-17"
    return {s["Sid"]: s for s in doc["Statement"]}


def _actions(stmts: dict[str, dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for s in stmts.values():
        if s["Effect"] == "Allow":
            out |= set(s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    return out


@pytest.fixture
def default_rec(pulumi_run):
    captured: dict[str, Any] = {}

    def program() -> None:
        import pulumi

        store = _store({"prefix": "ml"})
        captured["store"] = store
        pulumi.export("section", store.manifest_section)
        pulumi.export("region", store.region)

    rec = pulumi_run(program)
    return rec, captured["store"]


def test_bucket_is_secure_by_default(default_rec) -> None:
    rec, _ = default_rec
    comp = rec.one(STORE, "artifacts")
    bucket = rec.one(BUCKET)
    key = rec.one(KEY)
    # every resource is a child of the store
    for r in rec.resources:
        if r is not comp:
            assert r.parent == comp.urn, r.name

    assert key.inputs["enableKeyRotation"] is True
    assert key.inputs["deletionWindowInDays"] == 30.0

    ver = rec.one("aws:s3/bucketVersioning:BucketVersioning")
    assert ver.inputs["bucket"] == bucket.id
    assert ver.inputs["versioningConfiguration"]["status"] == "Enabled"

    enc = rec.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    (rule,) = enc.inputs["rules"]
    assert rule["bucketKeyEnabled"] is True
    default = rule["applyServerSideEncryptionByDefault"]
    assert default["sseAlgorithm"] == "aws:kms"
    assert default["kmsMasterKeyId"] == key.state["arn"]

    pab = rec.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        assert pab.inputs[flag] is True, flag

    own = rec.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    assert own.inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced"

    assert not rec.by_type("aws:s3/bucketLogging:BucketLogging")


def test_bucket_policy_denies_non_tls(default_rec) -> None:
    rec, _ = default_rec
    bucket = rec.one(BUCKET)
    pol = rec.one("aws:s3/bucketPolicy:BucketPolicy")
    stmts = _statements(pol.inputs["policy"])
    deny = stmts["DenyInsecureTransport"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    arn = bucket.state["arn"]
    assert sorted(deny["Resource"]) == [arn, f"{arn}/*"]
    assert stmts["DenyOutdatedTls"]["Condition"] == {"NumericLessThan": {"s3:TlsVersion": "1.2"}}
    # uploads may not ask for another encryption or another key (no header: default encryption applies)
    objects = [f"{arn}/*"]
    enc = stmts["DenyNonKmsEncryption"]
    assert enc["Action"] == "s3:PutObject" and enc["Resource"] == objects
    assert enc["Condition"] == {
        "Null": {"s3:x-amz-server-side-encryption": "false"},
        "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
    }
    key_arn = rec.one(KEY).state["arn"]
    other = stmts["DenyOtherKmsKey"]["Condition"]
    assert other["StringNotEquals"] == {"s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn}
    assert other["Null"] == {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"}
    # nothing in the bucket policy allows anything
    assert all(s["Effect"] == "Deny" for s in stmts.values())
    assert set(stmts) == {
        "DenyInsecureTransport",
        "DenyOutdatedTls",
        "DenyNonKmsEncryption",
        "DenyOtherKmsKey",
    }


def test_key_alias_names_the_bucket(default_rec) -> None:
    rec, _ = default_rec
    alias = rec.one("aws:kms/alias:Alias")
    assert alias.inputs["name"] == "alias/mlstack/" + rec.one(BUCKET).state["bucket"]
    assert alias.inputs["targetKeyId"] == rec.one(KEY).state["keyId"]
    assert alias.options["retainOnDelete"] is True


def test_lifecycle_defaults(default_rec) -> None:
    rec, _ = default_rec
    lc = rec.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    rules = {r["id"]: r for r in lc.inputs["rules"]}
    assert rules["abort-incomplete-multipart-uploads"]["status"] == "Enabled"
    assert rules["abort-incomplete-multipart-uploads"]["abortIncompleteMultipartUpload"] == {
        "daysAfterInitiation": 7.0
    }
    assert rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"]["noncurrentDays"] == 90.0
    # current versions never expire
    assert "days" not in rules["expire-noncurrent-versions"].get("expiration", {})


def test_retained_on_destroy_by_default(default_rec) -> None:
    rec, _ = default_rec
    comp = rec.one(STORE)
    for r in rec.descendants(comp):
        assert r.options["retainOnDelete"] is True, r.name
    assert rec.one(BUCKET).inputs.get("forceDestroy") is False


def test_settings_apply_in_order(default_rec) -> None:
    """S3 rejects concurrent configuration of one bucket: each setting waits for the previous one."""
    rec, _ = default_rec
    pab = rec.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    own = rec.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    pol = rec.one("aws:s3/bucketPolicy:BucketPolicy")
    assert pab.urn in own.options["dependencies"]
    assert pab.urn in pol.options["dependencies"]


def test_manifest_section(default_rec) -> None:
    from mlstack.manifest import validate_section

    rec, store = default_rec
    section = rec.stack_outputs["section"]
    bucket = rec.one(BUCKET)
    key = rec.one(KEY)
    assert section == {
        "kind": "s3",
        "bucket": bucket.state["bucket"],
        "prefix": "ml",
        "region": "us-east-1",
        "kms_key_arn": key.state["arn"],
    }
    assert validate_section("artifacts", section) == section
    assert not contains_secret(section)
    assert store.prefix == "ml"
    comp = rec.one(STORE)
    assert comp.outputs is not None
    assert comp.outputs["manifest_section"] == section
    assert comp.outputs["bucket_arn"] == bucket.state["arn"]
    assert comp.outputs["kms_key_arn"] == key.state["arn"]


def test_explicit_region_reaches_every_resource(pulumi_run) -> None:
    def program() -> None:
        import pulumi

        pulumi.export("section", _store({"region": "eu-west-1"}).manifest_section)

    rec = pulumi_run(program)
    for r in rec.resources:
        if r.custom:
            assert r.inputs.get("region") == "eu-west-1", r.type
    assert rec.stack_outputs["section"]["region"] == "eu-west-1"
    assert not rec.invokes  # the region is the bucket's own attribute, not a lookup


def test_default_prefix(pulumi_run) -> None:
    captured = {}
    pulumi_run(lambda: captured.setdefault("s", _store()))
    assert captured["s"].prefix == "artifacts"


def test_existing_key_and_logging_and_tuning(pulumi_run) -> None:
    key_arn = f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"

    def program() -> None:
        import pulumi

        s = _store(
            {
                "kms_key_arn": key_arn,
                "bucket_name": "acme-ml-artifacts",
                "access_log_bucket": "acme-logs",
                "noncurrent_version_expiration_days": 0,
                "abort_incomplete_multipart_days": 2,
                "tags": {"team": "ml"},
            }
        )
        pulumi.export("section", s.manifest_section)

    rec = pulumi_run(program)
    assert not rec.by_type(KEY)
    enc = rec.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert enc.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"] == key_arn
    bucket = rec.one(BUCKET)
    assert bucket.inputs["bucket"] == "acme-ml-artifacts"
    assert bucket.inputs["tags"] == {"team": "ml"}
    log = rec.one("aws:s3/bucketLogging:BucketLogging")
    assert log.inputs["targetBucket"] == "acme-logs"
    assert log.inputs["targetPrefix"] == "s3-access/acme-ml-artifacts/"
    lc = rec.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    assert [r["id"] for r in lc.inputs["rules"]] == ["abort-incomplete-multipart-uploads"]
    assert lc.inputs["rules"][0]["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == 2.0
    assert rec.stack_outputs["section"]["kms_key_arn"] == key_arn
    assert rec.stack_outputs["section"]["bucket"] == "acme-ml-artifacts"
    assert not rec.by_type("aws:kms/alias:Alias")
    sids = set(_statements(rec.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"]))
    other = _statements(rec.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])["DenyOtherKmsKey"]
    assert other["Condition"]["StringNotEquals"] == {
        "s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn
    }
    assert "DenyNonKmsEncryption" in sids


def test_explicit_opt_in_to_deletion(pulumi_run) -> None:
    rec = pulumi_run(lambda: _store({"retain_on_delete": False, "force_destroy": True}))
    assert rec.one(BUCKET).inputs["forceDestroy"] is True
    for r in rec.descendants(rec.one(STORE)):
        assert r.options["retainOnDelete"] is False, r.name


def test_invalid_args_are_all_reported_at_once(pulumi_run) -> None:
    from mlstack.components._args import InputPropertiesError

    with pytest.raises(InputPropertiesError) as exc:
        pulumi_run(
            lambda: _store(
                {
                    "prefix": "../up",
                    "bucket_name": "Not_A_Bucket",
                    "kms_key_arn": "alias/mine",
                    "noncurrent_version_expiration_days": -1,
                    "abort_incomplete_multipart_days": "7",
                    "force_destroy": True,
                    "access_log_prefix": "logs/",
                    "tags": {"a": 1},
                    "versioned": False,
                }
            )
        )
    paths = {p for p, _, _ in exc.value.problems}
    assert paths == {
        "prefix",
        "bucket_name",
        "kms_key_arn",
        "noncurrent_version_expiration_days",
        "abort_incomplete_multipart_days",
        "force_destroy",
        "access_log_prefix",
        "tags",
        "versioned",
    }
    assert "retain_on_delete=False" in str(exc.value)
    assert exc.value.fix


def test_component_name_must_make_a_valid_bucket_name(pulumi_run) -> None:
    from mlstack.components._args import InputPropertiesError

    with pytest.raises(InputPropertiesError, match="bucket_name"):
        pulumi_run(lambda: _store(name="my_store"))
    # an explicit bucket name lifts the restriction; upper case is lowered for the auto-name
    pulumi_run(lambda: _store({"bucket_name": "ok-bucket"}, name="my_store"))
    rec = pulumi_run(lambda: _store(name="Artifacts"))
    assert rec.one(BUCKET).name == "artifacts"


# ------------------------------------------------------------------ grants
def _grant_program(verb: str, **store_args: Any):
    def program() -> None:
        import pulumi_aws as aws

        from mlstack.components._policy import service_trust_policy

        role = aws.iam.Role("jobs", assume_role_policy=service_trust_policy("ec2.amazonaws.com"))
        store = _store({"prefix": "ml/artifacts", **store_args})
        getattr(store, f"grant_{verb}")(role)

    return program


def test_grant_read_is_scoped_to_the_prefix(pulumi_run) -> None:
    rec = pulumi_run(_grant_program("read"))
    pol = rec.one(POLICY)
    assert pol.name == "artifacts-read-jobs"
    assert pol.parent == rec.one(STORE).urn
    assert pol.inputs["role"] == rec.one("aws:iam/role:Role").state["name"]
    bucket_arn = rec.one(BUCKET).state["arn"]
    stmts = _statements(pol.inputs["policy"])
    assert stmts["ReadObjects"]["Resource"] == [f"{bucket_arn}/ml/artifacts/*"]
    assert stmts["ListPrefix"]["Resource"] == [bucket_arn]
    assert stmts["BucketLocation"] == {
        "Sid": "BucketLocation",
        "Effect": "Allow",
        "Action": ["s3:GetBucketLocation"],
        "Resource": [bucket_arn],
    }
    assert stmts["ListPrefix"]["Condition"] == {
        "StringLike": {"s3:prefix": ["ml/artifacts/*", "ml/artifacts"]}
    }
    kms = stmts["UseKeyViaS3Read"]
    assert kms["Resource"] == [rec.one(KEY).state["arn"]]
    assert set(kms["Action"]) == {"kms:Decrypt", "kms:DescribeKey"}
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
    actions = _actions(stmts)
    assert not {a for a in actions if a.startswith("s3:Put") or a.startswith("s3:Delete")}
    assert "kms:GenerateDataKey" not in actions
    assert not any("*" in a for a in actions)


def test_grant_write_includes_read_and_encrypt_but_no_admin(pulumi_run) -> None:
    rec = pulumi_run(_grant_program("write"))
    pol = rec.one(POLICY)
    assert pol.name == "artifacts-write-jobs"
    stmts = _statements(pol.inputs["policy"])
    bucket_arn = rec.one(BUCKET).state["arn"]
    assert stmts["WriteObjects"]["Resource"] == [f"{bucket_arn}/ml/artifacts/*"]
    actions = _actions(stmts)
    assert {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:AbortMultipartUpload"} <= actions
    assert {"kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt"} <= actions
    forbidden = {
        "s3:DeleteObjectVersion",
        "s3:PutBucketPolicy",
        "s3:DeleteBucket",
        "s3:PutBucketVersioning",
        "s3:PutLifecycleConfiguration",
        "kms:ScheduleKeyDeletion",
    }
    assert not actions & forbidden
    assert not any(a.endswith("*") for a in actions)


def test_grant_on_whole_bucket_and_by_role_name(pulumi_run) -> None:
    def program() -> None:
        store = _store({"prefix": ""})
        store.grant_read("existing-role")

    rec = pulumi_run(program)
    pol = rec.one(POLICY)
    assert pol.name == "artifacts-read-existing-role" and pol.inputs["role"] == "existing-role"
    stmts = _statements(pol.inputs["policy"])
    assert stmts["ReadObjects"]["Resource"] == [rec.one(BUCKET).state["arn"] + "/*"]
    assert "Condition" not in stmts["ListPrefix"]


def test_grant_to_an_output_role_needs_a_name(pulumi_run) -> None:
    from mlstack.errors import UsageError

    def bad() -> None:
        import pulumi

        _store().grant_write(pulumi.Output.from_input("r"))

    with pytest.raises(UsageError, match="is an Output") as exc:
        pulumi_run(bad)
    assert "name=" in (exc.value.fix or "")

    def good() -> None:
        import pulumi

        _store().grant_write(pulumi.Output.from_input("r"), name="w")

    assert pulumi_run(good).one(POLICY).name == "w"


# ------------------------------------------------------------------ existing buckets
def test_from_bucket_name_creates_only_grants_and_warns(pulumi_run, caplog) -> None:
    key_arn = f"arn:aws:kms:eu-west-1:{ACCOUNT_ID}:key/abcd"

    def program() -> None:
        import pulumi

        from mlstack.components import S3ArtifactStore

        store = S3ArtifactStore.from_bucket_name(
            "legacy", "acme-legacy", prefix="/team/ml/", region="eu-west-1", kms_key_arn=key_arn
        )
        cn = S3ArtifactStore.from_bucket_name("cn", "acme-cn", region="cn-north-1")
        pulumi.export("cn_arn", cn.bucket_arn)
        assert isinstance(store, S3ArtifactStore)
        store.grant_write("jobs-role")
        pulumi.export("section", store.manifest_section)
        pulumi.export("arn", store.bucket_arn)

    with caplog.at_level(logging.WARNING):
        rec = pulumi_run(program)
    assert not rec.by_type(BUCKET) and not rec.by_type(KEY)
    assert {r.type for r in rec.resources} == {"mlstack:index:ExistingS3ArtifactStore", POLICY}
    assert rec.stack_outputs["cn_arn"] == "arn:aws-cn:s3:::acme-cn"
    assert rec.stack_outputs["section"] == {
        "kind": "s3",
        "bucket": "acme-legacy",
        "prefix": "team/ml",
        "region": "eu-west-1",
        "kms_key_arn": key_arn,
    }
    assert rec.stack_outputs["arn"] == "arn:aws:s3:::acme-legacy"
    stmts = _statements(rec.one(POLICY).inputs["policy"])
    assert stmts["WriteObjects"]["Resource"] == ["arn:aws:s3:::acme-legacy/team/ml/*"]
    assert (
        stmts["UseKeyViaS3Write"]["Condition"]["StringEquals"]["kms:ViaService"]
        == "s3.eu-west-1.amazonaws.com"
    )
    assert any("acme-legacy" in m and "versioning" in m for m in caplog.messages)


def test_from_bucket_name_without_key_grants_no_kms(pulumi_run) -> None:
    def program() -> None:
        from mlstack.components import S3ArtifactStore

        S3ArtifactStore.from_bucket_name("legacy", "acme-legacy").grant_read("r")

    rec = pulumi_run(program)  # region from the aws:region config
    assert not any(a.startswith("kms:") for a in _actions(_statements(rec.one(POLICY).inputs["policy"])))


# ------------------------------------------------------------------ conventions
def _typed_dict_fields(path: Path, cls_name: str) -> list[tuple[str, str | None]]:
    tree = _astutil.parse(path.read_text(), str(path))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls_name:
            out = []
            body = node.body
            for i, stmt in enumerate(body):
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    nxt = body[i + 1] if i + 1 < len(body) else None
                    doc = (
                        nxt.value.value
                        if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                        else None
                    )
                    out.append((stmt.target.id, doc))
            return out
    raise AssertionError(f"{cls_name} not found in {path}")


def test_every_args_field_documented_with_its_default() -> None:
    fields = _typed_dict_fields(ROOT / "components/artifacts/s3.py", "S3ArtifactStoreArgs")
    assert len(fields) >= 10
    for fname, doc in fields:
        assert doc, f"{fname} has no docstring"
        assert "Default" in doc or "Requires" in doc, f"{fname}: docstring must say the default"


def test_no_future_annotations_in_component_modules() -> None:
    for rel in ("components/artifacts/s3.py", "components/_s3.py"):
        assert "from __future__ import annotations" not in (ROOT / rel).read_text(), rel


def test_from_bucket_name_needs_a_region_somewhere(pulumi_run) -> None:
    from mlstack.components._args import InputPropertiesError
    from mlstack.plan import mock_runtime

    def program() -> None:
        from mlstack.components import S3ArtifactStore

        S3ArtifactStore.from_bucket_name("legacy", "acme-legacy")

    with pytest.raises(InputPropertiesError, match="region"):
        mock_runtime.run(program, config={"aws:region": ""}, require_resources=False)


def test_aws_components_do_not_import_warehouse_sdks() -> None:
    """pulumi_snowflake / pulumi_databricks cost 1.4-2 s each: only their own modules import them."""
    import subprocess
    import sys

    code = (
        "import sys, mlstack.components as c; c.S3ArtifactStore; c.S3Lakehouse; "
        "bad = [m for m in ('pulumi_snowflake', 'pulumi_databricks', 'pulumi_tls') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
