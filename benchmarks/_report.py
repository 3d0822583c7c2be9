"""Render `results.json` as the Markdown page `docs/performance.md`.

The page is generated; only the section between the `analysis` markers is
written by hand, and it is carried over from the existing page on every
regeneration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["render", "write_docs"]

ANALYSIS_START = "<!-- analysis:start -->"
ANALYSIS_END = "<!-- analysis:end -->"
_DEFAULT_ANALYSIS = (
    "_No analysis yet: profile the cycle (see `benchmarks/profile_cycle.py`) and "
    "write the findings here; this block survives `--write-docs`._"
)

Row = dict[str, Any]
Column = tuple[str, Callable[[Row], str]]


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _ms_or_text(value: Any) -> str:
    """`12 ms` for a number; a note such as `> 15,000 (stopped)` becomes `> 15,000 ms, stopped`."""
    if isinstance(value, (int, float)):
        return f"{value:,.0f} ms"
    if isinstance(value, str) and value.endswith(" (stopped)"):
        return value.removesuffix(" (stopped)") + " ms, stopped"
    return str(value)


def _table(rows: Sequence[Row], columns: Sequence[Column]) -> str:
    lines = [
        "| " + " | ".join(h for h, _ in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(f(r) for _, f in columns) + " |" for r in rows]
    return "\n".join(lines)


def _key(name: str, digits: int = 2) -> Callable[[Row], str]:
    return lambda r: _num(r.get(name), digits)


def _target(r: Row) -> str:
    met = r.get("target_met")
    return "–" if met is None else ("yes" if met else "**no**")


def _bound(r: Row, sign: str) -> str:
    """`yes (≤ 1.05)` / `**no** (≥ 0.95)`: whether the row meets its own target."""
    if r.get("target") is None:
        return _target(r)
    return f"{_target(r)} ({sign} {r['target']:.2f})"


_CYCLE: list[Column] = [
    ("Backend", _key("backend")),
    ("Style", lambda r: f"`{r['style']}`"),
    ("Kind", lambda r: r.get("kind", "cycle")),
    ("Library median (ms)", _key("library_median_ms")),
    ("Raw median (ms)", _key("raw_median_ms")),
    ("Overhead (ms)", _key("overhead_ms")),
    ("Library / raw", lambda r: f"**{r['ratio']:.3f}**"),
    (
        "Per-round ratio (min – median – max)",
        lambda r: (
            f"{r['round_ratio_min']:.2f} – {r['round_ratio_median']:.2f} – "
            f"{r['round_ratio_max']:.2f}"
        ),
    ),
    ("Library p99 (ms)", _key("library_p99_ms")),
    ("Raw p99 (ms)", _key("raw_p99_ms")),
    ("Calls each", _key("cycles_each")),
    ("Target met", lambda r: _bound(r, "≤")),
]

_THROUGHPUT: list[Column] = [
    ("Backend", _key("backend")),
    ("Concurrent threads", _key("concurrency")),
    ("Processes", lambda r: _num(r.get("processes", 1))),
    ("Library cycles/s", _key("library_cycles_per_s", 1)),
    ("Raw cycles/s", _key("raw_cycles_per_s", 1)),
    ("Library / raw", _key("throughput_ratio")),
    (
        "Library p50 / p99 (ms)",
        lambda r: f"{_num(r['library_p50_ms'], 1)} / {_num(r['library_p99_ms'], 1)}",
    ),
    ("Raw p50 / p99 (ms)", lambda r: f"{_num(r['raw_p50_ms'], 1)} / {_num(r['raw_p99_ms'], 1)}"),
    ("Failed cycles (lib / raw)", lambda r: f"{r['library_errors']} / {r['raw_errors']}"),
    ("Cycles each", _key("cycles_each")),
    ("Target met", lambda r: _bound(r, "≥")),
]


def _naive(kind: str) -> Callable[[Row], str]:
    def cell(r: Row) -> str:
        value = r.get(f"naive_{kind}_ms")
        n = r.get(f"naive_{kind}_n")
        text = _num(value, 1)
        return f"{text} (n={n})" if isinstance(value, (int, float)) else text

    return cell


_PENDING: list[Column] = [
    ("Backend", _key("backend")),
    ("Threads", _key("threads")),
    ("Paused", _key("pending")),
    ("`pending(limit=50)` p50 (ms)", lambda r: f"**{_num(r['library_limit_p50_ms'], 2)}**"),
    ("Naive, first 50 (ms)", _naive("limit")),
    ("`pending()` all p50 (ms)", _key("library_all_p50_ms", 1)),
    ("Naive, all (ms)", _naive("all")),
    ("< 10 ms", _target),
    ("`rule=` 20% / 1% (ms)", lambda r: _pair(r, "rule", "rule_rare")),
    ("`reviewer=` 20% / 1% (ms)", lambda r: _pair(r, "reviewer", "reviewer_rare")),
    ("`assigned_to=` 10% (ms)", _key("filter_assigned_to_p50_ms")),
    ("`older_than=` 50% (ms)", _key("filter_older_than_p50_ms")),
    ("Filters ≤ 10 ms", lambda r: _num(_filters_met(r))),
    ("Seeding (s)", _key("seed_s", 1)),
]
"""Filter columns: `pending(limit=50, <filter>)` p50, each filter's share of the pending reviews."""

