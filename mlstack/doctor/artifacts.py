"""Artifacts checks: a local folder is writable; an S3 bucket is reachable, versioned, encrypted and
accepts a write/read/delete round trip under ``<prefix>/doctor/``."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from mlstack.doctor.core import Check, Finding, Sink, error_text, fail, ok, warn
from mlstack.manifest import LocalArtifacts, Manifest, S3Artifacts

PROBE_PREFIX = "doctor/"


# ---------------------------------------------------------------- local
def local_findings(section: LocalArtifacts) -> list[Finding]:
    root = Path(section.root).expanduser()
    if not root.exists():
        parent = next((p for p in root.parents if p.exists()), None)
        if parent is not None and parent.is_dir() and os.access(parent, os.W_OK):
            return [
                warn(
                    "artifacts.folder",
                    f"{root} does not exist yet (it is created on the first write)",
                    "mlstack init",
                )
            ]
        return [
            fail(
                "artifacts.folder",
                f"{root} does not exist and {parent} is not a writable folder",
                f"create it with write access for this user: mkdir -p {root}",
            )
        ]
    if not root.is_dir():
        return [
            fail("artifacts.folder", f"{root} is not a folder", f"move the file away, then: mkdir -p {root}")
        ]
    found = [ok("artifacts.folder", f"{root} exists")]
    probe_dir = root / PROBE_PREFIX.rstrip("/")
    probe = probe_dir / f"probe-{uuid.uuid4().hex}"
    payload = b"mlstack doctor probe\n"
    try:
        probe_dir.mkdir(exist_ok=True)
        probe.write_bytes(payload)
        back = probe.read_bytes()
        probe.unlink()
        try:
            probe_dir.rmdir()
        except OSError:  # another probe is running at the same time
            pass
    except OSError as exc:
        found.append(
            fail(
                "artifacts.probe",
                f"cannot write, read and delete a file in {root}: {error_text(exc)}",
                f"give this user write access: chmod u+rwx {root}  (or set artifacts.root to a writable folder)",
            )
        )
        return found
    if back != payload:
        found.append(
            fail("artifacts.probe", f"a file written to {probe_dir} read back different", "check the disk")
        )
    else:
        found.append(ok("artifacts.probe", f"write/read/delete round trip in {probe_dir}"))
    return found


# ---------------------------------------------------------------- s3
def _cli(section: S3Artifacts) -> str:
    """The ``aws`` CLI flags that address this bucket's endpoint, for fixes."""
    ep = f" --endpoint-url {section.endpoint_url}" if section.endpoint_url else ""
    return f"--region {section.region}{ep}"


def s3_client(section: S3Artifacts, timeout: float) -> Any:
    """A boto3 S3 client that gives up after ``timeout`` seconds and never retries (a probe, not a job)."""
    import boto3
    from botocore.config import Config

    cfg = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"mode": "standard", "total_max_attempts": 1},
        s3={"addressing_style": "path"} if section.endpoint_url else None,
    )
    return boto3.session.Session().client(
        "s3", region_name=section.region, endpoint_url=section.endpoint_url, config=cfg
    )


def _error_code(exc: BaseException) -> str:
    resp = getattr(exc, "response", None) or {}
    err = resp.get("Error", {}) if isinstance(resp, dict) else {}
    code = str(err.get("Code") or "")
    if not code:
        status = (
            (resp.get("ResponseMetadata") or {}).get("HTTPStatusCode") if isinstance(resp, dict) else None
        )
        code = str(status or "")
    return code


