"""A process that decides a paused review and is killed at a chosen point of the resume.

Usage (each in a fresh interpreter):

    python crash_worker.py pause URL STYLE COUNTER THREAD [THREAD ...]
    python crash_worker.py decide URL STYLE COUNTER THREAD DECISION KILL_AT
    python crash_worker.py recover URL STYLE COUNTER
    python crash_worker.py retry URL STYLE COUNTER THREAD [THREAD ...]
    python crash_worker.py random-kills URL STYLE COUNTER SEED THREAD:DECISION [...]

`decide` approves (with an edited reply) or rejects THREAD: through the coordinator,
or, for DECISION `raw-approve` / `raw-reject`, by resuming the graph itself (as a
script or LangGraph Server would: `Command(resume=...)`, or `update_state` then
`ainvoke(None)` in the static style), which the graph checks, claims and records
itself (its coordinator is attached). From the moment the
review store has claimed the decision it counts every checkpoint write the
saver makes (`aput` and `aput_writes`); with KILL_AT = n > 0 it dies with
`os._exit(17)` just before the n-th write reaches the saver, and with
KILL_AT = -1 just before the review is marked complete (every write done).
With KILL_AT = 0 it finishes and prints the number of writes it counted.

`random-kills` imports everything once, then forks one child per thread (no
connection or event loop exists before the fork): the child opens the backend
and decides its thread, and the parent SIGKILLs it after a random delay
between 0 and 1.2 times a decision's measured duration, counted from the
moment the child calls `approve`/`reject`. It prints how many children were
killed and how many finished first. The drafter appends a line to COUNTER
each time it runs, in every process.
"""

from __future__ import annotations

import asyncio
import os
import random
import select
import signal
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from langgraph.types import Command

from hitl_compliance import Decision, HitlCoordinator, KeywordRule, build_compliance_graph
from hitl_compliance.backends import open_backend

RISKY = "You should invest now: guaranteed returns of 8%."
EDITED = "Please speak to one of our advisers before investing."
REJECTION = "We cannot answer this in writing; an adviser will call you."
KILLED = 17
# recover() takes over claims older than the lease; the recovering process is fresh.
LEASE = timedelta(milliseconds=1)


def make_graph(checkpointer: Any, style: Any, counter: Path) -> Any:
    """The graph every process of a test builds the same way."""

    def draft(state: Any) -> str:
        with counter.open("a") as fh:
            fh.write(f"{state.customer_message}\n")
        return RISKY

    return build_compliance_graph(
        draft,
        rules=[KeywordRule("guarantee", ["guaranteed returns"], reason="promises returns")],
        checkpointer=checkpointer,
        style=style,
        rejection_message=REJECTION,
    )


class WriteKiller:
    """Counts the saver's writes once armed; dies just before the `kill_at`-th one."""

    def __init__(self, saver: Any, kill_at: int) -> None:
        self.count = 0
        self.armed = False
        self.kill_at = kill_at
        for name in ("aput", "aput_writes"):
            setattr(saver, name, self._wrap(getattr(saver, name)))

    def _wrap(self, method: Any) -> Any:
        async def write(*args: Any, **kwargs: Any) -> Any:
            if self.armed:
                self.count += 1
                if self.count == self.kill_at:
                    os._exit(KILLED)
            return await method(*args, **kwargs)

        return write


async def pause(url: str, style: str, counter: str, threads: list[str]) -> None:
    async with open_backend(url) as backend:
        coord = HitlCoordinator(
            make_graph(backend.checkpointer, style, Path(counter)), reviews=backend.reviews
        )
        for thread in threads:
            result = await coord.process(thread, "Should I buy the fund?")
            assert result.status == "paused", result


