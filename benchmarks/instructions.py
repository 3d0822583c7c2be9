"""Count the CPU instructions of one in-memory cycle, library and raw, under valgrind.

Wall-clock ratios on a shared two-core machine move by ±0.3 between runs of the
same commit; instruction counts do not (they repeat to within about 0.3 %). This
counts the instructions (`cachegrind`'s `I refs`, cache simulation off) of the
same pause-approve cycle as the cycle benchmark, in memory, so that a change in
the library's own work is visible whatever else the machine is doing. It does
not see waiting (I/O, locks), so it complements the timed benchmarks, never
replaces them.

```bash
python -m benchmarks.instructions                      # both styles, library and raw
python -m benchmarks.instructions --style command_resume --cycles 100
```

Each count is the difference between a run of `--cycles` + 20 cycles and one
of 20, so interpreter start-up, imports and warm-up cancel out. Needs
`valgrind` on PATH (Debian: `apt-get install valgrind`); each figure takes
about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from benchmarks._backends import BenchContext
from benchmarks._raw import Style, raw_cycle
from benchmarks._workload import MESSAGE, REVIEWER

BASE_CYCLES = 20
ROOT = Path(__file__).resolve().parents[1]


async def _cycles(side: str, style: Style, count: int) -> int:
    """Run `count` in-memory cycles of one side (the child process's whole job).

    Returns how many delivered (the library's result says so; the raw cycle
    raises when a turn does not end delivered).
    """
    delivered = 0
    with tempfile.TemporaryDirectory(prefix="hitl-instr-") as tmp:
        ctx = BenchContext(smoke=False, tmpdir=Path(tmp), postgres_dsn=None)
        if side == "library":
            async with ctx.library("memory", style) as coord:
                for _ in range(count):
                    thread_id = uuid.uuid4().hex
                    await coord.process(thread_id, MESSAGE)
                    done = await coord.approve(thread_id, reviewer=REVIEWER)
                    delivered += done.status == "completed"
            return delivered
        async with ctx.raw("memory", style) as graph:
            for _ in range(count):
                await raw_cycle(graph, style, uuid.uuid4().hex)
                delivered += 1
    return delivered


def _instructions(side: str, style: Style, count: int) -> int:
    """Instructions executed by a child process running `count` cycles."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            "--child",
            side,
            style,
            str(count),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"valgrind printed no instruction count:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def per_cycle(side: str, style: Style, cycles: int) -> int:
    """Instructions of one cycle: (cycles + base) minus base, divided by `cycles`."""
    more = _instructions(side, style, BASE_CYCLES + cycles)
    base = _instructions(side, style, BASE_CYCLES)
    return (more - base) // cycles


def main() -> None:
    """Entry point: print instructions per cycle and the library / raw ratio per style."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("--style", choices=["interrupt_before", "command_resume"], action="append")
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument(
        "--child", nargs=3, metavar=("SIDE", "STYLE", "COUNT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        side, style, count = args.child
        print(f"delivered {asyncio.run(_cycles(side, style, int(count)))}")
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    for style in args.style or ["interrupt_before", "command_resume"]:
        library = per_cycle("library", style, args.cycles)
        raw = per_cycle("raw", style, args.cycles)
        print(
            f"memory {style:16s} library {library:>12,} raw {raw:>12,} "
            f"instructions/cycle  ratio {library / raw:.3f}"
        )


if __name__ == "__main__":
    main()
