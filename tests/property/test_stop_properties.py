"""The stop switch under any interleaving of switches and turns, in both pause styles.

Whatever happens: a turn pauses exactly when a stop in force covers it (or its
rules flag it), a held turn says which stops hold it, resuming never decides a
held turn, and the ledger verifies.
"""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    HitlCoordinator,
    KeywordRule,
    PauseStyle,
    Reviewer,
    StopScope,
    build_compliance_graph,
)
from hitl_compliance.graph import graph_spec
from hitl_compliance.stops import STOP_RULE

HEAD = Reviewer("head@bank", roles=frozenset({"compliance-head"}))
PRODUCTS = ("isa", "gia", None)
SCOPES = ("all", "product:isa", "product:gia", "ruleset:<ours>", "ruleset:" + "0" * 64)
RISKY = "guaranteed returns"

operation = st.one_of(
    st.tuples(st.just("stop"), st.sampled_from(SCOPES)),
    st.tuples(st.just("resume"), st.sampled_from(SCOPES)),
    st.tuples(st.just("turn"), st.tuples(st.sampled_from(PRODUCTS), st.booleans())),
)


async def _run(style: PauseStyle, ops: list[tuple[str, object]]) -> None:
    graph = build_compliance_graph(
        lambda state: RISKY if "risky" in state.customer_message else "Our fund carries risk.",
        rules=[KeywordRule("guarantee", [RISKY])],
        checkpointer=InMemorySaver(),
        style=style,
    )
    coord = HitlCoordinator(graph)
    ours = f"ruleset:{graph_spec(graph).ruleset.fingerprint}"
    on: set[str] = set()
    held: list[str] = []
    for n, (op, arg) in enumerate(ops):
        if op in ("stop", "resume"):
            scope = ours if arg == "ruleset:<ours>" else str(arg)
            if op == "stop":
                await coord.stop_delivery(scope, by=HEAD, reason=f"r{n}")
                on.add(scope)
            else:
                await coord.resume_delivery(scope, by=HEAD)
                on.discard(scope)
            assert {s.scope.key for s in await coord.stops()} == on
            continue
        product, risky = arg  # type: ignore[misc]
        covering = {
            k
            for k in on
            if StopScope.parse(k).covers(ruleset=ours[len("ruleset:") :], product=product)
        }
        fields = {} if product is None else {"metadata": {"product": product}}
        result = await coord.process(f"t{n}", "risky?" if risky else "safe?", **fields)
        assert result.awaiting_approval == (bool(covering) or risky)
        stop_findings = [v for v in result.violations if v.rule == STOP_RULE]
        assert len(stop_findings) == (1 if covering else 0)
        if stop_findings:
            assert len(stop_findings[0].evidence) == len(covering)
        if result.awaiting_approval:
            held.append(f"t{n}")
        # Nothing but a reviewer decides a held turn.
        assert sorted(p.thread_id for p in await coord.pending()) == sorted(held)
    assert (await coord.verify_audit()).ok


@given(
    style=st.sampled_from(["interrupt_before", "command_resume"]),
    ops=st.lists(operation, max_size=12),
)
def test_a_turn_pauses_exactly_when_a_stop_covers_it(
    style: PauseStyle, ops: list[tuple[str, object]]
) -> None:
    """Paused iff a stop in force covers the turn or its rules flag it; the ledger verifies."""
    asyncio.run(_run(style, ops))
