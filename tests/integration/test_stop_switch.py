"""The stop switch on memory, SQLite and PostgreSQL: while on, every reply in scope pauses.

A stop is switched only by a stop role, audited on the hash-chained ledger,
kept in the store (so a second coordinator on it sees it), and holds every
turn in scope for review whatever the rules say, in both pause styles, in
the factory graph and in a gate in a user's own graph. Resuming approves
nothing.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hitl_compliance import (
    Backend,
    HitlCoordinator,
    KeywordRule,
    NotAuthorizedError,
    PauseStyle,
    Reviewer,
    StopScope,
    StopSwitch,
    build_compliance_graph,
    open_backend,
)
from hitl_compliance._replies import REPLY_EVENT
from hitl_compliance.errors import InvalidInputError
from hitl_compliance.graph import graph_spec
from hitl_compliance.stops import DELIVERY_RESUMED, DELIVERY_STOPPED, STOP_RULE, STOP_THREAD
from tests.gate_graphs import SAFE, build, graph_input
from tests.helpers import FakeClock

HEAD = Reviewer("head@bank", roles=frozenset({"compliance-head"}))
OFFICER = Reviewer("officer@bank", roles=frozenset({"smcr_approver"}))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A checkpointer and review store from one URL, on each backend in turn."""
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'stop.db'}"
    else:
        url = request.getfixturevalue("postgres_dsn")
    async with open_backend(url, table_prefix=f"s{uuid.uuid4().hex[:8]}_") as opened:
        yield opened


def factory(backend: Backend, style: PauseStyle = "interrupt_before") -> HitlCoordinator:
    """A coordinator on a factory graph whose drafts break no rule."""
    graph = build_compliance_graph(
        lambda state: SAFE,
        rules=[KeywordRule("guarantee", ["guaranteed returns"])],
        checkpointer=backend.checkpointer,
        style=style,
    )
    return HitlCoordinator(graph, reviews=backend.reviews)


async def stop_events(coord: HitlCoordinator) -> list[tuple[str, str, dict[str, Any]]]:
    rows = await coord.reviews.audit_log(STOP_THREAD)
    return [(r.event, r.actor, r.payload) for r in rows if r.event != REPLY_EVENT]


class TestSwitching:
    """Who may switch, what is written, and what a refused switch leaves."""

    async def test_a_stop_role_switches_on_and_off_audited(self, backend: Backend) -> None:
        """stop_delivery and resume_delivery store the stop and append one ledger row each."""
        coord = factory(backend)
        stop = await coord.stop_delivery(StopScope.everything(), by=HEAD, reason="FCA letter")
        assert isinstance(stop, StopSwitch)
        assert (stop.scope, stop.by, stop.reason) == (
            StopScope.everything(),
            "head@bank",
            "FCA letter",
        )
        assert await coord.stops() == [stop]
        # Idempotent: a second switch returns the stop in force and writes nothing.
        again = await coord.stop_delivery("all", by=HEAD, reason="other")
        assert again == stop
        assert await coord.resume_delivery("all", by=HEAD) == stop
        assert await coord.resume_delivery("all", by=HEAD) is None
        assert await coord.stops() == []
        assert await stop_events(coord) == [
            (DELIVERY_STOPPED, "head@bank", {"scope": "all", "reason": "FCA letter"}),
            (
                DELIVERY_RESUMED,
                "head@bank",
                {"scope": "all", "reason": "FCA letter", "stopped_by": "head@bank"},
            ),
        ]
        assert (await coord.verify_audit()).ok

    async def test_an_unauthorised_actor_changes_nothing(self, backend: Backend) -> None:
        """An actor without a stop role is refused; no stop, no audit row."""
        coord = factory(backend)
        for actor in (OFFICER, "head@bank"):
            with pytest.raises(NotAuthorizedError):
                await coord.stop_delivery("all", by=actor, reason="why")
        assert await coord.stops() == []
        await coord.stop_delivery("all", by=HEAD, reason="why")
        with pytest.raises(NotAuthorizedError):
            await coord.resume_delivery("all", by=OFFICER)
        assert [s.reason for s in await coord.stops()] == ["why"]
        assert [e for e, _, _ in await stop_events(coord)] == [DELIVERY_STOPPED]

    async def test_bad_input_changes_nothing(self, backend: Backend) -> None:
        """A bad scope or an empty reason is refused before anything is written."""
        coord = factory(backend)
        for scope, reason in (("nowhere", "why"), ("product:", "why"), ("all", " ")):
            with pytest.raises(InvalidInputError):
                await coord.stop_delivery(scope, by=HEAD, reason=reason)
        assert await coord.stops() == []
        assert await stop_events(coord) == []

    async def test_stop_roles_are_configurable(self, backend: Backend) -> None:
        """A coordinator's stop_roles name who may switch."""
        graph = build_compliance_graph(lambda s: SAFE, checkpointer=backend.checkpointer)
        coord = HitlCoordinator(graph, reviews=backend.reviews, stop_roles=["smcr_approver"])
        with pytest.raises(NotAuthorizedError):
            await coord.stop_delivery("all", by=HEAD, reason="why")
        assert (await coord.stop_delivery("all", by=OFFICER, reason="why")).by == "officer@bank"


