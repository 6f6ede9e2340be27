"""Read means read: the SQL that ``mlstack.data.read()`` and ``mlstack data query`` run is one read statement.

The local adapter asks DuckDB's own parser (see ``LocalSource.check_read_sql``) and runs queries on a
connection whose file and network access is switched off. For the warehouses (Snowflake, Databricks, Athena)
this module checks the text before it is sent, without a dialect parser: it splits the text into tokens
(strings, quoted identifiers and comments are skipped as each dialect does, backslash escapes included), and

- refuses more than one statement (a ``;`` outside strings and comments followed by anything but comments);
- refuses anything whose main statement is not a query: the first keyword must be SELECT, VALUES, TABLE,
  SHOW, DESCRIBE/DESC, or WITH whose common table expressions lead to one of those, or EXPLAIN of such a
  statement. ``WITH x AS (...) INSERT ...``, ``COPY``, ``PUT``, ``CALL``, ``CREATE``, ``MERGE``, ``USE``,
  ``SET``... are refused.

What a SELECT itself calls (a function with side effects) is the role's business: the service role a
stack grants reads only (``SnowflakeStack``/``DatabricksStack`` grant SELECT), and that is the real limit on
a warehouse. This check keeps a read from being anything else by accident or by splicing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from mlstack.errors import UsageError

READ_KEYWORDS = frozenset({"SELECT", "VALUES", "TABLE", "SHOW", "DESCRIBE", "DESC"})
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


@dataclass(frozen=True)
class Lexis:
    """How a dialect writes strings and comments (what decides where a statement ends)."""

    backslash_escapes: bool = False  # 'it\'s' (Snowflake, Databricks)
    dollar_quotes: bool = False  # $$ ... $$ (Snowflake)
    slash_comments: bool = False  # // to the end of the line (Snowflake)


LEXIS = {
    "snowflake": Lexis(backslash_escapes=True, dollar_quotes=True, slash_comments=True),
    "databricks": Lexis(backslash_escapes=True),
    "athena": Lexis(),
}


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "punct", "string", "ident", "number"
    text: str
    depth: int  # parenthesis depth before this token


def tokens(sql: str, lexis: Lexis) -> Iterator[Token]:
    """SQL tokens, skipping comments (``--``, ``/* */``, ``//`` where the dialect has it) and keeping strings
    and quoted names whole.

    An unterminated string, identifier or comment is an error: the server would read the text differently
    from the way it was checked.
    """
    i, n, depth = 0, len(sql), 0
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
        elif sql.startswith("--", i) or (lexis.slash_comments and sql.startswith("//", i)):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            if j < 0:
                raise _refuse("the SQL has a comment that is never closed (/* without */)")
            i = j + 2
        elif c in "'\"`":
            j = i + 1
            while True:
                if j >= n:
                    what = "string" if c == "'" else "quoted name"
                    raise _refuse(f"the SQL has a {what} that is never closed ({c} without its pair)")
                if lexis.backslash_escapes and sql[j] == "\\" and c == "'":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # doubled quote inside
                        j += 2
                        continue
                    break
                j += 1
            yield Token("string" if c == "'" else "ident", sql[i : j + 1], depth)
            i = j + 1
        elif lexis.dollar_quotes and sql.startswith("$$", i):
            j = sql.find("$$", i + 2)
            if j < 0:
                raise _refuse("the SQL has a $$ string that is never closed")
            yield Token("string", sql[i : j + 2], depth)
            i = j + 2
        elif c == "(":
            yield Token("punct", c, depth)
            depth += 1
            i += 1
        elif c == ")":
            depth = max(0, depth - 1)
            yield Token("punct", c, depth)
            i += 1
        else:
            m = _WORD.match(sql, i)
            if m:
                yield Token("word", m.group(0), depth)
                i = m.end()
            elif c.isdigit():
                j = i
                while j < n and (sql[j].isalnum() or sql[j] in "._"):
                    j += 1
                yield Token("number", sql[i:j], depth)
                i = j
            else:
                yield Token("punct", c, depth)
                i += 1


def statement_kind(sql: str, lexis: Lexis) -> str:
    """The main keyword of the single statement in ``sql`` (``SELECT``, ``INSERT``, ...).

    Raises UsageError when there is more than one statement or none.
    """
    toks = list(tokens(sql, lexis))
    ends = [i for i, t in enumerate(toks) if t.kind == "punct" and t.text == ";"]
    body = toks
    if ends:
        first = ends[0]
        rest = [t for t in toks[first + 1 :] if not (t.kind == "punct" and t.text == ";")]
        if rest:
            raise _refuse(
                "the SQL holds more than one statement; a read runs exactly one",
                fix="run one SELECT per read (split the text at the ';')",
            )
        body = toks[:first]
    if not body:
        raise _refuse("the SQL holds no statement", fix="pass a SELECT, or a table name")
    return _main_keyword(body)


def _main_keyword(toks: list[Token]) -> str:
    i = 0
    while i < len(toks) and toks[i].kind == "punct" and toks[i].text == "(":
        i += 1  # (SELECT ...) UNION (SELECT ...)
    if i >= len(toks) or toks[i].kind != "word":
        return toks[i].text if i < len(toks) else "("
    word = toks[i].text.upper()
    if word == "EXPLAIN":
        j = i + 1
        while (
            j < len(toks)
            and toks[j].kind == "word"
            and toks[j].text.upper()
            in (
                "EXTENDED",
                "FORMATTED",
                "CODEGEN",
                "COST",
                "USING",
                "TABULAR",
                "JSON",
                "TEXT",
                "LOGICAL",
            )
        ):
            j += 1
        inner = _main_keyword(toks[j:]) if j < len(toks) else "EXPLAIN"
        return inner if inner in READ_KEYWORDS else f"EXPLAIN {inner}"
    if word != "WITH":
        return word
    # WITH [RECURSIVE] name [(cols)] AS [[NOT] MATERIALIZED] (query) [, ...] main-statement
    base = toks[i].depth
    j = i + 1
    for t in toks[j:]:
        if t.depth != base:
            j += 1
            continue
        if t.kind == "word" and t.text.upper() not in ("RECURSIVE", "AS", "NOT", "MATERIALIZED"):
            prev = _prev_at_depth(toks, j, base)
            # a word right after a closed CTE body (")") starts the main statement
            if prev is not None and prev.kind == "punct" and prev.text == ")":
                return t.text.upper()
        j += 1
    return "WITH"


def _prev_at_depth(toks: list[Token], j: int, depth: int) -> Token | None:
    for k in range(j - 1, -1, -1):
        if toks[k].depth == depth:
            return toks[k]
    return None


def check_read_only(sql: str, *, dialect: str, where: str) -> None:
    """Raise UsageError unless ``sql`` is one read statement in ``dialect`` (see the module docstring)."""
    kind = statement_kind(sql, LEXIS.get(dialect, Lexis()))
    if kind not in READ_KEYWORDS:
        raise _refuse(
            f"reads run queries only (SELECT, WITH ... SELECT, SHOW, DESCRIBE); this SQL is a statement of "
            f"type {kind}, which {where} does not run",
        )


def _refuse(message: str, fix: str | None = None) -> UsageError:
    return UsageError(
        message,
        fix=fix
        or "write tables with mlstack.data.write() or `mlstack data load FILE TABLE`; run other statements "
        "with the warehouse's own client",
    )
