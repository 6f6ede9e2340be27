"""Run records in the stack's artifact store: the layout, crash-safe writes and listing by prefix.

Everything lives under ``runs/`` of the artifact store (the local folder, or the bucket under the store's
prefix), written through the artifacts Backend, so every machine holding the manifest sees the same runs::

    runs/index/<inv>~<run id>~<pipeline>~<where>~0-running             created when the run starts
    runs/index/<inv>~<run id>~<pipeline>~<where>~2-<status>~<seconds>  created when it ends
    runs/records/<run id>/run.json            the run record (created once, replaced by compare-and-swap)
    runs/records/<run id>/lease.json          the runner's heartbeat, while the run lasts past one beat
    runs/records/<run id>/steps/<step>.json   one per step, ``<step>@<branch>.json`` per fan-out branch
    runs/records/<run id>/cards/<step>.json   a step's card (mlstack.card; <step>@<branch>.json per branch)
    runs/cache/<pipeline>/<step>/<key>.json   a cached step result (``@step(cache=True)``), created once
    blobs/sha256/...                          logs and results: the store's content-addressed blobs

Listing reads one flat prefix of small keys whose names carry what a listing needs (time, id, pipeline,
where, status, duration), newest first (``<inv>`` is 10**13 minus the start in milliseconds, so key order is
newest first and a listing stops after the first page it needs), then reads only the records it shows. Index keys and step records
are created once; the run record and the lease change only by compare-and-swap. A run whose index holds
no end key and whose lease has lapsed reads ``interrupted`` (its runner died).
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlstack.errors import IntegrityError, UsageError

SCHEMA = 1
INDEX = "runs/index/"
RECORDS = "runs/records/"
CACHE = "runs/cache/"
LEASE_VAR = "MLSTACK_RUN_LEASE"
DEFAULT_LEASE = 60.0  # seconds a run stays `running` without a heartbeat
INLINE_MAX = 64 << 10  # results up to this size (as JSON) sit in the step record; larger ones are blobs
STATUSES = ("running", "succeeded", "failed", "interrupted")
TERMINAL = ("succeeded", "failed", "interrupted")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_LABEL = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$")


def lease_seconds() -> float:
    raw = os.environ.get(LEASE_VAR)
    try:
        return max(0.2, float(raw)) if raw else DEFAULT_LEASE
    except ValueError:
        return DEFAULT_LEASE


def now_iso(ts: float | None = None) -> str:
    t = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None


INV = (
    10**13
)  # index keys start with INV - (start in ms): S3 lists in key order, so the newest run comes first


def inverted(iso: str) -> str:
    """The index key's time field of a start time: 13 digits that sort newest first."""
    ts = parse_iso(iso)
    ms = round((ts if ts is not None else time.time()) * 1000)
    return f"{INV - ms:013d}"


def from_inverted(text: str) -> str:
    return now_iso((INV - int(text)) / 1000)


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _ID.match(run_id):
        raise UsageError(
            f"{run_id!r} is not a run id",
            fix="give an id from `mlstack runs ls` (letters, digits, '.', '_' and '-'), or `latest`",
        )
    return run_id


def step_key(run_id: str, name: str, branch: int | None) -> str:
    leaf = name if branch is None else f"{name}@{branch}"
    return f"{RECORDS}{run_id}/steps/{leaf}.json"


def label(name: str, branch: int | None) -> str:
    return name if branch is None else f"{name}[{branch}]"


def parse_label(text: str) -> tuple[str, int | None]:
    m = _LABEL.match(text)
    if not m:
        raise UsageError(f"{text!r} is not a step", fix="name a step (`train`) or a branch (`train[2]`)")
    return m.group(1), (int(m.group(2)) if m.group(2) is not None else None)


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=repr).encode()


def digest_of(obj: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical(obj)).hexdigest()


@dataclass
class IndexEntry:
    """One run as the index sees it (no record read)."""

    run_id: str
    pipeline: str
    where: str
    inv: str  # the key's time field (see inverted())
    status: str = "running"
    seconds: float | None = None
    keys: list[str] = field(default_factory=list)

    @property
    def started_iso(self) -> str:
        return from_inverted(self.inv)


def _parse_key(key: str) -> tuple[str, str, str, str, str, str, float | None] | None:
    """(inv, run id, pipeline, where, rank, status, seconds) of an index key, or None when it does not parse."""
    leaf = key[len(INDEX) :] if key.startswith(INDEX) else key
    parts = leaf.split("~")
    if len(parts) < 5 or not _ID.match(parts[1]) or not (parts[0].isdigit() and len(parts[0]) == 13):
        return None
    inv, run_id, pipeline, where, state = parts[:5]
    rank, _, status = state.partition("-")
    if status not in STATUSES or not rank.isdigit():
        return None
    secs = None
    if len(parts) > 5:
        try:
            secs = float(parts[5])
        except ValueError:
            secs = None
    return inv, run_id, pipeline, where, rank, status, secs