async def decide(
    url: str, style: str, counter: str, thread: str, decision: str, kill_at: int
) -> None:
    async with open_backend(url) as backend:
        killer = WriteKiller(backend.checkpointer, kill_at)
        coord = HitlCoordinator(
            make_graph(backend.checkpointer, style, Path(counter)), reviews=backend.reviews
        )
        store = backend.reviews
        for name in ("claim", "vote"):
            original = getattr(store, name)

            async def claimed(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                result = await _original(*args, **kwargs)
                killer.armed = True
                return result

            setattr(store, name, claimed)
        complete = store.complete

        async def completing(*args: Any, **kwargs: Any) -> Any:
            if kill_at == -1:
                os._exit(KILLED)
            return await complete(*args, **kwargs)

        store.complete = completing
        if decision.startswith("raw-"):
            await raw_decide(coord.graph, style, thread, decision == "raw-approve")
        elif decision == "approve":
            await coord.approve(thread, reviewer="officer@bank", response=EDITED)
        else:
            await coord.reject(thread, reviewer="officer@bank", reason="misleading")
        print(killer.count)


async def raw_decide(graph: Any, style: str, thread: str, approved: bool) -> None:
    """Decide around the coordinator, as a script or a server run would."""
    made = Decision(
        approved=approved,
        reviewer="officer@bank",
        response=EDITED if approved else None,
        reason=None if approved else "misleading",
        decided_at=datetime.now(timezone.utc),
    ).to_state()
    config = {"configurable": {"thread_id": thread}}
    if style == "interrupt_before":
        await graph.aupdate_state(config, {"decision": made}, as_node="human_approval")
        await graph.ainvoke(None, config)
    else:
        await graph.ainvoke(Command(resume=made), config)


async def recover(url: str, style: str, counter: str) -> None:
    async with open_backend(url) as backend:
        coord = HitlCoordinator(
            make_graph(backend.checkpointer, style, Path(counter)),
            reviews=backend.reviews,
            lease=LEASE,
        )
        await asyncio.sleep(0.01)  # past the lease of every claim the killed deciders left
        for result in await coord.recover():
            print(result.thread_id, result.status)


async def retry(url: str, style: str, counter: str, threads: list[str]) -> None:
    """Re-run each thread from its last checkpoint, as a retried run does (`ainvoke(None)`)."""
    async with open_backend(url) as backend:
        graph = make_graph(backend.checkpointer, style, Path(counter))
        HitlCoordinator(graph, reviews=backend.reviews)  # attached, as in the killed process
        for thread in threads:
            await graph.ainvoke(None, {"configurable": {"thread_id": thread}})


async def decide_child(
    url: str, style: str, counter: str, thread: str, decision: str, pipe: int
) -> None:
    async with open_backend(url) as backend:
        coord = HitlCoordinator(
            make_graph(backend.checkpointer, style, Path(counter)), reviews=backend.reviews
        )
        os.write(pipe, b"g")
        if decision == "approve":
            await coord.approve(thread, reviewer="officer@bank", response=EDITED)
        else:
            await coord.reject(thread, reviewer="officer@bank", reason="misleading")
        os.write(pipe, b"d")


def fork_decider(url: str, style: str, counter: str, thread: str, decision: str) -> tuple[int, int]:
    """Fork a child deciding `thread`; returns its pid and the read end of its pipe."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 0
        try:
            asyncio.run(decide_child(url, style, counter, thread, decision, write))
        except BaseException:
            code = 3
        os._exit(code)
    os.close(write)
    return pid, read


def wait_byte(fd: int, timeout: float) -> bytes:
    ready, _, _ = select.select([fd], [], [], timeout)
    return os.read(fd, 1) if ready else b""


def random_kills(url: str, style: str, counter: str, seed: int, jobs: list[str]) -> None:
    rng = random.Random(seed)
    durations: list[float] = []
    killed = finished = failed = 0
    for index, job in enumerate(jobs):
        thread, decision = job.rsplit(":", 1)
        pid, fd = fork_decider(url, style, counter, thread, decision)
        if wait_byte(fd, 60) != b"g":
            raise SystemExit(f"child for {thread} never started its decision")
        started = time.perf_counter()
        # Measure how long a decision takes (the first five, then every 20th, not
        # killed), so the random delays follow the machine's pace as it drifts.
        if index < 5 or index % 20 == 0:
            got = wait_byte(fd, 60)
            durations.append(time.perf_counter() - started)
            _, status = os.waitpid(pid, 0)
            finished += got == b"d" and os.waitstatus_to_exitcode(status) == 0
            failed += not (got == b"d" and os.waitstatus_to_exitcode(status) == 0)
        else:
            time.sleep(rng.uniform(0, 1.2 * statistics.median(durations[-5:])))
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            if code == -signal.SIGKILL:
                killed += 1
            elif code == 0:
                finished += 1
            else:
                failed += 1
        os.close(fd)
    print(killed, finished, failed, statistics.median(durations))


if __name__ == "__main__":
    mode, url, style, counter, *rest = sys.argv[1:]
    if mode == "pause":
        asyncio.run(pause(url, style, counter, rest))
    elif mode == "decide":
        asyncio.run(decide(url, style, counter, rest[0], rest[1], int(rest[2])))
    elif mode == "random-kills":
        random_kills(url, style, counter, int(rest[0]), rest[1:])
    elif mode == "recover":
        asyncio.run(recover(url, style, counter))
    elif mode == "retry":
        asyncio.run(retry(url, style, counter, rest))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
