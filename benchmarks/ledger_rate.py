"""How fast the ledger takes rows, and what a turn's reply record costs.

Every reply now appends one `replied` row, so the ledger's append rate bounds
how many turns a deployment can send. This measures, on one store:

* **append rate**: `P` processes (real OS processes, each with its own
  connection) append `replied` rows on threads of their own for `--seconds`;
  rows per second in total, for `P = 1` and `P = --processes`. A rate that
  does not grow with `P` means the appends serialise (with one chain every
  row links to the store-wide head, one row all writers update; PostgreSQL's
  lanes give each lane its own head, so threads of different lanes do not);
* **reply record cost**: the median time of an auto-delivered turn
  (`coord.process`, no pause) and of the one `append_audit` the reply record
  adds to it.

```bash
python -m benchmarks.ledger_rate --url postgresql://postgres@127.0.0.1:5432/test
python -m benchmarks.ledger_rate --url sqlite:///ledger.db --processes 4 --seconds 5
```

A Postgres URL gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

from hitl_compliance import HitlCoordinator, KeywordRule, build_compliance_graph, open_backend
from hitl_compliance._replies import REPLY_EVENT, RuleSet
from hitl_compliance.testing.databases import postgres_schema

PAYLOAD_RULES = RuleSet.of([KeywordRule("guarantee", ["guaranteed returns"])])


def _payload(turn: int) -> dict[str, object]:
    return {
        "outcome": "delivered",
        "delivered_sha256": "0" * 64,
        "rules": [{"name": n, "version": v} for n, v in PAYLOAD_RULES.rules],
        "ruleset": PAYLOAD_RULES.fingerprint,
        "drafter": "bench-model",
        "decided_by": "auto",
        "turn": str(turn),
    }


async def _append_for(url: str, seconds: float, ready: Queue[int], go: Event) -> int:
    """Append rows on this process's own threads for `seconds` once `go` is set."""
    async with open_backend(url) as backend:
        store = backend.reviews
        await store.audit_head()  # connected and set up before the clock starts
        ready.put(1)
        await asyncio.to_thread(go.wait)
        prefix, count = uuid.uuid4().hex[:8], 0
        deadline = time.time() + seconds
        while time.time() < deadline:
            await store.append_audit(
                thread_id=f"{prefix}-{count % 50}",
                review_id=None,
                checkpoint_id=None,
                event=REPLY_EVENT,
                actor="auto",
                payload=_payload(count),
                at=datetime.now(timezone.utc),
            )
            count += 1
        return count


def _child(url: str, seconds: float, ready: Queue[int], go: Event, out: Queue[int]) -> None:
    out.put(asyncio.run(_append_for(url, seconds, ready, go)))


def append_rate(url: str, processes: int, seconds: float) -> float:
    """Rows per second that `processes` OS processes append together (started together)."""
    ctx = mp.get_context("spawn")
    ready: Queue[int] = ctx.Queue()
    out: Queue[int] = ctx.Queue()
    go = ctx.Event()
    children = [
        ctx.Process(target=_child, args=(url, seconds, ready, go, out)) for _ in range(processes)
    ]
    for child in children:
        child.start()
    for _ in children:
        ready.get(timeout=120)
    go.set()
    total = sum(out.get(timeout=120 + seconds) for _ in children)
    for child in children:
        child.join(timeout=30)
        if child.exitcode != 0:
            raise RuntimeError(f"an appending process failed (exit code {child.exitcode})")
    return total / seconds


async def reply_cost(url: str, turns: int) -> tuple[float, float]:
    """Median ms of an auto-delivered turn, and of one reply-record append, on `url`."""
    async with open_backend(url) as backend:
        graph = build_compliance_graph(
            lambda state: "Our savings account pays 4% AER.",
            rules=[KeywordRule("guarantee", ["guaranteed returns"])],
            checkpointer=backend.checkpointer,
        )
        coord = HitlCoordinator(graph, reviews=backend.reviews)
        turn_ms, append_ms = [], []
        for i in range(turns + 5):
            began = time.perf_counter()
            await coord.process(uuid.uuid4().hex, "What rate do you pay?")
            middle = time.perf_counter()
            await backend.reviews.append_audit(
                thread_id=uuid.uuid4().hex,
                review_id=None,
                checkpoint_id=None,
                event=REPLY_EVENT,
                actor="auto",
                payload=_payload(i),
                at=datetime.now(timezone.utc),
            )
            ended = time.perf_counter()
            if i >= 5:  # warm-up
                turn_ms.append((middle - began) * 1000)
                append_ms.append((ended - middle) * 1000)
        return statistics.median(turn_ms), statistics.median(append_ms)


@contextmanager
def _store_url(url: str) -> Iterator[str]:
    if url.startswith("postgres"):
        with postgres_schema(url) as dsn:
            yield dsn
    else:
        yield url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ledger_rate")
    parser.add_argument("--url", help="store URL (default: a temporary SQLite file)")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--turns", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hitl-ledger-") as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'ledger.db'}"
        with _store_url(url) as store_url:
            one = append_rate(store_url, 1, args.seconds)
            many = append_rate(store_url, args.processes, args.seconds)
            turn, append = asyncio.run(reply_cost(store_url, args.turns))
    kind = url.split(":", 1)[0]
    print(f"ledger append rate on {kind}:")
    print(f"  1 process:  {one:,.0f} rows/s")
    print(f"  {args.processes} processes: {many:,.0f} rows/s ({many / one:.2f}x of one)")
    print(
        f"auto-delivered turn: median {turn:.2f} ms; its reply record (one append): {append:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
