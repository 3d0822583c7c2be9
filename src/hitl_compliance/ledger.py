"""The tamper-evident audit ledger: how each audit row is hashed, chained and verified.

Every audit row carries `hash = SHA-256(canonical(row))`, where the canonical
form covers the row's content, `prev_hash` (the previous row *of the same
thread*, or 64 zeros) and `global_prev_hash` (the previous row *of the same
lane*). Stores also keep a chain head per lane (the lane's last seq and hash).
Editing, deleting, inserting or reordering a row directly in the database
breaks a hash or a link, and [`verify_rows`][hitl_compliance.ledger.verify_rows]
names the first broken row.

**Lanes.** A store without lanes (memory, SQLite) is one lane, lane 0: each
row links to the previous row of the whole store, as always. A PostgreSQL
store has L lanes (16 by default, fixed when it is created), so that appends
of different threads do not queue on one head row: a thread's rows all go to
lane [`lane_of`][hitl_compliance.ledger.lane_of]`(thread_id, L)` (the first 8
hex digits of SHA-256 of the UTF-8 thread id, modulo L), a row's
`global_prev_hash` is the previous row of its lane, and `seq` is unique and
increasing along every lane but may skip numbers (a rolled-back append drew
one). The store's head is [`combined_head`][hitl_compliance.ledger.combined_head]
of the lane heads: lane 0's `(seq, hash)` when only lane 0 has rows (exactly
the head of a store without lanes), otherwise the largest seq and the
SHA-256 of the JCS of `[[lane, seq, hash], ...]` (lanes with rows, by lane).
A sealed head signs that combined head and lists the lane heads
(`SealedHead.lanes`), so truncating or re-hashing any lane back past its
sealed head is caught.

This module needs only the standard library to import, so an auditor can copy
this one file and verify an export (`coord.export_audit(path)`):

```console
$ pip install rfc8785                              # for format-2 rows (see below)
$ python ledger.py verify audit.jsonl              # the copied file
ok: 42 rows, chain head 1c9f...e2
$ python -m hitl_compliance.ledger verify audit.jsonl   # or from the installed package
```

It exits 0 when the export verifies, 1 naming the first broken row, 2 for a
usage error, an unreadable file, or format-2 rows without `rfc8785` installed.

**Documented pruning.** Retention (`coord.apply_retention`) deletes whole
threads' audit rows past their ceiling, and appends to that thread, *before*
deleting, one `pruned` row (a tombstone, never pruned itself) whose payload
lists every removed row as `[seq, hash]` (`payload["removed"]`). The verifier
accepts exactly those gaps: a row whose `global_prev_hash` (or `prev_hash`)
skips rows verifies when every skipped `seq` is listed by a tombstone and the
link equals the listed hash of the row just before it. Any other missing
row, a listed row still present, or an edited tombstone still breaks the chain.
With several lanes (seqs are not dense), a row's `global_prev_hash` may skip
rows when it equals the listed hash of a pruned row between it and its lane's
previous row.

**The canonical form.** Each row names its `ledger_format` (absent means 1).

* **Format 3** (`LANES_FORMAT`, every row a store with lanes writes): format 2
  with one more field, `lane` (an integer), in the hashed object; its
  `ledger_format` is the integer 3. A row without it (formats 1 and 2) is in
  lane 0, so rows written before a store had lanes keep verifying unchanged.
* **Format 2** (every row a store without lanes writes, `LEDGER_FORMAT`): the bytes are
  the [RFC 8785](https://www.rfc-editor.org/rfc/rfc8785) JSON Canonicalization
  Scheme (JCS) of the object `{"seq", "thread_id", "review_id",
  "checkpoint_id", "event", "actor", "payload", "at", "prev_hash",
  "global_prev_hash", "ledger_format"}`: keys sorted by their UTF-16 code
  units, no whitespace, strings with only `"`, `\\` and U+0000-U+001F escaped
  (`\\b \\t \\n \\f \\r`, else `\\u00xx`), numbers as ECMAScript's
  `Number.prototype.toString` writes them (`100.0` is `100`, `1e16` is
  `10000000000000000`, `-0.0` is `0`), UTF-8. `ledger_format` is the integer
  2; `at` is ISO-8601 UTC with microseconds (`2026-11-24T18:00:00.000000+00:00`).
  An integer beyond +/-(2**53-1) that a double equals exactly (`10**16`, as
  PostgreSQL's jsonb gives `1e16` back) is written as that double. JCS is
  computed by the maintained `rfc8785` package, imported only when a format-2
  row is hashed, so verifying format-1 rows still needs nothing but Python.
  Values JCS cannot write exactly (an integer no double equals, such as
  `2**53 + 1`; NaN, Infinity, lone surrogates) are refused before a row is
  written ([`check_sealable`][hitl_compliance.ledger.check_sealable]).
* **Format 1** (rows written before): Python's `json.dumps(content,
  sort_keys=True, separators=(",", ":"), ensure_ascii=False)` of the same
  object without `ledger_format`, encoded as UTF-8. Old rows keep verifying
  unchanged.

A JavaScript verifier written from this description alone
(`docs/assets/verify-ledger.mjs`, node >= 18) agrees with this module on
every row.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "ERASED_EVENT",
    "ERASED_KEY",
    "GENESIS",
    "HASHED_FIELDS",
    "JSON_SAFE_INTEGER",
    "LANES_FORMAT",
    "LEDGER_FORMAT",
    "PERSONAL_KEY",
    "PRUNED_EVENT",
    "SEAL_DOMAIN",
    "LedgerBreak",
    "LedgerReport",
    "SealProof",
    "SealedHead",
    "UnsealableValueError",
    "canonical",
    "check_sealable",
    "check_seals",
    "combined_head",
    "ed25519_verifier",
    "exact_double",
    "format_at",
    "key_id_of",
    "lane_of",
    "personal_digest",
    "read_seals",
    "row_hash",
    "row_lane",
    "seal_message",
    "verify_rows",
]

GENESIS = "0" * 64
"""The `prev_hash` / `global_prev_hash` of a chain's first row."""

