"""`python -m benchmarks`: run the benchmarks, save JSON, optionally regenerate the docs page.

Examples:

```bash
python -m benchmarks --smoke          # seconds; proves everything runs
python -m benchmarks --write-docs     # full run (~15 min), rewrites docs/performance.md
python -m benchmarks --only cycle pending --postgres-dsn postgresql://postgres@127.0.0.1:5432/test
python -m benchmarks --from-json .benchmarks/results.json --write-docs  # re-render
```
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import (
    bench_cycle,
    bench_edit,
    bench_gated,
    bench_io,
    bench_memory,
    bench_pending,
    bench_sla,
    bench_throughput,
)
from benchmarks._backends import BACKENDS, BenchContext
from benchmarks._env import (
    describe_machine,
    load_average,
    package_versions,
    postgres_server_version,
)
from benchmarks._report import render, write_docs
from benchmarks._result import BenchResult

ROOT = Path(__file__).resolve().parents[1]
DSN_ENVS = ("HITL_BENCH_POSTGRES_DSN", "HITL_TEST_POSTGRES_DSN")

BENCHMARKS: dict[str, Callable[[BenchContext], Awaitable[BenchResult]]] = {
    "cycle": bench_cycle.run,
    "gated": bench_gated.run,
    "io": bench_io.run,
    "throughput": bench_throughput.run,
    "pending": bench_pending.run,
    "sla": bench_sla.run,
    "memory": bench_memory.run,
    "edit": bench_edit.run,
}
"""Every benchmark, in the order they run and appear in the docs."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, as documented in the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark hitl-compliance against hand-written LangGraph, same run.",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: proves every benchmark runs (CI)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(BENCHMARKS),
        metavar="NAME",
        help=f"run only these benchmarks ({', '.join(BENCHMARKS)})",
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=list(BACKENDS),
        default=list(BACKENDS),
        metavar="BACKEND",
        help="run only on these backends (memory, sqlite, postgres; default: all)",
    )
    parser.add_argument(
        "--postgres-dsn",
        help=f"PostgreSQL server to use (default: ${DSN_ENVS[0]}, then ${DSN_ENVS[1]}); "
        "each run works in schemas of its own and drops them",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / ".benchmarks" / "results.json",
        help="where to write the JSON results (default: .benchmarks/results.json)",
    )
    parser.add_argument(
        "--write-docs",
        nargs="?",
        type=Path,
        const=ROOT / "docs" / "performance.md",
        default=None,
        metavar="PATH",
        help="regenerate the results page (default path: docs/performance.md)",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="PATH",
        help="do not run anything: render the docs page from saved results",
    )
    return parser.parse_args(argv)


def _dsn(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The Postgres DSN to use, or `None` and the reason to skip Postgres."""
    if args.postgres_dsn:
        return args.postgres_dsn, None
    for name in DSN_ENVS:
        if os.environ.get(name):
            return os.environ[name], None
    return None, f"skipped: no DSN (pass --postgres-dsn or set {' or '.join(DSN_ENVS)})"


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Run the selected benchmarks and return the full results document."""
    dsn, skip_reason = _dsn(args) if "postgres" in args.backends else (None, None)
    meta: dict[str, Any] = {
        "mode": "smoke" if args.smoke else "full",
        "machine": describe_machine(),
        "versions": package_versions(),
        "command": "python -m benchmarks " + " ".join(sys.argv[1:]),
        "load_start": load_average(),
    }
    if dsn is not None:
        # A DSN that was asked for but does not work is an error, not a skip.
        meta["versions"]["PostgreSQL server"] = await postgres_server_version(dsn)
    else:
        meta["versions"]["PostgreSQL server"] = "not used"
        if skip_reason:
            print(f"postgres: {skip_reason}", flush=True)
    selected = args.only or list(BENCHMARKS)
    results: dict[str, BenchResult] = {}
    with tempfile.TemporaryDirectory(prefix="hitl-bench-") as tmp:
        ctx = BenchContext(
            smoke=args.smoke,
            tmpdir=Path(tmp),
            postgres_dsn=dsn,
            postgres_skip_reason=skip_reason,
            only_backends=tuple(args.backends),
        )
        total = time.perf_counter()
        for name in BENCHMARKS:
            if name not in selected:
                continue
            print(f"[{name}]", flush=True)
            start = time.perf_counter()
            result = await BENCHMARKS[name](ctx)
            result["seconds"] = round(time.perf_counter() - start, 1)
            print(f"  ({result['seconds']} s)", flush=True)
            results[name] = result
        meta["seconds"] = round(time.perf_counter() - total, 1)
        meta["load_end"] = load_average()
    return {"meta": meta, "results": results}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = parse_args(argv)
    if args.from_json:
        document = json.loads(args.from_json.read_text(encoding="utf-8"))
    else:
        document = asyncio.run(run_all(args))
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"results: {args.output} ({document['meta']['seconds']} s)", flush=True)
    if args.write_docs is not None:
        page = args.write_docs
        write_docs(page, render(document, previous=page))
        print(f"docs: {page}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
