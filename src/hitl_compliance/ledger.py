"""The tamper-evident audit ledger: how each audit row is hashed, chained and verified.

Every audit row carries `hash = SHA-256(canonical(row))`, where the canonical
form covers the row's content, `prev_hash` (the previous row *of the same
thread*, or 64 zeros) and `global_prev_hash` (the previous row *of the whole
store*). Stores also keep a chain head (the last row's seq and hash). Editing,
deleting, inserting or reordering a row directly in the database breaks a
hash or a link, and [`verify_rows`][hitl_compliance.ledger.verify_rows] names
the first broken row.

This module is standard-library only, so an auditor can copy this one file and
verify an export (`coord.export_audit(path)`) without installing anything:

```console
$ python ledger.py verify audit.jsonl              # the copied file
ok: 42 rows, chain head 1c9f...e2
$ python -m hitl_compliance.ledger verify audit.jsonl   # or from the installed package
```

It exits 0 when the export verifies, 1 naming the first broken row, 2 for a
usage error or an unreadable file.

**Documented pruning.** Retention (`coord.apply_retention`) deletes whole
threads' audit rows past their ceiling, and appends to that thread, *before*
deleting, one `pruned` row (a tombstone, never pruned itself) whose payload
lists every removed row as `[seq, hash]` (`payload["removed"]`). The verifier
accepts exactly those gaps: a row whose `global_prev_hash` (or `prev_hash`)
skips rows verifies when every skipped `seq` is listed by a tombstone and the
link equals the listed hash of the row just before it. Any other missing
row, a listed row still present, or an edited tombstone still breaks the chain.

The canonical form is JSON of the object
`{"seq", "thread_id", "review_id", "checkpoint_id", "event", "actor", "payload",
"at", "prev_hash", "global_prev_hash"}` with sorted keys, no whitespace
(`separators=(",", ":")`), UTF-8, non-ASCII kept, and `at` as ISO-8601 UTC
with microseconds (`2026-11-24T18:00:00.000000+00:00`).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "GENESIS",
    "HASHED_FIELDS",
    "PRUNED_EVENT",
    "LedgerBreak",
    "LedgerReport",
    "canonical",
    "format_at",
    "row_hash",
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
"""The fields of an audit row covered by its hash."""

PRUNED_EVENT = "pruned"
"""The event of a tombstone: `payload["removed"]` lists the removed rows as `[seq, hash]`."""


def format_at(value: datetime | str) -> str:
    """The canonical text of a timestamp: ISO-8601 in UTC with microseconds."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def canonical(row: Mapping[str, Any]) -> bytes:
    """The exact bytes hashed for one audit row (see the module docstring)."""
    content = {name: row.get(name) for name in HASHED_FIELDS}
    content["at"] = format_at(row["at"])
    return json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


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


def verify_rows(
    rows: Iterable[Mapping[str, Any]],
    *,
    head: tuple[int, str] | None = None,
    thread_id: str | None = None,
) -> LedgerReport:
    """Verify hashes and links of audit rows given in `seq` order.

    Gaps documented by `pruned` tombstones (see the module docstring) verify;
    any other missing row breaks a link.

    Args:
        rows: All rows of the store (or, with `thread_id`, of that thread), oldest first.
        head: The store's chain head `(seq, hash)`; checked against the last row
            (whole-store verification only). `None` skips the head check.
        thread_id: Verify one thread's chain only (global links are not checked).
    """
    rows = list(rows)
    pruned = _documented(rows)
    by_thread: dict[str, list[int]] = {}
    for seq in sorted(pruned):
        by_thread.setdefault(pruned[seq][0], []).append(seq)
    thread_prev: dict[str, tuple[int, str]] = {}
    global_prev = GENESIS
    last_seq = 0
    checked = 0
    last_hash: str | None = None
    for row in rows:
        seq = int(row["seq"])
        tid = str(row["thread_id"])
        reason = _link_problem(
            row, seq, last_seq, thread_prev.get(tid, (0, GENESIS)), global_prev, pruned, by_thread
        )
        if thread_id is not None and reason is not None and reason.startswith("global"):
            reason = None  # a single thread's export cannot see the other threads' rows
        if reason is not None:
            return LedgerReport(False, checked, LedgerBreak(seq, tid, reason), last_hash)
        thread_prev[tid] = (seq, str(row["hash"]))
        global_prev = str(row["hash"])
        last_seq = seq
        last_hash = global_prev
        checked += 1
    if thread_id is None and head is not None:
        head_seq, head_hash = head
        if checked == 0 and head_seq == 0:
            return LedgerReport(True, 0, None, None)
        if (head_seq, head_hash) != (last_seq, last_hash):
            return LedgerReport(
                False,
                checked,
                LedgerBreak(
                    last_seq or None,
                    None,
                    f"the chain head (seq {head_seq}) does not match the last row "
                    f"(seq {last_seq}): rows at the end were deleted or added",
                ),
                last_hash,
            )
    return LedgerReport(True, checked, None, last_hash)


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
    global_prev: str,
    pruned: Mapping[int, tuple[str, str]],
    by_thread: Mapping[str, list[int]],
) -> str | None:
    """Why `row` does not verify after its predecessors, or None."""
    if seq <= last_seq:
        return f"seq {seq} is not after seq {last_seq}: rows reordered"
    if row_hash(row) != row.get("hash"):
        return "hash does not match the row's content: the row was edited"
    if seq in pruned:
        return "the row is listed as pruned by a tombstone but is still present"
    tid = str(row.get("thread_id"))
    if row.get("prev_hash") != thread_prev[1] and row.get("prev_hash") != _thread_gap(
        pruned, by_thread.get(tid, []), thread_prev[0], seq
    ):
        return (
            "prev_hash does not link to the thread's previous row: a row of this "
            "thread was deleted, inserted or reordered"
        )
    if row.get("global_prev_hash") != global_prev and row.get("global_prev_hash") != _global_gap(
        pruned, last_seq, seq
    ):
        return (
            "global_prev_hash does not link to the previous row of the store: a row "
            "was deleted, inserted or reordered"
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


def _global_gap(pruned: Mapping[int, tuple[str, str]], after: int, before: int) -> str | None:
    """The listed hash of row `before - 1` when every seq between two rows is listed as pruned."""
    if before - after < 2 or any(s not in pruned for s in range(after + 1, before)):
        return None
    return pruned[before - 1][1]


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

_USAGE = "usage: python -m hitl_compliance.ledger verify EXPORT.jsonl (or: python ledger.py ...)"


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
    if len(argv) != 3 or argv[1] != "verify":
        print(_USAGE, file=sys.stderr)
        return 2
    try:
        rows, head = _read_export(argv[2])
        thread_ids = {r.get("thread_id") for r in rows}
        partial = head is None and len(thread_ids) == 1
        only = next(iter(thread_ids)) if partial else None
        report = verify_rows(rows, head=head, thread_id=only if isinstance(only, str) else None)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"error: cannot read {argv[2]!r}: {reason}", file=sys.stderr)
        return 2
    if report.ok:
        print(f"ok: {report.checked} rows, chain head {report.head_hash}")
        return 0
    broken = report.first_broken
    assert broken is not None
    # repr() escapes control characters: an exported thread id cannot rewrite the terminal.
    print(f"BROKEN at seq {broken.seq} (thread {broken.thread_id!r}): {broken.reason}")
    return 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
