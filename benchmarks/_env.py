"""What the numbers were measured on: machine, versions, date, commit."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "describe_machine",
    "load_average",
    "package_versions",
    "postgres_server_version",
]

_PACKAGES = (
    "hitl-compliance",
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "pydantic",
    "psycopg",
    "psycopg-pool",
    "aiosqlite",
    "ormsgpack",
)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _git_commit() -> str | None:
    # Set when the library under test is not this checkout's src/ (say, an
    # exported older commit on PYTHONPATH), so the page names the right code.
    if os.environ.get("HITL_BENCH_LIBRARY_COMMIT"):
        return os.environ["HITL_BENCH_LIBRARY_COMMIT"]
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}{' + uncommitted changes in src/' if dirty else ''}"


def load_average() -> float | None:
    """The 1-minute load average (other work on the machine skews absolute numbers)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _library_source() -> str:
    import hitl_compliance

    path = Path(hitl_compliance.__file__).resolve().parent
    root = Path(__file__).resolve().parents[1]
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def describe_machine() -> dict[str, Any]:
    """CPU count and model, memory, OS, Python, date (UTC) and git commit."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    return {
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": usable,
        "cpu_model": _cpu_model(),
        "memory_gib": _mem_total_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "sqlite_library": sqlite3.sqlite_version,
        "commit": _git_commit(),
        "library_source": _library_source(),
        "langgraph_strict_msgpack": os.environ.get("LANGGRAPH_STRICT_MSGPACK", "unset"),
    }


def package_versions() -> dict[str, str]:
    """Installed versions of the packages whose speed the numbers depend on."""
    versions: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


async def postgres_server_version(dsn: str) -> str:
    """`SHOW server_version` of the server at `dsn`."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute("SHOW server_version")
        row = await cur.fetchone()
    return str(row[0]) if row else "unknown"