HASHED_FIELDS = (
    "seq",
    "thread_id",
    "review_id",
    "checkpoint_id",
    "event",
    "actor",
    "payload",
    "at",
    "prev_hash",
    "global_prev_hash",
)
"""The fields of an audit row covered by its hash (format 2 adds `ledger_format`)."""

LEDGER_FORMAT = 2
"""The canonical form new single-lane rows are sealed with: 2, RFC 8785 (JCS); 1 is the legacy form.

Rows of a store with lanes (PostgreSQL) are sealed in format 3: format 2 plus `lane`.
"""

LANES_FORMAT = 3
"""The canonical form of a row that names its `lane`: format 2 plus the `lane` field."""

JSON_SAFE_INTEGER = 2**53 - 1
"""The largest integer JCS (an IEEE 754 double) writes exactly; its negation is the smallest."""


class UnsealableValueError(ValueError):
    """A row holds a value the format-2 canonical form cannot write exactly.

    `path` locates it in the row (`payload.metadata.n`). Stores translate it into
    [`LedgerValueError`][hitl_compliance.LedgerValueError] before writing anything.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


PRUNED_EVENT = "pruned"
"""The event of a tombstone: `payload["removed"]` lists the removed rows as `[seq, hash]`."""


PERSONAL_KEY = "$personal"
"""A payload value `{"$personal": digest}` commits to personal data kept beside the chain."""

ERASED_KEY = "$erased"
"""Readers show an erased personal value as `{"$erased": true, "$personal": digest}`."""

ERASED_EVENT = "erased"
"""The event of an erasure: a thread's personal values were removed (names no personal data)."""


def personal_digest(salt: str, value: object) -> str:
    """The commitment to a personal value: hex SHA-256 of the salt's bytes, then JCS(value).

    `salt` is hex (32 random bytes). Raises ValueError for a salt that is not hex.
    """
    digest = hashlib.sha256(bytes.fromhex(salt))
    digest.update(_jcs(value))  # not salt + JCS: that copies a large value once more
    return digest.hexdigest()


def format_at(value: datetime | str) -> str:
    """The canonical text of a timestamp: ISO-8601 in UTC with microseconds."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def check_sealable(value: object, *, path: str = "payload") -> None:
    """Refuse a value the format-2 form (JCS) cannot write exactly: UnsealableValueError.

    JCS writes None, bools, finite floats, integers an IEEE 754 double equals
    exactly (all within +/-(2**53-1); beyond, 10**16 but not 2**53 + 1), strings
    without lone surrogates, and lists/tuples and str-keyed mappings of them.

    Example:
        >>> check_sealable({"amount": 100.0, "ids": [2**53 - 1]})
        >>> try:
        ...     check_sealable({"n": 2**53 + 1})
        ... except UnsealableValueError as exc:
        ...     print(exc.path)
        payload.n
    """
    # An explicit stack: a deeply nested value is refused by its own check, not a RecursionError.
    stack: list[tuple[object, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        problem: str | None = None
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, int):
            if not exact_double(item):
                problem = (
                    f"integer {item} is not exactly an IEEE 754 double (as every integer "
                    "within +/-(2**53-1) is), so JSON numbers cannot hold it; store it "
                    "as a string"
                )
        elif isinstance(item, float):
            if not math.isfinite(item):
                problem = f"{item} is not a JSON number; store it as a string or None"
        elif isinstance(item, str):
            problem = _string_problem(item)
        elif isinstance(item, Mapping):
            for key, child in item.items():
                if not isinstance(key, str):
                    problem = f"key {key!r} is not a string"
                    break
                problem = _string_problem(key)
                if problem is not None:
                    problem = f"key {key!r}: {problem}"
                    break
                stack.append((child, f"{where}.{key}"))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
        else:
            problem = f"{type(item).__name__} is not a JSON value"
        if problem is not None:
            raise UnsealableValueError(f"{where}: {problem}", path=where)


def exact_double(value: int) -> bool:
    """Whether an IEEE 754 double equals the integer `value` exactly (JCS can write it)."""
    if -JSON_SAFE_INTEGER <= value <= JSON_SAFE_INTEGER:
        return True
    try:
        return float(value) == value  # int/float comparison is exact in Python
    except OverflowError:
        return False


def _as_doubles(value: Any) -> Any:
    """`value` with each integer beyond +/-(2**53-1) as the double it equals (checked first)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -JSON_SAFE_INTEGER <= value <= JSON_SAFE_INTEGER else float(value)
    if isinstance(value, Mapping):
        return {key: _as_doubles(child) for key, child in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_doubles(child) for child in value]
    return value


