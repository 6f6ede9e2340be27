"""Fixtures of the artifact tests: one store per test on each tier (local folder, moto, SeaweedFS)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BACKENDS = ["local", "moto", pytest.param("seaweedfs", marks=pytest.mark.seaweedfs)]


@dataclass
class StoreEnv:
    """A fresh artifact store and how to reach it from this process or a subprocess."""

    kind: str  # local | moto | seaweedfs
    manifest: dict[str, Any]
    manifest_path: Path
    env: dict[str, str]  # environment a subprocess needs (credentials, MLSTACK_MANIFEST)
    raw: Any = None  # a boto3 client for S3 tiers, for tampering and counting objects
    bucket: str | None = None
    prefix: str = ""

    def store(self) -> Any:
        from mlstack import artifacts, manifest

        return artifacts.store(manifest.from_dict(self.manifest))

    def object_keys(self) -> list[str]:
        """Every key the store holds (S3: listed raw; local: files under the root, minus tmp/ and locks)."""
        if self.raw is None:
            root = Path(self.manifest["artifacts"]["root"])
            return sorted(
                p.relative_to(root).as_posix()
                for p in root.rglob("*")
                if p.is_file() and not p.name.endswith(".lock") and "tmp" not in p.relative_to(root).parts[:1]
            )
        pages = self.raw.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def read_raw(self, key: str) -> bytes:
        """A stored object's bytes, read behind the store's back."""
        if self.raw is None:
            return (Path(self.manifest["artifacts"]["root"]) / key).read_bytes()
        full = f"{self.prefix}/{key}" if self.prefix else key
        data: bytes = self.raw.get_object(Bucket=self.bucket, Key=full)["Body"].read()
        return data

    def flip(self, key: str, byte: int = -1) -> None:
        """Flip the low bit of one byte of a stored object (default: the last byte)."""
        data = bytearray(self.read_raw(key))
        data[byte] ^= 1
        self.tamper(key, bytes(data))

    def tamper(self, key: str, data: bytes) -> None:
        """Overwrite a stored object behind the store's back (to simulate corruption)."""
        if self.raw is None:
            p = Path(self.manifest["artifacts"]["root"]) / key
            p.chmod(0o644)
            p.write_bytes(data)
        else:
            full = f"{self.prefix}/{key}" if self.prefix else key
            self.raw.put_object(Bucket=self.bucket, Key=full, Body=data)


def _manifest(artifacts: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": 1,
        "project": "t",
        "stack": "t",
        "artifacts": artifacts,
        "data": {"kind": "local", "path": "/tmp/unused.duckdb"},
        "compute": {"kind": "local"},
        "orchestrator": {"kind": "local"},
    }


@pytest.fixture(autouse=True)
def _fresh_store_cache() -> Iterator[None]:
    """Stores are cached per manifest section in a process; tests must not share them across tiers."""
    import mlstack.artifacts as arts

    arts._stores.clear()
    yield
    for st in arts._stores.values():
        st.close()
    arts._stores.clear()


def make_env(
    kind: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    *,
    versioned: bool = False,
) -> StoreEnv:
    env: dict[str, str] = {}
    raw = None
    bucket = None
    prefix = ""
    if kind == "local":
        section: dict[str, Any] = {"kind": "local", "root": str(tmp_path / "store")}
    elif kind == "moto":
        endpoint = request.getfixturevalue("moto_s3")
        import boto3

        raw = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        bucket = f"art-{uuid.uuid4().hex[:12]}"
        raw.create_bucket(Bucket=bucket)
        if versioned:
            raw.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        prefix = "team/ml"
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        section = {
            "kind": "s3",
            "bucket": bucket,
            "prefix": prefix,
            "region": "us-east-1",
            "endpoint_url": endpoint,
        }
    elif kind == "seaweedfs":
        sw = request.getfixturevalue("seaweedfs")
        bucket = sw.create_bucket(versioned=versioned)
        raw = sw.client()
        prefix = "art"
        env = {k: v for k, v in sw.env().items() if k != "AWS_ENDPOINT_URL_S3"}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        section = {
            "kind": "s3",
            "bucket": bucket,
            "prefix": prefix,
            "region": sw.region,
            "endpoint_url": sw.endpoint_url,
        }
    else:  # pragma: no cover
        raise ValueError(kind)
    m = _manifest(section)
    path = tmp_path / "mlstack.json"
    path.write_text(json.dumps(m))
    monkeypatch.setenv("MLSTACK_MANIFEST", str(path))
    env["MLSTACK_MANIFEST"] = str(path)
    return StoreEnv(kind, m, path, env, raw, bucket, prefix)


@pytest.fixture(params=BACKENDS)
def art(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StoreEnv:
    """A fresh store on each tier; MLSTACK_MANIFEST points at it, so ``mlstack.artifacts.*`` uses it."""
    return make_env(request.param, tmp_path, monkeypatch, request)
