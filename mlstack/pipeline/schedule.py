"""Schedules: when a pipeline runs by itself (an Argo CronWorkflow on a stack with Argo).

    Pipeline("churn", ..., schedule="0 3 * * *")
    Pipeline("churn", ..., schedule=Schedule("0 3 * * MON-FRI", timezone="Europe/Paris", concurrency="Forbid"))

Cron expressions are checked here, before anything is sent, with the rules Argo's controller applies
(robfig/cron's standard parser, ``cron.ParseStandard``): five fields -- minute 0-59, hour 0-23, day of month
1-31, month 1-12 or JAN-DEC, day of week 0-6 or SUN-SAT (Sunday is 0; 7 is refused) -- each ``*``, ``?``, a
number or name, a range ``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n`` (from ``a`` to the field's end), or a
comma list of those; or a descriptor: ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
(``@midnight``), ``@hourly``, ``@every <duration>`` (Go durations: ``90s``, ``1h30m``). Timezones are IANA
names (``Europe/Paris``, ``UTC``) checked with :mod:`zoneinfo`.

Only the standard library is imported here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from mlstack.errors import UsageError

CONCURRENCY = ("Forbid", "Allow", "Replace")
DEFAULT_TIMEZONE = "UTC"
DEFAULT_CONCURRENCY = "Forbid"

CRON_HELP = (
    "write five fields 'minute hour day-of-month month day-of-week' (minute 0-59, hour 0-23, day 1-31, "
    "month 1-12 or JAN-DEC, weekday 0-6 or SUN-SAT), e.g. '0 3 * * *' (03:00 daily) or '*/15 9-17 * * MON-FRI', "
    "or one of @hourly @daily @weekly @monthly @yearly '@every 1h30m'"
)

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (name, low, high, names) of the five fields, in order
_FIELDS = (
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class CronError(ValueError):
    """A cron expression Argo would refuse; the message says which field and why."""


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression: the allowed values of each field, or a fixed interval (``@every``)."""

    expr: str
    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()
    # robfig/cron: when day of month or day of week starts with * (or ?) without a step above 1, a day must
    # match both fields; when both are restricted, either one ("1 * 1 * MON": the 1st and every Monday)
    day_or_weekday: bool = False
    every: timedelta | None = None

    def next_after(self, after: datetime) -> datetime | None:
        """The first time this fires strictly after ``after`` (an aware datetime, in its timezone)."""
        if self.every is not None:
            return after + self.every
        tz = after.tzinfo
        start = after.replace(second=0, microsecond=0)
        day = start.date()
        # 5 years cover every valid expression (Feb 29 comes back within 8 years only for some weekday mixes)
        for _ in range(366 * 9):
            if day.month in self.months and self._day_matches(day):
                for h in sorted(self.hours):
                    for mi in sorted(self.minutes):
                        t = datetime(day.year, day.month, day.day, h, mi, tzinfo=tz)
                        if t > after:
                            return t
            day = day + timedelta(days=1)
        return None

    def _day_matches(self, d: date) -> bool:
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays
        return (dom or dow) if self.day_or_weekday else (dom and dow)


def _go_duration(text: str, expr: str) -> timedelta:
    text = text.strip()
    pos, seconds = 0, 0.0
    if not text:
        raise CronError(f"cron {expr!r}: @every needs a duration such as 90s, 15m or 1h30m")
    while pos < len(text):
        m = _GO_DURATION.match(text, pos)
        if not m:
            raise CronError(
                f"cron {expr!r}: {text!r} is not a duration (a number and a unit h, m, s, ms: 90s, 1h30m)"
            )
        seconds += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    if seconds <= 0:
        raise CronError(f"cron {expr!r}: @every needs a duration above zero")
    return timedelta(seconds=max(seconds, 1.0))  # robfig rounds sub-second intervals up to 1 s


def _value(text: str, fname: str, low: int, high: int, names: dict[str, int] | None, expr: str) -> int:
    if names is not None and text.lower() in names:
        return names[text.lower()]
    if not text.isascii() or not text.isdigit():
        known = f" or a name ({', '.join(n.upper() for n in names)})" if names else ""
        raise CronError(f"cron {expr!r}: {fname} {text!r} is not a number{known}")
    value = int(text)
    if not low <= value <= high:
        extra = " (Sunday is 0 or SUN)" if fname == "day of week" and value == 7 else ""
        raise CronError(f"cron {expr!r}: {fname} {value} is out of range {low}-{high}{extra}")
    return value


