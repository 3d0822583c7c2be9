"""Reviewer authority on every backend and both pause styles: policy, quorum, edits, binding."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hitl_compliance import (
    AlreadyDecidedError,
    DuplicateVoteError,
    HitlCoordinator,
    KeywordRule,
    NotAuthorizedError,
    PauseStyle,
    PolicyViolationError,
    RegexRule,
    Reviewer,
    RoleBasedPolicy,
    StaleReviewError,
    build_compliance_graph,
    open_backend,
)
from hitl_compliance._replies import REPLY_EVENT as REPLIED

ADVICE = "You should invest in the fund: guaranteed returns."
OFFICER = Reviewer("officer@bank", roles=frozenset({"smcr_approver", "compliance"}))
SENIOR = Reviewer("senior@bank", roles=frozenset({"smcr_approver", "compliance"}))
JUNIOR = Reviewer("junior@bank", roles=frozenset({"compliance"}))

POLICY = RoleBasedPolicy(
    rule_roles={"investment_advice": "smcr_approver"},
    severity_roles={"high": "compliance"},
    quorum={"high": 2},
)


def rules() -> list[Any]:
    """investment_advice (medium), guarantee (high, so four-eyes), account (block)."""
    return [
        KeywordRule("investment_advice", ["you should invest"], reason="advice"),
        KeywordRule("guarantee", ["guaranteed returns"], severity="high", reason="promise"),
        RegexRule("account", r"\b\d{8}\b", verdict="block", reason="account number"),
        KeywordRule("pension", ["pension transfer"], reason="pension", severity="low"),
    ]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'authority.db'}"
    return str(request.getfixturevalue("postgres_dsn"))


@pytest.fixture(params=["interrupt_before", "command_resume"])
def style(request: pytest.FixtureRequest) -> PauseStyle:
    """Each pause style."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def coord(url: str, style: PauseStyle) -> AsyncIterator[HitlCoordinator]:
    """A coordinator with POLICY on the backend."""
    async with open_backend(url) as backend:
        graph = build_compliance_graph(
            lambda state: state.customer_message,  # the "LLM" echoes: tests choose drafts
            rules=rules(),
            checkpointer=backend.checkpointer,
            style=style,
        )
        yield HitlCoordinator(graph, reviews=backend.reviews, policy=POLICY)


def tid() -> str:
    """A fresh thread id."""
    return f"t-{uuid.uuid4().hex}"


async def events(coord: HitlCoordinator, thread: str) -> list[str]:
    """The review events of a thread, oldest first (not its `replied` records)."""
    return [a.event for a in await coord.audit_log(thread) if a.event != REPLIED]


class TestAuthorization:
    async def test_missing_role_is_denied_and_audited(self, coord: HitlCoordinator) -> None:
        """A reviewer without the rule's role is refused, the refusal is audited, nothing else."""
        thread = tid()
        paused = await coord.process(thread, "You should invest now.")
        with pytest.raises(NotAuthorizedError) as info:
            await coord.approve(thread, reviewer=JUNIOR)
        assert "smcr_approver" in info.value.missing_roles
        assert info.value.reviewer == JUNIOR.id
        log = await coord.audit_log(thread)
        assert [a.event for a in log] == ["paused", "denied"]
        assert log[-1].actor == JUNIOR.id
        assert "smcr_approver" in log[-1].payload["reason"]
        [item] = [p for p in await coord.pending() if p.thread_id == thread]
        assert item.checkpoint_id == paused.checkpoint_id
        snap = await coord.graph.aget_state({"configurable": {"thread_id": thread}})
        assert snap.next == ("human_approval",)
        result = await coord.approve(thread, reviewer=OFFICER)
        assert result.status == "completed"

    async def test_bare_string_reviewer_has_no_roles(self, coord: HitlCoordinator) -> None:
        """A plain reviewer id carries no roles, so a role-guarded review refuses it."""
        thread = tid()
        await coord.process(thread, "You should invest now.")
        with pytest.raises(NotAuthorizedError):
            await coord.reject(thread, reviewer="someone@bank")
        assert await events(coord, thread) == ["paused", "denied"]

    async def test_unguarded_finding_allows_anyone(self, coord: HitlCoordinator) -> None:
        """A finding no map mentions needs no role."""
        thread = tid()
        await coord.process(thread, "About a pension transfer.")
        result = await coord.approve(thread, reviewer="anyone@bank")
        assert result.status == "completed"

    async def test_requester_may_not_approve(self, coord: HitlCoordinator) -> None:
        """Four-eyes: whoever requested the review cannot approve it, but may reject it."""
        thread = tid()
        await coord.process(thread, "You should invest now.", requested_by=OFFICER.id)
        [item] = [p for p in await coord.pending() if p.thread_id == thread]
        assert item.requested_by == OFFICER.id
        with pytest.raises(NotAuthorizedError):
            await coord.approve(thread, reviewer=OFFICER)
        assert await events(coord, thread) == ["paused", "denied"]
        result = await coord.reject(thread, reviewer=OFFICER, reason="withdrawn")
        assert result.status == "rejected"