def _string_problem(text: str) -> str | None:
    """Why JCS cannot write `text` (a lone surrogate has no UTF-8 form), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate, which has no UTF-8 form"
    return None


def canonical(row: Mapping[str, Any]) -> bytes:
    """The exact bytes hashed for one audit row, in its `ledger_format` (see the module docstring).

    Raises:
        UnsealableValueError: a format-2 row holds a value JCS cannot write exactly.
        ValueError: the row names a `ledger_format` this module does not know.
        ImportError: a format-2 row, and the `rfc8785` package is not installed.
    """
    fmt = row.get("ledger_format", 1)
    content = {name: row.get(name) for name in HASHED_FIELDS}
    content["at"] = format_at(row["at"])
    if fmt == 1 and type(fmt) is int:
        return json.dumps(
            content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    if fmt in (2, LANES_FORMAT) and type(fmt) is int:
        content["ledger_format"] = fmt
        if fmt == LANES_FORMAT:
            content["lane"] = row.get("lane")
        try:
            return _jcs(content)
        except ValueError:  # rfc8785's CanonicalizationError
            # Say which value, and why; rfc8785 refuses every int beyond +/-(2**53-1),
            # but one a double equals (1e16 read back from PostgreSQL's jsonb as
            # 10000000000000000) is that number: written as JCS writes the double.
            check_sealable(content, path="row")
            return _jcs(_as_doubles(content))
    raise ValueError(f"unknown ledger_format {fmt!r} (this verifier knows 1, 2 and 3)")


_JCS_SAFE_INT = 2**53 - 1


def _json_writes_as_jcs(value: Any) -> bool:
    """Whether `json.dumps` (sorted keys, no spaces, UTF-8) writes `value` exactly as RFC 8785.

    True for strings, booleans, null, integers a double holds exactly, and
    lists and dicts of those whose keys sort the same by code point as by UTF-16
    code unit (no character from U+D800 up). Both then escape only `"`, `\\`
    and the controls, the same way. A float or any other type is left to `rfc8785`.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_JCS_SAFE_INT <= value <= _JCS_SAFE_INT)
    if kind is list:
        return all(_json_writes_as_jcs(item) for item in value)
    if kind is dict:
        return all(
            type(key) is str
            and (key.isascii() or all(ord(c) < 0xD800 for c in key))
            and _json_writes_as_jcs(item)
            for key, item in value.items()
        )
    return False


def _jcs(value: Any) -> bytes:
    """RFC 8785 bytes of `value`: by `json` when it writes them identically, else by `rfc8785`.

    The standard library's C encoder is many times faster than the pure-Python
    `rfc8785` package; the fast path is taken only where the two agree byte for
    byte (`_json_writes_as_jcs`; a property test compares them).
    """
    if _json_writes_as_jcs(value):
        # A lone surrogate fails to encode (a ValueError), as rfc8785 refuses it.
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8"
        )
    try:
        # Imported here: a copied ledger.py verifies format-1 rows with Python alone.
        import rfc8785
    except ImportError:
        raise ImportError(
            "format-2 ledger rows are hashed with RFC 8785 (JCS): pip install rfc8785"
        ) from None
    return rfc8785.dumps(value)


def row_hash(row: Mapping[str, Any]) -> str:
    """Hex SHA-256 of [`canonical`][hitl_compliance.ledger.canonical]`(row)`."""
    return hashlib.sha256(canonical(row)).hexdigest()


@dataclass(frozen=True, slots=True)
class LedgerBreak:
    """The first row where the ledger does not verify, and why."""

    seq: int | None
    thread_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class LedgerReport:
    """Result of verifying a ledger (or one thread's chain)."""

    ok: bool
    checked: int
    first_broken: LedgerBreak | None = None
    head_hash: str | None = None
    proof: SealProof | None = None
    """What the signed heads prove (`None` when no signed heads were checked)."""


def lane_of(thread_id: str, lanes: int) -> int:
    """The lane of a thread in a store with `lanes` lanes (a stable function of its id).

    The first 8 hex digits of SHA-256 of the UTF-8 thread id, as an integer, modulo
    `lanes`; PostgreSQL's append function computes the same.

    Example:
        >>> lane_of("thread-1", 1)
        0
        >>> 0 <= lane_of("thread-1", 16) < 16
        True
    """
    if lanes < 1:
        raise ValueError(f"a ledger has at least one lane, got {lanes}")
    return int(hashlib.sha256(thread_id.encode("utf-8")).hexdigest()[:8], 16) % lanes


def row_lane(row: Mapping[str, Any]) -> int:
    """The lane a row was sealed in: its `lane` in format 3, else 0 (one chain)."""
    if row.get("ledger_format") == LANES_FORMAT:
        lane = row.get("lane")
        return lane if isinstance(lane, int) and not isinstance(lane, bool) else -1
    return 0