def _field(text: str, index: int, expr: str) -> tuple[set[int], bool]:
    """The values one field allows, and whether it counts as '*' for the day-of-month/day-of-week rule."""
    fname, low, high, names = _FIELDS[index]
    values: set[int] = set()
    star = False
    for part in text.split(","):
        if not part:
            raise CronError(f"cron {expr!r}: {fname} {text!r} has an empty list item")
        base, slash, step_text = part.partition("/")
        if "/" in step_text:
            raise CronError(f"cron {expr!r}: {fname} {part!r} has more than one '/'")
        step = 1
        if slash:
            if not step_text.isascii() or not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"cron {expr!r}: {fname} step {step_text!r} must be a whole number above 0")
            step = int(step_text)
        if base in ("*", "?"):
            lo, hi = low, high
            star = star or step == 1
        else:
            lo_text, dash, hi_text = base.partition("-")
            if not lo_text:  # "-1", "-": no negative numbers or open ranges in cron
                raise CronError(f"cron {expr!r}: {fname} {part!r} is not a number or a range a-b")
            if "-" in hi_text:
                raise CronError(f"cron {expr!r}: {fname} {part!r} has more than one '-'")
            lo = _value(lo_text, fname, low, high, names, expr)
            # "a/n" runs from a to the end of the field, as robfig/cron reads it
            hi = _value(hi_text, fname, low, high, names, expr) if dash else high if slash else lo
            if lo > hi:
                raise CronError(f"cron {expr!r}: {fname} range {part!r} starts after it ends")
        values.update(range(lo, hi + 1, step))
    return values, star


def parse_cron(expr: Any) -> Cron:
    """Parse one cron expression as Argo's controller does; raises :class:`CronError` naming the problem."""
    if not isinstance(expr, str) or not expr.strip():
        raise CronError(f"cron {expr!r} is empty or not a string")
    text = expr.strip()
    if text.startswith(("CRON_TZ=", "TZ=")):
        raise CronError(f"cron {expr!r}: put the timezone in Schedule(timezone=...), not in the expression")
    if text.startswith("@"):
        if text.startswith("@every ") or text == "@every":
            return Cron(expr=text, every=_go_duration(text[len("@every") :], expr))
        if text not in _DESCRIPTORS:
            raise CronError(
                f"cron {expr!r}: unknown descriptor (known: {', '.join(_DESCRIPTORS)}, @every <duration>)"
            )
        text = _DESCRIPTORS[text]
    parts = text.split()
    if len(parts) != 5:
        raise CronError(
            f"cron {expr!r} has {len(parts)} field{'s' if len(parts) != 1 else ''}, not 5 "
            "(minute hour day-of-month month day-of-week; Argo takes no seconds or years field)"
        )
    fields = [_field(p, i, expr) for i, p in enumerate(parts)]
    return Cron(
        expr=expr.strip(),
        minutes=frozenset(fields[0][0]),
        hours=frozenset(fields[1][0]),
        days=frozenset(fields[2][0]),
        months=frozenset(fields[3][0]),
        weekdays=frozenset(fields[4][0]),
        day_or_weekday=not (fields[2][1] or fields[4][1]),
    )


def check_timezone(tz: Any) -> Any:
    """The ZoneInfo of an IANA timezone name; raises ValueError naming it when unknown."""
    import zoneinfo

    if not isinstance(tz, str) or not tz.strip() or tz != tz.strip():
        raise ValueError(f"timezone {tz!r} is not an IANA name")
    if tz == "Local":  # Go's LoadLocation takes it: the Argo controller's clock, which nobody here can see
        raise ValueError("timezone 'Local' would be the Argo controller's own clock")
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"timezone {tz!r} is not a known IANA timezone") from None


