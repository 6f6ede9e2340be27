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
    for i in range(attempts):
        try:
            return ast.parse(source, filename=filename)
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

        def parse_retrying(source: Any, *args: Any, **kwargs: Any) -> Any:
            for i in range(5):
                try:
                    return saved(source, *args, **kwargs)
                except SystemError as exc:
                    if "recursion depth mismatch" not in str(exc) or i == 4:
                        raise
            raise AssertionError("unreachable")  # pragma: no cover

        ast.parse = parse_retrying  # type: ignore[assignment]
        try:
            yield
        finally:
            ast.parse = saved  # type: ignore[assignment]
