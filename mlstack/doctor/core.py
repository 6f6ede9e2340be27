"""Findings and the concurrent, deadline-bounded check runner.

A check is a function that appends :class:`Finding` objects to a :class:`Report` as it learns things. All
checks start at once, each in a daemon thread, and share ONE deadline: a dead endpoint costs one timeout,
never a sum. A check still running at the deadline keeps what it already found and gets a ``fail`` finding
"timed out after N s" with its fix; its thread is abandoned (daemon threads never block interpreter exit,
which ``concurrent.futures`` workers would).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Literal

from mlstack.errors import MlstackError

Status = Literal["ok", "warn", "fail"]
STATUSES: tuple[Status, ...] = ("ok", "warn", "fail")
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Finding:
    """One thing the doctor learned: ``check`` id (``layer.what``), status, a one-line detail, the fix."""

    check: str
    status: Status
    detail: str
    fix: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.status != "ok" and not self.fix:
            raise ValueError(f"finding {self.check} ({self.status}) needs a fix")

    @property
    def layer(self) -> str:
        return self.check.split(".", 1)[0]

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = asdict(self)
        d["layer"] = self.layer
        return d


def ok(check: str, detail: str) -> Finding:
    return Finding(check, "ok", detail)


def warn(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, "warn", detail, fix)


def fail(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, "fail", detail, fix)


class Sink:
    """Where one running check puts its findings (thread-safe; ignored once its check has timed out)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Finding] = []
        self._closed = False

    def add(self, finding: Finding) -> None:
        with self._lock:
            if not self._closed:
                self._items.append(finding)

    def extend(self, findings: Iterable[Finding]) -> None:
        for f in findings:
            self.add(f)

    def close(self) -> list[Finding]:
        with self._lock:
            self._closed = True
            return list(self._items)


CheckFn = Callable[[Sink, float], None]


@dataclass(frozen=True)
class Check:
    """A named unit of work. ``fn(sink, timeout)`` adds findings; ``timeout_fix`` is the fix on timeout."""

    check_id: str
    fn: CheckFn
    timeout_fix: str = "check that the endpoint is reachable from here (network, VPN, security group)"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    elapsed_s: float = 0.0
    timeout_s: float = DEFAULT_TIMEOUT

    @property
    def failed(self) -> bool:
        return any(f.status == "fail" for f in self.findings)

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for f in self.findings if f.status == s) for s in STATUSES}

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": not self.failed,
            "summary": self.counts(),
            "timeout_s": self.timeout_s,
            "elapsed_s": round(self.elapsed_s, 3),
            "findings": [f.to_dict() for f in self.findings],
        }


def _short(exc: BaseException) -> str:
    from mlstack._redact import redact

    # redacted before lines are joined: a parser's code frame (a password's line) is recognised by its lines
    text = " ".join(redact(str(exc)).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def run_checks(checks: Iterable[Check], timeout: float = DEFAULT_TIMEOUT) -> Report:
    """Run every check concurrently under one shared deadline of ``timeout`` seconds."""
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    start = time.monotonic()
    deadline = start + timeout
    jobs: list[tuple[Check, Sink, threading.Event, list[BaseException]]] = []
    for chk in checks:
        sink, done = Sink(), threading.Event()
        errors: list[BaseException] = []

        def _target(
            chk: Check = chk, sink: Sink = sink, done: threading.Event = done, errors: list = errors
        ) -> None:
            try:
                chk.fn(sink, timeout)
            except (
                Exception
            ) as exc:  # a check's own bug or an unexpected client error: a finding, not a crash
                errors.append(exc)
            finally:
                done.set()

        t = threading.Thread(target=_target, name=f"doctor:{chk.check_id}", daemon=True)
        t.start()
        jobs.append((chk, sink, done, errors))

    findings: list[Finding] = []
    for chk, sink, done, errors in jobs:
        finished = done.wait(max(0.0, deadline - time.monotonic()))
        got = sink.close()
        findings.extend(got)
        if not finished:
            findings.append(fail(chk.check_id, f"timed out after {timeout:g} s", chk.timeout_fix))
        elif errors and isinstance(errors[0], MlstackError):
            findings.append(fail(chk.check_id, errors[0].message, errors[0].fix or chk.timeout_fix))
        elif errors:
            findings.append(
                fail(
                    chk.check_id,
                    f"check raised {type(errors[0]).__name__}: {_short(errors[0])}",
                    "run `mlstack --debug doctor` and report it if this looks like a bug in mlstack",
                )
            )
    # checks running side by side can learn the same thing (no credentials, say): each finding once
    unique = list(dict.fromkeys(findings))
    return Report(unique, time.monotonic() - start, timeout)


def error_text(exc: BaseException) -> str:
    """A one-line description of an exception, for a finding's detail."""
    return _short(exc)