class TestQuorum:
    async def test_two_approvers_needed_for_high_severity(self, coord: HitlCoordinator) -> None:
        """The first approval is a vote; the graph resumes only at the second, distinct one."""
        thread = tid()
        await coord.process(thread, "Guaranteed returns for everyone.")
        first = await coord.approve(thread, reviewer=JUNIOR, metadata={"note": "ok by me"})
        assert first.status == "paused"
        assert first.awaiting_approval
        assert [v.reviewer for v in first.votes] == [JUNIOR.id]
        assert first.approvals_required == 2
        [item] = [p for p in await coord.pending() if p.thread_id == thread]
        assert [v.reviewer for v in item.votes] == [JUNIOR.id]
        snap = await coord.graph.aget_state({"configurable": {"thread_id": thread}})
        assert snap.next == ("human_approval",)
        with pytest.raises(DuplicateVoteError):
            await coord.approve(thread, reviewer=JUNIOR)
        final = await coord.approve(thread, reviewer=SENIOR)
        assert final.status == "completed"
        assert final.agent_type == "human_admin"
        log = await coord.audit_log(thread)
        # The second approval sends the reply, then records the outcome.
        assert [a.event for a in log] == ["paused", "voted", "replied", "approved"]
        assert log[-1].payload["approvers"] == [JUNIOR.id, SENIOR.id]

    async def test_one_rejection_ends_a_quorum_review(self, coord: HitlCoordinator) -> None:
        """A single authorised rejection ends the review whatever votes it had."""
        thread = tid()
        await coord.process(thread, "Guaranteed returns for everyone.")
        await coord.approve(thread, reviewer=JUNIOR)
        result = await coord.reject(thread, reviewer=SENIOR, reason="no")
        assert result.status == "rejected"
        with pytest.raises(AlreadyDecidedError):
            await coord.approve(thread, reviewer=OFFICER)
        assert await events(coord, thread) == ["paused", "voted", "rejected"]

    async def test_race_two_approvers_and_a_rejector(self, coord: HitlCoordinator) -> None:
        """Two approvers of a 2-of-N review racing a rejector: exactly one final outcome."""
        for _ in range(5):
            thread = tid()
            await coord.process(thread, "Guaranteed returns for everyone.")
            outcomes = await asyncio.gather(
                coord.approve(thread, reviewer=JUNIOR),
                coord.approve(thread, reviewer=SENIOR),
                coord.reject(thread, reviewer=OFFICER, reason="no"),
                return_exceptions=True,
            )
            finals = [
                o for o in outcomes if not isinstance(o, BaseException) and o.status != "paused"
            ]
            assert len(finals) == 1, outcomes
            assert all(
                isinstance(o, AlreadyDecidedError) for o in outcomes if isinstance(o, BaseException)
            )
            log = await coord.audit_log(thread)
            decisions = [a for a in log if a.event in ("approved", "rejected")]
            assert len(decisions) == 1
            assert decisions[0].event == (
                "approved" if finals[0].status == "completed" else "rejected"
            )