def _classify(exc: BaseException, section: S3Artifacts, doing: str) -> Finding:
    """Turn a botocore error into the finding that names its cause and fix."""
    from botocore import exceptions as bx

    where = section.endpoint_url or f"S3 in {section.region}"
    if isinstance(exc, bx.NoCredentialsError):
        return fail(
            "artifacts.credentials",
            "no AWS credentials found (environment, ~/.aws/credentials, SSO, instance or pod role)",
            "aws configure  (or export AWS_PROFILE=<profile>; on EKS: annotate the service account for IRSA)",
        )
    if isinstance(exc, bx.ConnectTimeoutError | bx.ReadTimeoutError):
        return fail(
            "artifacts.bucket",
            f"{where} did not answer while {doing} (timed out)",
            "check the endpoint URL and that it is reachable from here (network, VPN, proxy, security group)",
        )
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectionClosedError | bx.HTTPClientError):
        return fail(
            "artifacts.bucket",
            f"cannot connect to {where} while {doing}: {error_text(exc)}",
            "check artifacts.endpoint_url / artifacts.region in the manifest and that the server is running",
        )
    code = _error_code(exc)
    if code in (
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
    ):
        return fail(
            "artifacts.credentials",
            f"{where} rejected the credentials ({code}) while {doing}",
            "refresh them: aws sso login / aws configure, or export the right AWS_PROFILE",
        )
    if code in ("404", "NoSuchBucket"):
        return fail(
            "artifacts.bucket",
            f"bucket {section.bucket} does not exist at {where}",
            "deploy the stack (`mlstack up`) or correct artifacts.bucket in the manifest",
        )
    if code in ("403", "AccessDenied", "AllAccessDisabled"):
        return fail(
            "artifacts.bucket",
            f"access denied to bucket {section.bucket} while {doing}",
            "grant this identity access (the store's grant_read/grant_write role), "
            "or use that role: aws sts get-caller-identity shows who you are",
        )
    return fail(
        "artifacts.bucket",
        f"{doing} failed on {where}: {error_text(exc)}",
        "see the error; check the bucket's policy",
    )


def s3_findings(section: S3Artifacts, timeout: float, sink: Sink, client: Any = None) -> None:
    """Add the S3 findings to ``sink`` one by one (so a timeout keeps what was learned)."""
    from botocore import exceptions as bx

    if client is None:
        client = s3_client(section, timeout)
    creds = client._request_signer._credentials
    if creds is None:
        sink.add(_classify(bx.NoCredentialsError(), section, "signing"))
        return
    found = ok("artifacts.credentials", f"AWS credentials found ({getattr(creds, 'method', 'unknown')})")
    bucket = section.bucket
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as exc:
        if _error_code(exc) == "403":
            # HEAD answers carry no body: ask again with a GET to learn whether the key or the policy is wrong
            try:
                client.list_objects_v2(Bucket=bucket, MaxKeys=1)
            except Exception as again:
                exc = again
        problem = _classify(exc, section, f"HeadBucket {bucket}")
        # credentials that were found but rejected get one finding, not "ok" and then "fail"
        if problem.check != "artifacts.credentials":
            sink.add(found)
        sink.add(problem)
        return
    sink.add(found)
    sink.add(ok("artifacts.bucket", f"bucket {bucket} reachable at {section.endpoint_url or section.region}"))

    try:
        status = client.get_bucket_versioning(Bucket=bucket).get("Status")
    except Exception as exc:
        sink.add(_classify(exc, section, "GetBucketVersioning"))
        status = "error"
    if status == "Enabled":
        sink.add(ok("artifacts.versioning", f"versioning enabled on {bucket}"))
    elif status != "error":
        sink.add(
            fail(
                "artifacts.versioning",
                f"versioning is {'suspended' if status == 'Suspended' else 'not enabled'} on bucket {bucket}: "
                "overwritten or deleted artifacts cannot be recovered",
                f"aws s3api put-bucket-versioning --bucket {bucket} "
                f"--versioning-configuration Status=Enabled {_cli(section)}",
            )
        )

    sink.add(_encryption_finding(client, section))
    sink.add(_probe_finding(client, section))


def _encryption_finding(client: Any, section: S3Artifacts) -> Finding:
    bucket = section.bucket
    fix_cmd = (
        f"aws s3api put-bucket-encryption --bucket {bucket} --server-side-encryption-configuration "
        + (
            '\'{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"aws:kms",'
            f'"KMSMasterKeyID":"{section.kms_key_arn}"}}}},"BucketKeyEnabled":true}}]}}\''
            if section.kms_key_arn
            else '\'{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"aws:kms"}}]}\''
        )
        + f" {_cli(section)}"
    )
    try:
        conf = client.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    except Exception as exc:
        code = _error_code(exc)
        if code == "ServerSideEncryptionConfigurationNotFoundError":
            return fail("artifacts.encryption", f"bucket {bucket} has no default encryption", fix_cmd)
        if code in ("NotImplemented", "501", "MethodNotAllowed"):
            return warn(
                "artifacts.encryption",
                f"{section.endpoint_url or 'the endpoint'} does not report default encryption ({code})",
                "encrypt the server's volumes, or use AWS S3 with SSE-KMS for data that needs it",
            )
        f = _classify(exc, section, "GetBucketEncryption")
        return fail("artifacts.encryption", f.detail, f.fix or fix_cmd)
    rules = conf.get("Rules") or []
    default = (rules[0].get("ApplyServerSideEncryptionByDefault") or {}) if rules else {}
    algo = default.get("SSEAlgorithm")
    key = default.get("KMSMasterKeyID")
    if not algo:
        return fail("artifacts.encryption", f"bucket {bucket} has no default encryption rule", fix_cmd)
    if section.kms_key_arn and key and key != section.kms_key_arn and not section.kms_key_arn.endswith(key):
        return fail(
            "artifacts.encryption",
            f"bucket {bucket} encrypts with {key}, the manifest says {section.kms_key_arn}",
            "correct artifacts.kms_key_arn in the manifest (`mlstack outputs` prints the deployed one), "
            "or redeploy with `mlstack up`",
        )
    return ok("artifacts.encryption", f"default encryption {algo}" + (f" with {key}" if key else ""))