def combined_head(lanes: Iterable[tuple[int, int, str]]) -> tuple[int, str] | None:
    """The store's chain head `(seq, hash)` from its lane heads `(lane, seq, hash)`.

    Lanes without rows (seq 0) are left out. With rows in lane 0 only, the head
    is lane 0's `(seq, hash)`, exactly the single-chain head of a store without
    lanes; otherwise it is the largest seq and the hex SHA-256 of the JCS of
    the list `[[lane, seq, hash], ...]` sorted by lane (for integers and hex
    strings, compact JSON). None when no lane has a row.

    Example:
        >>> combined_head([(0, 3, "a" * 64), (1, 0, "0" * 64)]) == (3, "a" * 64)
        True
    """
    live = sorted((lane, seq, digest) for lane, seq, digest in lanes if seq > 0)
    if not live:
        return None
    if len(live) == 1 and live[0][0] == 0:
        return live[0][1], live[0][2]
    text = json.dumps([list(head) for head in live], separators=(",", ":"))
    return max(seq for _, seq, _ in live), hashlib.sha256(text.encode("utf-8")).hexdigest()


def verify_rows(
    rows: Iterable[Mapping[str, Any]],
    *,
    head: tuple[int, str] | None = None,
    thread_id: str | None = None,
) -> LedgerReport:
    """Verify hashes and links of audit rows given in `seq` order.

    Each row's `global_prev_hash` links the previous row of its lane (format-3
    rows name their `lane`; other rows are lane 0, so a store without lanes is
    one chain). Gaps documented by `pruned` tombstones (see the module
    docstring) verify; any other missing row breaks a link.

    Args:
        rows: All rows of the store (or, with `thread_id`, of that thread), oldest first.
        head: The store's chain head `(seq, hash)`
            ([`combined_head`][hitl_compliance.ledger.combined_head] of its lane
            heads); checked against the last row of each lane (whole-store
            verification only). `None` skips the head check.
        thread_id: Verify one thread's chain only (lane links are not checked).
    """
    rows = list(rows)
    pruned = _documented(rows)
    by_thread: dict[str, list[int]] = {}
    for seq in sorted(pruned):
        by_thread.setdefault(pruned[seq][0], []).append(seq)
    # One chain: every seq between two rows must be listed as pruned. Several
    # lanes share one sequence, so a lane's seqs are not dense (nor, after a
    # rolled-back append, the store's).
    dense = all(row_lane(r) == 0 for r in rows)
    thread_prev: dict[str, tuple[int, str]] = {}
    lane_prev: dict[int, tuple[int, str]] = {}
    last_seq = 0
    checked = 0
    for row in rows:
        seq = int(row["seq"])
        tid = str(row["thread_id"])
        lane = row_lane(row)
        reason = _link_problem(
            row,
            seq,
            last_seq,
            thread_prev.get(tid, (0, GENESIS)),
            lane_prev.get(lane, (0, GENESIS)),
            pruned,
            by_thread,
            dense=dense,
        )
        if thread_id is not None and reason is not None and reason.startswith("global"):
            reason = None  # a single thread's export cannot see the other threads' rows
        if reason is not None:
            return LedgerReport(False, checked, LedgerBreak(seq, tid, reason), _head_of(lane_prev))
        thread_prev[tid] = (seq, str(row["hash"]))
        lane_prev[lane] = (seq, str(row["hash"]))
        last_seq = seq
        checked += 1
    last_hash = _head_of(lane_prev)
    if thread_id is None and head is not None:
        head_seq, head_hash = head
        if checked == 0 and head_seq == 0:
            return LedgerReport(True, 0, None, None)
        found = combined_head((lane, s, h) for lane, (s, h) in lane_prev.items())
        if (head_seq, head_hash) != (found or (0, None)):
            return LedgerReport(
                False,
                checked,
                LedgerBreak(
                    last_seq or None,
                    None,
                    f"the chain head (seq {head_seq}) does not match the last row of "
                    f"each lane (last seq {last_seq}): rows at the end were deleted or added",
                ),
                last_hash,
            )
    return LedgerReport(True, checked, None, last_hash)


def _head_of(lane_prev: Mapping[int, tuple[int, str]]) -> str | None:
    """The head hash of the lanes' last rows so far (the last row's, with one lane)."""
    found = combined_head((lane, seq, digest) for lane, (seq, digest) in lane_prev.items())
    return None if found is None else found[1]


def _documented(rows: list[Mapping[str, Any]]) -> dict[int, tuple[str, str]]:
    """`seq -> (thread id, hash)` of every row a `pruned` tombstone lists as removed.

    Read before the rows are checked (a tombstone follows the rows it lists);
    a tombstone edited to list more rows breaks its own hash when reached.
    """
    removed: dict[int, tuple[str, str]] = {}
    for row in rows:
        if row.get("event") != PRUNED_EVENT or not isinstance(row.get("payload"), dict):
            continue
        listed = row["payload"].get("removed")
        if not isinstance(listed, list):
            continue
        for item in listed:
            if isinstance(item, list) and len(item) == 2 and isinstance(item[0], int):
                removed[item[0]] = (str(row.get("thread_id")), str(item[1]))
    return removed