class TestEdits:
    async def test_edit_with_block_finding_is_refused(self, coord: HitlCoordinator) -> None:
        """An edit that a block rule catches raises PolicyViolationError and changes nothing."""
        thread = tid()
        await coord.process(thread, "You should invest now.")
        with pytest.raises(PolicyViolationError) as info:
            await coord.approve(thread, reviewer=OFFICER, response="Your account is 12345678.")
        assert [f.rule for f in info.value.findings] == ["account"]  # type: ignore[attr-defined]
        assert await events(coord, thread) == ["paused"]
        assert thread in {p.thread_id for p in await coord.pending()}

    async def test_edit_new_findings_need_authority(self, coord: HitlCoordinator) -> None:
        """A new review finding in the edit must be within the approver's authority."""
        thread = tid()
        await coord.process(thread, "About a pension transfer.")
        with pytest.raises(NotAuthorizedError):
            await coord.approve(thread, reviewer="anyone@bank", response="You should invest.")
        assert await events(coord, thread) == ["paused", "denied"]
        result = await coord.approve(thread, reviewer=OFFICER, response="You should invest.")
        assert result.agent_response == "You should invest."
        approval = (await coord.audit_log(thread))[-1]
        assert [f["rule"] for f in approval.payload["edit_findings"]] == ["investment_advice"]
        assert "+You should invest." in approval.payload["diff"]
        assert "-About a pension transfer." in approval.payload["diff"]
        expected = hashlib.sha256(b"You should invest.").hexdigest()
        assert approval.payload["text_sha256"] == expected


class TestBinding:
    async def test_pending_review_carries_hash_and_checkpoint(self, coord: HitlCoordinator) -> None:
        """PendingReview has the SHA-256 of the UTF-8 draft and the paused checkpoint id."""
        thread = tid()
        paused = await coord.process(thread, "You should invest — now!")
        [item] = [p for p in await coord.pending() if p.thread_id == thread]
        assert item.draft_sha256 == hashlib.sha256("You should invest — now!".encode()).hexdigest()
        assert item.checkpoint_id == paused.checkpoint_id
        assert item.customer_message == "You should invest — now!"
        assert item.violations[0].severity == "medium"

    async def test_expected_either_value(self, coord: HitlCoordinator) -> None:
        """expected= accepts the draft hash or the checkpoint id of the loaded review."""
        for pick in ("draft_sha256", "checkpoint_id"):
            thread = tid()
            await coord.process(thread, "You should invest now.")
            [item] = [p for p in await coord.pending() if p.thread_id == thread]
            result = await coord.approve(thread, reviewer=OFFICER, expected=getattr(item, pick))
            assert result.status == "completed"
            approval = (await coord.audit_log(thread))[-1]
            assert approval.payload["text_sha256"] == item.draft_sha256

    async def test_stale_review_is_refused(self, coord: HitlCoordinator) -> None:
        """A reviewer who loaded an older pause of the thread gets StaleReviewError."""
        thread = tid()
        await coord.process(thread, "You should invest now.")
        [old] = [p for p in await coord.pending() if p.thread_id == thread]
        await coord.reject(thread, reviewer=OFFICER)
        await coord.process(thread, "You should invest later.")
        with pytest.raises(StaleReviewError):
            await coord.approve(thread, reviewer=OFFICER, expected=old.draft_sha256)
        with pytest.raises(StaleReviewError):
            await coord.reject(thread, reviewer=OFFICER, expected=old.checkpoint_id)
        assert thread in {p.thread_id for p in await coord.pending()}


class TestPendingFilters:
    async def test_filters_and_cursor(self, coord: HitlCoordinator) -> None:
        """rule / reviewer / limit / cursor filters select and page the pending reviews."""
        prefix = uuid.uuid4().hex[:6]
        threads = []
        for i, text in enumerate(
            ["You should invest.", "About a pension transfer.", "Guaranteed returns."] * 2
        ):
            thread = f"{prefix}-{i}"
            threads.append(thread)
            await coord.process(thread, text)
        mine = lambda items: [p.thread_id for p in items if p.thread_id.startswith(prefix)]  # noqa: E731
        assert mine(await coord.pending(rule="pension")) == [threads[1], threads[4]]
        assert set(mine(await coord.pending(reviewer="anyone@bank"))) == {threads[1], threads[4]}
        assert len(mine(await coord.pending(reviewer=OFFICER))) == 6
        pages: list[str] = []
        cursor = None
        while True:
            page = await coord.pending(limit=2, cursor=cursor)
            if not page:
                break
            pages += mine(page)
            cursor = page[-1].cursor
        assert pages == threads
