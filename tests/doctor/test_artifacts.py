"""Artifacts checks against moto (fast) and SeaweedFS (a real S3 server that checks signatures)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from mlstack import manifest
from mlstack.doctor import artifacts
from mlstack.doctor.core import Sink
from mlstack.doctor.runner import diagnose
from tests.doctor.conftest import Attempts, manifest_dict


def _section(endpoint: str, bucket: str, **kw: object) -> manifest.S3Artifacts:
    return manifest.S3Artifacts(bucket=bucket, region="us-east-1", endpoint_url=endpoint, **kw)


def _run(section: manifest.S3Artifacts, timeout: float = 30) -> dict[str, tuple[str, str, str | None]]:
    sink = Sink()
    artifacts.s3_findings(section, timeout, sink)
    return {f.check: (f.status, f.detail, f.fix) for f in sink.close()}


def _bucket(endpoint: str, name: str, *, versioned: bool, encrypted: bool) -> None:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if encrypted:
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": "k1",
                        }
                    }
                ]
            },
        )


def test_secure_bucket_passes_and_probe_leaves_nothing(moto_s3: str) -> None:
    _bucket(moto_s3, "good", versioned=True, encrypted=True)
    got = _run(_section(moto_s3, "good", prefix="team/a"))
    assert {k: v[0] for k, v in got.items()} == {
        "artifacts.credentials": "ok",
        "artifacts.bucket": "ok",
        "artifacts.versioning": "ok",
        "artifacts.encryption": "ok",
        "artifacts.probe": "ok",
    }
    assert "s3://good/team/a/doctor/" in got["artifacts.probe"][1]
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    left = s3.list_object_versions(Bucket="good")
    assert not left.get("Versions") and not left.get("DeleteMarkers")


def test_unversioned_unencrypted_bucket_fails_naming_versioning(moto_s3: str) -> None:
    _bucket(moto_s3, "plain", versioned=False, encrypted=False)
    got = _run(_section(moto_s3, "plain"))
    status, detail, fix = got["artifacts.versioning"]
    assert status == "fail" and "versioning is not enabled on bucket plain" in detail
    assert (
        fix is not None
        and "put-bucket-versioning --bucket plain" in fix
        and f"--endpoint-url {moto_s3}" in fix
    )
    enc = got["artifacts.encryption"]
    # moto reports either no configuration (fail) or S3's implicit AES256 default (ok); both name it
    assert enc[0] in ("fail", "ok")
    if enc[0] == "fail":
        assert "put-bucket-encryption --bucket plain" in (enc[2] or "")
    assert got["artifacts.probe"][0] == "ok"


def test_kms_key_mismatch_fails(moto_s3: str) -> None:
    _bucket(moto_s3, "keyed", versioned=True, encrypted=True)
    got = _run(_section(moto_s3, "keyed", kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/other"))
    assert got["artifacts.encryption"][0] == "fail" and "encrypts with k1" in got["artifacts.encryption"][1]


def test_missing_bucket(moto_s3: str) -> None:
    got = _run(_section(moto_s3, "nope-nope"))
    assert got["artifacts.credentials"][0] == "ok"
    assert got["artifacts.bucket"][0] == "fail" and "does not exist" in got["artifacts.bucket"][1]
    assert "artifacts.probe" not in got  # nothing further is tried against a missing bucket


def test_no_credentials(moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    got = _run(_section(moto_s3, "whatever"))
    assert got == {
        "artifacts.credentials": (
            "fail",
            "no AWS credentials found (environment, ~/.aws/credentials, SSO, instance or pod role)",
            "aws configure  (or export AWS_PROFILE=<profile>; on EKS: annotate the service account for IRSA)",
        )
    }


def _s3_manifest(endpoint: str, bucket: str = "bkt") -> manifest.Manifest:
    return manifest.from_dict(
        manifest_dict(
            artifacts={"kind": "s3", "bucket": bucket, "region": "us-east-1", "endpoint_url": endpoint}
        )
    )


@pytest.mark.parametrize("which", ["closed_port", "silent_port"])
def test_dead_endpoint_returns_within_the_timeout(
    which: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused and never-answering endpoints cost one attempt bounded by the timeout: the probe's client has
    connect and read timeouts of --timeout and no retries, it sends one HeadBucket and nothing after it, and
    the bucket fails once with a fix. Asserted as behaviour, never in seconds (the machine may be loaded)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    port = request.getfixturevalue(which)
    spy = Attempts()
    real = artifacts.s3_client
    monkeypatch.setattr(artifacts, "s3_client", lambda section, timeout: spy.watch(real(section, timeout)))
    report = diagnose(_s3_manifest(f"http://127.0.0.1:{port}"), timeout=2)
    spy.settle()
    (client,) = spy.clients
    cfg = client.meta.config
    assert (cfg.connect_timeout, cfg.read_timeout) == (2, 2)
    assert cfg.retries["total_max_attempts"] == 1
    assert spy.sent == [("HeadBucket", f"http://127.0.0.1:{port}/bkt")]  # one attempt: no retry, no next call
    bucket = [f for f in report.findings if f.check == "artifacts.bucket"]
    # on a loaded machine the deadline may strike before botocore's own timeout: either way one failure
    assert len(bucket) == 1 and bucket[0].status == "fail" and bucket[0].fix
    assert report.failed


def test_closed_port_and_silent_server_are_named(closed_port: int, silent_port: int, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    refused = _run(_section(f"http://127.0.0.1:{closed_port}", "bkt"), timeout=30)["artifacts.bucket"]
    assert refused[0] == "fail" and "cannot connect to http://127.0.0.1:" in refused[1]
    assert "endpoint_url" in (refused[2] or "")
    silent = _run(_section(f"http://127.0.0.1:{silent_port}", "bkt"), timeout=1)["artifacts.bucket"]
    assert silent[0] == "fail" and "did not answer while HeadBucket bkt (timed out)" in silent[1]


def test_local_folder_probe(tmp_path: Path) -> None:
    root = tmp_path / "art"
    got = artifacts.local_findings(manifest.LocalArtifacts(root=str(root)))
    assert [(f.check, f.status) for f in got] == [("artifacts.folder", "warn")]
    root.mkdir()
    got = artifacts.local_findings(manifest.LocalArtifacts(root=str(root)))
    assert [(f.check, f.status) for f in got] == [("artifacts.folder", "ok"), ("artifacts.probe", "ok")]
    assert list(root.iterdir()) == []  # the probe cleaned up after itself
    root.chmod(0o500)
    try:
        got = artifacts.local_findings(manifest.LocalArtifacts(root=str(root)))
        import os

        if os.geteuid() != 0:  # root ignores permissions
            assert (
                got[-1].check == "artifacts.probe"
                and got[-1].status == "fail"
                and "chmod" in (got[-1].fix or "")
            )
    finally:
        root.chmod(0o700)


@pytest.mark.seaweedfs
def test_seaweedfs_unversioned_bucket_fails_naming_versioning(
    seaweedfs, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in seaweedfs.env().items():
        monkeypatch.setenv(k, v)
    plain = seaweedfs.create_bucket(versioned=False)
    got = _run(
        manifest.S3Artifacts(bucket=plain, region=seaweedfs.region, endpoint_url=seaweedfs.endpoint_url)
    )
    assert got["artifacts.bucket"][0] == "ok"
    assert got["artifacts.versioning"][0] == "fail" and "versioning" in got["artifacts.versioning"][1]
    assert "put-bucket-versioning" in (got["artifacts.versioning"][2] or "")
    assert got["artifacts.probe"][0] == "ok"
    versioned = seaweedfs.create_bucket(versioned=True)
    got = _run(
        manifest.S3Artifacts(bucket=versioned, region=seaweedfs.region, endpoint_url=seaweedfs.endpoint_url)
    )
    assert got["artifacts.versioning"][0] == "ok" and got["artifacts.probe"][0] == "ok"
    left = seaweedfs.client().list_object_versions(Bucket=versioned)
    assert not left.get("Versions") and not left.get("DeleteMarkers")


@pytest.mark.seaweedfs
def test_seaweedfs_wrong_secret_is_a_credentials_failure(seaweedfs, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in seaweedfs.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    bucket = seaweedfs.create_bucket()
    got = _run(
        manifest.S3Artifacts(bucket=bucket, region=seaweedfs.region, endpoint_url=seaweedfs.endpoint_url)
    )
    assert list(got) == ["artifacts.credentials"], json.dumps(got)
    status, detail, fix = got["artifacts.credentials"]
    assert status == "fail" and "rejected the credentials (SignatureDoesNotMatch)" in detail, json.dumps(got)
    assert "aws configure" in (fix or "")
