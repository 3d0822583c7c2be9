"""Connection strings without their secrets, for every message a person or a log reads.

A PostgreSQL DSN comes in two spellings, a URL
(`postgresql://app:s3cret@db/prod`, or `...?password=s3cret`) and libpq's
key/value form (`host=db password=s3cret`, `password='a b\\'c'`). Both reach
error messages, log lines and the command line's output; both are masked the
same way here. When a string cannot be parsed, everything from the point
parsing failed is treated as secret: a typo must not print a password.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

__all__ = ["MASK", "dsn_secrets", "is_keyvalue_dsn", "mask_dsn", "scrub"]

MASK = "***"
"""What a secret is replaced with."""

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# `scheme://user:password@`, for URLs urlsplit gives up on (several hosts, odd brackets).
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:@/?#]*):([^@]*)@")
# A query parameter whose name says it is a password (password=, sslpassword=, passwd=).
_SECRET_PARAM = re.compile(r"(?i)([?&]([^=&#]*)=)([^&#]*)")
_SPACE = " \t\n\r\f\v"
# libpq's keywords, which are not secrets even in a string that fails to parse.
_KEYWORDS = frozenset(
    {
        *("host", "hostaddr", "port", "dbname", "user", "password", "passfile", "sslpassword"),
        *("options", "connect_timeout", "application_name", "fallback_application_name"),
        *("keepalives", "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "service"),
        *("target_session_attrs", "load_balance_hosts", "channel_binding", "gssencmode"),
    }
)


def _is_secret_key(key: str) -> bool:
    """Whether a conninfo keyword names a secret (`passfile` is only a path)."""
    key = key.lower()
    return "pass" in key and key != "passfile"


class _KeyValue:
    """libpq's key/value conninfo grammar, keeping where each value was written.

    Mirrors `conninfo_parse` in libpq's fe-connect.c: `keyword = value`
    pairs separated by whitespace; a value is a run of non-blank characters
    or a single-quoted string, and a backslash escapes the next character in
    either. `broken_at` is the offset where the string stops following it.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pairs: list[tuple[str, int, int, str]] = []  # key, value start, end, decoded
        self.broken_at: int | None = None
        self._parse()

    def _parse(self) -> None:
        text, i, n = self.text, 0, len(self.text)
        while True:
            while i < n and text[i] in _SPACE:
                i += 1
            if i >= n:
                return
            start = i
            while i < n and text[i] != "=" and text[i] not in _SPACE:
                i += 1
            key = text[start:i]
            while i < n and text[i] in _SPACE:
                i += 1
            if not key or i >= n or text[i] != "=":
                self.broken_at = start
                return
            i += 1
            while i < n and text[i] in _SPACE:
                i += 1
            value_start, decoded = i, []
            if i < n and text[i] == "'":
                i += 1
                while i < n and text[i] != "'":
                    if text[i] == "\\" and i + 1 < n:
                        i += 1
                    decoded.append(text[i])
                    i += 1
                if i >= n:  # unterminated quoted string
                    self.broken_at = start
                    return
                i += 1
            else:
                while i < n and text[i] not in _SPACE:
                    if text[i] == "\\" and i + 1 < n:
                        i += 1
                    decoded.append(text[i])
                    i += 1
            self.pairs.append((key, value_start, i, "".join(decoded)))

    def masked(self) -> str:
        out, last = [], 0
        for key, start, end, _ in self.pairs:
            if _is_secret_key(key):
                out += [self.text[last:start], MASK]
                last = end
        if self.broken_at is not None:
            out += [self.text[last : self.broken_at], MASK]
        else:
            out.append(self.text[last:])
        return "".join(out)

    def secrets(self) -> set[str]:
        found = set()
        for key, start, end, decoded in self.pairs:
            if _is_secret_key(key):
                found |= {decoded, self.text[start:end]}
        if self.broken_at is not None:
            # Whatever follows the break could be a password typed without `=`.
            tail = self.text[self.broken_at :]
            words = re.split(r"[\s='\"]+", tail)
            found |= {tail.strip(), *(w for w in words if len(w) >= 3 and w not in _KEYWORDS)}
        return found


def is_keyvalue_dsn(dsn: str) -> bool:
    """Whether `dsn` is written as libpq key/value pairs rather than a URL."""
    return not _SCHEME.match(dsn) and "=" in dsn


def _mask_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        parts, password = None, None
    if parts is not None and password is not None:
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        url = urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostinfo}"))
    else:
        url = _USERINFO.sub(rf"\1:{MASK}@", url)

    def param(match: re.Match[str]) -> str:
        return match.group(1) + MASK if _is_secret_key(unquote(match.group(2))) else match.group()

    return _SECRET_PARAM.sub(param, url)


def _url_secrets(url: str) -> set[str]:
    found: set[str] = set()
    userinfo = _USERINFO.match(url)
    if userinfo:
        found.add(userinfo.group(2))
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            found.add(parts.password)
        query = parts.query
    except ValueError:
        query = url.partition("?")[2]
    for match in _SECRET_PARAM.finditer("?" + query.partition("#")[0]):
        if _is_secret_key(unquote(match.group(2))):
            found.add(match.group(3))
    for key, value in parse_qsl(query, keep_blank_values=True):
        if _is_secret_key(key):
            found.add(value)
    return found | {unquote(s) for s in found}


def _libpq_secrets(dsn: str) -> set[str]:
    """The secrets as libpq itself decodes them, when psycopg is installed and can parse `dsn`."""
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # the postgres extra is optional; the parsers above still mask
        return set()
    try:
        params = conninfo_to_dict(dsn)
    except Exception:  # malformed: the hand parser already masks from the break on
        return set()
    return {str(v) for k, v in params.items() if _is_secret_key(k) and v is not None}


def mask_dsn(dsn: str) -> str:
    """`dsn` with every password replaced by `***`, in either spelling.

    Example:
        >>> mask_dsn("host=db user=app password='a b' dbname=prod")
        'host=db user=app password=*** dbname=prod'
    """
    if _SCHEME.match(dsn) or "=" not in dsn:
        return _mask_url(dsn)
    return _KeyValue(dsn).masked()


def dsn_secrets(dsn: str) -> frozenset[str]:
    """Every secret in `dsn`, both as written and as decoded (percent-escapes, quotes)."""
    found = _url_secrets(dsn) if _SCHEME.match(dsn) else _KeyValue(dsn).secrets()
    found |= _libpq_secrets(dsn)
    return frozenset(s for s in found if s and s != MASK)


def scrub(text: str, dsn: str) -> str:
    """`text` with `dsn` shown masked and any of its secrets replaced by `***`.

    For messages that come from elsewhere (a driver's error, a user's
    exception) and might quote the connection string or part of it.
    """
    if not dsn:
        return text
    text = text.replace(dsn, mask_dsn(dsn))
    for secret in sorted(dsn_secrets(dsn), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
