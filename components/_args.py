"""Input validation shared by every component: collect every problem, then raise once.

Each problem names the argument path, the value received, what is allowed and the fix. Values that are still
Pulumi Outputs (unknown until deployment) are skipped, never guessed.
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

import pulumi

from mlstack.errors import ConfigError


class InputPropertiesError(ConfigError):
    """One or more component arguments are invalid. ``problems`` holds (path, value, allowed/fix)."""

    headline = "invalid component arguments"

    def __init__(self, component: str, problems: list[tuple[str, Any, str]]) -> None:
        lines = [f"  {path}: got {value!r}; {why}" for path, value, why in problems]
        super().__init__(
            f"{component}: {len(problems)} invalid argument{'s' if len(problems) != 1 else ''}\n"
            + "\n".join(lines),
            fix="correct the arguments listed above",
        )
        self.component = component
        self.problems = problems


class Problems:
    """Collects problems; ``raise_if_any`` raises one InputPropertiesError listing all of them."""

    def __init__(self, component: str) -> None:
        self.component = component
        self.items: list[tuple[str, Any, str]] = []

    def add(self, path: str, value: Any, why: str) -> None:
        self.items.append((path, value, why))

    def unknown_keys(self, args: Mapping[str, Any], allowed: Any, prefix: str = "") -> None:
        """Reject keys a TypedDict does not declare (a typo would otherwise be silently ignored)."""
        names = set(getattr(allowed, "__annotations__", allowed))
        for k in args:
            if k not in names:
                self.add(f"{prefix}{k}", args[k], "unknown argument; allowed: " + ", ".join(sorted(names)))

    def raise_if_any(self) -> None:
        if self.items:
            raise InputPropertiesError(self.component, self.items)


def is_known(value: Any) -> bool:
    """False for Pulumi Outputs and other deferred inputs: those are not validated here."""
    return not isinstance(value, pulumi.Output) and not hasattr(value, "__await__")


def is_whole(value: Any) -> bool:
    """An int that is not a bool (``True`` is an int in Python, never a count here)."""
    return isinstance(value, int) and not isinstance(value, bool)


E = TypeVar("E", bound=StrEnum)


def choice(problems: Problems, path: str, value: Any, enum: type[E], default: E, why: str = "") -> E:
    """``value`` as a member of the str Enum ``enum`` (plain strings accepted); on a bad value, a problem
    (``why``, else the allowed values) and ``default``, so validation goes on and reports everything."""
    try:
        return enum(value)
    except ValueError:
        problems.add(path, value, why or "one of: " + ", ".join(m.value for m in enum))
        return default