@pytest.mark.parametrize("style", ["interrupt_before", "command_resume"])
class TestEnforcement:
    """While a stop is on, every reply in scope pauses for review, in both pause styles."""

    async def test_a_clean_reply_pauses_while_stopped(
        self, backend: Backend, style: PauseStyle
    ) -> None:
        """A reply no rule flags is held with a stop_switch finding; after resume one goes out."""
        coord = factory(backend, style)
        assert (await coord.process("t0", "Is it safe?")).status == "completed"
        await coord.stop_delivery("all", by=HEAD, reason="FCA letter")
        held = await coord.process("t1", "Is it safe?")
        assert held.awaiting_approval
        assert [v.rule for v in held.violations] == [STOP_RULE]
        assert held.violations[0].evidence == ("delivery stopped by head@bank: FCA letter",)
        await coord.resume_delivery("all", by=HEAD)
        # Resuming approves nothing: the held turn still waits for a reviewer.
        assert [p.thread_id for p in await coord.pending()] == ["t1"]
        assert (await coord.process("t2", "Is it safe?")).status == "completed"
        done = await coord.approve("t1", reviewer="officer@bank")
        assert done.agent_response == SAFE

    async def test_a_second_coordinator_on_the_store_honours_it(
        self, backend: Backend, style: PauseStyle
    ) -> None:
        """A stop switched through one coordinator holds the turns of another on the store."""
        first, second = factory(backend, style), factory(backend, style)
        await first.stop_delivery("all", by=HEAD, reason="incident")
        assert (await second.process("t1", "Is it safe?")).awaiting_approval

    async def test_scopes(self, backend: Backend, style: PauseStyle) -> None:
        """A product or rule-set stop holds only its turns."""
        coord = factory(backend, style)
        await coord.stop_delivery(StopScope.product("isa"), by=HEAD, reason="isa probe")
        assert (await coord.process("t1", "Q?", metadata={"product": "isa"})).awaiting_approval
        assert not (await coord.process("t2", "Q?", metadata={"product": "gia"})).awaiting_approval
        assert not (await coord.process("t3", "Q?")).awaiting_approval
        await coord.stop_delivery(StopScope.ruleset("0" * 64), by=HEAD, reason="other rules")
        assert not (await coord.process("t4", "Q?")).awaiting_approval
        fingerprint = graph_spec(coord.graph).ruleset.fingerprint
        await coord.stop_delivery(StopScope.ruleset(fingerprint), by=HEAD, reason="these rules")
        assert (await coord.process("t5", "Q?")).awaiting_approval

    async def test_a_gate_in_a_users_graph_pauses(
        self, backend: Backend, style: PauseStyle
    ) -> None:
        """A compliance_gate with a clean reply pauses while stopped, driven or run raw."""
        graph = build(
            "messages", style, backend.checkpointer, SAFE, SAFE, SAFE, reviews=backend.reviews
        )
        coord = HitlCoordinator(graph, reviews=backend.reviews)
        assert not (await coord.process("t0", "Q?")).awaiting_approval
        await coord.stop_delivery("all", by=HEAD, reason="incident")
        held = await coord.process("t1", "Q?")
        assert held.awaiting_approval
        assert [v.rule for v in held.violations] == [STOP_RULE]
        # A raw run no coordinator drives is held too, and recorded for review.
        await graph.ainvoke(graph_input("messages"), {"configurable": {"thread_id": "raw"}})
        assert [p.thread_id for p in await coord.pending()].count("raw") == 1


