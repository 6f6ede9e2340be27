"""The artifact store's behaviour, on every tier: local folder, moto, and SeaweedFS (real S3 with SigV4)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path

import pytest

import mlstack
from mlstack import errors
from mlstack.artifacts import parse_ref
from tests.artifacts.conftest import StoreEnv


def _file(path: Path, size: int, seed: int = 0) -> Path:
    # deterministic, incompressible-looking content without holding a PRNG stream
    block = hashlib.sha256(f"seed-{seed}".encode()).digest() * 2048  # 64 KiB
    with open(path, "wb") as fh:
        left = size
        i = 0
        while left > 0:
            chunk = block[: min(left, len(block))]
            fh.write(bytes([i & 0xFF]) + chunk[1:] if chunk else b"")
            left -= len(chunk)
            i += 1
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_file_roundtrip_20mb_multipart_and_unchanged_put_writes_nothing(
    art: StoreEnv, tmp_path: Path
) -> None:
    src = _file(tmp_path / "model.bin", 20_000_000, seed=1)
    v = mlstack.artifacts.put("churn-model", src, metadata={"auc": 0.91})
    assert (v.name, v.version, v.kind, v.size) == ("churn-model", 1, "file", 20_000_000)
    assert v.digest == _sha(src)
    assert v.filename == "model.bin" and v.metadata == {"auc": 0.91}
    keys = art.object_keys()
    assert any(k.endswith(f"blobs/sha256/{v.digest[:2]}/{v.digest}") for k in keys)

    again = mlstack.artifacts.put("churn-model", str(src), metadata={"auc": 0.91})
    assert again.version == 1 and again.unchanged
    assert art.object_keys() == keys  # nothing written

    out = mlstack.artifacts.get("churn-model", tmp_path / "out" / "m.bin")
    assert out == tmp_path / "out" / "m.bin"
    assert _sha(out) == v.digest
    # into an existing folder: under the original file name
    (tmp_path / "into").mkdir()
    assert mlstack.artifacts.get("churn-model@1", tmp_path / "into") == tmp_path / "into" / "model.bin"
    assert not [p for p in (tmp_path / "into").iterdir() if p.name.startswith(".")]  # no temp files left


def test_directory_roundtrip_and_dedup_of_unchanged_files(art: StoreEnv, tmp_path: Path) -> None:
    d = tmp_path / "ds"
    (d / "sub" / "deeper").mkdir(parents=True)
    for i in range(30):
        (d / "sub" / f"f{i}.txt").write_text(f"row {i}\n" * (i + 1))
    (d / "empty").write_bytes(b"")
    _file(d / "sub" / "deeper" / "big.bin", 3_000_000, seed=2)
    (d / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(d / "run.sh", 0o755)

    v1 = mlstack.artifacts.put("features", d)
    assert v1.kind == "dir" and v1.files == 33
    out = tmp_path / "restored"
    mlstack.artifacts.get("features", out)
    for p in d.rglob("*"):
        if p.is_file():
            q = out / p.relative_to(d)
            assert q.read_bytes() == p.read_bytes(), p
    assert os.access(out / "run.sh", os.X_OK)

    before = set(art.object_keys())
    (d / "sub" / "f3.txt").write_text("changed\n")
    v2 = mlstack.artifacts.put("features", d)
    assert v2.version == 2 and v2.digest != v1.digest
    new = set(art.object_keys()) - before
    # one changed file, one new listing, one version record: the other 32 files were not uploaded again
    assert len(new) == 3, sorted(new)
    assert sum("/versions/" in k for k in new) == 1


def test_bytes_objects_and_pickle_only_when_asked(art: StoreEnv) -> None:
    vb = mlstack.artifacts.put("blob", b"\x00\x01payload")
    assert vb.kind == "bytes"
    assert mlstack.artifacts.load("blob") == b"\x00\x01payload"
    vo = mlstack.artifacts.put("params", {"lr": 0.1, "layers": [3, 4]}, pickle=True)
    assert vo.kind == "object"
    assert mlstack.artifacts.load("params") == {"lr": 0.1, "layers": [3, 4]}
    with pytest.raises(errors.UsageError, match="pickle=True"):
        mlstack.artifacts.put("params", {"lr": 0.2})
    with pytest.raises(errors.UsageError, match="no such file"):
        mlstack.artifacts.put("params", "does-not-exist.pkl")
    d_v = mlstack.artifacts.put("folder", Path(__file__).parent)
    with pytest.raises(errors.UsageError, match="directory"):
        mlstack.artifacts.load(d_v)


def test_versions_refs_and_digest_prefixes(art: StoreEnv) -> None:
    # two payloads whose digests share their first 4 hex characters, to make a prefix ambiguous
    seen: dict[str, bytes] = {}
    pair = None
    for i in itertools.count():
        data = f"payload-{i}".encode()
        p = hashlib.sha256(data).hexdigest()[:4]
        if p in seen:
            pair = (seen[p], data)
            break
        seen[p] = data
    assert pair
    v1 = mlstack.artifacts.put("m", pair[0])
    v2 = mlstack.artifacts.put("m", pair[1])
    v3 = mlstack.artifacts.put("m", b"third")
    assert [v1.version, v2.version, v3.version] == [1, 2, 3]
    assert mlstack.artifacts.show("m").version == 3
    assert mlstack.artifacts.show("m@2").digest == v2.digest
    assert mlstack.artifacts.show("m@v1").digest == v1.digest
    assert mlstack.artifacts.show(f"m@{v2.digest[:10]}").version == 2
    assert mlstack.artifacts.show(f"m@sha256:{v1.digest[:8]}").version == 1
    with pytest.raises(errors.UsageError, match="ambiguous"):
        mlstack.artifacts.show(f"m@{v1.digest[:4]}")
    with pytest.raises(errors.ArtifactNotFound, match="no version 9"):
        mlstack.artifacts.show("m@9")
    with pytest.raises(errors.ArtifactNotFound, match="no artifact named 'nope'"):
        mlstack.artifacts.get("nope", "x")
    with pytest.raises(errors.ArtifactNotFound, match="no artifact named 'nope'"):
        mlstack.artifacts.show("nope:production")
    with pytest.raises(errors.UsageError):
        mlstack.artifacts.show("m@zz!")
    assert [v.version for v in mlstack.artifacts.ls("m")] == [3, 2, 1]
    # same content as an older version is a new version (history is a sequence of puts)
    assert mlstack.artifacts.put("m", pair[0]).version == 4
    # a metadata change on unchanged content is a new version too
    assert mlstack.artifacts.put("m", pair[0], metadata={"note": "x"}).version == 5


def test_aliases_move_by_cas_and_never_onto_a_missing_version(art: StoreEnv) -> None:
    mlstack.artifacts.put("m", b"one")
    mlstack.artifacts.put("m", b"two", alias="staging")
    v = mlstack.artifacts.set_alias("m", 1, "production")
    assert v.version == 1 and "production" in v.aliases
    assert mlstack.artifacts.load("m:production") == b"one"
    assert mlstack.artifacts.load("m:staging") == b"two"
    mlstack.artifacts.set_alias("m", "v2", "production")
    assert mlstack.artifacts.load("m:production") == b"two"
    assert sorted(mlstack.artifacts.show("m@2").aliases) == ["production", "staging"]
    with pytest.raises(errors.ArtifactNotFound, match="no version 7"):
        mlstack.artifacts.set_alias("m", 7, "production")
    assert mlstack.artifacts.show("m:production").version == 2
    with pytest.raises(errors.ArtifactNotFound, match="no alias 'canary'"):
        mlstack.artifacts.show("m:canary")
    with pytest.raises(errors.UsageError, match="alias"):
        mlstack.artifacts.set_alias("m", 1, "9lives")
    st = art.store()
    assert [h["version"] for h in st.alias_history("m", "production")] == [1, 2]
    assert st.aliases("m") == {"production": 2, "staging": 2}


def test_lineage_records_run_code_and_inputs(art: StoreEnv, tmp_path: Path) -> None:
    run = mlstack.run.start("run-123")
    mlstack.artifacts.put("raw", b"raw rows")
    assert mlstack.artifacts.load("raw") == b"raw rows"  # a read: recorded as an input of this run
    mlstack.run.record_input("table", "sales.orders", "42", source="duckdb")
    v = mlstack.artifacts.put(
        "model", b"weights", metadata={"auc": 0.9}, inputs=[{"type": "table", "name": "x"}]
    )
    assert v.run_id == "run-123"
    assert v.code_version == mlstack.run.code_version()
    got = {(i["type"], i["name"], i["version"]) for i in v.inputs}
    assert got == {("artifact", "raw", "1"), ("table", "sales.orders", "42"), ("table", "x", None)}
    shown = mlstack.artifacts.show("model")
    assert shown.to_dict()["inputs"] == v.to_dict()["inputs"]
    assert json.loads(json.dumps(shown.to_dict()))["digest"] == f"sha256:{v.digest}"
    # reading records the digest and the store as the source
    reads = [i for i in run.inputs() if i.type == "artifact"]
    assert reads and reads[0].extra["digest"].startswith("sha256:")
    text = mlstack.artifacts.lineage_text("model")
    assert (
        "model@1" in text
        and "run-123" in text
        and "artifact raw@1" in text
        and "table sales.orders@42" in text
    )
    # lineage walks into artifact inputs
    mlstack.run.start("run-456")
    mlstack.artifacts.load("model")
    mlstack.artifacts.put("report", b"report")
    deep = mlstack.artifacts.lineage_text("report")
    assert "artifact model@1" in deep and "artifact raw@1" in deep


def test_ls_lists_latest_of_each_name_with_aliases(art: StoreEnv) -> None:
    assert mlstack.artifacts.ls() == []
    mlstack.artifacts.put("a", b"1")
    mlstack.artifacts.put("a", b"2", alias="prod")
    mlstack.artifacts.put("b", b"3")
    got = {v.name: (v.version, v.aliases) for v in mlstack.artifacts.ls()}
    assert got == {"a": (2, ["prod@2"]), "b": (1, [])}


def test_a_corrupted_blob_is_detected_on_read(art: StoreEnv, tmp_path: Path) -> None:
    small = mlstack.artifacts.put("small", b"precious bytes")
    big_src = _file(tmp_path / "big.bin", 18_000_000, seed=3)
    big = mlstack.artifacts.put("big", big_src)
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.txt").write_text("alpha")
    dv = mlstack.artifacts.put("dir", d)
    listing = json.loads(art.store().backend.get_bytes(dv.digest))

    art.tamper(f"blobs/sha256/{small.digest[:2]}/{small.digest}", b"precious bytez")
    art.tamper(f"blobs/sha256/{big.digest[:2]}/{big.digest}", big_src.read_bytes()[:-1] + b"\x00")
    fd = listing["files"][0]["digest"]
    art.tamper(f"blobs/sha256/{fd[:2]}/{fd}", b"alphx")

    with pytest.raises(errors.IntegrityError, match="corrupted"):
        mlstack.artifacts.load("small")
    with pytest.raises(errors.IntegrityError):
        mlstack.artifacts.get("big", tmp_path / "big-out.bin")
    assert not (tmp_path / "big-out.bin").exists()  # never a file with wrong content
    with pytest.raises(errors.IntegrityError):
        mlstack.artifacts.get("dir", tmp_path / "dir-out")
    assert not (tmp_path / "dir-out" / "a.txt").exists()
    with pytest.raises(errors.IntegrityError):
        art.store().verify("big")


def test_parse_ref_forms() -> None:
    assert parse_ref("m") == parse_ref("m")
    assert parse_ref("m@3").number == 3
    assert parse_ref("m@v12").number == 12
    assert parse_ref("m@ABCDEF12").digest_prefix == "abcdef12"
    assert parse_ref("m:production").alias == "production"
    for bad in ("", "@3", "m@", "m@abc", "bad name", "m:", "m:1x", "../etc"):
        with pytest.raises(errors.UsageError):
            parse_ref(bad)


def test_unchanged_folder_writes_nothing_and_ls_scales_past_the_pool(art: StoreEnv, tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    for i in range(5):
        (d / f"{i}.txt").write_text(str(i))
    v = mlstack.artifacts.put("folder", d)
    keys = art.object_keys()
    again = mlstack.artifacts.put("folder", d)
    assert again.unchanged and again.version == v.version
    assert art.object_keys() == keys
    if art.kind != "local":
        return
    # more names than pool workers, each with an alias: listing must not wait on nested pool tasks
    for i in range(40):
        mlstack.artifacts.put(f"n{i}", f"{i}".encode(), alias="prod")
    assert len(mlstack.artifacts.ls()) == 41