def _link_problem(
    row: Mapping[str, Any],
    seq: int,
    last_seq: int,
    thread_prev: tuple[int, str],
    lane_prev: tuple[int, str],
    pruned: Mapping[int, tuple[str, str]],
    by_thread: Mapping[str, list[int]],
    *,
    dense: bool,
) -> str | None:
    """Why `row` does not verify after its predecessors, or None."""
    if seq <= last_seq:
        return f"seq {seq} is not after seq {last_seq}: rows reordered"
    try:
        digest = row_hash(row)
    except (ValueError, TypeError, KeyError) as exc:
        # Only an edited row holds what its format cannot hash (writes refuse it).
        return f"the row cannot be hashed ({exc}): the row was edited"
    if digest != row.get("hash"):
        return "hash does not match the row's content: the row was edited"
    if row_lane(row) < 0:
        return "the row's lane is not an integer: the row was edited"
    if seq in pruned:
        return "the row is listed as pruned by a tombstone but is still present"
    problem = _personal_problem(row)
    if problem is not None:
        return problem
    tid = str(row.get("thread_id"))
    if row.get("prev_hash") != thread_prev[1] and row.get("prev_hash") != _thread_gap(
        pruned, by_thread.get(tid, []), thread_prev[0], seq
    ):
        return (
            "prev_hash does not link to the thread's previous row: a row of this "
            "thread was deleted, inserted or reordered"
        )
    gap = _global_gap if dense else _lane_gap
    link = row.get("global_prev_hash")
    if link != lane_prev[1] and link not in gap(pruned, lane_prev[0], seq):
        return (
            "global_prev_hash does not link to the previous row of its lane: a row "
            "was deleted, inserted or reordered"
        )
    return None


def _personal_problem(row: Mapping[str, Any]) -> str | None:
    """Why the row's personal values (`row["personal"]`) do not match its commitments, or None.

    Each value still present must hash, with its salt, to a commitment in the
    row's payload; an erased one (None) proves nothing and needs nothing.
    """
    proof = row.get("personal")
    if proof is None:
        return None
    payload = row.get("payload")
    committed = (
        {v.get(PERSONAL_KEY) for v in payload.values() if isinstance(v, dict)}
        if isinstance(payload, dict)
        else set()
    )
    if not isinstance(proof, dict):
        return "the row's personal values are not a mapping: they were edited"
    for digest, kept in proof.items():
        if digest not in committed:
            return f"personal value {digest[:12]} is not committed by the row: it was edited"
        if kept is None:
            continue
        try:
            ok = isinstance(kept, dict) and personal_digest(kept["salt"], kept["value"]) == digest
        except (ValueError, TypeError, KeyError):
            ok = False
        if not ok:
            return (
                f"personal value {digest[:12]} does not match its commitment: the side "
                "table (or the export) was edited"
            )
    return None


def _thread_gap(
    pruned: Mapping[int, tuple[str, str]], seqs: list[int], after: int, before: int
) -> str | None:
    """The listed hash of the thread's last pruned row between two of its rows, if any.

    `seqs` are the thread's pruned seqs, sorted.
    """
    i = bisect.bisect_left(seqs, before) - 1
    return pruned[seqs[i]][1] if i >= 0 and seqs[i] > after else None


def _global_gap(pruned: Mapping[int, tuple[str, str]], after: int, before: int) -> set[str]:
    """One chain: the listed hash of row `before - 1` when every seq between is listed."""
    if before - after < 2 or any(s not in pruned for s in range(after + 1, before)):
        return set()
    return {pruned[before - 1][1]}


def _lane_gap(pruned: Mapping[int, tuple[str, str]], after: int, before: int) -> set[str]:
    """Several lanes: the listed hashes of the pruned rows between two rows of a lane.

    A tombstone does not say which lane a removed row was in, so the link may
    be to any of them; a row deleted without being listed still breaks a link.
    """
    return {digest for seq, (_, digest) in pruned.items() if after < seq < before}


# -- Signed heads ------------------------------------------------------------------
#
# A store with a `Sealing` (hitl_compliance.signing) signs its chain head every N
# rows or T seconds and on every export. A sealed head is checked here, still with
# the standard library only: the signature check itself is passed in as a function
# (the command line below builds it with `cryptography`, imported only then).

SEAL_DOMAIN = b"hitl-compliance sealed head v1\n"
"""The prefix of every signed message: a signature over it means nothing else."""