class TestMigration:
    @pytest.mark.parametrize("kind", ["sqlite", "postgres"])
    async def test_a_previous_version_database_gains_the_stop_table(
        self,
        kind: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest,
    ) -> None:
        """Tables of the previous schema version are upgraded in place, rows kept; stops work."""
        if kind == "sqlite":
            import hitl_compliance.stores.sqlite as module

            url = f"sqlite:///{tmp_path / 'old.db'}"
        else:
            pytest.importorskip("psycopg")
            import hitl_compliance.stores.postgres as module  # type: ignore[no-redef]

            url = str(request.getfixturevalue("postgres_dsn"))
        prefix = f"m{uuid.uuid4().hex[:8]}_"
        previous = len(module._MIGRATIONS) - 1
        now = FakeClock().now
        with monkeypatch.context() as patch:
            patch.setattr(module, "_MIGRATIONS", module._MIGRATIONS[:previous])
            patch.setattr(module, "SCHEMA_VERSION", previous)
            async with open_backend(url, table_prefix=prefix) as old:
                await old.reviews.place_hold("t1", reason="enquiry", by="legal", now=now)  # type: ignore[attr-defined]
                old_rows = await old.reviews.audit_rows()
        for _ in range(2):  # the step is idempotent: a second open changes nothing
            async with open_backend(url, table_prefix=prefix) as new:
                store: Any = new.reviews
                assert await store.audit_rows() == old_rows
                assert await store.delivery_stops() == []
        async with open_backend(url, table_prefix=prefix) as new:
            store = new.reviews
            stop = await store.stop_delivery(StopScope.everything(), reason="r", by="h", now=now)
            assert await store.delivery_stops() == [stop]
            assert [r.event for r in await store.audit_rows()] == ["hold_placed", DELIVERY_STOPPED]


WORKER = Path(__file__).with_name("stop_worker.py")


@pytest.mark.slow
class TestAcrossProcesses:
    """A stop switched in one process holds the next turn of another within one second."""

    @pytest.mark.parametrize("kind", ["sqlite", "postgres"])
    async def test_a_second_process_pauses_within_a_second(
        self, kind: str, tmp_path: Path, request: pytest.FixtureRequest
    ) -> None:
        """The child's turns started a second after the switch returned all pause."""
        if kind == "sqlite":
            url = f"sqlite:///{tmp_path / 'shared.db'}"
        else:
            url = str(request.getfixturevalue("postgres_dsn"))
        prefix = f"x{uuid.uuid4().hex[:8]}_"
        ready = tmp_path / "ready"
        async with open_backend(url, table_prefix=prefix) as backend:
            coord = factory(backend)
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                str(WORKER),
                url,
                prefix,
                str(ready),
                stdout=asyncio.subprocess.PIPE,
            )
            try:
                while not ready.exists():
                    assert child.returncode is None, "the worker died before it was ready"
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.3)  # the child is delivering turns back to back
                await coord.stop_delivery("all", by=HEAD, reason="latency test")
                switched = time.time()
                out, _ = await asyncio.wait_for(child.communicate(), timeout=30)
            finally:
                if child.returncode is None:
                    child.kill()
                    await child.wait()
        assert child.returncode == 0
        turns = [line.split() for line in out.decode().splitlines()]
        paused = [float(start) for status, start, _ in turns if status == "paused"]
        delivered = [float(start) for status, start, _ in turns if status == "completed"]
        assert len(paused) == 1, turns
        assert delivered, turns
        # Every turn the child started a second or more after the switch paused.
        late = max(delivered) - switched
        latency = paused[0] - switched
        print(f"\n{kind}: last delivered turn started {late:+.3f}s, first held {latency:+.3f}s")
        assert late < 1.0
        assert latency < 1.0


class TestSla:
    async def test_the_sla_never_approves_a_held_reply(self, backend: Backend) -> None:
        """With on_timeout="approve_draft", a reply the stop held is rejected at its deadline."""
        clock = FakeClock()
        graph = build_compliance_graph(lambda s: SAFE, checkpointer=backend.checkpointer)
        coord = HitlCoordinator(
            graph,
            reviews=backend.reviews,
            clock=clock,
            sla=timedelta(hours=1),
            on_timeout="approve_draft",
        )
        await coord.stop_delivery("all", by=HEAD, reason="incident")
        assert (await coord.process("t1", "Q?")).awaiting_approval
        clock.advance(hours=2)
        [expired] = await coord.expire_overdue()
        assert expired.status == "rejected"  # nothing of the draft went out
        assert expired.agent_response is None
