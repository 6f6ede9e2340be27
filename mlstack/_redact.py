"""Remove secrets from text before it is shown: error messages of connectors and SDKs, doctor findings.

Connectors quote what they could not parse or reach: a TOML parse error in ``connections.toml`` prints the
offending line (the password on it), a URL in a network error carries its ``user:password@`` part and a
presigned link's signature. Everything mlstack prints from a third party's error passes through
:func:`redact` first. What is removed:

- values of secret-looking keys (``password = "..."``, ``"token": "..."``, ``?X-Amz-Signature=...``), in any
  of the ``key = value`` / ``key: value`` / ``key=value`` spellings, quoted or not, up to the end of the line
  when a quote is left open (a TOML syntax error is exactly that case);
- the userinfo of URLs (``https://admin:secret@host`` -> ``https://***@host``);
- ``Bearer``/``Basic`` credentials and Databricks personal access tokens (``dapi...``);
- quoted source lines of a parser's code frame (``4 | password = "...``), whose content cannot be trusted.

It is deliberately lighter than a parser: it only ever removes text, never reformats it.
"""

from __future__ import annotations

import re

MASK = "***"

# Words that make a key secret when they stand as a word of it (``snowflake_password``, ``clientSecret``,
# ``X-Amz-Security-Token``), but not inside another word (``passed``, ``bypass``). Also the manifest's guard.
SECRET_WORDS = (
    "pass|password|passwd|passphrase|pwd|secret|secrets|token|tokens|private_key|privatekey|api_key|apikey|"
    "access_key|accesskey|credential|credentials|signature|authorization|session_key|sessionkey"
)
_KEY = re.compile(rf"(?:^|_)(?:{SECRET_WORDS})(?=$|_)")
# a key that only names where a secret lives (a path, an env var) or what kind it is, is not itself secret
_NOT_SECRET_SUFFIX = re.compile(r"_(?:file|path|filepath|env|name|type|id|uri|url|endpoint)$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# Every pattern starts only where a token starts (a lookbehind, not \b) and never backtracks into a run of
# name characters (possessive quantifiers): a 1 MB value without a separator must cost one pass, not n².
_KEY_VALUE = re.compile(
    r"""(?P<key>["']?(?<![\w.-])(?P<name>[A-Za-z_][\w.-]*+)["']?)(?P<sep>[ \t]*+[:=][ \t]*+)"""
    r"""(?P<value>"[^"\n]*+"?|'[^'\n]*+'?|[^\s"',;&?}\])]++)"""
)
# a URL query parameter: ?X-Amz-Signature=..., &sig=... (Azure SAS), &token=...
_QUERY = re.compile(r"(?P<pre>[?&](?P<name>[\w.-]++)=)(?P<value>[^&#\s'\"]*+)")
_QUERY_SECRET = {"sig", "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature"}
_USERINFO = re.compile(r"(?P<scheme>(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*+://)[^/\s@'\"<>]++@")
_AUTH_SCHEME = re.compile(r"(?<![\w-])(?P<scheme>Bearer|Basic)\s++[A-Za-z0-9._~+/=-]{12,}+", re.IGNORECASE)
_DATABRICKS_PAT = re.compile(r"(?<![\w-])dapi[0-9a-f]{16,}+(?:-\d+)?", re.IGNORECASE)
# a quoted source line of a parser error: a code frame line "4 | password = ...", configparser's
# "[line  3]: 'token abc'"
_FRAME = re.compile(r"(?m)^(?P<lead>[ \t]*\d+[ \t]*\|).*$")
_INI_LINE = re.compile(r"(?P<lead>\[line\s*\d+\]:)[^\n]*")


def is_secret_key(name: str) -> bool:
    """True for a key whose value must never be shown (``password``, ``client_secret``, ``X-Api-Key``)."""
    words = re.sub(r"[.\s-]", "_", _CAMEL.sub("_", name)).lower()
    return bool(_KEY.search(words)) and not _NOT_SECRET_SUFFIX.search(words)


def redact(text: str) -> str:
    """``text`` with secret values, URL userinfo, bearer tokens and quoted source lines removed."""
    if not text:
        return text
    out = _FRAME.sub(lambda m: f"{m.group('lead')} (line not shown)", text)
    out = _INI_LINE.sub(lambda m: f"{m.group('lead')} (line not shown)", out)
    out = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", out)
    out = _AUTH_SCHEME.sub(lambda m: f"{m.group('scheme')} {MASK}", out)

    def query(m: re.Match[str]) -> str:
        name = m.group("name")
        if name.lower() in _QUERY_SECRET or is_secret_key(name):
            return f"{m.group('pre')}{MASK}"
        return m.group(0)

    out = _QUERY.sub(query, out)

    def key_value(m: re.Match[str]) -> str:
        if not is_secret_key(m.group("name")):
            return m.group(0)
        value = m.group("value")
        quote = value[0] if value[:1] in "\"'" else ""
        return f"{m.group('key')}{m.group('sep')}{quote}{MASK}{quote}"

    out = _KEY_VALUE.sub(key_value, out)
    return _DATABRICKS_PAT.sub(f"dapi{MASK}", out)


def url_has_userinfo(value: str) -> bool:
    """True when ``value`` contains a URL with a ``user[:password]@`` part."""
    return bool(_USERINFO.search(value))
