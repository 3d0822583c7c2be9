"""`attach_authority` and `review_store`: the coordinator's checks for graphs it does not drive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from hitl_compliance import (
    ComplianceState,
    ConfigurationError,
    InMemoryReviewStore,
    KeywordRule,
    RoleBasedPolicy,
    attach_authority,
    build_compliance_graph,
    compliance_gate,
    review_store,
)
from hitl_compliance.stores.sqlite import SqliteReviewStore

RULES = [KeywordRule("guarantee", ["guaranteed returns"])]
CONFIG: Any = {"configurable": {"thread_id": "t"}}


def factory() -> Any:
    return build_compliance_graph(
        lambda state: "guaranteed returns",
        rules=RULES,
        checkpointer=InMemorySaver(),
        style="command_resume",
    )


def approval(reviewer: str, *roles: str) -> dict[str, Any]:
    return {
        "approved": True,
        "reviewer": reviewer,
        "roles": list(roles),
        "decided_at": "2026-12-02T12:00:00Z",
    }


class TestAttach:
    async def test_a_raw_factory_pause_is_recorded_and_decided_under_the_policy(self) -> None:
        """No coordinator at all: the pause is a pending review, the policy decides who may."""
        store = InMemoryReviewStore()
        graph = attach_authority(
            factory(), reviews=store, policy=RoleBasedPolicy(rule_roles={"guarantee": "smcr"})
        )
        await graph.ainvoke({"customer_message": "hi"}, CONFIG)
        [review] = await store.open_reviews("t")
        assert review.status == "pending"
        out = await graph.ainvoke(Command(resume=approval("intern@bank")), CONFIG)
        assert "may not decide" in out["__interrupt__"][0].value["refused"]
        out = await graph.ainvoke(Command(resume=approval("officer@bank", "smcr")), CONFIG)
        assert out["agent_response"] == "guaranteed returns"
        assert [(r.event, r.actor) for r in await store.audit_log("t")] == [
            ("paused", "system"),
            ("denied", "intern@bank"),
            ("approved", "officer@bank"),
            ("replied", "officer@bank"),  # the graph records its reply after the outcome
        ]

    async def test_the_server_user_decides(self) -> None:
        """`langgraph_auth_user` in the run's config is the reviewer, its permissions the roles."""
        store = InMemoryReviewStore()
        graph = attach_authority(
            factory(), reviews=store, policy=RoleBasedPolicy(rule_roles={"guarantee": "smcr"})
        )
        await graph.ainvoke({"customer_message": "hi"}, CONFIG)
        user = {"identity": "alice@bank", "permissions": ["smcr"]}
        config = {"configurable": {"thread_id": "t", "langgraph_auth_user": user}}
        out = await graph.ainvoke(Command(resume=approval("mallory", "smcr")), config)
        assert out["metadata"]["reviewer"] == "alice@bank"
        assert (await store.audit_log("t"))[-1].actor == "alice@bank"

    async def test_sets_up_a_store_on_first_use(self, tmp_path: Path) -> None:
        """A store built from a URL is set up before the first pause is recorded."""
        store = review_store(f"sqlite:///{tmp_path / 'r.db'}")
        assert isinstance(store, SqliteReviewStore)
        graph = attach_authority(factory(), reviews=store)
        try:
            await graph.ainvoke({"customer_message": "hi"}, CONFIG)
            assert [r.status for r in await store.open_reviews("t")] == ["pending"]
        finally:
            await store.aclose()

    def test_refuses_what_it_cannot_attach_to(self) -> None:
        """A gate alone, a graph without a pause of this library, a non-store: refused."""
        store = InMemoryReviewStore()
        with pytest.raises(ConfigurationError, match="graph holding the gate"):
            attach_authority(compliance_gate(RULES), reviews=store)
        builder: Any = StateGraph(ComplianceState)
        builder.add_node("n", lambda state: {})
        builder.add_edge(START, "n")
        builder.add_edge("n", END)
        with pytest.raises(ConfigurationError, match="compliance_gate"):
            attach_authority(builder.compile(), reviews=store)
        with pytest.raises(ConfigurationError, match="ReviewStore"):
            attach_authority(factory(), reviews=object())  # type: ignore[arg-type]


class TestReviewStore:
    def test_schemes(self, tmp_path: Path) -> None:
        """memory, sqlite and postgres URLs give unopened stores; others are refused."""
        assert isinstance(review_store("memory://"), InMemoryReviewStore)
        assert isinstance(review_store(f"sqlite:///{tmp_path / 'x.db'}"), SqliteReviewStore)
        from hitl_compliance.stores.postgres import PostgresReviewStore

        assert isinstance(review_store("postgresql://u:secret@127.0.0.1:1/db"), PostgresReviewStore)
        with pytest.raises(ConfigurationError, match="Unsupported") as info:
            review_store("redis://u:secret@host/0")
        assert "secret" not in str(info.value)
