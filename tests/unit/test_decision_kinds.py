"""The registry of decision kinds (`_decision_kinds.py`): the values each kind derives, and the
CLI, the review router and the inbox enumerating exactly the registered kinds."""

from __future__ import annotations

import argparse
import inspect
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, get_args

import pytest
from pydantic import BaseModel, ConfigDict, Field

from hitl_compliance import _decision_kinds as registry
from hitl_compliance import cli, models
from hitl_compliance._coordination.decisions import completed_status
from hitl_compliance._decision_kinds import (
    APPROVE,
    EXPIRE,
    KINDS,
    OUTCOMES,
    REJECT,
    SLA_ESCALATE,
    ApproveRequest,
    DecisionKind,
    RejectRequest,
    TextArgument,
)
from hitl_compliance.coordinator import HitlCoordinator
from hitl_compliance.state import Decision
from hitl_compliance.stores import HOOK_FOR_EVENT, FinalStatus
from hitl_compliance.stores import _machine as machine


class HoldRequest(BaseModel):
    """Body of a kind registered only by these tests."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="")
    expected: str | None = None
    metadata: dict[str, Any] | None = None


HOLD = DecisionKind(
    verb="defer",
    event="escalated",
    status=None,
    hook=None,
    delivers=False,
    votes=False,
    text=TextArgument(
        name="reason", cli_help="why it waits", cli_required=True, label="Defer reason"
    ),
    body=HoldRequest,
    cli_help="keep a review waiting for a second line",
    done="Held",
    summary="Hold the review",
    label="Defer",
)


@pytest.fixture
def with_hold(monkeypatch: pytest.MonkeyPatch) -> tuple[DecisionKind, ...]:
    """The registry with one more kind: what adding a kind to `KINDS` does."""
    kinds = (*KINDS, HOLD)
    monkeypatch.setattr(registry, "KINDS", kinds)
    return kinds


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


NOT_DECISIONS = {
    "demo",
    "evidence",
    "pending",
    "show",
    "audit",
    "expire",
    "recover",
    "hold",
    "release",
    "assign",
    "delegate",
    "retention",
    "reason-codes",
    "qa",
    "stop",
    "stops",
    "resume-delivery",
    "report",
}

NOT_DECISION_ROUTES = {
    "/stops/on",
    "/stops/off",
    "/reviews/{thread_id}/assign",
    "/qa/{qa_review_id:hitl_qa_verdict_id}/verdict",
}
"""POST routes of the review router that decide no first-line review (the stop switch,
reassignment, a second-line QA verdict)."""


class TestKinds:
    """Each kind's values, and the names the rest of the library derives from them."""

    def test_the_registered_kinds(self) -> None:
        """approve and reject, in that order; the SLA's outcomes are not reviewer kinds."""
        assert [k.verb for k in KINDS] == ["approve", "reject"]
        assert OUTCOMES == (EXPIRE, SLA_ESCALATE)

    @pytest.mark.parametrize(
        ("kind", "values"),
        [
            (
                APPROVE,
                {
                    "event": "approved",
                    "status": "approved",
                    "hook": "on_decided",
                    "delivers": True,
                    "votes": True,
                    "path": "/reviews/{thread_id}/approve",
                    "operation_id": "approve_review",
                    "body": ApproveRequest,
                    "done": "Approved",
                },
            ),
            (
                REJECT,
                {
                    "event": "rejected",
                    "status": "rejected",
                    "hook": "on_decided",
                    "delivers": False,
                    "votes": False,
                    "path": "/reviews/{thread_id}/reject",
                    "operation_id": "reject_review",
                    "body": RejectRequest,
                    "done": "Rejected",
                    "confirm": "Confirm reject",
                },
            ),
        ],
    )
    def test_derived_values(self, kind: DecisionKind, values: dict[str, Any]) -> None:
        """What a kind produces: its status, audit event, hook, route and body."""
        for name, value in values.items():
            assert getattr(kind, name) == value, name

    def test_text_arguments(self) -> None:
        """approve edits the draft (`response`); reject asks for a `reason`, required by the CLI."""
        assert (APPROVE.text.name, APPROVE.text.edits_draft, APPROVE.text.cli_required) == (
            "response",
            True,
            False,
        )
        assert (REJECT.text.name, REJECT.text.edits_draft, REJECT.text.cli_required) == (
            "reason",
            False,
            True,
        )

    def test_final_status_is_derived(self) -> None:
        """FinalStatus lists the statuses of the kinds and outcomes; the machine accepts each."""
        statuses = {k.status for k in (*KINDS, *OUTCOMES) if k.status is not None}
        assert set(get_args(FinalStatus)) == statuses == set(registry.final_statuses())
        for status in statuses:
            assert machine.next_status("claimed", "complete", final=status) == status
        assert set(get_args(FinalStatus)) <= set(get_args(models.ReviewStatus))

    def test_hook_for_event_is_derived(self) -> None:
        """HOOK_FOR_EVENT: `paused`, then each kind's and outcome's event, in registry order."""
        assert HOOK_FOR_EVENT == {
            "paused": "on_paused",
            "approved": "on_decided",
            "rejected": "on_decided",
            "expired": "on_expired",
            "escalated": "on_expired",
        }
        assert registry.hook_for_event() == HOOK_FOR_EVENT

    def test_public_literals_are_the_registrys(self) -> None:
        """models.ReviewStatus / AuditEvent and stores.FinalStatus are the registry's literals."""
        assert models.ReviewStatus is registry.ReviewStatus
        assert models.AuditEvent is registry.AuditEvent
        assert FinalStatus is registry.FinalStatus
        events = set(get_args(models.AuditEvent))
        assert {k.event for k in (*KINDS, *OUTCOMES)} <= events

    def test_completed_status_follows_the_kind(self) -> None:
        """A claimed decision completes its review with its kind's status."""
        at = datetime(2026, 1, 1, tzinfo=timezone.utc)
        approve = Decision(approved=True, reviewer="a", decided_at=at)
        reject = Decision(approved=False, reviewer="a", decided_at=at)
        system = Decision(approved=True, reviewer="system:sla", decided_at=at, kind="system")
        assert completed_status(approve) == APPROVE.status
        assert completed_status(reject) == REJECT.status
        assert completed_status(system) == EXPIRE.status

    def test_facade_method_per_kind(self) -> None:
        """Each kind is a coordinator method taking its body's fields as keywords."""
        for kind in KINDS:
            params = inspect.signature(getattr(HitlCoordinator, kind.verb)).parameters
            assert set(kind.body.model_fields) | {"reviewer"} <= set(params), kind.verb
            assert kind.text.name in kind.body.model_fields

    def test_registry_refuses_an_inconsistent_kind(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Two kinds sharing a verb, or a status missing from FinalStatus, fail at import."""
        assert registry.kind("reject") is REJECT
        with pytest.raises(KeyError):
            registry.kind("nope")
        monkeypatch.setattr(registry, "KINDS", (APPROVE, APPROVE))
        with pytest.raises(RuntimeError, match="share a verb"):
            registry._check()
        monkeypatch.setattr(registry, "KINDS", (APPROVE, replace(REJECT, status=None)))
        with pytest.raises(RuntimeError, match="FinalStatus"):
            registry._check()


class TestCli:
    """One sub-command per kind, named by its verb, with its text option."""

    def test_commands_are_the_kinds(self) -> None:
        """The decision commands are exactly the registered verbs."""
        assert set(subcommands()) - NOT_DECISIONS == {k.verb for k in KINDS}

    def test_a_new_kind_gets_a_command(self, with_hold: tuple[DecisionKind, ...]) -> None:
        """Registering a kind adds its command, with `--<text>` required as the kind says."""
        commands = subcommands()
        assert set(commands) - NOT_DECISIONS == {"approve", "reject", "defer"}
        args = commands["defer"].parse_args(["t1", "--reason", "why", "--reviewer", "r"])
        assert (args.thread, args.reason, args.reviewer, args.expected) == ("t1", "why", "r", None)
        with pytest.raises(SystemExit):
            commands["defer"].parse_args(["t1", "--reviewer", "r"])  # --reason is required

    async def test_a_kinds_command_calls_its_method(
        self, with_hold: tuple[DecisionKind, ...]
    ) -> None:
        """The command calls the coordinator method named by the verb, with its text."""
        calls: list[tuple[str, dict[str, Any]]] = []

        class Coordinator:
            async def defer(self, thread: str, **kwargs: Any) -> None:
                calls.append((thread, kwargs))
                raise LookupError("stop here")

        args = cli.build_parser().parse_args(["defer", "t1", "--reason", "why", "--reviewer", "r"])
        with pytest.raises(LookupError):
            await cli._handler("defer")(Coordinator(), args)  # type: ignore[arg-type]
        [(thread, kwargs)] = calls
        assert thread == "t1"
        assert (kwargs["reason"], kwargs["expected"], kwargs["reviewer"].id) == ("why", None, "r")


class TestServiceAndInbox:
    """One `POST /reviews/{thread_id}/<verb>` route and one inbox button per kind."""

    @staticmethod
    def decision_routes() -> dict[str, Any]:
        pytest.importorskip("fastapi")
        from fastapi.routing import APIRoute

        from hitl_compliance.fastapi import create_review_router
        from hitl_compliance.policy import Reviewer

        def authenticate() -> Reviewer:
            return Reviewer("r")

        router = create_review_router(lambda: None, authenticate=authenticate, inbox=False)  # type: ignore[arg-type,return-value]
        return {
            r.path: r
            for r in router.routes
            if isinstance(r, APIRoute)
            and r.methods == {"POST"}
            and r.path not in NOT_DECISION_ROUTES
        }

    def test_routes_are_the_kinds(self) -> None:
        """The POST routes are exactly the kinds', each with its operation id and body."""
        routes = self.decision_routes()
        assert set(routes) == {k.path for k in KINDS}
        for kind in KINDS:
            route = routes[kind.path]
            assert route.operation_id == kind.operation_id
            assert route.summary == kind.summary
            body = inspect.signature(route.endpoint).parameters["body"].annotation
            assert get_args(body)[0] is kind.body

    def test_a_new_kind_gets_a_route(self, with_hold: tuple[DecisionKind, ...]) -> None:
        """Registering a kind adds its route."""
        routes = self.decision_routes()
        assert set(routes) == {k.path for k in with_hold}
        assert routes["/reviews/{thread_id}/defer"].operation_id == "defer_review"

    def test_inbox_buttons_are_the_kinds(self) -> None:
        """The page's script gets exactly the registered kinds, and no placeholder is left."""
        pytest.importorskip("fastapi")
        from hitl_compliance.fastapi._inbox import inbox_html, inbox_kinds, kinds_script

        assert [k["verb"] for k in inbox_kinds()] == [k.verb for k in KINDS]
        page = inbox_html()
        assert "__DECISION_KINDS__" not in page
        assert f"const KINDS = {kinds_script()};" in page

    def test_a_new_kind_gets_a_button(self, with_hold: tuple[DecisionKind, ...]) -> None:
        """Registering a kind adds its button (and its confirm step) to the inbox."""
        pytest.importorskip("fastapi")
        from hitl_compliance.fastapi._inbox import inbox_kinds

        hold = inbox_kinds()[-1]
        assert (hold["verb"], hold["label"], hold["confirm"]) == ("defer", "Defer", "Confirm defer")

    def test_inbox_script_escapes_markup(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A label cannot close the page's script element."""
        pytest.importorskip("fastapi")
        from hitl_compliance.fastapi._inbox import kinds_script

        monkeypatch.setattr(registry, "KINDS", (replace(APPROVE, label="</script><b>"),))
        assert "</script>" not in kinds_script()
        assert "<b>" not in kinds_script()