@dataclass(frozen=True, slots=True)
class SealedHead:
    """A chain head `(seq, hash)` signed at `sealed_at` by the key `key_id`.

    The signed bytes are [`seal_message`][hitl_compliance.ledger.seal_message];
    `signature` is the signature in lowercase hex. A store with rows in more than
    lane 0 seals all its lane heads read in one snapshot: `lanes` lists them as
    `(lane, seq, hash)` and `(seq, hash)` is their
    [`combined_head`][hitl_compliance.ledger.combined_head], so the signature
    covers every lane. With one lane, `lanes` is empty and the seal is as before.
    """

    seq: int
    hash: str
    sealed_at: datetime
    key_id: str
    signature: str
    lanes: tuple[tuple[int, int, str], ...] = ()

    def message(self) -> bytes:
        """The exact bytes the signature covers."""
        return seal_message(self.seq, self.hash, self.sealed_at, self.key_id)

    def to_record(self) -> dict[str, Any]:
        """The JSON object of an export's or an anchor file's `{"type": "seal"}` line."""
        record: dict[str, Any] = {
            "type": "seal",
            "seq": self.seq,
            "hash": self.hash,
            "sealed_at": format_at(self.sealed_at),
            "key_id": self.key_id,
            "signature": self.signature,
        }
        if self.lanes:
            record["lanes"] = [list(head) for head in self.lanes]
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SealedHead:
        """Read a `{"type": "seal"}` line back; ValueError/KeyError/TypeError when malformed."""
        sealed_at = datetime.fromisoformat(str(record["sealed_at"]).replace("Z", "+00:00"))
        if sealed_at.tzinfo is None:
            raise ValueError("sealed_at must be timezone-aware")
        seq = record["seq"]
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
            raise ValueError(f"seal seq must be an int >= 1, got {seq!r}")
        lanes: list[tuple[int, int, str]] = []
        for item in record.get("lanes") or []:
            lane, lane_seq, digest = item
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lane, lane_seq)):
                raise ValueError(f"a sealed lane head is [lane, seq, hash], got {item!r}")
            lanes.append((lane, lane_seq, str(digest)))
        return cls(
            seq=seq,
            hash=str(record["hash"]),
            sealed_at=sealed_at,
            key_id=str(record["key_id"]),
            signature=str(record["signature"]),
            lanes=tuple(lanes),
        )

    def lane_heads(self) -> dict[int, int]:
        """`lane -> seq` of the heads this seal covers (lane 0 only, without lanes)."""
        if not self.lanes:
            return {0: self.seq}
        return {lane: seq for lane, seq, _ in self.lanes}


def seal_message(seq: int, head_hash: str, sealed_at: datetime | str, key_id: str) -> bytes:
    """The canonical bytes signed for a sealed head.

    `SEAL_DOMAIN` followed by the JSON of `{"hash", "key_id", "sealed_at", "seq"}`
    with sorted keys, no whitespace, UTF-8, and `sealed_at` as
    [`format_at`][hitl_compliance.ledger.format_at] writes it.
    """
    body = {"hash": head_hash, "key_id": key_id, "sealed_at": format_at(sealed_at), "seq": seq}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return SEAL_DOMAIN + text.encode("utf-8")


@dataclass(frozen=True, slots=True)
class SealProof:
    """What a verification with signed heads proves, and what it cannot.

    Attributes:
        signatures_checked: a public key was given and every seal's signature was checked;
            without one, seals are only compared with the rows and prove nothing a
            database owner could not forge.
        key_id: the id of the public key used (None without one).
        seals_checked: how many sealed heads (store and anchors) were compared.
        intact_through: the hash chain links from seq 1 to this seq.
        sealed_seq: the newest sealed head that verified and matches its row: rows
            `1..sealed_seq` are exactly the rows that existed when it was signed.
        sealed_at: when that head was signed.
        anchored_seq: the newest head confirmed from an anchor (outside the database).
        unsealed_rows: rows after `sealed_seq`: linked, but a database owner could
            delete or rewrite them without a trace.
    """

    signatures_checked: bool
    key_id: str | None
    seals_checked: int
    intact_through: int
    sealed_seq: int | None
    sealed_at: datetime | None
    anchored_seq: int | None
    unsealed_rows: int

    def statements(self) -> list[str]:
        """What was proven and what was not, one sentence each (for a report or a CLI)."""
        out = [f"hash chain intact from seq 1 to seq {self.intact_through}"]
        if not self.signatures_checked:
            out.append(
                "signatures NOT checked (no public key): sealed heads prove nothing a "
                "database owner could not forge"
            )
        if self.sealed_seq is None:
            out.append("no sealed head verified: deleted or re-hashed rows are undetectable")
        else:
            signed = "signed head" if self.signatures_checked else "unverified head"
            out.append(
                f"{signed} at seq {self.sealed_seq} (sealed {format_at(self.sealed_at or '')}, "
                f"key {self.key_id or '?'}) matches the rows: rows 1..{self.sealed_seq} "
                "are complete and unchanged since it was signed"
            )
        if self.anchored_seq is not None:
            out.append(f"anchored head at seq {self.anchored_seq} found outside the database")
        else:
            out.append(
                "no anchor checked: deleting the newest seals with their rows would go unseen"
            )
        if self.unsealed_rows:
            out.append(
                f"{self.unsealed_rows} row(s) after the last sealed head are unproven: "
                "they could have been cut or rewritten"
            )
        return out


