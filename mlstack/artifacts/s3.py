"""Artifacts in S3 (or an S3-compatible server through ``endpoint_url``).

One boto3 client per (endpoint, region) is shared by every store in the process (boto3 clients are
thread-safe) with a connection pool sized for the thread pools here. Blobs are created with
``If-None-Match: *`` (a single PUT, or CompleteMultipartUpload for big files), so a blob key is written once;
alias documents move with ``If-Match``. Large files go up and down in big parts in parallel; every read is
hashed and compared with its digest. Credentials come from the standard AWS chain, never the manifest.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions as bexc
from botocore.config import Config

from mlstack.artifacts._base import Backend, Progress, mismatch, sha256_file
from mlstack.artifacts._model import blob_key
from mlstack.errors import BackendError, CredentialsError, IntegrityError, NotFoundError

SINGLE_PUT_MAX = 16 << 20  # above this, multipart
PART_SIZE = 8 << 20  # smallest part; measured best against SeaweedFS on loopback (16-64 MiB were slower)
MAX_PARTS = 1000  # parts grow past PART_SIZE so a big file needs at most this many (S3 allows 10,000)
HEAD_FIRST_MIN = 1 << 20  # from this size, ask whether a blob exists before sending its bytes
TRANSFER_THREADS = 10
POOL_CONNECTIONS = 64

_clients: dict[tuple[str | None, str, str], Any] = {}
_clients_lock = threading.Lock()
_CRED_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
    "403",
}
_PRECONDITION = {"PreconditionFailed", "412"}
_CONFLICT = {"ConditionalRequestConflict", "409", "OperationAborted"}


def shared_client(endpoint_url: str | None, region: str) -> Any:
    """The process-wide S3 client for an endpoint, region and set of credentials in the environment."""
    creds = "|".join(
        os.environ.get(v, "")
        for v in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    )
    key = (endpoint_url, region, hashlib.sha256(creds.encode()).hexdigest())
    with _clients_lock:
        if key not in _clients:
            cfg = Config(
                region_name=region,
                max_pool_connections=POOL_CONNECTIONS,
                retries={"mode": "standard", "max_attempts": 8},  # 503 SlowDown, resets, timeouts
                connect_timeout=10,
                read_timeout=120,
                tcp_keepalive=True,
                # we verify SHA-256 end to end ourselves; skip botocore's extra CRC pass on two cores
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"} if endpoint_url else {},
            )
            session = boto3.session.Session()
            _clients[key] = session.client("s3", endpoint_url=endpoint_url, config=cfg)
        return _clients[key]


def part_size(size: int) -> int:
    """Part size for a multipart transfer of ``size`` bytes: PART_SIZE, larger for very big files."""
    return max(PART_SIZE, -(-size // MAX_PARTS))


def _code(exc: bexc.ClientError) -> str:
    err = exc.response.get("Error", {}) or {}
    return str(err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def _b64(digest: str) -> str:
    return base64.b64encode(bytes.fromhex(digest)).decode()


class S3Backend(Backend):
    kind = "s3"

    def __init__(
        self, bucket: str, prefix: str = "", region: str = "us-east-1", endpoint_url: str | None = None
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.region = region
        self.endpoint_url = endpoint_url
        self.client = shared_client(endpoint_url, region)
        self._pool = cf.ThreadPoolExecutor(TRANSFER_THREADS, thread_name_prefix="mlstack-s3-part")
        self._bucket_ok = False

    @classmethod
    def from_section(cls, section: Any) -> S3Backend:
        return cls(section.bucket, section.prefix, section.region, section.endpoint_url)

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    # ---- error translation
    def _fail(self, exc: Exception, op: str, key: str | None = None) -> Exception:
        where = f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"
        endpoint = f" at {self.endpoint_url}" if self.endpoint_url else ""
        if isinstance(exc, bexc.NoCredentialsError | bexc.PartialCredentialsError):
            return CredentialsError(
                f"no AWS credentials found for {op} on {where}{endpoint}",
                fix="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run `aws sso login`",
            )
        if isinstance(
            exc, bexc.EndpointConnectionError | bexc.ConnectionClosedError | bexc.ConnectTimeoutError
        ):
            return BackendError(
                f"cannot reach S3{endpoint} for {op} on {where}: {exc}",
                fix="check artifacts.endpoint_url / artifacts.region in the manifest and that the server is up",
            )
        if isinstance(exc, bexc.ClientError):
            code = _code(exc)
            msg = (exc.response.get("Error", {}) or {}).get("Message") or code
            if code in ("NoSuchBucket",) or (code in ("404", "NotFound") and key is None):
                return NotFoundError(
                    f"bucket {self.bucket!r} does not exist{endpoint}",
                    fix="create it (the S3ArtifactStore component does) or fix artifacts.bucket in the manifest",
                )
            if code in _CRED_CODES:
                return CredentialsError(
                    f"S3 rejected the credentials for {op} on {where}{endpoint}: {code}: {msg}",
                    fix="check the AWS credentials in force (AWS_PROFILE, AWS_ACCESS_KEY_ID/"
                    "AWS_SECRET_ACCESS_KEY) and that they may read and write this bucket",
                )
            return BackendError(
                f"S3 {op} on {where}{endpoint} failed: {code}: {msg}", fix="retry; --debug shows more"
            )
        if isinstance(exc, bexc.BotoCoreError):
            return BackendError(
                f"S3 {op} on {where}{endpoint} failed: {exc}", fix="retry; --debug shows more"
            )
        return exc

    def _call(self, op: str, key: str | None, fn: Callable[..., Any], **kw: Any) -> Any:
        try:
            return fn(**kw)
        except (bexc.ClientError, bexc.BotoCoreError) as exc:
            raise self._fail(exc, op, key) from exc

    def check(self) -> None:
        """Fail with a clear error if the bucket is missing or the credentials are wrong (checked once).

        A listing of the store's prefix, not HeadBucket: a role granted only this prefix (the
        S3ArtifactStore grants) may list under it, while HeadBucket needs an unconditioned ListBucket.
        """
        if not self._bucket_ok:
            prefix = f"{self.prefix}/" if self.prefix else ""
            self._call(
                "ListObjectsV2",
                None,
                self.client.list_objects_v2,
                Bucket=self.bucket,
                Prefix=prefix,
                MaxKeys=1,
            )
            self._bucket_ok = True

    def _absent(self, key: str) -> bool:
        """After a 403 on a key: is it simply missing?

        S3 answers 403 rather than 404 for a missing key when the caller's ListBucket permission does not
        cover the request (a prefix-conditioned grant never covers HEAD/GET). A listing tells them apart.
        """
        r = self._call(
            "ListObjectsV2", key, self.client.list_objects_v2, Bucket=self.bucket, Prefix=key, MaxKeys=1
        )
        return not any(o["Key"] == key for o in r.get("Contents", []))

    def _missing(self, exc: bexc.ClientError, key: str) -> bool:
        """Whether a failed HEAD/GET of ``key`` means the key does not exist (raises for a missing bucket)."""
        code = _code(exc)
        if code in ("404", "NoSuchKey", "NotFound"):
            self.check()  # a missing bucket also answers 404 to HEAD: tell the two apart
            return True
        return code in ("403", "AccessDenied") and self._absent(key)

    # ---- blobs
    def has_blob(self, digest: str) -> bool:
        key = self._key(blob_key(digest))
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except bexc.ClientError as exc:
            if self._missing(exc, key):
                return False
            raise self._fail(exc, "HeadObject", key) from exc
        except bexc.BotoCoreError as exc:
            raise self._fail(exc, "HeadObject", key) from exc

    def _put_single(self, key: str, body: bytes, digest: str) -> bool:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*", ChecksumSHA256=_b64(digest)
            )
            return True
        except bexc.ClientError as exc:
            code = _code(exc)
            if code in _PRECONDITION or code in _CONFLICT:
                return False  # already there (content-addressed: same bytes), or a concurrent identical write
            if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
                raise IntegrityError(
                    f"S3 received bytes for s3://{self.bucket}/{key} that do not hash to sha256:{digest[:16]}…",
                    fix="the file changed while it was being put, or the network corrupted it; put it again",
                ) from exc
            raise self._fail(exc, "PutObject", key) from exc
        except bexc.BotoCoreError as exc:
            raise self._fail(exc, "PutObject", key) from exc

    def put_bytes(self, data: bytes, digest: str | None = None) -> tuple[str, bool]:
        digest = digest or hashlib.sha256(data).hexdigest()
        key = self._key(blob_key(digest))
        if len(data) >= HEAD_FIRST_MIN and self.has_blob(digest):
            return digest, False
        return digest, self._put_single(key, data, digest)

    def put_file(
        self, path: Path, *, skip: Callable[[str], bool] | None = None, progress: Progress | None = None
    ) -> tuple[str, int, bool]:
        size = os.path.getsize(path)
        if size <= SINGLE_PUT_MAX:
            with open(path, "rb") as fh:
                data = fh.read()
            digest = hashlib.sha256(data).hexdigest()
            if skip is not None and skip(digest):
                return digest, len(data), False
            _, written = self.put_bytes(data, digest)
            if progress:
                progress(len(data))
            return digest, len(data), written
        before = os.stat(path)
        digest, size = sha256_file(path)
        if (skip is not None and skip(digest)) or self.has_blob(digest):
            return digest, size, False
        return (
            digest,
            size,
            self._multipart(path, size, digest, progress, (before.st_size, before.st_mtime_ns)),
        )

    def _multipart(
        self, path: Path, size: int, digest: str, progress: Progress | None, stamp: tuple[int, int]
    ) -> bool:
        key = self._key(blob_key(digest))
        part = part_size(size)
        up = self._call(
            "CreateMultipartUpload", key, self.client.create_multipart_upload, Bucket=self.bucket, Key=key
        )
        upload_id = up["UploadId"]
        fd = os.open(path, os.O_RDONLY)
        done = False
        try:

            def send(num: int, offset: int) -> dict[str, Any]:
                body = os.pread(fd, min(part, size - offset), offset)
                r = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=num, Body=body
                )
                if progress:
                    progress(len(body))
                return {"PartNumber": num, "ETag": r["ETag"]}

            offsets = list(range(0, size, part))
            try:
                parts = list(_bounded_map(self._pool, send, list(enumerate(offsets, 1)), TRANSFER_THREADS))
            except (bexc.ClientError, bexc.BotoCoreError) as exc:
                raise self._fail(exc, "UploadPart", key) from exc
            now = os.stat(path)
            if (now.st_size, now.st_mtime_ns) != stamp:  # parts may not be the bytes that were hashed
                raise IntegrityError(
                    f"{path} changed while it was being put; nothing was stored",
                    fix="put it again once the file is no longer being written",
                )
            try:
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    IfNoneMatch="*",
                )
                done = True
                return True
            except bexc.ClientError as exc:
                code = _code(exc)
                if code in _PRECONDITION or code in _CONFLICT:
                    return False
                if code == "NoSuchUpload" and self.has_blob(digest):
                    done = True  # a retried Complete whose first attempt succeeded
                    return True
                raise self._fail(exc, "CompleteMultipartUpload", key) from exc
        finally:
            os.close(fd)
            if not done:
                try:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                except Exception:
                    pass

    def _missing_blob(self, digest: str) -> IntegrityError:
        return IntegrityError(
            f"blob sha256:{digest[:16]}… is missing from {self.location}",
            fix="the bucket lost content a version refers to; restore it (bucket versioning) or put it again",
        )

    def get_bytes(self, digest: str) -> bytes:
        key = self._key(blob_key(digest))
        try:
            data: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except bexc.ClientError as exc:
            if self._missing(exc, key):
                raise self._missing_blob(digest) from exc
            raise self._fail(exc, "GetObject", key) from exc
        except bexc.BotoCoreError as exc:
            raise self._fail(exc, "GetObject", key) from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise mismatch(f"s3://{self.bucket}/{key}", digest, actual)
        return data

    def get_to_file(self, digest: str, size: int, dest: Path, progress: Progress | None = None) -> None:
        key = self._key(blob_key(digest))
        if size <= SINGLE_PUT_MAX:
            data = self.get_bytes(digest)
            with open(dest, "wb") as fh:
                fh.write(data)
            if progress:
                progress(len(data))
            return
        part = part_size(size)
        h = hashlib.sha256()
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, size)

            def fetch(offset: int) -> bytes:
                end = min(offset + part, size) - 1
                body: bytes = self.client.get_object(
                    Bucket=self.bucket, Key=key, Range=f"bytes={offset}-{end}"
                )["Body"].read()
                os.pwrite(fd, body, offset)
                return body

            try:
                # parts arrive in parallel; this thread hashes them in order as they complete
                for body in _bounded_map(self._pool, fetch, list(range(0, size, part)), TRANSFER_THREADS):
                    h.update(body)
                    if progress:
                        progress(len(body))
            except bexc.ClientError as exc:
                if _code(exc) in ("NoSuchKey", "404"):
                    raise self._missing_blob(digest) from exc
                raise self._fail(exc, "GetObject", key) from exc
            except bexc.BotoCoreError as exc:
                raise self._fail(exc, "GetObject", key) from exc
        finally:
            os.close(fd)
        actual = h.hexdigest()
        if actual != digest:
            dest.unlink(missing_ok=True)
            raise mismatch(f"s3://{self.bucket}/{key}", digest, actual)

    # ---- documents
    def create_doc(self, key: str, data: bytes) -> bool:
        return self.replace_doc(key, data, None)

    def read_doc(self, key: str) -> tuple[bytes, str] | None:
        k = self._key(key)
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=k)
            return r["Body"].read(), str(r["ETag"])
        except bexc.ClientError as exc:
            if self._missing(exc, k):
                return None
            raise self._fail(exc, "GetObject", k) from exc
        except bexc.BotoCoreError as exc:
            raise self._fail(exc, "GetObject", k) from exc

    def replace_doc(self, key: str, data: bytes, etag: str | None) -> bool:
        k = self._key(key)
        cond = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=k, Body=data, ContentType="application/json", **cond
            )
            return True
        except bexc.ClientError as exc:
            code = _code(exc)
            if (
                code in _PRECONDITION
                or code in _CONFLICT
                or (etag is not None and code in ("NoSuchKey", "404"))
            ):
                return False
            raise self._fail(exc, "PutObject", k) from exc
        except bexc.BotoCoreError as exc:
            raise self._fail(exc, "PutObject", k) from exc

    def _pages(self, **kw: Any) -> Iterator[dict[str, Any]]:
        try:
            yield from self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, **kw)
        except (bexc.ClientError, bexc.BotoCoreError) as exc:
            raise self._fail(exc, "ListObjectsV2", kw.get("Prefix")) from exc

    def list_keys(self, prefix: str) -> list[str]:
        full = self._key(prefix)
        cut = len(self.prefix) + 1 if self.prefix else 0
        out = [o["Key"][cut:] for page in self._pages(Prefix=full) for o in page.get("Contents", [])]
        return sorted(out)

    def list_children(self, prefix: str) -> list[str]:
        full = self._key(prefix.rstrip("/") + "/")
        out = []
        for page in self._pages(Prefix=full, Delimiter="/"):
            for cp in page.get("CommonPrefixes", []):
                out.append(cp["Prefix"][len(full) :].rstrip("/"))
        return sorted(out)


def _bounded_map(
    pool: cf.ThreadPoolExecutor, fn: Callable[..., Any], items: list[Any], window: int
) -> Iterator[Any]:
    """Like ``pool.map`` over ``fn(*item)`` or ``fn(item)``, in order, with at most ``window`` in flight."""
    pending: list[cf.Future[Any]] = []
    it = iter(items)

    def submit(item: Any) -> cf.Future[Any]:
        return pool.submit(fn, *item) if isinstance(item, tuple) else pool.submit(fn, item)

    try:
        for item in it:
            pending.append(submit(item))
            if len(pending) >= window:
                break
        while pending:
            fut = pending.pop(0)
            res = fut.result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(submit(nxt))
            yield res
    finally:
        for f in pending:
            f.cancel()
        cf.wait(pending)
