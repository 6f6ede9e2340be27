"""The S3 transfer engine (mlstack/artifacts/_s3http.py) and its boto3 fallback.

The store's behaviour on the engine is what tests/artifacts/test_store.py, test_integrity.py and
test_reliability.py check (the engine is the default client); here: its signature equals botocore's, it is
the client in use, listing through it builds no botocore client, and every way of falling back to boto3
(asked for, forced by the environment, a server refusing the engine's request) keeps the store working.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from mlstack import errors
from tests.artifacts.conftest import StoreEnv, make_env
from tests.artifacts.faultproxy import FaultProxy, only

CASES = [
    # method, url, headers, body
    ("GET", "http://127.0.0.1:8333/bkt/art/blobs/sha256/ab/abcdef", {"Range": "bytes=0-99"}, b""),
    (
        "PUT",
        "http://127.0.0.1:8333/bkt/art/artifacts/m/versions/000001.json",
        {"If-None-Match": "*", "Content-Type": "application/json"},
        b'{"a": 1}',
    ),
    (
        "PUT",
        "http://localhost:9000/bkt/k%40ey/with%20space?partNumber=3&uploadId=a%2Fb%3D",
        {"x-amz-checksum-sha256": "AAAA"},
        b"x" * 1000,
    ),
    (
        "GET",
        "http://127.0.0.1:8333/bkt?list-type=2&prefix=art%2Fruns%2F&max-keys=100&encoding-type=url",
        {},
        b"",
    ),
    (
        "POST",
        "https://bkt.s3.eu-west-1.amazonaws.com/blob?uploads",
        {"x-amz-checksum-algorithm": "SHA256"},
        b"",
    ),
]


@pytest.mark.parametrize("token", [None, "session-token/with+chars="])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_the_signature_is_botocores(case: int, token: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same request, same time, same keys: the Authorization header equals botocore's S3SigV4Auth."""
    from urllib.parse import parse_qsl, urlsplit

    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from mlstack.artifacts._s3http import Signer

    method, url, headers, body = CASES[case]
    when = datetime(2026, 11, 30, 12, 34, 56)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: when)
    req = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    botocore.auth.S3SigV4Auth(Credentials("AKIDEXAMPLE", "wJalr/SECRET", token), "s3", "eu-west-1").add_auth(
        req
    )
    u = urlsplit(url)
    ours = Signer("eu-west-1").sign(
        method,
        u.netloc,
        u.path or "/",
        parse_qsl(u.query, keep_blank_values=True),
        headers,
        hashlib.sha256(body).hexdigest(),
        ("AKIDEXAMPLE", "wJalr/SECRET", token),
        now=when.replace(tzinfo=__import__("datetime").timezone.utc).timestamp(),
    )
    assert ours["authorization"] == req.headers["Authorization"]
    assert ours["x-amz-date"] == req.headers["X-Amz-Date"]
    if token:
        assert ours["x-amz-security-token"] == token


