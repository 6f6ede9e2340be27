"""``ast.parse`` that survives CPython 3.11's shared AST recursion counter.

In CPython 3.11 the counter that ``ast.parse`` checks ("AST constructor recursion depth mismatch") is shared
by the whole interpreter, so a parse racing another thread's parse (the Pulumi runtime's threads format
tracebacks, which parse source in 3.11) can fail spuriously with SystemError. The input is fine: parse again.
"""

from __future__ import annotations

import ast


def parse(source: str, filename: str = "<unknown>", attempts: int = 5) -> ast.Module:
    for i in range(attempts):
        try:
            return ast.parse(source, filename=filename)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or i == attempts - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
