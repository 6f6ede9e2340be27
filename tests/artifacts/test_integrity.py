"""Integrity end to end (issue #12): tampering with blobs, records and aliases on every tier (local folder,
moto, SeaweedFS), and what the store does about it: detect, refuse, report with the fix, repair.

Every test here failed on the release before this one (0.1): corrupted blobs stayed unreadable after a put
of the same content, altered aliases and records returned another version's bytes, a record's kind made
load() unpickle bytes, a failed folder get left a mix, and a corrupt alias broke `ls` and `set_alias`.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import threading
import time
from pathlib import Path

import pytest

import mlstack
from mlstack import errors
from mlstack.artifacts._model import OBJECT_MAGIC, check_alias, check_name, parse_ref, seal_doc
from mlstack.cli.main import main
from tests.artifacts.conftest import StoreEnv, make_env


def _blob(digest: str) -> str:
    return f"blobs/sha256/{digest[:2]}/{digest}"


def _doc(art: StoreEnv, key: str) -> dict:
    return json.loads(art.read_raw(key))


def _reseal(d: dict) -> bytes:
    """What a careful forger writes: the altered document with a recomputed seal."""
    return seal_doc(d)


def _file(path: Path, size: int, seed: int = 0) -> Path:
    block = hashlib.sha256(f"seed-{seed}".encode()).digest() * 2048
    with open(path, "wb") as fh:
        for i in range(0, size, len(block)):
            fh.write(bytes([i & 0xFF]) + block[1 : min(len(block), size - i)])
    return path


def _tree(p: Path) -> dict[str, bytes]:
    return {q.relative_to(p).as_posix(): q.read_bytes() for q in sorted(p.rglob("*")) if q.is_file()}


# ---------------------------------------------------------------- finding 1: a corrupted blob is repairable
def test_putting_the_same_content_again_repairs_a_corrupted_blob(art: StoreEnv, tmp_path: Path) -> None:
    small = mlstack.artifacts.put("small", b"precious bytes")
    mid = mlstack.artifacts.put("mid", os.urandom(3 << 19))  # 1.5 MiB: checked with HEAD first on S3
    src = _file(tmp_path / "model.bin", 20_000_000, seed=7)  # multipart on S3
    big = mlstack.artifacts.put("big", src)
    d = tmp_path / "folder"
    d.mkdir()
    for i in range(5):
        (d / f"f{i}.txt").write_text(f"file {i}\n")
    folder = mlstack.artifacts.put("folder", d)
    f3 = hashlib.sha256(b"file 3\n").hexdigest()
    mid_bytes = mlstack.artifacts.load("mid")

    for digest in (small.digest, mid.digest, big.digest, f3):
        art.flip(_blob(digest), byte=5)
    with pytest.raises(errors.IntegrityError):
        mlstack.artifacts.load("small")
    with pytest.raises(errors.IntegrityError):
        mlstack.artifacts.load("mid")
    with pytest.raises(errors.IntegrityError):
        mlstack.artifacts.get("big", tmp_path / "big.out")
    with pytest.raises(errors.IntegrityError):
        mlstack.artifacts.get("folder", tmp_path / "folder.out")

    # the same content again: no new version, and the stored copy is rewritten
    assert mlstack.artifacts.put("small", b"precious bytes").unchanged
    assert mlstack.artifacts.put("mid", mid_bytes).unchanged
    again = mlstack.artifacts.put("big", src)
    assert again.unchanged and again.version == big.version
    assert mlstack.artifacts.put("folder", d).version == folder.version
    assert mlstack.artifacts.load("small") == b"precious bytes"
    assert mlstack.artifacts.load("mid") == mid_bytes
    assert mlstack.artifacts.get("big", tmp_path / "big.out").read_bytes() == src.read_bytes()
    assert _tree(mlstack.artifacts.get("folder", tmp_path / "folder.out")) == _tree(d)
    for ref in ("small", "mid", "big", "folder"):
        mlstack.artifacts.store().verify(ref)


def test_a_new_name_or_new_metadata_over_a_corrupted_blob_is_readable(art: StoreEnv) -> None:
    v = mlstack.artifacts.put("a", b"shared content")
    art.flip(_blob(v.digest))
    other = mlstack.artifacts.put("b", b"shared content")  # same content address, another name
    assert other.digest == v.digest
    assert mlstack.artifacts.load("b") == b"shared content"
    art.flip(_blob(v.digest), byte=0)
    meta = mlstack.artifacts.put("a", b"shared content", metadata={"note": "x"})
    assert meta.version == 2
    assert mlstack.artifacts.load("a@2") == mlstack.artifacts.load("a@1") == b"shared content"


# ---------------------------------------------------------------- finding 2: records and aliases are checked
def test_an_altered_alias_never_returns_another_versions_bytes(art: StoreEnv, tmp_path: Path) -> None:
    mlstack.artifacts.put("m", b"one", alias="prod")
    mlstack.artifacts.put("m", b"two")
    key = "artifacts/m/aliases/prod.json"
    good = art.read_raw(key)
    d = json.loads(good)

    art.tamper(key, json.dumps({**d, "version": 2}).encode())  # edited by hand: the seal no longer holds
    with pytest.raises(errors.IntegrityError, match="m:prod") as exc:
        mlstack.artifacts.load("m:prod")
    assert key in exc.value.message and "mlstack artifacts alias m VERSION prod" in (exc.value.fix or "")

    art.tamper(key, _reseal({**d, "version": 2}))  # re-sealed: the alias's digest is version 1's
    for call in (
        lambda: mlstack.artifacts.load("m:prod"),
        lambda: mlstack.artifacts.get("m:prod", tmp_path / "out"),
        lambda: mlstack.artifacts.store().verify("m:prod"),
    ):
        with pytest.raises(errors.IntegrityError, match="holds sha256"):
            call()
    assert not (tmp_path / "out").exists()
    assert main(["artifacts", "verify", "m:prod"]) == 1

    legacy = {k: v for k, v in d.items() if k != "check"}  # a 0.1 alias document: no seal at all
    art.tamper(key, json.dumps({**legacy, "version": 2}).encode())
    with pytest.raises(errors.IntegrityError, match="holds sha256"):
        mlstack.artifacts.load("m:prod")
    art.tamper(key, json.dumps(legacy).encode())
    assert mlstack.artifacts.load("m:prod") == b"one"  # an intact 0.1 alias still reads


def test_an_altered_record_is_caught(art: StoreEnv, tmp_path: Path) -> None:
    v1 = mlstack.artifacts.put("m", b"one")
    v2 = mlstack.artifacts.put("m", b"two two")
    key = "artifacts/m/versions/v0000000001.json"
    d = _doc(art, key)
    art.tamper(key, json.dumps({**d, "digest": f"sha256:{v2.digest}"}).encode())
    mlstack.artifacts.store()._records.clear()
    for call in (
        lambda: mlstack.artifacts.load("m@1"),
        lambda: mlstack.artifacts.get("m@1", tmp_path / "out"),
        lambda: mlstack.artifacts.store().verify("m@1"),
    ):
        with pytest.raises(errors.IntegrityError, match="m@1") as exc:
            call()
        assert key in exc.value.message
    # re-sealed with another version's digest: the size it claims does not match what is read
    art.tamper(key, _reseal({**d, "digest": f"sha256:{v2.digest}"}))
    mlstack.artifacts.store()._records.clear()
    with pytest.raises(errors.IntegrityError, match="7"):
        mlstack.artifacts.load("m@1")
    # a record copied over another number is refused too
    art.tamper(key, art.read_raw("artifacts/m/versions/v0000000002.json"))
    mlstack.artifacts.store()._records.clear()
    with pytest.raises(errors.IntegrityError, match="stored as"):
        mlstack.artifacts.show("m@1")
    assert v1.digest != v2.digest


class _Boom:
    """A pickle that, if it were ever unpickled, would leave a file behind."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path.write_text, (Path(self.path), "unpickled!"))


