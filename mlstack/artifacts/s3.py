"""Artifacts in S3 (or an S3-compatible server through ``endpoint_url``).

Requests go through the transfer engine (:mod:`mlstack.artifacts._s3http`: one urllib3 pool, SigV4 signed
here, botocore's retry semantics, ~0.3 ms of client CPU per request against botocore's ~1.1-1.8 ms), shared by
every store in the process per (endpoint, region, credentials); the boto3 client is the fallback where the
engine does not fit (:func:`engine_name`) and answers the same calls the same way, so everything below holds
on either. Blobs are created with
``If-None-Match: *`` (a single PUT, or CompleteMultipartUpload for big files); alias documents move with
``If-Match``. Large files go up and down in big parts in parallel; every read is hashed and compared with its
digest. Credentials come from the standard AWS chain, never the manifest.

What this backend guarantees (the store and the tests build on these; see docs/artifacts.md):
- Every byte sent is checked by the server: single PUTs carry ``x-amz-checksum-sha256`` of the whole blob
  (its address), multipart parts their CRC-32 (``x-amz-checksum-crc32``; the object then has a COMPOSITE
  CRC-32): a CRC catches what transit does to bytes - flips, cuts - and costs the server (and this client)
  a fraction of a SHA-256. A body corrupted in transit is refused by S3 and sent again (BadDigest), up to
  ``BODY_ATTEMPTS`` times. The blob's SHA-256 stays its address, and every read checks it.
- Every byte read is hashed. A body that breaks off, arrives short or does not hash to its name is fetched
  again, up to ``BODY_ATTEMPTS`` reads per object, before the operation fails.
- A blob whose address exists is not trusted blindly: a put checks it (HEAD: the server's own SHA-256 of it
  where it keeps one, else a full read) and replaces a corrupted one with a conditional PUT or
  CompleteMultipartUpload keyed on the bad object's ETag (``If-Match``), so a concurrent repair is never
  overwritten. :meth:`S3Backend.restore_blob` puts back an intact noncurrent version (bucket versioning).
- A write whose response was lost (the connection dropped after the server acted, past botocore's retries)
  is resolved by reading what is there, not reported as a failure.
- Connection failures fail fast: an endpoint that refuses or cannot be reached is tried ``CONNECT_ATTEMPTS``
  times in all (``CONNECT_TIMEOUT`` s each), while throttling, 5xx and dropped connections get botocore's
  standard ``MAX_ATTEMPTS``.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import contextlib
import hashlib
import http.client
import os
import random
import threading
import time
import zlib
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions as bexc
import urllib3.exceptions

from mlstack.artifacts._base import Backend, BlobCorrupt, BlobMissing, Progress, mismatch, sha256_file
from mlstack.artifacts._model import blob_key
from mlstack.errors import (
    BackendError,
    ConflictError,
    CredentialsError,
    IntegrityError,
    NotFoundError,
    UsageError,
)

SINGLE_PUT_MAX = 16 << 20  # above this, multipart
PART_SIZE = 8 << 20  # smallest part; measured best against SeaweedFS on loopback (16-64 MiB were slower)
MAX_PARTS = 1000  # parts grow past PART_SIZE so a big file needs at most this many (S3 allows 10,000)
HEAD_FIRST_MIN = 1 << 20  # from this size, ask whether a blob exists before sending its bytes
TRANSFER_THREADS = 10
POOL_CONNECTIONS = 64
MAX_ATTEMPTS = 9  # attempts per request (the first and 8 retries) for throttling, 5xx and dropped connections
CONNECT_ATTEMPTS = 2  # attempts per request when the endpoint refuses or cannot be reached
CONNECT_TIMEOUT = 5  # seconds to open a connection
READ_TIMEOUT = 120
# a ranged read lands, is written and is hashed in pieces this big, so the hash reads bytes still in the CPU's
# cache (256 KiB: verified 512 MiB get 0.83 against 0.94 s and 1.09 against 1.42 s with 1 MiB, medians of 6
# paired rounds at load 1-7; 4 MiB was slower still)
RANGE_CHUNK = 256 << 10
BODY_ATTEMPTS = 4  # reads of one object (or part) whose body breaks off, is short or fails its hash

_clients: dict[tuple[str | None, ...], Any] = {}
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
_BAD_BODY = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
_CONFLICT = {"ConditionalRequestConflict", "409", "OperationAborted"}
# what reading a response body raises when the connection drops or the body is cut short
_BODY_ERRORS = (
    bexc.IncompleteReadError,
    bexc.ResponseStreamingError,
    bexc.ReadTimeoutError,
    bexc.ConnectionClosedError,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
    http.client.HTTPException,
)


def _creds_key() -> str:
    creds = "|".join(
        os.environ.get(v, "")
        for v in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    )
    return hashlib.sha256(creds.encode()).hexdigest()


# settings under which botocore's endpoint and transport resolution decides, so the boto3 client carries
# the requests: endpoint overrides, FIPS/dual-stack endpoints, HTTP proxies
_BOTO3_ONLY_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
)


def engine_name(endpoint_url: str | None, region: str) -> tuple[str, str]:
    """Which client carries an endpoint's requests: ``("http", why)`` for the transfer engine, or
    ``("boto3", why)`` where it does not fit (see :mod:`mlstack.artifacts._s3http`)."""
    choice = os.environ.get("MLSTACK_S3_ENGINE", "").strip().lower()
    if choice in ("boto3", "botocore"):
        return "boto3", "MLSTACK_S3_ENGINE=boto3"
    if choice not in ("", "auto", "http", "engine"):
        raise UsageError(
            f"MLSTACK_S3_ENGINE={choice!r} is not an S3 engine",
            fix="set it to 'http' (the transfer engine, the default) or 'boto3', or unset it",
        )
    if choice in ("", "auto"):
        forced = [v for v in _BOTO3_ONLY_ENV if os.environ.get(v) and not (endpoint_url and "ENDPOINT" in v)]
        if forced:
            return "boto3", f"{forced[0]} is set (botocore resolves it)"
        if not endpoint_url and (not region or region.startswith(("us-iso", "eu-isoe"))):
            return "boto3", f"region {region!r} is outside the partitions the engine addresses"
    try:
        import mlstack.artifacts._s3http  # noqa: F401 - urllib3 and botocore's exceptions
    except ImportError as exc:  # pragma: no cover - both come with boto3
        return "boto3", f"the engine cannot be imported: {exc}"
    return "http", "default"


def engine_client(endpoint_url: str | None, region: str) -> Any:
    """The process-wide client for an endpoint and region: the transfer engine, or the boto3 client where
    the engine does not fit (:func:`engine_name`). Both answer the same calls the same way."""
    kind, _why = engine_name(endpoint_url, region)
    if kind == "boto3":
        return shared_client(endpoint_url, region)
    key = ("engine", endpoint_url, region, _creds_key())
    with _clients_lock:
        if key not in _clients:
            from mlstack.artifacts._s3http import Engine

            _clients[key] = Engine(
                endpoint_url,
                region,
                pool_connections=POOL_CONNECTIONS,
                max_attempts=MAX_ATTEMPTS,
                connect_attempts=CONNECT_ATTEMPTS,
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=READ_TIMEOUT,
                fallback=lambda: shared_client(endpoint_url, region),
            )
        return _clients[key]


def shared_client(endpoint_url: str | None, region: str) -> Any:
    """The process-wide boto3 S3 client for an endpoint, region and set of credentials in the environment
    (the engine's fallback)."""
    key = (endpoint_url, region, _creds_key())
    with _clients_lock:
        if key not in _clients:
            import boto3
            from botocore.config import Config

            cfg = Config(
                region_name=region,
                max_pool_connections=POOL_CONNECTIONS,
                # 503 SlowDown, resets, timeouts; total_max_attempts counts the first attempt (max_attempts would not)
                retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=READ_TIMEOUT,
                tcp_keepalive=True,
                # we verify SHA-256 end to end ourselves; skip botocore's extra CRC pass on two cores
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"} if endpoint_url else {},
            )
            session = boto3.session.Session()
            client = session.client("s3", endpoint_url=endpoint_url, config=cfg)
            client.meta.events.register_first("needs-retry.s3", _fail_fast)
            _clients[key] = client
        return _clients[key]


def _fail_fast(
    attempts: int = 1, caught_exception: BaseException | None = None, **_: Any
) -> float | bool | None:
    """botocore ``needs-retry`` hook, ahead of the standard one: bound retries of failed connections.

    An endpoint that refuses connections (nothing listening, a wrong port or host) or does not answer the
    connect gets ``CONNECT_ATTEMPTS`` attempts, a short pause apart, instead of the standard 9 with
    exponential back-off (6-10 s before the first error line). Returning False stops botocore's retries;
    None leaves the decision to the standard handler.
    """
    if not isinstance(caught_exception, bexc.ConnectionError):  # refused, unreachable, connect timeout
        return None
    if attempts >= CONNECT_ATTEMPTS:
        return False
    return 0.1 + random.random() * 0.2


def part_size(size: int) -> int:
    """Part size for a multipart transfer of ``size`` bytes: PART_SIZE, larger for very big files."""
    return max(PART_SIZE, -(-size // MAX_PARTS))


def _crc32(data: bytes | memoryview) -> str:
    """Base64 of the big-endian CRC-32 of ``data`` (the form of ``x-amz-checksum-crc32``)."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _part_digests(fd: int, size: int, part: int, algorithm: str) -> list[str]:
    """Base64 CRC-32 (``algorithm`` "crc32") or SHA-256 ("sha256") of each ``part``-byte part of ``fd``, in
    order, read in 4 MiB chunks into one reused buffer."""
    out: list[str] = []
    buf = bytearray(4 << 20)
    view = memoryview(buf)
    for start in range(0, size, part):
        end = min(start + part, size)
        crc, sha = 0, hashlib.sha256()
        offset = start
        while offset < end:
            n = os.preadv(fd, [view[: min(len(buf), end - offset)]], offset)
            if not n:
                break
            if algorithm == "crc32":
                crc = zlib.crc32(view[:n], crc)
            else:
                sha.update(view[:n])
            offset += n
        digest = crc.to_bytes(4, "big") if algorithm == "crc32" else sha.digest()
        out.append(base64.b64encode(digest).decode())
    return out


def _composite(part_sums: list[str], algorithm: str) -> str:
    """S3's COMPOSITE checksum of a multipart object: the checksum of the parts' checksums, ``-<parts>``."""
    raw = b"".join(base64.b64decode(p) for p in part_sums)
    outer = zlib.crc32(raw).to_bytes(4, "big") if algorithm == "crc32" else hashlib.sha256(raw).digest()
    return f"{base64.b64encode(outer).decode()}-{len(part_sums)}"


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
        self.client = engine_client(endpoint_url, region)
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
        if isinstance(exc, bexc.ConnectionError | bexc.ConnectionClosedError):
            tries = CONNECT_ATTEMPTS if isinstance(exc, bexc.ConnectionError) else MAX_ATTEMPTS
            return BackendError(
                f"cannot reach S3{endpoint} for {op} on {where} ({tries} attempts): {exc}",
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

    # ---- reading, with bodies fetched again when they break off
    def _read(
        self,
        key: str,
        op_key: str,
        *,
        rng: tuple[int, int] | None = None,
        if_match: str | None = None,
        version_id: str | None = None,
        into: memoryview | None = None,
        sink: Callable[[int, int], None] | None = None,
    ) -> tuple[bytes, str]:
        """GetObject and read its body: ``(bytes, etag)``. With ``into`` (a buffer as long as ``rng``) the range
        is read into it instead, chunk by chunk, ``sink(offset, length)`` called as each chunk lands, and the
        bytes returned are empty.

        botocore retries a request until its headers arrive; a body that then breaks off (reset, timeout,
        fewer bytes than Content-Length) is not retried by it, so it is fetched again here, up to
        ``BODY_ATTEMPTS`` reads. ``rng``: an inclusive byte range whose length is also checked; read into a
        buffer, a range that broke off is resumed where it stopped (the bytes already received - and passed
        to ``sink`` - are never replaced by another response's). ClientErrors (404, 412, 403) are raised as
        they are, for the caller to interpret.
        """
        kw: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if if_match:
            kw["IfMatch"] = if_match
        if version_id:
            kw["VersionId"] = version_id
        have = (
            0  # bytes of ``into`` filled (and passed to ``sink``), counted as they land: a body that raises
        )
        # halfway has still delivered what came before

        def landed(at: int, n: int) -> None:
            nonlocal have
            have = at + n
            if sink is not None:
                sink(at, n)

        for attempt in range(1, BODY_ATTEMPTS + 1):
            if rng is not None:
                kw["Range"] = f"bytes={rng[0] + have}-{rng[1]}"
            try:
                r = self.client.get_object(**kw)
            except bexc.ClientError:
                raise
            except bexc.BotoCoreError as exc:
                raise self._fail(exc, "GetObject", op_key) from exc
            try:
                body: bytes = b""
                problem = None
                if into is not None:
                    want = len(into) - have
                    announced = int(r.get("ContentLength", want))
                    if announced != want:  # a server that ignored the range: read none of it
                        problem = f"{announced} bytes announced for a range of {want}"
                    else:
                        _fill(r["Body"], into, have, landed)
                        if have != len(into):
                            problem = f"{have} bytes arrived for a range of {len(into)}"
                else:
                    body = r["Body"].read()
                    if rng is not None and len(body) != rng[1] - rng[0] + 1:
                        problem = f"{len(body)} bytes arrived for a range of {rng[1] - rng[0] + 1}"
            except _BODY_ERRORS as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if problem is None:
                return body, str(r.get("ETag", ""))  # read to the end: the connection went back to the pool
            with contextlib.suppress(Exception):
                r["Body"].close()  # a broken or short body: never reuse that connection
            if attempt == BODY_ATTEMPTS:
                raise BackendError(
                    f"S3 GetObject on s3://{self.bucket}/{op_key}: the body broke off {BODY_ATTEMPTS} times "
                    f"(last: {problem})",
                    fix="the connection to S3 is dropping data; retry, and check proxies between here and S3",
                )
            time.sleep(min(1.0, 0.05 * 2**attempt) * random.random())
        raise AssertionError("unreachable")  # pragma: no cover

    def _head(self, key: str) -> dict[str, Any] | None:
        """HeadObject with the stored checksums, or None when the key does not exist."""
        try:
            r: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
            return r
        except bexc.ClientError as exc:
            if self._missing(exc, key):
                return None
            raise self._fail(exc, "HeadObject", key) from exc
        except bexc.BotoCoreError as exc:
            raise self._fail(exc, "HeadObject", key) from exc

    # ---- blobs
    def has_blob(self, digest: str) -> bool:
        return self._head(self._key(blob_key(digest))) is not None

    def _blob_state(
        self,
        digest: str,
        size: int | None,
        parts: Callable[[str], str] | None = None,
        deep: bool = False,
    ) -> tuple[str, str | None]:
        """``(state, etag)`` of a stored blob: state ``missing``, ``ok`` or ``corrupt``.

        Unless ``deep``, a blob whose stored checksum equals ours is taken as verified without reading it: the
        server checked the bytes against that checksum when they were written (a single PUT's whole-object
        SHA-256, or for multipart blobs the composite of the parts' CRC-32 - or SHA-256, as earlier releases
        sent - which ``parts(algorithm)`` computes from the local file). Blobs without one
        (written by the first release, by hand, or on a server that keeps no checksums) or with another are
        read back and hashed.
        """
        key = self._key(blob_key(digest))
        for _ in range(3):
            h = self._head(key)
            if h is None:
                return "missing", None
            etag = str(h.get("ETag", ""))
            length = int(h.get("ContentLength", -1))
            if size is not None and length != size:
                return "corrupt", etag
            if not deep:
                if h.get("ChecksumSHA256") == _b64(digest):
                    return "ok", etag
                for algorithm, stored in (
                    ("crc32", h.get("ChecksumCRC32")),
                    ("sha256", h.get("ChecksumSHA256")),
                ):
                    if not stored or parts is None:
                        continue
                    # a COMPOSITE checksum ("<checksum of the parts' checksums>-<parts>"; moto leaves out the
                    # "-<parts>"), or the CRC-32 of the whole object (a FULL_OBJECT checksum)
                    ours = parts(algorithm)
                    if stored in (ours, ours.split("-")[0]) or (
                        algorithm == "crc32" and stored == parts("crc32-full")
                    ):
                        return "ok", etag
            try:
                self._hash_remote(digest, key, length, if_match=etag)
            except BlobCorrupt:
                return "corrupt", etag
            except bexc.ClientError as exc:
                if _code(exc) in _PRECONDITION or self._missing(exc, key):
                    continue  # replaced or deleted meanwhile: look again
                raise self._fail(exc, "GetObject", key) from exc
            return "ok", etag
        raise ConflictError(
            f"s3://{self.bucket}/{key} kept changing while it was being checked", fix="retry the put"
        )

    def _hash_remote(self, digest: str, key: str, size: int, *, if_match: str | None = None) -> None:
        """Read a stored blob and hash it (nothing written to disk); BlobCorrupt if it is not ``digest``."""
        if size <= SINGLE_PUT_MAX:
            for _attempt in range(BODY_ATTEMPTS):  # reads again: a bit flipped in transit is not corruption
                data, _ = self._read(key, key, if_match=if_match)
                actual = hashlib.sha256(data).hexdigest()
                if actual == digest:
                    return
            raise mismatch(f"s3://{self.bucket}/{key}", digest, actual)
        for _attempt in range(2):
            actual = self._ranged(key, size, None, None, if_match=if_match)
            if actual == digest:
                return
        raise mismatch(f"s3://{self.bucket}/{key}", digest, actual)

    def _store_blob(
        self,
        digest: str,
        size: int,
        write: Callable[[dict[str, str]], bool],
        *,
        check_first: bool,
        parts: Callable[[], str] | None = None,
    ) -> bool:
        """Create a blob, or check the one stored under its address and replace it if it is corrupted.

        ``write(cond)`` uploads the bytes under a condition (``If-None-Match: *`` to create, ``If-Match:
        <etag of the bad object>`` to repair) and returns False when the condition failed. True: bytes were
        written (a new blob or a repair).
        """
        for _ in range(4):
            if check_first:
                state, etag = self._blob_state(digest, size, parts)
                if state == "ok":
                    return False
                cond = {"IfNoneMatch": "*"} if state == "missing" else {"IfMatch": str(etag)}
            else:
                cond = {"IfNoneMatch": "*"}
            try:
                if write(cond):
                    return True
            except BackendError as exc:
                if isinstance(exc, CredentialsError | NotFoundError):
                    raise
                # the request may have landed although its answer was lost: what is there now decides
                if self._blob_state(digest, size, parts)[0] == "ok":
                    return True
                raise
            check_first = True  # the address is taken (or changed meanwhile): look at what is there
        raise ConflictError(
            f"could not store blob sha256:{digest[:16]}… in {self.location}: it kept changing",
            fix="retry the put",
        )

    def _put_single(self, key: str, body: bytes, digest: str, cond: dict[str, str]) -> bool:
        for attempt in range(1, BODY_ATTEMPTS + 1):
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, ChecksumSHA256=_b64(digest), **cond
                )
                return True
            except bexc.ClientError as exc:
                code = _code(exc)
                if (
                    code in _PRECONDITION
                    or code in _CONFLICT
                    or ("IfMatch" in cond and code in ("NoSuchKey", "404"))
                ):
                    return False  # taken (or, for a repair, changed meanwhile): the caller looks again
                if code in _BAD_BODY:
                    # the bytes were hashed in memory, so S3 received different ones: corrupted in transit
                    if attempt < BODY_ATTEMPTS:
                        continue
                    raise IntegrityError(
                        f"S3 received bytes for s3://{self.bucket}/{key} that do not hash to "
                        f"sha256:{digest[:16]}… ({BODY_ATTEMPTS} attempts)",
                        fix="the network between here and S3 corrupts data; check proxies, or use https",
                    ) from exc
                raise self._fail(exc, "PutObject", key) from exc
            except bexc.BotoCoreError as exc:
                raise self._fail(exc, "PutObject", key) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def put_bytes(self, data: bytes, digest: str | None = None) -> tuple[str, bool]:
        digest = digest or hashlib.sha256(data).hexdigest()
        key = self._key(blob_key(digest))
        written = self._store_blob(
            digest,
            len(data),
            lambda cond: self._put_single(key, data, digest, cond),
            check_first=len(data) >= HEAD_FIRST_MIN,
        )
        return digest, written

    def put_file(
        self, path: Path, *, skip: Callable[[str], bool] | None = None, progress: Progress | None = None
    ) -> tuple[str, int, bool]:
        size = os.path.getsize(path)
        if size <= SINGLE_PUT_MAX:
            with open(path, "rb") as fh:
                data = fh.read()
            digest = hashlib.sha256(data).hexdigest()
            key = self._key(blob_key(digest))
            expected = skip is not None and skip(digest)
            written = self._store_blob(
                digest,
                len(data),
                lambda cond: self._put_single(key, data, digest, cond),
                check_first=expected or len(data) >= HEAD_FIRST_MIN,
            )
            if progress:
                progress(len(data))
            return digest, len(data), written
        before = os.stat(path)
        stamp = (before.st_size, before.st_mtime_ns)
        part = part_size(before.st_size)
        # the parts' CRC-32 (sent with each part, and S3's COMPOSITE checksum) are computed by one pool thread
        # while this one hashes the whole file: two cores busy now rather than hashing during the upload
        fd = os.open(path, os.O_RDONLY)
        try:
            future = self._pool.submit(_part_digests, fd, before.st_size, part, "crc32")
            try:
                digest, size = sha256_file(path)
            finally:
                cf.wait([future])
            part_sums = future.result()
        finally:
            os.close(fd)
        if size != before.st_size:
            raise IntegrityError(
                f"{path} changed while it was being put; nothing was stored",
                fix="put it again once the file is no longer being written",
            )
        composites: dict[str, str] = {"crc32": _composite(part_sums, "crc32")}

        def composite(algorithm: str) -> str:
            """Our file's composite checksum in ``algorithm``: CRC-32 from the parts just computed; SHA-256
            (blobs stored by earlier releases) and the whole file's CRC-32 (``crc32-full``) computed from the
            file the first time they are asked for."""
            if algorithm not in composites:
                with open(path, "rb") as fh:
                    if algorithm == "crc32-full":
                        composites[algorithm] = _part_digests(fh.fileno(), size, size, "crc32")[0]
                    else:
                        sums = _part_digests(fh.fileno(), size, part, algorithm)
                        composites[algorithm] = _composite(sums, algorithm)
            return composites[algorithm]

        written = self._store_blob(
            digest,
            size,
            lambda cond: self._multipart(path, size, digest, progress, stamp, cond, part_sums, composite),
            check_first=True,
            parts=composite,
        )
        return digest, size, written

    def _multipart(
        self,
        path: Path,
        size: int,
        digest: str,
        progress: Progress | None,
        stamp: tuple[int, int],
        cond: dict[str, str],
        part_sums: list[str],
        composite: Callable[[str], str],
    ) -> bool:
        key = self._key(blob_key(digest))
        part = part_size(size)
        up = self._call(
            "CreateMultipartUpload",
            key,
            self.client.create_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            ChecksumAlgorithm="CRC32",
        )
        upload_id = up["UploadId"]
        fd = os.open(path, os.O_RDONLY)
        done = False
        # each part is read into a buffer reused from part to part (sent as it is: no bytes object per part,
        # whose fresh pages the kernel would fault in and zero each time)
        free: list[bytearray] = []
        free_lock = threading.Lock()
        try:

            def send(num: int, offset: int) -> dict[str, Any]:
                length = min(part, size - offset)
                with free_lock:
                    body = free.pop() if free and length == part else bytearray(length)
                got = os.preadv(fd, [body], offset)
                if got != length:
                    raise IntegrityError(
                        f"{path} changed while it was being put (it is shorter now); nothing was stored",
                        fix="put it again once the file is no longer being written",
                    )
                # S3 checks each part against the CRC-32 computed when the file was hashed: a part corrupted
                # in transit is refused (BadDigest) and sent again; one whose bytes changed since is refused
                # every time. (The CRC, not a SHA-256: the server verifies it at a fraction of the CPU, and the
                # blob's SHA-256 - its address - is what every read checks.)
                crc = part_sums[num - 1]
                for attempt in range(1, BODY_ATTEMPTS + 1):
                    try:
                        r = self.client.upload_part(
                            Bucket=self.bucket,
                            Key=key,
                            UploadId=upload_id,
                            PartNumber=num,
                            Body=body,
                            ChecksumCRC32=crc,
                        )
                        break
                    except bexc.ClientError as exc:
                        if _code(exc) not in _BAD_BODY:
                            raise
                        if attempt == BODY_ATTEMPTS or _crc32(body) != crc:
                            raise IntegrityError(
                                f"{path} changed while it was being put, or the network corrupts every "
                                f"upload of part {num}; nothing was stored",
                                fix="put it again once the file is no longer being written",
                            ) from exc
                if progress:
                    progress(len(body))
                if length == part:
                    with free_lock:
                        free.append(body)
                return {"PartNumber": num, "ETag": r["ETag"], "ChecksumCRC32": crc}

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
                    **cond,
                )
                done = True
                return True
            except bexc.ClientError as exc:
                code = _code(exc)
                if code in _PRECONDITION or code in _CONFLICT:
                    return False
                if code == "NoSuchUpload" and self._blob_state(digest, size, composite)[0] == "ok":
                    done = True  # a retried Complete whose first attempt succeeded
                    return True
                raise self._fail(exc, "CompleteMultipartUpload", key) from exc
            except bexc.BotoCoreError as exc:
                raise self._fail(exc, "CompleteMultipartUpload", key) from exc
        finally:
            os.close(fd)
            if not done:
                with contextlib.suppress(Exception):
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def _missing_blob(self, digest: str) -> IntegrityError:
        return BlobMissing(
            f"blob sha256:{digest[:16]}… is missing from {self.location}",
            fix="the bucket lost content a version refers to; restore it (bucket versioning) or put it again",
        )

    def get_bytes(self, digest: str) -> bytes:
        key = self._key(blob_key(digest))
        for _attempt in range(BODY_ATTEMPTS):  # reads again: a bit flipped in transit is not corruption
            try:
                data, _ = self._read(key, key)
            except bexc.ClientError as exc:
                if self._missing(exc, key):
                    raise self._missing_blob(digest) from exc
                raise self._fail(exc, "GetObject", key) from exc
            actual = hashlib.sha256(data).hexdigest()
            if actual == digest:
                return data
        raise mismatch(f"s3://{self.bucket}/{key}", digest, actual)

    def _ranged(
        self,
        key: str,
        size: int,
        fd: int | None,
        progress: Progress | None,
        *,
        if_match: str | None = None,
    ) -> str:
        """Fetch ``size`` bytes in parallel ranges (written to ``fd``) and return their SHA-256.

        The hash follows the bytes as they land: each range is read in ``RANGE_CHUNK``-sized pieces into a buffer
        reused from range to range (no fresh part-sized object per range, whose pages the kernel would fault
        in and zero), each piece written to ``fd`` and published; this thread hashes the published bytes in
        order, so hashing starts with the first piece rather than the first whole range, overlaps the
        transfer, and reads bytes still in the CPU's cache. Every hashed byte is the byte written: a range
        that breaks off resumes where it stopped (see :meth:`_read`).
        """
        part = part_size(size)
        offsets = list(range(0, size, part))
        h = hashlib.sha256()
        cond = threading.Condition()
        landed = [0] * len(offsets)  # bytes of each range written and ready to hash
        views: list[memoryview | None] = [None] * len(offsets)
        free: list[bytearray] = []

        def fetch(i: int) -> None:
            offset = offsets[i]
            length = min(offset + part, size) - offset
            with cond:
                buf = free.pop() if free else bytearray(part)
                view = views[i] = memoryview(buf)[:length]

            def sink(at: int, n: int) -> None:
                if fd is not None:
                    done = 0
                    while done < n:
                        done += os.pwrite(fd, view[at + done : at + n], offset + at + done)
                with cond:
                    landed[i] = at + n
                    cond.notify_all()

            self._read(key, key, rng=(offset, offset + length - 1), if_match=if_match, into=view, sink=sink)

        futures: dict[int, cf.Future[None]] = {}
        nxt = 0
        try:
            for i, offset in enumerate(offsets):
                while nxt < len(offsets) and nxt <= i + TRANSFER_THREADS - 1:
                    futures[nxt] = self._pool.submit(fetch, nxt)
                    nxt += 1
                length = min(offset + part, size) - offset
                hashed = 0
                while hashed < length:
                    with cond:
                        while landed[i] <= hashed and not futures[i].done():
                            cond.wait(0.5)
                        upto = landed[i]
                        view = views[i]
                    if upto <= hashed:  # the fetch ended without more bytes: it failed
                        futures.pop(i).result()
                        raise AssertionError("a range ended short without an error")  # pragma: no cover
                    assert view is not None
                    h.update(view[hashed:upto])
                    if progress:
                        progress(upto - hashed)
                    hashed = upto
                futures.pop(i).result()
                with cond:
                    done_view, views[i] = views[i], None
                    assert done_view is not None
                    buf = done_view.obj
                    done_view.release()
                    free.append(buf)  # type: ignore[arg-type]
        finally:
            # nothing may still write to ``fd`` once the caller closes it: cancel what has not started, wait
            # for the rest
            for f in futures.values():
                f.cancel()
            cf.wait(list(futures.values()))
        return h.hexdigest()

    def get_to_file(self, digest: str, size: int, dest: Path, progress: Progress | None = None) -> None:
        key = self._key(blob_key(digest))
        if size <= SINGLE_PUT_MAX:
            data = self.get_bytes(digest)
            with open(dest, "wb") as fh:
                fh.write(data)
            if progress:
                progress(len(data))
            return
        for attempt in range(2):  # a second download tells a bit flipped in transit from a corrupted blob
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.ftruncate(fd, size)
                actual = self._ranged(key, size, fd, progress if attempt == 0 else None)
            except bexc.ClientError as exc:
                dest.unlink(missing_ok=True)
                if _code(exc) in ("NoSuchKey", "404", "InvalidRange", "416"):
                    raise self._missing_blob(digest) from exc
                raise self._fail(exc, "GetObject", key) from exc
            except BaseException:
                dest.unlink(missing_ok=True)
                raise
            finally:
                os.close(fd)
            if actual == digest:
                return
        dest.unlink(missing_ok=True)
        raise mismatch(f"s3://{self.bucket}/{key}", digest, actual)

    def check_blob(self, digest: str, size: int | None = None) -> str:
        """A full read of the stored blob, whatever checksum the server keeps."""
        return self._blob_state(digest, size, deep=True)[0]

    # ---- repair from bucket versioning
    def _versions(self, key: str) -> list[dict[str, Any]]:
        """Noncurrent versions of ``key``, newest first (empty when the bucket keeps no versions)."""
        out: list[dict[str, Any]] = []
        try:
            pages = self.client.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=key)
            for page in pages:
                out.extend(v for v in page.get("Versions", []) if v["Key"] == key and not v.get("IsLatest"))
        except bexc.ClientError as exc:
            if _code(exc) in _CRED_CODES or _code(exc) in ("NotImplemented", "501"):
                return []
            raise self._fail(exc, "ListObjectVersions", key) from exc
        except bexc.BotoCoreError as exc:
            raise self._fail(exc, "ListObjectVersions", key) from exc
        return sorted(out, key=lambda v: v["LastModified"], reverse=True)

    def _restore(self, key: str, good: Callable[[str, int], bool]) -> bool:
        """Copy the newest noncurrent version for which ``good(version_id, size)`` holds over the current one,
        conditioned on the current ETag (a concurrent repair or put is never overwritten)."""
        h = self._head(key)
        current = str(h["ETag"]) if h else None
        for v in self._versions(key):
            if not good(v["VersionId"], int(v.get("Size", 0))):
                continue
            cond = {"CopySourceIfMatch": v["ETag"]}
            cond.update({"IfMatch": current} if current else {"IfNoneMatch": "*"})
            try:
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=key,
                    CopySource={"Bucket": self.bucket, "Key": key, "VersionId": v["VersionId"]},
                    **cond,
                )
                return True
            except bexc.ClientError as exc:
                if _code(exc) in _PRECONDITION:
                    return False  # it changed meanwhile: the caller checks again
                raise self._fail(exc, "CopyObject", key) from exc
            except bexc.BotoCoreError as exc:
                raise self._fail(exc, "CopyObject", key) from exc
        return False

    def restore_blob(self, digest: str) -> bool:
        key = self._key(blob_key(digest))

        def good(version_id: str, size: int) -> bool:
            if size > (5 << 30):  # CopyObject's limit; put the content again instead
                return False
            h = hashlib.sha256()
            for off in range(0, max(size, 1), PART_SIZE):
                end = min(off + PART_SIZE, size) - 1
                if end < off:
                    break
                body, _ = self._read(key, key, rng=(off, end), version_id=version_id)
                h.update(body)
            return h.hexdigest() == digest

        return self._restore(key, good)

    def restore_doc(self, key: str, valid: Callable[[bytes], bool]) -> bool:
        k = self._key(key)
        return self._restore(k, lambda vid, size: valid(self._read(k, k, version_id=vid)[0]))

    # ---- documents
    def create_doc(self, key: str, data: bytes) -> bool:
        return self.replace_doc(key, data, None)

    def read_doc(self, key: str) -> tuple[bytes, str] | None:
        k = self._key(key)
        try:
            return self._read(k, k)
        except bexc.ClientError as exc:
            if self._missing(exc, k):
                return None
            raise self._fail(exc, "GetObject", k) from exc

    def replace_doc(self, key: str, data: bytes, etag: str | None) -> bool:
        k = self._key(key)
        cond = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        sha = _b64(hashlib.sha256(data).hexdigest())
        for attempt in range(1, BODY_ATTEMPTS + 1):
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=k,
                    Body=data,
                    ContentType="application/json",
                    ChecksumSHA256=sha,
                    **cond,
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
                if code in _BAD_BODY and attempt < BODY_ATTEMPTS:
                    continue  # corrupted in transit and refused: send it again
                raise self._fail(exc, "PutObject", k) from exc
            except bexc.BotoCoreError as exc:
                raise self._fail(exc, "PutObject", k) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _pages(self, **kw: Any) -> Iterator[dict[str, Any]]:
        try:
            yield from self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, **kw)
        except (bexc.ClientError, bexc.BotoCoreError) as exc:
            raise self._fail(exc, "ListObjectsV2", kw.get("Prefix")) from exc

    def iter_keys(self, prefix: str) -> Iterator[str]:
        """Keys in S3's order (sorted), one page at a time: a first small page (a listing of the newest runs
        often needs no more), then full pages of 1000."""
        full = self._key(prefix)
        cut = len(self.prefix) + 1 if self.prefix else 0
        token: str | None = None
        size = 100
        while True:
            kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full, "MaxKeys": size}
            if token:
                kw["ContinuationToken"] = token
            page = self._call("ListObjectsV2", full, self.client.list_objects_v2, **kw)
            for o in page.get("Contents", []):
                yield o["Key"][cut:]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            size = 1000

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


def _fill(body: Any, view: memoryview, at: int = 0, sink: Callable[[int, int], None] | None = None) -> int:
    """Read a response body into ``view[at:]``, ``RANGE_CHUNK`` bytes at a time, calling ``sink(offset, length)``
    as each chunk lands: the number of bytes read (fewer than asked when the body broke off)."""
    fill = getattr(body, "fill", None)
    got = 0
    while at + got < len(view):
        want = min(RANGE_CHUNK, len(view) - at - got)
        if fill is not None:  # the engine's body: straight from the socket into the buffer
            n: int = fill(view[at + got : at + got + want])
        else:  # botocore's StreamingBody
            data = body.read(want)
            n = len(data)
            view[at + got : at + got + n] = data
        if not n:
            break
        if sink is not None:
            sink(at + got, n)
        got += n
    return got


def _bounded_map(
    pool: cf.ThreadPoolExecutor, fn: Callable[..., Any], items: list[Any], window: int
) -> Generator[Any, None, None]:
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
