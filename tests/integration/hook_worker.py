"""A separate process for the hook outbox tests: race `recover()`, or run a slow or dying hook.

Usage: python hook_worker.py MODE URL PREFIX LOG LEASE_S [READY GO | THREAD [RELEASE]]

* `recover`: call `recover()` with hooks that log each call; with READY and GO
  it first creates READY and waits for GO, so two workers race.
* `approve`: approve THREAD with an `on_decided` hook that logs `start`,
  waits (without blocking the event loop) until the file RELEASE exists, then
  logs `done`: a hook exactly as slow as the test needs.
* `approve-crash`: approve THREAD with an `on_decided` hook that logs `start`
  and kills the process (exit status 17) before the hook returns.

Each log line is `<kind> <pid> <delivery_id> <audit seq> <thread>`, appended with
O_APPEND in one `write`, so lines from several processes never interleave.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from hitl_compliance import HitlCoordinator, Hooks, KeywordRule, build_compliance_graph
from hitl_compliance.backends import open_backend

RISKY = "You should invest now: guaranteed returns of 8%."


def make_graph(checkpointer: Any) -> Any:
    """The graph every process of a test builds the same way."""
    return build_compliance_graph(
        lambda state: state.customer_message,
        rules=[KeywordRule("guarantee", ["guaranteed returns"], reason="promises returns")],
        checkpointer=checkpointer,
    )


def log(path: str, kind: str, event: Any) -> None:
    """Append one line for one hook call, atomically with respect to other processes."""
    # getattr: the same worker also runs against code whose events lack delivery_id.
    delivery_id = getattr(event, "delivery_id", "-") or "-"
    line = f"{kind} {os.getpid()} {delivery_id} {event.seq} {event.thread_id}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def barrier(ready: str, go: str) -> None:
    """Say this process is ready, then wait for the test's go, so two workers start together."""
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.005)


def wait_released(path: str) -> None:
    """Block until the test lets the slow hook finish (creates `path`), at most 120 s."""
    deadline = time.monotonic() + 120
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.02)


async def main(mode: str, url: str, prefix: str, out: str, lease_s: str, *rest: str) -> None:
    lease = timedelta(seconds=float(lease_s))
    async with open_backend(url, table_prefix=prefix) as backend:
        graph = make_graph(backend.checkpointer)
        if mode == "recover":

            async def record(event: Any) -> None:
                log(out, "call", event)
                await asyncio.sleep(0.02)  # keep the race window open

            hooks = Hooks(on_paused=record, on_decided=record, on_expired=record)
            coord = HitlCoordinator(graph, reviews=backend.reviews, hooks=hooks, lease=lease)
            if rest:
                barrier(*rest)
            await coord.recover()
            return
        thread, release = rest[0], rest[1] if len(rest) > 1 else ""

        async def slow(event: Any) -> None:
            log(out, "start", event)
            if mode == "approve-crash":
                os._exit(17)
            # In a thread: the event loop stays free to renew the lease meanwhile.
            await asyncio.to_thread(wait_released, release)
            log(out, "done", event)

        coord = HitlCoordinator(
            graph, reviews=backend.reviews, hooks=Hooks(on_decided=slow), lease=lease
        )
        await coord.approve(thread, reviewer="officer@bank")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
