"""How long an oversight report takes on a big ledger, and whether it reads only its window.

Fills one store with `--rows` audit rows (default 1,000,000) spread evenly over
`--days` days (default 365), with the review rows they record: per review a
`paused` row and its decision row (`approved` / `rejected` / `expired`), an
`escalated` row for 1 in 20 and a `qa_verdict` row for 1 in 10; about 2.2
audit rows per review. The fill is bulk SQL (sqlite3 `executemany`, PostgreSQL
`COPY`) straight into the tables, as no report reads the hashes. Then times
`oversight_report` (the store's, which the coordinator calls) for one day and
for 30 days in the middle of the history, the median of `--repeat` runs, and
prints each query's plan, so a sequential scan would show.

```bash
python -m benchmarks.oversight --url sqlite:///oversight.db
python -m benchmarks.oversight --url postgresql://postgres@127.0.0.1:5432/test --rows 1000000
```

A Postgres URL gets a schema of its own, dropped afterwards; a SQLite file is
made afresh in a temporary directory unless the URL names one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hitl_compliance import open_backend
from hitl_compliance.oversight import OversightThresholds
from hitl_compliance.stores._sql import OversightQueries, Tables
from hitl_compliance.testing.databases import postgres_schema

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
REVIEWERS = [f"officer-{i}@bank" for i in range(12)]
RULES = ["promise", "pressure", "advice", "fees", "vulnerable"]
DRAFT = "Our Global Equity Fund has done well; past performance is no guide. " * 3
AUDIT_COLUMNS = (
    "seq",
    "thread_id",
    "review_id",
    "checkpoint_id",
    "event",
    "actor",
    "payload",
    "at",
)
REVIEW_COLUMNS = (
    "review_id",
    "thread_id",
    "checkpoint_id",
    "status",
    "customer_message",
    "draft_response",
    "violations",
    "requested_at",
    "reviewer",
    "decided_at",
    "decision",
    "deadline",
)


def history(rows: int, days: int, seed: int = 7) -> Iterator[tuple[list[Any], list[list[Any]]]]:
    """(review row, its audit rows) until `rows` audit rows, times as aware datetimes."""
    rng = random.Random(seed)
    reviews = int(rows / 2.15)
    step = timedelta(days=days) / reviews
    seq = 0
    for i in range(reviews):
        requested = START + step * i
        taken = timedelta(seconds=rng.lognormvariate(5.5, 1.3))
        decided = requested + taken
        deadline = requested + timedelta(hours=4)
        roll = rng.random()
        reviewer = rng.choice(REVIEWERS)
        status, event = "approved", "approved"
        decision: dict[str, Any] = {"approved": True, "reviewer": reviewer}
        if roll < 0.15:
            status, event, decision = "rejected", "rejected", {"approved": False}
            decision["reason_code"] = "misleading_promotion"
        elif roll < 0.25:
            decision["response"] = "Please speak to an adviser."
            decision["reason_code"] = "unsuitable_advice"
        elif roll < 0.27:
            status, event, reviewer = "expired", "expired", "system:sla"
            decided = deadline
            decision = {"approved": False, "kind": "system"}
        rules = rng.sample(RULES, rng.randint(1, 2))
        violations = [{"rule": r, "verdict": "review", "reason": r} for r in rules]
        rid, thread = f"r{i:09d}", f"t{i:09d}"
        review = [rid, thread, f"c{i}", status, "question", DRAFT, json.dumps(violations)]
        review += [requested, reviewer, decided, json.dumps(decision), deadline]
        audit = []
        for at, ev, actor, payload in (
            (requested, "paused", "system", {}),
            *(((deadline, "escalated", "system:sla", {"forced": True}),) if i % 20 == 7 else ()),
            (decided, event, reviewer, {"reason_code": decision.get("reason_code")}),
            *(
                (
                    (
                        decided + timedelta(days=1),
                        "qa_verdict",
                        "qa@bank",
                        {"verdict": rng.choice(["agree", "agree", "disagree"]), "rules": rules},
                    ),
                )
                if i % 10 == 3
                else ()
            ),
        ):
            seq += 1
            audit.append([seq, thread, rid, f"c{i}", ev, actor, json.dumps(payload), at])
        yield review, audit


def fill_sqlite(path: str, rows: int, days: int) -> int:
    """Bulk-insert the history into the SQLite file's tables; the audit rows written."""
    conn = sqlite3.connect(path)
    # The store's own form of a time (ISO text in UTC), so its range reads match.
    from hitl_compliance.stores.sqlite import _DIALECT

    def text(values: list[Any]) -> list[Any]:
        return [_DIALECT.time(v) if isinstance(v, datetime) else v for v in values]

    written = 0
    reviews_sql = (
        f"INSERT INTO hitl_reviews ({', '.join(REVIEW_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(REVIEW_COLUMNS))})"
    )
    audit_sql = (
        f"INSERT INTO hitl_audit ({', '.join(AUDIT_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(AUDIT_COLUMNS))})"
    )
    batch_r: list[list[Any]] = []
    batch_a: list[list[Any]] = []
    for review, audit in history(rows, days):
        batch_r.append(text(review))
        batch_a.extend(text(a) for a in audit)
        if len(batch_a) >= 50_000:
            with conn:
                conn.executemany(reviews_sql, batch_r)
                conn.executemany(audit_sql, batch_a)
            written += len(batch_a)
            batch_r, batch_a = [], []
    with conn:
        conn.executemany(reviews_sql, batch_r)
        conn.executemany(audit_sql, batch_a)
    written += len(batch_a)
    conn.execute("ANALYZE")
    conn.close()
    return written


