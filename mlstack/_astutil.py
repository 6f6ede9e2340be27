"""``ast.parse`` that survives CPython 3.11's shared AST recursion counter.

In CPython 3.11 the counter that ``ast.parse`` checks ("AST constructor recursion depth mismatch") is shared
by the whole interpreter, so a parse racing another thread's parse (the Pulumi runtime's threads format
tracebacks, which parse source in 3.11) can fail spuriously with SystemError. The input is fine: parse again.
"""

from __future__ import annotations

import ast
import contextlib
import threading
from collections.abc import Iterator
from typing import Any


def parse(source: str, filename: str = "<unknown>", attempts: int = 5) -> ast.Module:
    return _retrying(ast.parse, attempts, source, filename=filename)  # type: ignore[no-any-return]


def _retrying(parse_fn: Any, attempts: int, *args: Any, **kwargs: Any) -> Any:
    """``parse_fn(*args, **kwargs)``, called again when it fails with the spurious mismatch."""
    for i in range(attempts):
        try:
            return parse_fn(*args, **kwargs)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or i == attempts - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


_patch_lock = threading.Lock()


@contextlib.contextmanager
def retrying_parse() -> Iterator[None]:
    """Make every ``ast.parse`` in the process retry the spurious failure while the block runs.

    For code that parses and swallows errors (Pulumi's schema analyzer reads docstrings with ``ast.parse``, as
    does ``inspect.getsource`` for classes, inside ``except Exception: pass``, so a spurious failure silently
    drops a description from the schema). Other threads see the same, harmless, retrying parse meanwhile."""
    with _patch_lock:
        saved = ast.parse

        def parse_retrying(*args: Any, **kwargs: Any) -> Any:
            return _retrying(saved, 5, *args, **kwargs)

        ast.parse = parse_retrying  # type: ignore[assignment]
        try:
            yield
        finally:
            ast.parse = saved  # type: ignore[assignment]
