"""Benchmarks: hitl-compliance against the same graph written by hand on LangGraph.

Run `python -m benchmarks --help`. Each benchmark measures the library and
its baseline in the same run (interleaved) and reports the ratio:

1. `bench_cycle`: sequential process -> pause -> approve -> completed, per
   backend and pause style;
1b. `bench_io`: trips to storage per cycle (SQLite thread hops, Postgres
   round trips), counted rather than timed;
2. `bench_throughput`: full cycles at 1-128 concurrent threads on SQLite and
   Postgres;
3. `bench_pending`: `pending()` against scanning checkpoints, 1k -> 100k threads;
4. `bench_sla`: `expire_overdue()` over overdue reviews (skipped until it exists);
5. `bench_memory`: resident memory per 10k pending reviews in memory.

`python -m benchmarks --write-docs` regenerates `docs/performance.md`;
`python -m benchmarks.profile_cycle` profiles one side's cycle with pyinstrument.
"""