def fill_postgres(dsn: str, rows: int, days: int) -> int:
    """COPY the history into the schema's tables; the audit rows written."""
    import psycopg

    written = 0
    # One COPY at a time per connection: the (deterministic) history is generated twice.
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY hitl_reviews ({', '.join(REVIEW_COLUMNS)}) FROM STDIN") as copy:
            for review, _ in history(rows, days):
                copy.write_row(review)
        with cur.copy(f"COPY hitl_audit ({', '.join(AUDIT_COLUMNS)}) FROM STDIN") as copy:
            for _, audit in history(rows, days):
                for row in audit:
                    copy.write_row(row)
                    written += 1
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE hitl_reviews")
        conn.execute("ANALYZE hitl_audit")
    return written


def plans(url: str, since: datetime, until: datetime) -> list[str]:
    """Each report query's plan on the filled tables (no planner setting changed)."""
    tables = Tables.of("hitl_")
    if url.startswith("sqlite"):
        from hitl_compliance.stores.sqlite import _DIALECT as SQLITE

        q = OversightQueries.of(SQLITE, tables)
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        window = (SQLITE.time(since), SQLITE.time(until))
        out = [
            " | ".join(r[-1] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", window))
            for sql in (q.decisions, q.escalations, q.qa)
        ]
        conn.close()
        return out
    import psycopg

    from hitl_compliance.stores.postgres import _DIALECT as POSTGRES

    q = OversightQueries.of(POSTGRES, tables)
    with psycopg.connect(url) as conn:
        return [
            " | ".join(r[0] for r in conn.execute(f"EXPLAIN {sql}", (since, until)).fetchall())
            for sql in (q.decisions, q.escalations, q.qa)
        ]


async def time_reports(url: str, days: int, repeat: int) -> dict[str, float]:
    """Median seconds of a one-day and a 30-day report in the middle of the history."""
    middle = START + timedelta(days=days // 2)
    out: dict[str, float] = {}
    async with open_backend(url) as backend:
        store: Any = backend.reviews
        for label, length in (("1 day", 1), ("30 days", 30)):
            took = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                report = await store.oversight_report(
                    since=middle,
                    until=middle + timedelta(days=length),
                    thresholds=OversightThresholds(),
                    period="day",
                )
                took.append(time.perf_counter() - t0)
            out[label] = statistics.median(took)
            out[f"{label} decisions"] = report.totals.decisions + report.totals.expire
    return out


@contextmanager
def store_url(url: str | None) -> Iterator[str]:
    """The URL to fill: a fresh Postgres schema, or a SQLite file (fresh when none is named)."""
    if url and url.startswith("postgresql"):
        with postgres_schema(url, prefix="hitl_bench_") as dsn:
            yield dsn
    elif url:
        yield url
    else:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'oversight.db'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.oversight")
    parser.add_argument("--url", help="sqlite:///FILE or a PostgreSQL DSN (default: a temp file)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="audit rows to fill")
    parser.add_argument("--days", type=int, default=365, help="days the rows spread over")
    parser.add_argument("--repeat", type=int, default=5, help="runs per window (median)")
    args = parser.parse_args(argv)
    with store_url(args.url) as url:
        kind = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
        asyncio.run(_setup(url))
        t0 = time.perf_counter()
        if kind == "SQLite":
            written = fill_sqlite(url.removeprefix("sqlite:///"), args.rows, args.days)
        else:
            written = fill_postgres(url, args.rows, args.days)
        print(
            f"{kind}: filled {written:,} audit rows over {args.days} days "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        middle = START + timedelta(days=args.days // 2)
        for what, plan in zip(
            ("decisions", "escalations", "qa"),
            plans(url, middle, middle + timedelta(days=30)),
            strict=True,
        ):
            print(f"  plan ({what}, 30 days): {plan}")
        timed = asyncio.run(time_reports(url, args.days, args.repeat))
        for label in ("1 day", "30 days"):
            print(
                f"  oversight_report, {label}: {timed[label] * 1000:.1f} ms "
                f"({int(timed[label + ' decisions']):,} decided reviews)"
            )
    return 0


async def _setup(url: str) -> None:
    async with open_backend(url):
        pass


if __name__ == "__main__":
    sys.exit(main())