def scan_index(keys: Iterable[str], bad: list[str]) -> Iterator[IndexEntry]:
    """Runs from index keys in key order (newest first), each once all its keys were seen; keys that do not
    parse go to ``bad``. The keys of one run are adjacent (same time field, same id)."""
    cur: IndexEntry | None = None
    for key in keys:
        got = _parse_key(key)
        if got is None:
            bad.append(key)
            continue
        inv, run_id, pipeline, where, rank, status, secs = got
        if cur is not None and cur.run_id != run_id:
            yield cur
            cur = None
        if cur is None:
            cur = IndexEntry(run_id, pipeline, where, inv)
        cur.keys.append(key)
        if rank != "0":  # an end key wins over the start key
            cur.status = status
            cur.seconds = secs if secs is not None else cur.seconds
    if cur is not None:
        yield cur


def parse_index(keys: Iterable[str]) -> tuple[dict[str, IndexEntry], list[str]]:
    """Every run of the index by id, and the keys that do not parse."""
    bad: list[str] = []
    return {e.run_id: e for e in scan_index(keys, bad)}, bad


class RunStore:
    """Run records over one artifacts Backend (see the module docstring for the layout)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self._pool: cf.ThreadPoolExecutor | None = None

    @property
    def location(self) -> str:
        return str(self.backend.location)

    def _map(self, fn: Any, items: list[Any]) -> list[Any]:
        """Map over items; in parallel on remote stores (one round trip each), in order."""
        if len(items) < 2 or self.backend.kind == "local":
            return [fn(i) for i in items]
        if self._pool is None:
            self._pool = cf.ThreadPoolExecutor(16, thread_name_prefix="mlstack-runs")
        return list(self._pool.map(fn, items))

    # ------------------------------------------------------------------ documents
    def read_json(self, key: str) -> tuple[dict[str, Any], str] | None:
        """A JSON document and its etag; None when missing; IntegrityError when it is not a JSON object."""
        doc = self.backend.read_doc(key)
        if doc is None:
            return None
        try:
            data = json.loads(doc[0])
        except ValueError as exc:
            raise IntegrityError(
                f"{key} in {self.location} is not JSON ({exc})",
                fix="restore it from a backup or bucket versioning, or remove the run's folder",
            ) from None
        if not isinstance(data, dict):
            raise IntegrityError(f"{key} in {self.location} is not a JSON object", fix="restore it")
        return data, doc[1]

    def create(self, key: str, doc: dict[str, Any]) -> bool:
        return bool(self.backend.create_doc(key, json.dumps(doc, sort_keys=True, default=str).encode()))

    def replace(self, key: str, doc: dict[str, Any], etag: str | None) -> bool:
        data = json.dumps(doc, sort_keys=True, default=str).encode()
        return bool(self.backend.replace_doc(key, data, etag))

    def update(self, key: str, change: Any, attempts: int = 50) -> dict[str, Any]:
        """Read-modify-write by compare-and-swap: ``change(current or None) -> new``; retried on a lost race."""
        for i in range(attempts):
            cur = self.read_json(key)
            new = change(dict(cur[0]) if cur else None)
            if self.replace(key, new, cur[1] if cur else None):
                return dict(new)
            time.sleep(min(0.2, 0.005 * 2**i))
        from mlstack.errors import ConflictError

        raise ConflictError(f"could not update {key}: too many concurrent writers", fix="retry")

    # ------------------------------------------------------------------ blobs
    def put_blob(self, data: bytes) -> dict[str, Any]:
        digest, _ = self.backend.put_bytes(data)
        return {"blob": f"sha256:{digest}", "size": len(data)}

    def put_file(self, path: Any) -> dict[str, Any]:
        digest, size, _ = self.backend.put_file(path)
        return {"blob": f"sha256:{digest}", "size": size}

    def get_blob(self, ref: str) -> bytes:
        return bytes(self.backend.get_bytes(ref.removeprefix("sha256:")))

    # ------------------------------------------------------------------ runs
    def run_key(self, run_id: str) -> str:
        return f"{RECORDS}{check_run_id(run_id)}/run.json"

    def index_key(self, rec: dict[str, Any], status: str | None = None) -> str:
        where = str((rec.get("orchestrator") or {}).get("kind") or "local")
        head = f"{INDEX}{inverted(rec['started'])}~{rec['id']}~{rec['pipeline']}~{where}~"
        if status is None:
            return head + "0-running"
        secs = rec.get("seconds")
        return head + f"2-{status}" + (f"~{float(secs):.3f}" if secs is not None else "")

    def start_run(self, rec: dict[str, Any]) -> bool:
        """Create the run record and its index key; False when a record with that id exists already."""
        created = self.create(self.run_key(rec["id"]), rec)
        if created:
            self.create(self.index_key(rec), {"id": rec["id"], "pipeline": rec["pipeline"]})
        return created

    def finish_run(self, run_id: str, change: Any) -> dict[str, Any]:
        """Apply ``change`` to the run record (CAS), then create its end index key."""
        rec = self.update(self.run_key(run_id), change)
        if rec.get("status") in TERMINAL:
            self.create(self.index_key(rec, rec["status"]), {"id": rec["id"], "status": rec["status"]})
        return rec

    def renew_lease(self, run_id: str, seconds: float, holder: str) -> None:
        key = f"{RECORDS}{check_run_id(run_id)}/lease.json"
        doc = {"holder": holder, "renewed": now_iso(), "expires": time.time() + seconds, "seconds": seconds}
        cur = self.backend.read_doc(key)
        # several holders (Argo pods) may renew at once: losing the race means another one just renewed
        self.replace(key, doc, cur[1] if cur else None)

    def lease_expiry(self, run_id: str, rec: dict[str, Any] | None) -> float | None:
        expires = [float((rec or {}).get("lease", {}).get("expires") or 0)]
        try:
            got = self.read_json(f"{RECORDS}{run_id}/lease.json")
        except IntegrityError:
            got = None  # a torn heartbeat: the record's own lease still counts
        if got is not None:
            expires.append(float(got[0].get("expires") or 0))
        best = max(expires)
        return best or None

    def read_run(self, run_id: str) -> dict[str, Any] | None:
        got = self.read_json(self.run_key(run_id))
        if got is None:
            return None
        rec = got[0]
        if not isinstance(rec.get("id"), str) or not isinstance(rec.get("pipeline"), str):
            raise IntegrityError(
                f"run record {run_id} in {self.location} lacks its id or pipeline", fix="restore it"
            )
        return rec

    def effective_status(self, rec: dict[str, Any]) -> tuple[str, str | None]:
        """(status, why): a `running` run whose lease lapsed reads `interrupted`."""
        status = str(rec.get("status") or "running")
        if status != "running":
            return status, rec.get("reason")
        expiry = self.lease_expiry(rec["id"], rec)
        if expiry is not None and time.time() > expiry:
            return "interrupted", f"no heartbeat since {now_iso(expiry)} (the runner stopped: killed or lost)"
        return "running", None

    # ------------------------------------------------------------------ steps
    def put_step(self, run_id: str, doc: dict[str, Any]) -> None:
        """Write a step's (branch's) record: created once, or replaced when a retried attempt writes again."""
        key = step_key(run_id, doc["name"], doc.get("branch"))
        if not self.create(key, doc):
            self.update(key, lambda cur: doc)

    def read_steps(self, run_id: str) -> tuple[list[dict[str, Any]], list[str]]:
        """Every step record of a run (any order) and the keys that could not be read."""
        keys = [
            k
            for k in self.backend.list_keys(f"{RECORDS}{check_run_id(run_id)}/steps/")
            if k.endswith(".json")
        ]
        bad: list[str] = []

        def one(k: str) -> dict[str, Any] | None:
            try:
                got = self.read_json(k)
            except IntegrityError:
                bad.append(k)
                return None
            return got[0] if got else None

        return [d for d in self._map(one, keys) if d is not None], bad

    # ------------------------------------------------------------------ listing
    def index(self) -> tuple[dict[str, IndexEntry], list[str]]:
        """The whole index (every run). Listing uses :meth:`scan`, which stops as soon as it has enough."""
        return parse_index(self.backend.list_keys(INDEX))

    def scan(self, bad: list[str]) -> Iterator[IndexEntry]:
        """Runs newest first, read from the index page by page (stop iterating to stop listing)."""
        return scan_index(self.backend.iter_keys(INDEX), bad)

    def read_records(self, run_ids: list[str]) -> dict[str, dict[str, Any] | Exception | None]:
        def one(rid: str) -> tuple[str, dict[str, Any] | Exception | None]:
            try:
                return rid, self.read_run(rid)
            except Exception as exc:  # unreadable: reported by id, the others still list
                return rid, exc

        return dict(self._map(one, run_ids))

    # ------------------------------------------------------------------ cache
    def cache_key_path(self, pipeline: str, step: str, key: str) -> str:
        return f"{CACHE}{pipeline}/{step}/{key.removeprefix('sha256:')}.json"

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