_FILTER_KEYS = ("rule", "rule_rare", "reviewer", "reviewer_rare", "assigned_to", "older_than")


def _pair(r: Row, common: str, rare: str) -> str:
    return f"{_num(r.get(f'filter_{common}_p50_ms'))} / {_num(r.get(f'filter_{rare}_p50_ms'))}"


def _filters_met(r: Row) -> bool | None:
    """Whether every filtered `pending(limit=50)` p50 is at most 10 ms (None: not measured)."""
    values = [r.get(f"filter_{k}_p50_ms") for k in _FILTER_KEYS]
    if any(v is None for v in values):
        return None
    return max(values) <= 10.0


_SLA: list[Column] = [
    ("Backend", _key("backend")),
    ("Overdue", _key("overdue")),
    ("Resolved", _key("resolved")),
    ("Seconds", _key("seconds", 2)),
    ("Resolved/s", _key("resolved_per_s", 1)),
]

_IO: list[Column] = [
    ("Backend", _key("backend")),
    ("Style", lambda r: f"`{r['style']}`"),
    ("Workload", lambda r: r.get("workload", "cycle")),
    ("Unit", _key("unit")),
    ("Library per call", lambda r: f"**{_num(r['library_total'], 1)}**"),
    ("… checkpointer", _key("library_checkpointer", 1)),
    ("… review store", _key("library_review_store", 1)),
    ("Library transactions", _key("library_transactions", 1)),
    ("Raw per call", _key("raw_total", 1)),
    ("Library / raw", _key("ratio")),
]

_MEMORY: list[Column] = [
    ("Variant", _key("variant")),
    ("Threads parked", _key("threads")),
    ("RSS growth per 10k (MiB)", lambda r: f"**{_num(r['rss_mib_per_10k'], 1)}**"),
    ("Peak growth per 10k (MiB)", _key("peak_growth_mib_per_10k", 1)),
    ("KiB per review", _key("kib_per_review", 1)),
    ("Seconds", _key("seconds", 1)),
]

_EDIT: list[Column] = [
    ("Backend", _key("backend")),
    ("Edit (MB)", _key("edit_mb", 2)),
    ("Seconds", lambda r: f"**{_num(r['seconds'], 3)}**"),
    ("s per MB", _key("s_per_mb", 3)),
    ("Peak (MiB, tracemalloc)", lambda r: f"**{_num(r['peak_mib'], 1)}**"),
    ("Peak MiB per MB", _key("peak_mib_per_mb", 2)),
    ("RSS peak growth (MiB)", _key("rss_peak_mib", 1)),
]

_COLUMNS: dict[str, list[Column]] = {
    "cycle": _CYCLE,
    "gated": _CYCLE,
    "io": _IO,
    "throughput": _THROUGHPUT,
    "pending": _PENDING,
    "sla": _SLA,
    "memory": _MEMORY,
    "edit": _EDIT,
}