def check_seals(
    rows: Sequence[Mapping[str, Any]],
    report: LedgerReport,
    seals: Iterable[SealedHead],
    *,
    verify: Callable[[bytes, bytes], bool] | None = None,
    key_id: str | None = None,
    anchors: Iterable[SealedHead] = (),
    keys: Mapping[str, Callable[[bytes, bytes], bool]] | None = None,
) -> LedgerReport:
    """Check sealed heads against the rows [`verify_rows`][hitl_compliance.ledger.verify_rows]
    already checked (`report`); the report with its `proof` and any earlier break.

    Every seal (from the store and from `anchors`) must name a row that exists
    with exactly its hash, and, with `verify(message, signature)`, carry a valid
    signature of the key `key_id` (or, with `keys`, of the key its `key_id`
    names: several keys, after a rotation). A seal past the last row means rows
    were cut from the end; a seal whose row has another hash means rows were
    rewritten and re-hashed; a bad signature, or a key not given, a forged seal.
    """
    verifiers = dict(keys or {})
    if verify is not None:
        verifiers[key_id or ""] = verify
    by_seq = {int(r["seq"]): (str(r["hash"]), row_lane(r)) for r in rows}
    # A seal may name a row retention pruned since: its tombstone lists the hash
    # (not the lane: any lane then).
    for seq, (_, digest) in _documented(list(rows)).items():
        by_seq.setdefault(seq, (digest, -1))
    last_by_lane: dict[int, int] = {}
    for r in rows:
        last_by_lane[row_lane(r)] = int(r["seq"])
    intact = int(rows[report.checked - 1]["seq"]) if report.checked else 0
    tagged = [(s, False) for s in seals] + [(s, True) for s in anchors]
    tagged.sort(key=lambda pair: (pair[0].seq, pair[1]))
    problems: list[tuple[LedgerBreak, int]] = []  # and how far the seal reaches
    sealed: SealedHead | None = None
    anchored: int | None = None
    for head, from_anchor in tagged:
        where = "anchored" if from_anchor else "sealed"
        reason, at_seq = _seal_problem(head, by_seq, last_by_lane, verifiers or None)
        if reason is not None:
            problem = LedgerBreak(
                at_seq or None, None, f"the {where} head at seq {head.seq}: {reason}"
            )
            problems.append((problem, head.seq))
            continue
        if head.seq <= intact:
            if sealed is None or head.seq >= sealed.seq:
                sealed = head
            if from_anchor:
                anchored = max(anchored or 0, head.seq)
    covered = {} if sealed is None else sealed.lane_heads()
    proof = SealProof(
        signatures_checked=bool(verifiers),
        key_id=key_id if key_id is not None or sealed is None or not verifiers else sealed.key_id,
        seals_checked=len(tagged),
        intact_through=intact,
        sealed_seq=None if sealed is None else sealed.seq,
        sealed_at=None if sealed is None else sealed.sealed_at,
        anchored_seq=anchored,
        unsealed_rows=sum(
            1
            for seq, (_, lane) in by_seq.items()
            if seq > covered.get(lane, 0 if lane >= 0 else seq)
        ),
    )
    # The earliest break; at one seq, the rows' own break first, then the seal
    # reaching furthest (it names the most rows cut).
    ranked = [(b.seq or 0, 1, -reach, i, b) for i, (b, reach) in enumerate(problems)]
    if report.first_broken is not None:
        ranked.append((report.first_broken.seq or 0, 0, 0, -1, report.first_broken))
    first = min(ranked)[-1] if ranked else None
    return LedgerReport(first is None, report.checked, first, report.head_hash, proof)


def _seal_problem(
    head: SealedHead,
    by_seq: Mapping[int, tuple[str, int]],
    last_by_lane: Mapping[int, int],
    verifiers: Mapping[str, Callable[[bytes, bytes], bool]] | None,
) -> tuple[str | None, int]:
    """Why a sealed head does not verify against the rows and keys (or None), and at which seq."""
    last_seq = max(last_by_lane.values(), default=0)
    if verifiers is not None:
        verify = verifiers.get(head.key_id)
        if verify is None:
            given = ", ".join(repr(k) for k in verifiers)
            return (
                f"signed by key {head.key_id!r}, not by the given key {given}: "
                "forged, or sealed with another key"
            ), min(head.seq, last_seq)
        try:
            signature = bytes.fromhex(head.signature)
        except ValueError:
            signature = b""
        if not signature or not verify(head.message(), signature):
            return "its signature does not verify: the seal was forged or altered", min(
                head.seq, last_seq
            )
    if head.lanes and combined_head(head.lanes) != (head.seq, head.hash):
        return (
            "its lane heads do not hash to the signed head: the seal was altered",
            min(head.seq, last_seq),
        )
    heads = head.lanes or ((-1, head.seq, head.hash),)
    for lane, seq, digest in heads:
        if seq == 0:
            continue
        lane_last = last_seq if lane < 0 else last_by_lane.get(lane, 0)
        named = "" if lane < 0 else f"lane {lane}'s "
        if seq > lane_last:
            return (
                f"it is past the last row (seq {lane_last}): rows "
                f"{lane_last + 1}..{seq} were deleted (the ledger was truncated)"
                if lane < 0
                else f"{named}head (seq {seq}) is past the lane's last row (seq {lane_last}): "
                "rows were deleted (the ledger was truncated)"
            ), min(seq, last_seq)
        found = by_seq.get(seq)
        if found is None:
            return f"{named}row {seq} is missing: rows were deleted", seq
        if found[0] != digest or (lane >= 0 and found[1] not in (lane, -1)):
            return (
                f"{named}row {seq} has another hash than the signed one: "
                "rows were rewritten and re-hashed"
            ), seq
    return None, 0