@dataclass(frozen=True)
class Schedule:
    """When a pipeline runs by itself: cron expression(s), the timezone they are read in, and what happens
    when a run is still going at the next tick.

    - ``cron``: one expression or a list (Argo v3.6+ ``schedules``); see the module docs for the syntax.
    - ``timezone``: IANA name; default ``UTC`` (said explicitly, so the run time never depends on the
      controller's clock).
    - ``concurrency``: ``Forbid`` (default: skip a tick while the previous run is still going, so two
      trainings never race to move an alias), ``Allow`` or ``Replace`` (stop the running one).
    - ``starting_deadline``: seconds after a missed tick (controller down) in which it still starts; default
      none (Argo's: a missed tick is run when the controller comes back).
    - ``params``: param values of the scheduled runs (the pipeline's defaults otherwise).
    - ``suspend``: create it suspended (nothing runs until ``argo cron resume``).
    """

    cron: str | tuple[str, ...]
    timezone: str = DEFAULT_TIMEZONE
    concurrency: str = DEFAULT_CONCURRENCY
    starting_deadline: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    suspend: bool = False

    def __post_init__(self) -> None:
        crons = (self.cron,) if isinstance(self.cron, str) else tuple(self.cron or ())
        problems: list[str] = []
        fixes: list[str] = []
        if not crons:
            problems.append("cron is empty: give at least one expression")
        for c in crons:
            try:
                parse_cron(c)
            except CronError as exc:
                problems.append(str(exc))
        if len(set(crons)) != len(crons):
            problems.append(f"cron lists an expression twice: {list(crons)!r}")
        if problems:
            fixes.append(CRON_HELP)
        try:
            check_timezone(self.timezone)
        except ValueError as exc:
            problems.append(str(exc))
            fixes.append("give an IANA timezone name such as 'UTC', 'Europe/Paris' or 'America/New_York'")
        policy = next(
            (
                p
                for p in CONCURRENCY
                if isinstance(self.concurrency, str) and p.lower() == self.concurrency.lower()
            ),
            None,
        )
        if policy is None:
            problems.append(f"concurrency={self.concurrency!r} is not one of {', '.join(CONCURRENCY)}")
            fixes.append(
                "concurrency='Forbid' skips a tick while the last run goes on, 'Allow' runs both, "
                "'Replace' stops the old run"
            )
        sd = self.starting_deadline
        if sd is not None and (isinstance(sd, bool) or not isinstance(sd, int) or sd < 0):
            problems.append(f"starting_deadline={sd!r} is not a whole number of seconds >= 0")
            fixes.append("starting_deadline=300 starts a missed tick up to 5 minutes late, else skips it")
        if not isinstance(self.params, Mapping):
            problems.append(f"params={self.params!r} is not a mapping")
            fixes.append("params={'threshold': 0.8}")
        if problems:
            raise UsageError("schedule: " + "; ".join(problems), fix="; ".join(fixes))
        object.__setattr__(self, "cron", crons[0] if len(crons) == 1 else crons)
        object.__setattr__(self, "concurrency", policy)
        object.__setattr__(self, "params", dict(self.params))

    @property
    def crons(self) -> tuple[str, ...]:
        """Every cron expression (one for the usual single schedule)."""
        return (self.cron,) if isinstance(self.cron, str) else tuple(self.cron)

    def next_runs(self, after: datetime | None = None, count: int = 1) -> list[datetime]:
        """The next ``count`` fire times after ``after`` (default: now), in the schedule's timezone."""
        tz = check_timezone(self.timezone)
        now = (after or datetime.now(tz)).astimezone(tz)
        parsed = [parse_cron(c) for c in self.crons]
        out: list[datetime] = []
        cursor = now
        while len(out) < count:
            nxt = [t for t in (p.next_after(cursor) for p in parsed) if t is not None]
            if not nxt:
                break
            cursor = min(nxt)
            out.append(cursor)
        return out

    def describe(self) -> str:
        """One line: ``0 3 * * * (UTC), concurrency Forbid``."""
        return f"{' | '.join(self.crons)} ({self.timezone}), concurrency {self.concurrency}" + (
            ", suspended" if self.suspend else ""
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "cron": list(self.crons),
            "timezone": self.timezone,
            "concurrency": self.concurrency,
            "starting_deadline": self.starting_deadline,
            "params": dict(self.params),
            "suspend": self.suspend,
        }


def coerce_schedule(value: Any, where: str) -> Schedule | None:
    """``schedule=`` as Pipeline takes it: None, a cron string, a list of them, or a Schedule."""
    if value is None or isinstance(value, Schedule):
        return value
    if isinstance(value, str) or (isinstance(value, Iterable) and not isinstance(value, Mapping)):
        try:
            return Schedule(value if isinstance(value, str) else tuple(value))
        except UsageError as exc:
            raise UsageError(f"{where}: {exc.message}", fix=exc.fix) from None
    raise UsageError(
        f"{where}: schedule={value!r} is not a cron expression or a Schedule",
        fix="pass schedule='0 3 * * *' or schedule=Schedule(cron=..., timezone=..., concurrency=...)",
    )