def _verdict(rows: Sequence[Row], sign: str) -> str:
    """`target ≤ 1.05, met everywhere` or `..., not met in 3 of 6 rows` (each row's own target)."""
    targets = sorted({r["target"] for r in rows if r.get("target") is not None})
    bound = f"target {sign} " + " / ".join(f"{t:.2f}" for t in targets) if targets else "target"
    judged = [r for r in rows if r.get("target_met") is not None]
    if not judged:
        return "no target recorded"
    missed = sum(1 for r in judged if not r["target_met"])
    if missed == 0:
        return f"{bound}, met everywhere"
    return f"{bound}, **not met** in {missed} of {len(judged)} rows"


def _ratio_line(title: str, rows: Sequence[Row]) -> str:
    parts = [f"{r['backend']}/{r['style']} **{r['ratio']:.2f}**" for r in rows]
    verdict = _verdict(rows, "≤")
    return f"- **{title}** (library / raw, median; {verdict}): " + ", ".join(parts) + "."


def _summary(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    cycle = results.get("cycle")
    if cycle and cycle["rows"]:
        for kind, title in (("cycle", "Cycle overhead"), ("turn", "Non-paused turn")):
            rows = [r for r in cycle["rows"] if r.get("kind", "cycle") == kind]
            if rows:
                lines.append(_ratio_line(title, rows))
    gated = results.get("gated")
    if gated and gated["rows"]:
        lines.append(_ratio_line("Gated ReAct cycle", gated["rows"]))
    io = results.get("io")
    if io and io["rows"]:
        parts = [
            f"{r['backend']}/{r['style']}/{r.get('workload', 'cycle')} "
            f"{_num(r['library_total'], 0)} vs {_num(r['raw_total'], 0)} {r['unit']}"
            for r in io["rows"]
        ]
        lines.append("- **Storage I/O per call** (library vs raw): " + ", ".join(parts) + ".")
    throughput = results.get("throughput")
    if throughput and throughput["rows"]:
        parts = [
            f"{r['backend']} {_processes(r)}×{r['concurrency']}: "
            f"{_num(r['library_cycles_per_s'], 0)} vs {_num(r['raw_cycles_per_s'], 0)} "
            f"({_num(r['throughput_ratio'])})"
            for r in throughput["rows"]
        ]
        lines.append(
            f"- **Throughput** (cycles/s, library vs raw (ratio); "
            f"{_verdict(throughput['rows'], '≥')}): " + "; ".join(parts) + "."
        )
    pending = results.get("pending")
    if pending and pending["rows"]:
        biggest = max(r["threads"] for r in pending["rows"])
        parts = [
            f"{r['backend']} {_num(r['library_limit_p50_ms'])} ms (naive "
            f"{_ms_or_text(r['naive_limit_ms'])})"
            for r in pending["rows"]
            if r["threads"] == biggest
        ]
        lines.append(f"- **`pending(limit=50)`** at {biggest:,} threads: " + ", ".join(parts) + ".")
        worst = [
            f"{r['backend']} {_num(max(r[f'filter_{k}_p50_ms'] for k in _FILTER_KEYS))} ms"
            for r in pending["rows"]
            if r["threads"] == biggest and _filters_met(r) is not None
        ]
        if worst:
            lines.append(
                f"- **`pending(limit=50)` with a filter** at {biggest:,} threads, slowest "
                "filter p50 (target ≤ 10 ms): " + ", ".join(worst) + "."
            )
    sla = results.get("sla")
    if sla and sla["status"] == "skipped":
        lines.append(f"- **SLA sweep**: {sla['reason']}")
    elif sla and sla["rows"]:
        parts = [
            f"{r['backend']} {_num(r['resolved_per_s'], 0)}/s ({_num(r['resolved'])} reviews)"
            for r in sla["rows"]
        ]
        lines.append(
            "- **SLA sweep** (overdue reviews resolved per second): " + ", ".join(parts) + "."
        )
    memory = results.get("memory")
    if memory and memory["rows"]:
        parts = [f"{r['variant']} {_num(r['rss_mib_per_10k'], 1)} MiB" for r in memory["rows"]]
        line = "- **Memory** per 10k pending reviews (RSS): " + ", ".join(parts)
        rss = {r["variant"]: r["rss_mib_per_10k"] for r in memory["rows"]}
        target = memory["params"].get("target_ratio")
        if rss.get("library") and rss.get("raw") and target is not None:
            ratio = rss["library"] / rss["raw"]
            met = "met" if ratio <= target else "**not met**"
            line += f"; library / raw **{ratio:.2f}** (target ≤ {target:.2f}, {met})"
        lines.append(line + ".")
    edit = results.get("edit")
    if edit and edit["rows"]:
        parts = [
            f"{r['backend']} {_num(r['s_per_mb'], 3)} s and {_num(r['peak_mib_per_mb'], 1)} MiB"
            for r in edit["rows"]
            if r["edit_mb"] == "fit"
        ]
        lines.append("- **Large edits**, cost per MB of edit (fitted): " + ", ".join(parts) + ".")
    return lines


def _processes(r: Row) -> str:
    """`4 processes ` for a multi-process row, nothing for the usual one-process rows."""
    n = r.get("processes", 1)
    return f"{n} processes " if n > 1 else ""


def _machine(meta: dict[str, Any]) -> str:
    m = meta["machine"]
    rows: list[tuple[str, str]] = [
        ("Date", m["date_utc"]),
        ("CPU", f"{m['cpu_model']} ({m['nproc']} usable cores, `nproc`)"),
        ("Memory", f"{m['memory_gib']} GiB"),
        ("OS", m["os"]),
        ("Python", f"{m['python']} ({m['python_implementation']})"),
        ("SQLite library", m["sqlite_library"]),
        ("Commit", f"`{m['commit']}`" if m.get("commit") else "unknown"),
        ("Library imported from", f"`{m.get('library_source', 'unknown')}`"),
        (
            "Load average (1 min) at start / end",
            f"{meta.get('load_start', '–')} / {meta.get('load_end', '–')}",
        ),
        ("`LANGGRAPH_STRICT_MSGPACK`", m["langgraph_strict_msgpack"]),
    ]
    rows += [(name, version) for name, version in meta["versions"].items()]
    lines = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def _existing_analysis(previous: Path | None) -> str:
    if previous is None or not previous.exists():
        return _DEFAULT_ANALYSIS
    text = previous.read_text(encoding="utf-8")
    if ANALYSIS_START not in text or ANALYSIS_END not in text:
        return _DEFAULT_ANALYSIS
    inner = text.split(ANALYSIS_START, 1)[1].split(ANALYSIS_END, 1)[0]
    return inner.strip("\n") or _DEFAULT_ANALYSIS


def render(document: dict[str, Any], *, previous: Path | None = None) -> str:
    """The whole Markdown page for a results document.

    Args:
        document: `{"meta": ..., "results": {name: BenchResult}}` as the runner writes it.
        previous: the page being replaced; its hand-written analysis is kept.
    """
    meta, results = document["meta"], document["results"]
    out: list[str] = [
        "# Performance",
        "",
        "<!-- Generated by `python -m benchmarks --write-docs` from the benchmark "
        "results: change benchmarks/_report.py, not this page. Only the Analysis "
        "block between the analysis markers is hand-written; it is kept on "
        "regeneration. -->",
        "",
    ]
    if meta["mode"] == "smoke":
        out += [
            '!!! warning "Smoke run"',
            "    These numbers come from `--smoke` (tiny sizes, to prove the "
            "benchmarks run). They mean nothing.",
            "",
        ]
    out += [
        "How much the library costs on top of a hand-written LangGraph graph doing "
        "the same job, measured in the same run on the same machine; and what it "
        "buys at scale (`pending()` against scanning checkpoints). "
        f"Measured {meta['machine']['date_utc']} on {meta['machine']['nproc']} cores "
        f"({meta['mode']} run, {meta['seconds']:.0f} s in all; 1-minute load average "
        f"{meta.get('load_start', '?')} at the start and {meta.get('load_end', '?')} at the "
        "end: other work shared the machine, so trust ratios and counts more than "
        "absolute milliseconds).",
        "",
        "## Summary",
        "",
        *_summary(results),
        "",
        "## How to reproduce",
        "",
        "```bash",
        '. .venv/bin/activate && pip install -e ".[dev]"',
        "export HITL_BENCH_POSTGRES_DSN=postgresql://postgres@127.0.0.1:5432/test  "
        "# optional; without it Postgres is skipped",
        "python -m benchmarks --write-docs        # full run, rewrites this page",
        "python -m benchmarks --smoke             # seconds: proves everything runs",
        "python -m benchmarks --only cycle --output /tmp/cycle.json",
        "python -m benchmarks.instructions       # instructions per cycle (valgrind): noise-free",
        "python -m benchmarks.ledger_rate --url URL  # ledger appends/s from 1 and 4 processes",
        "python -m benchmarks.oversight --url URL  # oversight reports on 1M audit rows",
        "```",
        "",
        "Results go to `.benchmarks/results.json`; `python -m benchmarks --from-json "
        "FILE --write-docs` re-renders this page without running anything. Each "
        "Postgres benchmark works in a schema of its own "
        "(`?options=-csearch_path%3D<schema>`), dropped at the end; SQLite files "
        "live in a temporary directory. Timed ratios on a shared machine move between "
        "runs; `benchmarks.instructions` counts the CPU instructions of one in-memory "
        "cycle per side under valgrind, which repeat to within about 0.3 %, to tell a real "
        "change in the library's own work from noise.",
        "",
        "## Machine and versions",
        "",
        _machine(meta),
        "",
        "## Method",
        "",
        "- A small harness of our own (`benchmarks/_harness.py`): every variant is "
        "warmed up, then library and raw run in rounds whose order alternates "
        "(library, raw / raw, library / ...), so drift hits both alike; "
        "`gc.collect()` before every block; medians and percentiles of per-call "
        "wall time (`time.perf_counter`).",
        "- Every cycle uses a fresh thread id. The drafter returns a fixed risky "
        "reply at once (no LLM), so every turn pauses and all measured time is "
        "orchestration: with a real model call of hundreds of milliseconds these "
        "overheads vanish in the noise.",
        "- The baseline (`benchmarks/_raw.py`) is the same graph written by hand on "
        "plain LangGraph: the same five nodes and edges, the same drafter and rule "
        "objects, and the same pydantic `ComplianceState` schema (a TypedDict "
        "version of the graph ran within 1 % of it in a one-off check on memory, "
        "so the schema is not where the library's overhead comes from). Its nodes "
        "and routers are `async def` (nodes with an explicit `input_schema`), the "
        "cheapest form under `ainvoke`, which runs a sync node or router on a "
        "worker thread (sync nodes ran about 12 % slower per turn in a one-off "
        "check); the library's graph is built the same way. Its cycle does only "
        "what a careful user must do to know that the graph paused and to resume it correctly.",
        "- Library and baseline each get their own storage of the same kind and "
        "configuration: `InMemorySaver`; a fresh SQLite file each "
        "(`open_backend('sqlite:///…')` vs `AsyncSqliteSaver.from_conn_string`); "
        "a fresh Postgres schema each, both on a `psycopg_pool` pool of at most 10 "
        "connections (`autocommit`, `prepare_threshold=0`, `dict_row`).",
        "",
    ]
    sections = {
        "cycle": "1. Cycle overhead",
        "gated": "1a. Cycle overhead, gated ReAct graph",
        "io": "1b. Storage I/O per cycle",
        "throughput": "2. Throughput under concurrency",
        "pending": "3. `pending()` at scale",
        "sla": "4. SLA sweep",
        "memory": "5. Memory",
        "edit": "6. Large edits",
    }
    for name, heading in sections.items():
        result = results.get(name)
        out += [f"## {heading}", ""]
        if result is None:
            out += ["_Not run in this results file._", ""]
            continue
        if result["status"] == "skipped":
            out += [f"Skipped: {result['reason']}", ""]
            continue
        out += [f"{result['title']} ({result['seconds']:.0f} s).", ""]
        out += [f"- {note}" for note in result["notes"]]
        out += [f"- Skipped {line}" for line in result["skipped"]]
        out += ["", _table(result["rows"], _COLUMNS[name]), ""]
    out += [
        "## Analysis",
        "",
        ANALYSIS_START,
        _existing_analysis(previous),
        ANALYSIS_END,
        "",
    ]
    return "\n".join(out)


def write_docs(path: Path, text: str) -> None:
    """Write the page, creating its directory if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
