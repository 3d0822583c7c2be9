"""Tool-call reviews of the gate on real SQLite and PostgreSQL checkpointers.

The suite runs with `LANGGRAPH_STRICT_MSGPACK=true`, so everything the gate keeps
in a checkpoint (items, tool calls, decisions with `tool_args`, the refusal's
tool messages) must be plain data the strict serializer accepts; and a pause must
be decidable from a freshly compiled graph on a new connection, as in another
process.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from hitl_compliance import PauseStyle, open_backend
from hitl_compliance.gate import gate_pauses, resume_gate
from tests.gate_graphs import Bank, build_react, call, decision
from tests.unit.test_gate_tools import assert_valid_history


def turn() -> AIMessage:
    """Two flagged transfers and a harmless lookup in one model turn."""
    return AIMessage(
        "",
        tool_calls=[
            call("transfer", "c1", amount_gbp=5_000, to_account="111"),
            call("balance", "c2"),
            call("transfer", "c3", amount_gbp=3_000, to_account="222"),
        ],
    )


async def run_on(url: str, style: PauseStyle) -> None:
    config: Any = {"configurable": {"thread_id": f"tools-{uuid.uuid4().hex}"}}
    bank = Bank()
    async with open_backend(url) as backend:
        graph, _ = build_react(style, backend.checkpointer, bank, turn(), AIMessage("Done."))
        await graph.ainvoke({"messages": [HumanMessage("Pay both")]}, config)
        # The dynamic style waits for both flagged calls at once, the static one in turn.
        first, *parallel = await gate_pauses(graph, config)
        assert len(parallel) == (1 if style == "command_resume" else 0)
    edit = {"amount_gbp": 900, "to_account": "111"}
    async with open_backend(url) as backend:  # a new connection and graph, as another process
        graph, _ = build_react(style, backend.checkpointer, bank, AIMessage("Done."))
        again, *_ = await gate_pauses(graph, config)
        assert again.review_id == first.review_id
        await resume_gate(graph, config, again, decision(tool_args=edit))
        [second] = await gate_pauses(graph, config)
        assert second.tool_call is not None
        assert second.tool_call["id"] == "c3"
        out = await resume_gate(graph, config, second, decision(approved=False, reason="no"))
    assert bank.transfers == [(900, "111")]
    assert bank.lookups == 1
    assert_valid_history(out["messages"])
    assert any(isinstance(m, ToolMessage) and "rejected" in str(m.content) for m in out["messages"])
    assert out["messages"][-1].content == "Done."


async def test_sqlite(sqlite_path: Path, style: PauseStyle) -> None:
    """Edit one call, reject another, across two connections to one SQLite file."""
    await run_on(f"sqlite:///{sqlite_path}", style)


async def test_postgres(postgres_dsn: str, style: PauseStyle) -> None:
    """The same on PostgreSQL."""
    await run_on(postgres_dsn, style)
