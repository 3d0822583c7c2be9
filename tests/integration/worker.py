"""A separate process for restart and crash tests: pause a thread, or die mid-decision.

Usage: python worker.py MODE URL STYLE THREAD COUNTER_FILE
MODE is `pause`, `crash-after-claim` (dies after claiming, before resuming) or
`crash-after-update` (static style: dies between aupdate_state and ainvoke).
The drafter appends a line to COUNTER_FILE each time it runs, so the test can
prove the drafter ran once in total across processes.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from hitl_compliance import HitlCoordinator, KeywordRule, build_compliance_graph
from hitl_compliance._coordination import decisions
from hitl_compliance.backends import open_backend

RISKY = "You should invest now: guaranteed returns of 8%."


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
    )


async def main(mode: str, url: str, style: str, thread: str, counter: str) -> None:
    async with open_backend(url) as backend:
        graph = make_graph(backend.checkpointer, style, Path(counter))
        coord = HitlCoordinator(graph, reviews=backend.reviews)
        if mode == "pause":
            result = await coord.process(thread, "Should I buy the fund?")
            assert result.status == "paused", result
            return
        if mode == "crash-after-claim":

            async def die(*_: Any) -> None:
                os._exit(17)

            # The resume of a claimed decision, looked up by name when it runs.
            decisions.resume = die  # type: ignore[assignment]
        elif mode == "crash-after-update":
            original = graph.ainvoke

            async def die_on_resume(value: Any, *args: Any, **kwargs: Any) -> Any:
                if value is None:
                    os._exit(17)
                return await original(value, *args, **kwargs)

            graph.ainvoke = die_on_resume  # type: ignore[method-assign]
        await coord.approve(thread, reviewer="officer@bank", metadata={"ticket": "C-9"})
        raise SystemExit("the worker should have died before finishing the approval")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