def ed25519_verifier(public_key_pem: bytes) -> tuple[str, Callable[[bytes, bytes], bool]]:
    """The key id and a `verify(message, signature)` function of an Ed25519 public key.

    Needs the `cryptography` package (the `signing` extra); raises ImportError
    without it, ValueError when the PEM is not an Ed25519 public key.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the public key is not an Ed25519 key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def verify(message: bytes, signature: bytes) -> bool:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    return key_id_of(raw), verify


def key_id_of(raw_public_key: bytes) -> str:
    """The key id of a raw Ed25519 public key: `ed25519:` and 16 hex of its SHA-256."""
    return "ed25519:" + hashlib.sha256(raw_public_key).hexdigest()[:16]


def read_seals(path: str) -> list[SealedHead]:
    """The `{"type": "seal"}` lines of an export or an anchor file, in file order."""
    seals: list[SealedHead] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if isinstance(record, dict) and record.get("type") == "seal":
                    seals.append(SealedHead.from_record(record))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"line {number} is not a sealed head line ({exc})") from None
    return seals


# `python -m hitl_compliance.ledger` imports the package first, and the package
# imports this module, so runpy finds it in sys.modules and warns that running it
# again as __main__ "may result in unpredictable behaviour". It cannot here: the
# command line below uses only what its own execution defines. Ignore exactly
# that warning, and only in a process started as `python -m hitl_compliance.ledger`.
def _started_as_module() -> bool:
    """Whether this process was started as `python -m hitl_compliance.ledger ...`."""
    argv: list[str] = getattr(sys, "orig_argv", [])
    pairs = zip(argv, [*argv[1:], ""], strict=True)
    return any((arg == "-m" and nxt == __name__) or arg == "-m" + __name__ for arg, nxt in pairs)


if __name__ == "hitl_compliance.ledger" and _started_as_module():
    import warnings

    warnings.filterwarnings(
        "ignore",
        message=r"'hitl_compliance\.ledger' found in sys\.modules",
        category=RuntimeWarning,
    )

_USAGE = (
    "usage: python -m hitl_compliance.ledger verify EXPORT.jsonl "
    "[--public-key KEY.pem]... [--anchor ANCHORS.jsonl]... (or: python ledger.py ...)"
)


def _read_export(path: str) -> tuple[list[dict[str, Any]], tuple[int, str] | None]:
    """The rows and chain head of an export; ValueError/OSError saying what is wrong."""
    head: tuple[int, str] | None = None
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                if record.get("type") == "head":
                    head = (int(record["seq"]), str(record["hash"]))
                elif record.get("type", "row") == "row":
                    rows.append(record)
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"line {number} is not an audit export line ({exc})") from None
    return rows, head


def _main(argv: list[str]) -> int:
    argv, options = _seal_options(argv)
    if len(argv) != 3 or argv[1] != "verify" or options is None:
        print(_USAGE, file=sys.stderr)
        return 2
    try:
        rows, head = _read_export(argv[2])
        thread_ids = {r.get("thread_id") for r in rows}
        partial = head is None and len(thread_ids) == 1
        only = next(iter(thread_ids)) if partial else None
        report = verify_rows(rows, head=head, thread_id=only if isinstance(only, str) else None)
        if options and not partial:
            report = _check_export_seals(argv[2], rows, report, options)
    except (OSError, UnicodeDecodeError, ValueError, ImportError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"error: cannot read {argv[2]!r}: {reason}", file=sys.stderr)
        return 2
    for statement in report.proof.statements() if report.proof is not None else []:
        print(f"  {statement}")
    if options and partial:
        print("  signatures not checked: a single thread's export carries no sealed heads")
    if report.ok:
        print(f"ok: {report.checked} rows, chain head {report.head_hash}")
        return 0
    broken = report.first_broken
    assert broken is not None
    # repr() escapes control characters: an exported thread id cannot rewrite the terminal.
    print(f"BROKEN at seq {broken.seq} (thread {broken.thread_id!r}): {broken.reason}")
    return 1


def _seal_options(argv: list[str]) -> tuple[list[str], dict[str, list[str]] | None]:
    """`argv` less `--public-key FILE` / `--anchor FILE` (each repeatable), and those."""
    rest: list[str] = []
    options: dict[str, list[str]] = {}
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.partition("=")
        if name in ("--public-key", "--anchor"):
            value = value if eq else next(args, "")
            if not value:
                return rest, None
            options.setdefault(name, []).append(value)
        else:
            rest.append(arg)
    return rest, options


def _check_export_seals(
    path: str, rows: list[dict[str, Any]], report: LedgerReport, options: Mapping[str, list[str]]
) -> LedgerReport:
    """The report with the export's (and the anchor files') sealed heads checked."""
    keys: dict[str, Callable[[bytes, bytes], bool]] = {}
    for key_path in options.get("--public-key", []):
        try:
            with open(key_path, "rb") as fh:
                key_id, verify = ed25519_verifier(fh.read())
        except ImportError:
            raise ImportError(
                "checking signatures needs the cryptography package: "
                "pip install cryptography (or hitl-compliance[signing])"
            ) from None
        keys[key_id] = verify
    anchors = [head for anchor in options.get("--anchor", []) for head in read_seals(anchor)]
    seals = read_seals(path)
    return check_seals(rows, report, seals, anchors=anchors, keys=keys or None)


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