@pytest.fixture(params=["moto", pytest.param("seaweedfs", marks=pytest.mark.seaweedfs)])
def s3env(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StoreEnv:
    return make_env(request.param, tmp_path, monkeypatch, request)


def _roundtrip(st: object, tmp_path: Path) -> None:
    """Bytes, a folder, a multipart file and an alias through a store, read back verified."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        for i in range(20):
            fh.write(bytes([i]) * (1 << 20))
    d = tmp_path / "d"
    d.mkdir()
    for i in range(12):
        (d / f"f{i}.txt").write_text(f"file {i}\n" * 100)
    v1 = st.put("m", b"payload", alias="prod")  # type: ignore[attr-defined]
    st.put("m", b"payload 2")  # type: ignore[attr-defined]
    st.put("big", big)  # type: ignore[attr-defined]
    st.put("dir", d)  # type: ignore[attr-defined]
    assert st.load("m:prod") == b"payload" and st.load("m") == b"payload 2"  # type: ignore[attr-defined]
    assert st.get("big", tmp_path / "big-out").read_bytes() == big.read_bytes()  # type: ignore[attr-defined]
    out = st.get("dir", tmp_path / "d-out")  # type: ignore[attr-defined]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in d.iterdir())
    assert [v.version for v in st.ls("m")] == [2, 1] and v1.version == 1  # type: ignore[attr-defined]
    assert st.scan().ok  # type: ignore[attr-defined]


def test_the_engine_is_the_default_client(s3env: StoreEnv, tmp_path: Path) -> None:
    from mlstack.artifacts._s3http import Engine

    st = s3env.store()
    assert isinstance(st.backend.client, Engine) and st.backend.client.engine == "http"
    _roundtrip(st, tmp_path)
    assert st.backend.client.engine == "http"  # nothing was handed over


def test_asking_for_boto3_uses_the_boto3_client(
    s3env: StoreEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSTACK_S3_ENGINE", "boto3")
    st = s3env.store()
    assert type(st.backend.client).__module__.startswith("botocore")
    _roundtrip(st, tmp_path)


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({"HTTPS_PROXY": "http://proxy.internal:3128"}, "HTTPS_PROXY"),
        ({"AWS_USE_FIPS_ENDPOINT": "true"}, "AWS_USE_FIPS_ENDPOINT"),
        ({"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"}, "AWS_ENDPOINT_URL_S3"),
    ],
)
def test_settings_botocore_resolves_fall_back_to_boto3(
    env: dict[str, str], why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlstack.artifacts.s3 import engine_name

    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "MLSTACK_S3_ENGINE"):
        monkeypatch.delenv(k, raising=False)
    assert engine_name(None, "eu-west-1")[0] == "http"
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    kind, reason = engine_name(None, "eu-west-1")
    assert kind == "boto3" and why in reason
    if why == "AWS_ENDPOINT_URL_S3":  # the manifest's endpoint_url wins over the variable, as in boto3
        assert engine_name("http://127.0.0.1:8333", "us-east-1")[0] == "http"


def test_an_unknown_engine_name_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlstack.artifacts.s3 import engine_name

    monkeypatch.setenv("MLSTACK_S3_ENGINE", "crt2")
    with pytest.raises(errors.UsageError, match="MLSTACK_S3_ENGINE='crt2'") as e:
        engine_name(None, "us-east-1")
    assert "boto3" in (e.value.fix or "")


def test_a_refused_request_hands_over_to_boto3(s3env: StoreEnv, tmp_path: Path) -> None:
    """AWS answers AuthorizationHeaderMalformed (or a redirect) to a request signed for the wrong region; boto3
    follows its hint, so the engine hands that call and every later one to the boto3 client."""
    from mlstack import artifacts, manifest

    endpoint = s3env.manifest["artifacts"]["endpoint_url"]
    with FaultProxy(endpoint, only("", "wrong-region", times=1, method="GET")) as p:
        m = json.loads(json.dumps(s3env.manifest))
        m["artifacts"]["endpoint_url"] = p.url
        st = artifacts.store(manifest.from_dict(m))
        assert st.backend.client.engine == "http"
        _roundtrip(st, tmp_path)
        assert p.counts["wrong-region"] == 1
        assert st.backend.client.engine == "boto3 (handed over)"
        assert type(st.backend.client._delegate).__module__.startswith("botocore")


def test_listing_through_the_engine_builds_no_botocore_client(s3env: StoreEnv) -> None:
    """`mlstack runs ls` / `artifacts ls` against S3 used to pay boto3's import and client creation first."""
    s3env.store().put("m", b"x")
    code = (
        "import sys, mlstack.artifacts as a; print(len(a.store().ls('m'))); "
        "print(sorted(m for m in ('boto3', 'botocore.client', 'botocore.session') if m in sys.modules))"
    )
    env = {**__import__("os").environ, **s3env.env}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["1", "[]"]


def test_an_unchanged_multipart_put_is_checked_by_its_stored_checksum_alone(
    s3env: StoreEnv, tmp_path: Path
) -> None:
    """A multipart blob carries its parts' CRC-32 (S3 keeps their COMPOSITE): putting the same file again
    compares that with the local file's and reads nothing back. A blob stored by an earlier release (parts'
    SHA-256) is recognised the same way; one whose composite differs is read back and hashed."""
    import base64

    from mlstack.artifacts._model import blob_key
    from mlstack.artifacts.s3 import part_size

    st = s3env.store()
    src = tmp_path / "big.bin"
    with open(src, "wb") as fh:
        for i in range(20):
            fh.write(bytes([i + 1]) * (1 << 20))
    v = st.put("big", src)
    key = f"{s3env.prefix}/{blob_key(v.digest)}"
    head = s3env.raw.head_object(Bucket=s3env.bucket, Key=key, ChecksumMode="ENABLED")
    # SeaweedFS (and S3) keep the parts' composite, "<crc>-3"; moto the whole object's CRC-32
    assert head.get("ChecksumCRC32") and "ChecksumSHA256" not in head

    gets: list[str] = []
    st.backend.client.meta.events.register("before-send.s3.GetObject", lambda **kw: gets.append("get"))
    assert st.put("big", src).unchanged and gets == []

    # the same bytes as an earlier release stored them: parts with their SHA-256
    data, part = src.read_bytes(), part_size(src.stat().st_size)
    raw = s3env.raw
    up = raw.create_multipart_upload(Bucket=s3env.bucket, Key=key, ChecksumAlgorithm="SHA256")["UploadId"]
    parts = []
    for n, off in enumerate(range(0, len(data), part), 1):
        sha = base64.b64encode(hashlib.sha256(data[off : off + part]).digest()).decode()
        r = raw.upload_part(
            Bucket=s3env.bucket,
            Key=key,
            UploadId=up,
            PartNumber=n,
            Body=data[off : off + part],
            ChecksumSHA256=sha,
        )
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": sha})
    raw.complete_multipart_upload(Bucket=s3env.bucket, Key=key, UploadId=up, MultipartUpload={"Parts": parts})
    assert "ChecksumSHA256" in raw.head_object(Bucket=s3env.bucket, Key=key, ChecksumMode="ENABLED")
    assert st.put("big", src).unchanged and gets == []

    s3env.flip(blob_key(v.digest), byte=5)  # one plain PUT: no composite to compare, so it is read
    assert st.put("big", src).unchanged and gets
    assert st.get("big", tmp_path / "out.bin").read_bytes() == data
