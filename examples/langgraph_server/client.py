"""Drive the example deployment with `langgraph_sdk`: a risky turn, its review, the reply.

Start the server first (`langgraph dev` in this folder), then, from anywhere:

    python examples/langgraph_server/client.py http://127.0.0.1:2024

The agent's client runs a turn on a new thread; the thread stops `interrupted`
with the review in `interrupts`; the officer's client decides it with
`Command(resume=decision)`; the thread ends `idle` with the delivered reply.
The same for the gated agent.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timezone
from typing import Any

from langgraph_sdk import get_client

QUESTION = "Should I buy this fund?"
EDITED = "Every fund carries risk; please speak to one of our advisers."
INPUTS: dict[str, dict[str, Any]] = {
    "compliance": {"customer_message": QUESTION},
    "gated_agent": {"messages": [{"role": "user", "content": QUESTION}]},
}


def decision(reviewer: str, response: str) -> dict[str, Any]:
    """An approval with an edited reply: the resume value of a `Decision`."""
    return {
        "approved": True,
        "reviewer": reviewer,
        "decided_at": datetime.now(timezone.utc).isoformat(),
        "response": response,
    }


def delivered(values: dict[str, Any]) -> str:
    """The reply a graph delivered: the factory's `agent_response`, else the last message."""
    if "messages" in values:
        return str(values["messages"][-1]["content"])
    return str(values["agent_response"])


async def main(url: str) -> None:
    """One reviewed turn on each graph of the deployment; print what happens."""
    async with (
        get_client(url=url, headers={"Authorization": "Bearer agent-token"}) as agent,
        get_client(url=url, headers={"Authorization": "Bearer officer-token"}) as officer,
    ):
        for graph_id, turn in INPUTS.items():
            thread = await agent.threads.create()  # the server assigns the id
            thread_id = thread["thread_id"]
            await agent.runs.wait(thread_id, graph_id, input=turn)
            paused = await officer.threads.get(thread_id)
            [[interrupt]] = paused["interrupts"].values()
            review = interrupt["value"]
            rules = ", ".join(v["rule"] for v in review["violations"])
            print(f"{graph_id}: {paused['status']}: {review['draft_response']!r} ({rules})")

            run = await officer.runs.create(
                thread_id, graph_id, command={"resume": decision("alice@bank", EDITED)}
            )
            await officer.runs.join(thread_id, run["run_id"])
            done = await officer.threads.get(thread_id)
            print(f"{graph_id}: {done['status']}: delivered {delivered(done['values'])!r}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:2024"))
