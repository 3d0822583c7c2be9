"""Profile full cycles with pyinstrument to see where the library's overhead goes.

Usage (pyinstrument is not a project dependency: `pip install pyinstrument`):

```bash
python -m benchmarks.profile_cycle --backend sqlite --side library --cycles 400
python -m benchmarks.profile_cycle --backend sqlite --side raw --html /tmp/raw.html
```

The session covers only the timed cycles (after a warm-up), on the same
workload and storage as the cycle benchmark. `async_mode="enabled"` charges
time spent awaiting (for example on aiosqlite's worker thread or on a
Postgres round trip) to the coroutine that awaited it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from benchmarks._backends import BackendName, BenchContext
from benchmarks._raw import Style, raw_cycle
from benchmarks._workload import MESSAGE, REVIEWER


async def _profile(args: argparse.Namespace) -> Any:
    try:
        from pyinstrument import Profiler
    except ImportError:  # pragma: no cover - a tool, not part of the suite
        raise SystemExit("pyinstrument is not installed: pip install pyinstrument") from None
    backend: BackendName = args.backend
    style: Style = args.style
    dsn = (
        args.postgres_dsn
        or os.environ.get("HITL_BENCH_POSTGRES_DSN")
        or os.environ.get("HITL_TEST_POSTGRES_DSN")
    )
    if backend == "postgres" and not dsn:
        raise SystemExit("postgres needs --postgres-dsn or HITL_BENCH_POSTGRES_DSN")
    with tempfile.TemporaryDirectory(prefix="hitl-prof-") as tmp:
        ctx = BenchContext(smoke=False, tmpdir=Path(tmp), postgres_dsn=dsn)
        if args.side == "library":
            async with ctx.library(backend, style) as coord:

                async def cycle() -> None:
                    thread_id = uuid.uuid4().hex
                    await coord.process(thread_id, MESSAGE)
                    await coord.approve(thread_id, reviewer=REVIEWER)

                return await _run(Profiler, cycle, args)
        async with ctx.raw(backend, style) as graph:

            async def raw() -> None:
                await raw_cycle(graph, style, uuid.uuid4().hex)

            return await _run(Profiler, raw, args)


async def _run(profiler_cls: Any, cycle: Any, args: argparse.Namespace) -> Any:
    for _ in range(args.warmup):
        await cycle()
    profiler = profiler_cls(interval=args.interval, async_mode="enabled")
    profiler.start()
    for _ in range(args.cycles):
        await cycle()
    profiler.stop()
    return profiler


def main() -> None:
    """Entry point: profile, then print a text report or write an HTML one."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_cycle")
    parser.add_argument("--backend", choices=["memory", "sqlite", "postgres"], default="memory")
    parser.add_argument(
        "--style", choices=["interrupt_before", "command_resume"], default="interrupt_before"
    )
    parser.add_argument("--side", choices=["library", "raw"], default="library")
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.0002, help="sampling interval (s)")
    parser.add_argument("--postgres-dsn")
    parser.add_argument("--html", type=Path, help="write an HTML report here instead of text")
    parser.add_argument("--show-all", action="store_true", help="do not hide library frames")
    args = parser.parse_args()
    profiler = asyncio.run(_profile(args))
    if args.html:
        args.html.write_text(profiler.output_html(), encoding="utf-8")
        print(f"wrote {args.html}")
    else:
        print(profiler.output_text(unicode=True, color=False, show_all=args.show_all))


if __name__ == "__main__":
    main()