def test_a_records_kind_cannot_steer_load_into_unpickling(art: StoreEnv, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil = pickle.dumps(_Boom(str(marker)))
    mlstack.artifacts.put("payload", evil)  # stored as bytes: harmless
    key = "artifacts/payload/versions/v0000000001.json"
    d = _doc(art, key)
    for forged in (json.dumps({**d, "kind": "object"}).encode(), _reseal({**d, "kind": "object"})):
        art.tamper(key, forged)
        mlstack.artifacts.store()._records.clear()
        with pytest.raises(errors.IntegrityError):
            mlstack.artifacts.load("payload")
    unsealed = {k: v for k, v in d.items() if k != "check"}
    art.tamper(key, json.dumps({**unsealed, "kind": "object", "schema": 1}).encode())  # posing as 0.1
    mlstack.artifacts.store()._records.clear()
    with pytest.raises(errors.IntegrityError, match=r"0\.1") as exc:
        mlstack.artifacts.load("payload")
    assert "allow_legacy_pickle=True" in (exc.value.fix or "")
    assert not marker.exists()
    # what is stored as a pickle carries the header in its content address
    v = mlstack.artifacts.put("params", {"lr": 0.1}, pickle=True)
    assert art.read_raw(_blob(v.digest)).startswith(OBJECT_MAGIC)
    assert mlstack.artifacts.load("params") == {"lr": 0.1}
    out = mlstack.artifacts.get("params", tmp_path / "params.pkl")  # get writes the plain pickle
    assert pickle.loads(out.read_bytes()) == {"lr": 0.1}


def test_a_store_written_by_the_first_release_still_reads(art: StoreEnv, tmp_path: Path) -> None:
    """0.1 wrote unsealed records (schema 1), alias documents without a seal and raw pickles."""
    st = art.store()

    def legacy(name: str, number: int, data: bytes, kind: str) -> str:
        digest, _ = st.backend.put_bytes(data)
        rec = {
            "name": name,
            "version": number,
            "kind": kind,
            "digest": f"sha256:{digest}",
            "size": len(data),
            "created": "2026-11-01T00:00:00.000Z",
            "run_id": "old",
            "code_version": None,
            "metadata": {},
            "inputs": [],
            "schema": 1,
            "put_id": "p",
        }
        key = f"artifacts/{name}/versions/v{number:010d}.json"
        st.backend.create_doc(key, json.dumps(rec, sort_keys=True, separators=(",", ":")).encode())
        return digest

    d1 = legacy("old", 1, b"old bytes", "bytes")
    legacy("old", 2, b"newer old bytes", "bytes")
    alias = {
        "alias": "prod",
        "name": "old",
        "version": 1,
        "digest": f"sha256:{d1}",
        "updated": "x",
        "history": [],
    }
    st.backend.create_doc("artifacts/old/aliases/prod.json", json.dumps(alias, sort_keys=True).encode())
    legacy("oldobj", 1, pickle.dumps({"k": 1}), "object")

    assert [v.version for v in mlstack.artifacts.ls("old")] == [2, 1]
    assert mlstack.artifacts.load("old:prod") == b"old bytes"
    assert mlstack.artifacts.get("old@2", tmp_path / "o").read_bytes() == b"newer old bytes"
    st.verify("old:prod")
    with pytest.raises(errors.IntegrityError, match=r"0\.1") as exc:
        mlstack.artifacts.load("oldobj")
    assert "MLSTACK_ALLOW_LEGACY_PICKLE" in (exc.value.fix or "")
    assert st.load("oldobj", allow_legacy_pickle=True) == {"k": 1}
    v3 = mlstack.artifacts.put("old", b"new bytes", alias="prod")  # new sealed versions on top
    assert v3.version == 3 and mlstack.artifacts.load("old:prod") == b"new bytes"
    assert st.scan().ok


# ---------------------------------------------------------------- finding 3: folder get is all or nothing
def test_a_failed_folder_get_leaves_the_destination_as_it_was(art: StoreEnv, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "sub").mkdir()
    for i in range(30):
        (src / "sub" / f"f{i:02d}.txt").write_text(f"v1 {i}\n" * 100)
    v1 = mlstack.artifacts.put("ds", src)
    for i in range(30):
        (src / "sub" / f"f{i:02d}.txt").write_text(f"v2 {i}\n" * 100)
    mlstack.artifacts.put("ds", src)
    art.flip(_blob(hashlib.sha256(b"v2 19\n" * 100).hexdigest()))

    dest = tmp_path / "work" / "ds"
    mlstack.artifacts.get(f"ds@{v1.version}", dest)
    (dest / "mine.txt").write_text("a file of mine")
    before = _tree(dest)
    with pytest.raises(errors.IntegrityError):
        mlstack.artifacts.get("ds@2", dest)
    assert _tree(dest) == before  # not one v2 file, nothing lost
    listing = sorted(p.name for p in dest.parent.iterdir())
    time.sleep(0.3)  # no download still writing after get raised
    assert sorted(p.name for p in dest.parent.iterdir()) == listing == ["ds"]
    assert _tree(dest) == before
    assert not [t for t in threading.enumerate() if t.name.startswith("mlstack-copy")]

    with pytest.raises(errors.IntegrityError):
        mlstack.artifacts.get("ds@2", tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()

    assert mlstack.artifacts.put("ds", src).unchanged  # repairs the blob
    mlstack.artifacts.get("ds@2", dest)
    after = _tree(dest)
    assert after.pop("mine.txt") == b"a file of mine"  # files the version does not have are kept
    assert after == {f"sub/f{i:02d}.txt": f"v2 {i}\n".encode() * 100 for i in range(30)}
    assert sorted(p.name for p in dest.parent.iterdir()) == ["ds"]

    (dest / "sub" / "f05.txt").unlink()
    (dest / "sub" / "f05.txt").mkdir()  # a folder where the version has a file: refused before any change
    before = _tree(dest)
    with pytest.raises(errors.UsageError, match=r"f05\.txt"):
        mlstack.artifacts.get(f"ds@{v1.version}", dest)
    assert _tree(dest) == before


# ---------------------------------------------------------------- finding 4: corrupt documents
def test_corrupt_documents_are_named_skipped_by_ls_and_an_alias_can_be_set_again(
    art: StoreEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    mlstack.artifacts.put("m", b"one")
    mlstack.artifacts.put("m", b"two", alias="prod")
    mlstack.artifacts.put("n", b"other", alias="prod")
    art.tamper("artifacts/m/aliases/prod.json", b'{"alias": "prod", "vers')
    with pytest.raises(errors.IntegrityError, match="m:prod") as exc:
        mlstack.artifacts.load("m:prod")
    assert "artifacts/m/aliases/prod.json" in exc.value.message
    capsys.readouterr()
    assert main(["artifacts", "show", "m:prod"]) == 1
    err = capsys.readouterr().err
    assert "artifacts/m/aliases/prod.json" in err and "fix:" in err and "Traceback" not in err

    problems: list = []
    assert {v.name for v in mlstack.artifacts.store().ls(problems=problems)} == {"m", "n"}
    assert [p.ref for p in problems] == ["m:prod"]
    with pytest.warns(mlstack.artifacts._model.IntegrityWarning, match="m:prod"):
        assert [v.version for v in mlstack.artifacts.ls("m")] == [2, 1]
    capsys.readouterr()
    assert main(["artifacts", "ls", "--json"]) == 0
    out = capsys.readouterr()
    assert {x["name"] for x in json.loads(out.out)} == {"m", "n"}
    assert "skipped m:prod" in out.err and "mlstack artifacts alias m VERSION prod" in out.err

    v = mlstack.artifacts.set_alias("m", 1, "prod")  # the suggested fix works on a corrupt document
    assert v.version == 1 and mlstack.artifacts.load("m:prod") == b"one"
    assert "unreadable" in mlstack.artifacts.store().alias_history("m", "prod")[0]["replaced"]

    art.tamper("artifacts/m/versions/v0000000002.json", b"\x00garbage")
    mlstack.artifacts.store()._records.clear()
    with pytest.raises(errors.IntegrityError, match="m@2") as exc:
        mlstack.artifacts.show("m@2")
    assert "artifacts/m/versions/v0000000002.json" in exc.value.message
    problems = []
    assert [v.version for v in mlstack.artifacts.store().ls("m", problems=problems)] == [1]
    assert [p.ref for p in problems] == ["m@2"]
    assert mlstack.artifacts.put("m", b"three").version == 3  # a corrupt newest record does not block puts
    capsys.readouterr()
    assert main(["artifacts", "ls"]) == 0


# ---------------------------------------------------------------- finding 8: full-match names
@pytest.mark.parametrize("junk", ["\n", "\r\n", " ", "\t"])
def test_names_and_aliases_match_whole_strings(junk: str) -> None:
    for bad in (f"model{junk}", f"{junk}model"):
        with pytest.raises(errors.UsageError):
            check_name(bad)
        with pytest.raises(errors.UsageError):
            check_alias(bad)
    for ref in (f"model{junk}", f"m@3{junk}", f"m:prod{junk}", f"m@abcd{junk}", f"m@sha256:abcd{junk}"):
        with pytest.raises(errors.UsageError):
            parse_ref(ref)


def test_a_name_with_a_trailing_newline_is_refused_by_put(art: StoreEnv) -> None:
    with pytest.raises(errors.UsageError):
        mlstack.artifacts.put("model\n", b"x")
    with pytest.raises(errors.UsageError):
        mlstack.artifacts.put("model", b"x", alias="prod\n")
    assert mlstack.artifacts.ls() == []


# ---------------------------------------------------------------- scanning and repairing a store
def test_verify_and_doctor_deep_report_every_problem_with_its_fix(
    art: StoreEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "model.pkl"
    f.write_bytes(b"weights" * 100)
    mlstack.artifacts.put("model", f)  # @1
    mlstack.artifacts.put("model", b"weights v2", alias="prod")  # @2
    mlstack.artifacts.put("model", b"weights v3", alias="staging")  # @3
    mlstack.artifacts.put("notes", b"notes")
    mlstack.artifacts.put("notes", b"notes v2", alias="latest")
    v1 = mlstack.artifacts.show("model@1")
    art.flip(_blob(v1.digest))  # a corrupted blob
    d = _doc(art, "artifacts/model/aliases/prod.json")
    art.tamper("artifacts/model/aliases/prod.json", _reseal({**d, "version": 3}))  # an alias moved by hand
    art.tamper("artifacts/model/aliases/staging.json", b"not json")  # an unreadable alias
    art.tamper("artifacts/notes/versions/v0000000001.json", b"{}")  # an unreadable record
    mlstack.artifacts.store()._records.clear()

    capsys.readouterr()
    assert main(["artifacts", "verify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    got = {(p["what"], p["ref"]) for p in report["problems"]}
    assert got == {
        ("blob", f"sha256:{v1.digest[:12]}"),
        ("alias", "model:prod"),
        ("alias", "model:staging"),
        ("record", "notes@1"),
    }
    fixes = {p["ref"]: p["fix"] for p in report["problems"]}
    assert "mlstack artifacts put model model.pkl" in fixes[f"sha256:{v1.digest[:12]}"]
    assert "--repair" in fixes["model:prod"] and "model@2" in fixes["model:prod"]
    assert "mlstack artifacts alias model VERSION staging" in fixes["model:staging"]
    assert report["checked"]["versions"] == 4 and report["checked"]["aliases"] == 3

    assert main(["doctor", "--deep", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    failing = {f["check"] for f in doc["findings"] if f["status"] == "fail"}
    assert {"artifacts.integrity.blob", "artifacts.integrity.alias", "artifacts.integrity.record"} <= failing

    assert (
        main(["artifacts", "verify", "--repair", "--json"]) == 1
    )  # the alias is repaired; the rest needs you
    report = json.loads(capsys.readouterr().out)
    repaired = {p["ref"] for p in report["problems"] if p["repaired"]}
    assert repaired == {"model:prod"}
    assert mlstack.artifacts.load("model:prod") == b"weights v2"

    mlstack.artifacts.put("model", f)  # the original file again: the blob is rewritten
    mlstack.artifacts.set_alias("model", 3, "staging")
    st = mlstack.artifacts.store()
    st.backend.replace_doc(
        "artifacts/notes/versions/v0000000001.json",
        b"",
        st.backend.read_doc("artifacts/notes/versions/v0000000001.json")[1],
    )  # stands in for "restored from a backup": here, a record written like 0.1 wrote it
    rec = {
        "name": "notes",
        "version": 1,
        "kind": "bytes",
        "digest": "sha256:" + hashlib.sha256(b"notes").hexdigest(),
        "size": 5,
        "created": "2026-11-01T00:00:00.000Z",
        "schema": 1,
    }
    art.tamper("artifacts/notes/versions/v0000000001.json", json.dumps(rec).encode())
    st._records.clear()
    capsys.readouterr()
    assert main(["artifacts", "verify"]) == 0, capsys.readouterr()
    assert "0 problems" in capsys.readouterr().out
    assert main(["doctor", "--deep", "--json"]) in (0, 1)  # other layers may fail here; integrity must not
    doc = json.loads(capsys.readouterr().out)
    assert not [
        f for f in doc["findings"] if f["check"].startswith("artifacts.integrity") and f["status"] == "fail"
    ]


@pytest.fixture(params=["moto", pytest.param("seaweedfs", marks=pytest.mark.seaweedfs)])
def versioned(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StoreEnv:
    return make_env(request.param, tmp_path, monkeypatch, request, versioned=True)


def test_repair_restores_blobs_records_and_aliases_from_bucket_versioning(
    versioned: StoreEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    art = versioned
    src = _file(tmp_path / "big.bin", 20_000_000, seed=3)
    big = mlstack.artifacts.put("big", src)
    small = mlstack.artifacts.put("small", b"small bytes", alias="prod")
    art.flip(_blob(big.digest), byte=1000)
    art.flip(_blob(small.digest))
    art.tamper("artifacts/small/versions/v0000000001.json", b"garbage")
    art.tamper("artifacts/small/aliases/prod.json", b"garbage")
    mlstack.artifacts.store()._records.clear()
    capsys.readouterr()
    assert main(["artifacts", "verify", "--repair", "--json"]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert {p["what"] for p in report["problems"]} == {"blob", "record", "alias"}
    assert all(p["repaired"] for p in report["problems"]) and len(report["problems"]) == 4
    assert mlstack.artifacts.load("small:prod") == b"small bytes"
    assert mlstack.artifacts.get("big", tmp_path / "out").read_bytes() == src.read_bytes()
    assert main(["artifacts", "verify"]) == 0


# ---------------------------------------------------------------- put and verify of a single ref
def test_verify_of_one_version_checks_kind_and_size_consistency(art: StoreEnv) -> None:
    v = mlstack.artifacts.put("m", b"12345")
    key = "artifacts/m/versions/v0000000001.json"
    d = _doc(art, key)
    art.tamper(key, _reseal({**d, "size": 4}))
    mlstack.artifacts.store()._records.clear()
    with pytest.raises(errors.IntegrityError, match="4 bytes"):
        mlstack.artifacts.load("m")
    with pytest.raises(errors.IntegrityError):
        mlstack.artifacts.store().verify("m")
    assert v.size == 5