def _probe_finding(client: Any, section: S3Artifacts) -> Finding:
    prefix = f"{section.prefix}/" if section.prefix else ""
    key = f"{prefix}{PROBE_PREFIX}probe-{uuid.uuid4().hex}"
    payload = b"mlstack doctor probe\n"
    step = "PutObject"
    try:
        put = client.put_object(Bucket=section.bucket, Key=key, Body=payload)
        step = "GetObject"
        body = client.get_object(Bucket=section.bucket, Key=key)["Body"].read()
        step = "DeleteObject"
        # on a versioned bucket, delete the version itself so the probe leaves nothing behind
        if put.get("VersionId"):
            client.delete_object(Bucket=section.bucket, Key=key, VersionId=put["VersionId"])
        else:
            client.delete_object(Bucket=section.bucket, Key=key)
    except Exception as exc:
        f = _classify(exc, section, f"{step} s3://{section.bucket}/{key}")
        fix = f.fix or "see the error"
        if "denied" in f.detail:
            fix = (
                "grant s3:PutObject, s3:GetObject, s3:DeleteObject and s3:DeleteObjectVersion on "
                f"arn:aws:s3:::{section.bucket}/{prefix}* to this identity (the store's grant_write)"
            )
        return fail("artifacts.probe", f"{step} failed: {f.detail}", fix)
    if body != payload:
        return fail(
            "artifacts.probe", f"s3://{section.bucket}/{key} read back different bytes", "check the server"
        )
    return ok(
        "artifacts.probe", f"write/read/delete round trip under s3://{section.bucket}/{prefix}{PROBE_PREFIX}"
    )


# ---------------------------------------------------------------- deep: the store's content
DEEP_SAMPLE = 500  # blobs read per `doctor --deep` (random); records and aliases are all checked


def deep_findings(m: Manifest, sink: Sink, timeout: float, sample: int = DEEP_SAMPLE) -> None:
    """Scan the store: every record and alias, a random sample of blobs, within the doctor's deadline."""
    import time

    from mlstack import artifacts

    st = artifacts.store(m)
    report = st.scan(sample=sample, deadline=time.monotonic() + timeout * 0.8)
    for p in report.problems:
        sink.add(fail(f"artifacts.integrity.{p.what}", f"{p.ref}: {p.message}", p.fix))
    if report.complete:
        sink.add(ok("artifacts.integrity", report.summary()))
    else:
        sink.add(
            warn(
                "artifacts.integrity",
                report.summary(),
                "`mlstack artifacts verify` reads every blob; `mlstack artifacts verify --repair` also repairs",
            )
        )


def checks(m: Manifest, deep: bool = False) -> list[Check]:
    if deep:
        return [
            *checks(m),
            Check(
                "artifacts.integrity",
                lambda sink, timeout: deep_findings(m, sink, timeout),
                "give it more time (--timeout), or run `mlstack artifacts verify --sample N` on its own",
            ),
        ]
    section = m.artifacts
    if isinstance(section, LocalArtifacts):
        local = section

        def _local(sink: Sink, timeout: float) -> None:
            sink.extend(local_findings(local))

        return [Check("artifacts.folder", _local, f"check the disk holding {local.root}")]
    s3 = section

    def _s3(sink: Sink, timeout: float) -> None:
        from mlstack.errors import require

        require("boto3", "aws", "the S3 artifacts checks")
        s3_findings(s3, timeout, sink)

    return [
        Check(
            "artifacts.bucket",
            _s3,
            f"check that {s3.endpoint_url or 'S3 in ' + s3.region} is reachable from here "
            "(network, VPN, proxy, security group) and artifacts.endpoint_url is right",
        )
    ]
