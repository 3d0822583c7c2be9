"""Personal values beside the chain: sealing, revealing, the verifier's check, and erasure.

The chain hashes a salted commitment to each personal value; readers get the
value back, or an explicit erased marker; every verifier checks a value still
present against its commitment; and any sequence of turns and erasures keeps
the ledger verifiable (a Hypothesis property).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    ConfigurationError,
    ErasureReport,
    HitlCoordinator,
    InvalidInputError,
    KeywordRule,
    PersonalValue,
    build_compliance_graph,
)
from hitl_compliance._personal import digest_of, reveal, seal, subject_of
from hitl_compliance.ledger import (
    ERASED_EVENT,
    ERASED_KEY,
    PERSONAL_KEY,
    personal_digest,
    verify_rows,
)
from hitl_compliance.state import ComplianceState
from hitl_compliance.stores import InMemoryReviewStore


def _coordinator(store: Any = None) -> HitlCoordinator:
    graph = build_compliance_graph(
        lambda state: (
            "Guaranteed returns!" if "fund" in state.customer_message else "Happy to help."
        ),
        rules=[KeywordRule("guarantee", ["guaranteed returns"])],
        checkpointer=InMemorySaver(),
    )
    return HitlCoordinator(graph, reviews=store or InMemoryReviewStore())


async def _rows(coord: HitlCoordinator) -> tuple[list[dict[str, Any]], tuple[int, str] | None]:
    return [r.to_row() for r in await coord.reviews.audit_rows()], await coord.reviews.audit_head()


class TestSeal:
    def test_personal_fields_become_salted_commitments(self) -> None:
        """Each non-None personal field is replaced by its commitment; the rest stays."""
        sealed, kept = seal(
            {"delivered": "hi Alice", "diff": None, "approved": True},
            ("delivered", "diff"),
            thread_id="t1",
            subject="alice",
        )
        assert sealed["approved"] is True
        assert sealed["diff"] is None
        assert set(sealed["delivered"]) == {PERSONAL_KEY}
        (value,) = kept
        assert (value.thread_id, value.subject, value.value) == ("t1", "alice", "hi Alice")
        assert value.digest == sealed["delivered"][PERSONAL_KEY]
        assert value.matches()
        assert len(bytes.fromhex(value.salt)) == 32

    def test_the_same_text_commits_differently_each_time(self) -> None:
        """A fresh salt per value: equal texts give unrelated digests (no guess confirmed)."""
        one, _ = seal({"delivered": "x"}, ("delivered",), thread_id="t", subject=None)
        two, _ = seal({"delivered": "x"}, ("delivered",), thread_id="t", subject=None)
        assert one["delivered"] != two["delivered"]

    def test_reveal_puts_values_back_or_marks_them_erased(self) -> None:
        """With the value, the payload reads as before; without, an explicit erased marker."""
        sealed, kept = seal(
            {"delivered": "a", "diff": "b"}, ("delivered", "diff"), thread_id="t", subject=None
        )
        by_digest = {v.digest: v for v in kept}
        shown = reveal(sealed, by_digest)
        assert shown is not None
        assert shown[0] == {"delivered": "a", "diff": "b"}
        first = kept[0]
        shown = reveal(sealed, {k: v for k, v in by_digest.items() if k != first.digest})
        assert shown is not None
        payload, proof = shown
        assert payload["delivered"] == {ERASED_KEY: True, PERSONAL_KEY: first.digest}
        assert proof[first.digest] is None
        assert reveal({"approved": True}, by_digest) is None

    def test_an_edited_value_no_longer_matches(self) -> None:
        """PersonalValue.matches is False once the value or salt changed."""
        _, (value,) = seal({"d": "x"}, ("d",), thread_id="t", subject=None)
        assert not PersonalValue(value.digest, "t", None, value.salt, "y").matches()
        assert personal_digest(value.salt, "x") == value.digest

    def test_digest_of_only_reads_a_commitment(self) -> None:
        """Only a one-key `{"$personal": str}` mapping is a commitment."""
        assert digest_of({PERSONAL_KEY: "ab"}) == "ab"
        assert digest_of({PERSONAL_KEY: "ab", "x": 1}) is None
        assert digest_of("text") is None

    def test_the_subject_is_subject_id_else_requested_by(self) -> None:
        """A state's `subject_id` names the subject; without one, `requested_by` does."""

        class WithSubject(ComplianceState):
            subject_id: str | None = None

        assert subject_of(WithSubject(requested_by="agent", subject_id="cust-9")) == "cust-9"
        assert subject_of(WithSubject(requested_by="agent")) == "agent"
        assert subject_of(ComplianceState()) is None


class TestVerifierChecksValues:
    async def test_an_edited_proof_breaks_and_an_erased_one_does_not(self) -> None:
        """verify_rows checks each value present against its commitment; None proves nothing."""
        coord = _coordinator()
        await coord.process("t1", "Is this fund safe?", requested_by="alice")
        await coord.approve("t1", reviewer="officer@bank", response="Not guaranteed.")
        rows, head = await _rows(coord)
        assert verify_rows(rows, head=head).ok
        decided = next(r for r in rows if "personal" in r and r["event"] == "approved")
        digest = next(iter(decided["personal"]))
        decided["personal"][digest]["value"] = "Something else"
        broken = verify_rows(rows, head=head)
        assert not broken.ok
        assert broken.first_broken is not None
        assert "commitment" in broken.first_broken.reason
        decided["personal"][digest] = None
        assert verify_rows(rows, head=head).ok

    async def test_a_value_the_row_does_not_commit_to_breaks(self) -> None:
        """A proof naming a digest absent from the payload is an edit."""
        coord = _coordinator()
        await coord.process("t1", "Is this fund safe?")
        await coord.approve("t1", reviewer="officer@bank", response="Not guaranteed.")
        rows, head = await _rows(coord)
        decided = next(r for r in rows if "personal" in r)
        decided["personal"]["0" * 64] = None
        assert not verify_rows(rows, head=head).ok

    async def test_rows_without_personal_values_export_as_before(self) -> None:
        """A row with no personal value has no `personal` key (old exports are unchanged)."""
        coord = _coordinator()
        await coord.place_hold("t1", reason="enquiry", by="legal@bank")
        rows, _ = await _rows(coord)
        assert [r["event"] for r in rows] == ["hold_placed"]
        assert "personal" not in rows[0]
        assert "sealed_payload" not in rows[0]

    async def test_the_paused_rows_draft_hash_is_salted(self) -> None:
        """The paused row's draft hash and commitment are salted; readers see them as before."""
        coord = _coordinator()
        await coord.process("t1", "Is this fund safe?")
        (paused,) = await coord.audit_log("t1")
        assert isinstance(paused.payload["draft_sha256"], str)
        sealed = paused.to_row()["payload"]
        assert set(sealed["draft_sha256"]) == {PERSONAL_KEY}
        assert set(sealed["commitment"]) == {PERSONAL_KEY}


class TestEraseSubject:
    async def test_bad_subject_is_refused(self) -> None:
        """An empty or non-string subject is an InvalidInputError."""
        coord = _coordinator()
        with pytest.raises(InvalidInputError):
            await coord.erase_subject("  ")
        with pytest.raises(InvalidInputError):
            await coord.erase_subject(42)  # type: ignore[arg-type]

    async def test_a_store_without_the_capability_is_a_configuration_error(self) -> None:
        """A store that is not a PersonalStore cannot erase: a ConfigurationError naming it."""

        class Plain(InMemoryReviewStore):
            put_personal = None  # type: ignore[assignment]

        coord = _coordinator(Plain())
        with pytest.raises(ConfigurationError, match="PersonalStore"):
            await coord.erase_subject("alice")

    async def test_the_report_is_a_frozen_value(self) -> None:
        """ErasureReport is immutable."""
        report = await _coordinator().erase_subject("nobody")
        assert report == ErasureReport(subject="nobody", threads=())
        with pytest.raises(AttributeError):
            report.subject = "x"  # type: ignore[misc]


_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("turn"),
            st.sampled_from(["t1", "t2", "t3"]),
            st.sampled_from(["alice", "bob"]),
            st.sampled_from(["clean", "approve", "edit", "reject"]),
        ),
        st.tuples(st.just("erase"), st.sampled_from(["alice", "bob"])),
    ),
    min_size=1,
    max_size=8,
)


async def _run(ops: list[tuple[str, ...]]) -> HitlCoordinator:
    coord = _coordinator()
    for op in ops:
        if op[0] == "erase":
            await coord.erase_subject(op[1])
            continue
        _, thread_id, subject, kind = op
        message = "Can you help?" if kind == "clean" else "Is this fund safe?"
        await coord.process(thread_id, message, requested_by=subject)
        if kind == "approve":
            await coord.approve(thread_id, reviewer="officer@bank")
        elif kind == "edit":
            await coord.approve(thread_id, reviewer="officer@bank", response=f"For {subject}.")
        elif kind == "reject":
            await coord.reject(thread_id, reviewer="officer@bank", reason="misleading")
    return coord


@settings(deadline=None, max_examples=40)
@given(ops=_OPS)
def test_any_turns_and_erasures_keep_the_ledger_verifiable(ops: list[tuple[str, ...]]) -> None:
    """Whatever turns and erasures happen, the store and every thread verify; erased is gone."""

    async def check() -> None:
        coord = await _run(ops)
        assert (await coord.verify_audit()).ok
        rows = await coord.reviews.audit_rows()
        for thread_id in {r.thread_id for r in rows}:
            assert (await coord.verify_audit(thread_id)).ok
        store = coord.reviews
        assert isinstance(store, InMemoryReviewStore)
        for row in rows:
            erased_later = any(
                r.event == ERASED_EVENT and r.thread_id == row.thread_id and r.seq > row.seq
                for r in rows
            )
            if erased_later and row.personal:
                assert set(row.personal.values()) == {None}

    asyncio.run(check())


class TestShownErased:
    async def test_the_cli_shows_erased_fields_as_erased(self) -> None:
        """The CLI's audit lines say `(erased)` where the text was, and summarise the erasure."""
        from hitl_compliance.cli import _audit_detail

        coord = _coordinator()
        await coord.process("t1", "Is this fund safe?", requested_by="alice")
        await coord.approve("t1", reviewer="officer@bank", response="Not guaranteed, Alice.")
        before = [_audit_detail(r) for r in await coord.audit_log("t1")]
        assert any("Not guaranteed, Alice." in line for line in before)
        await coord.erase_subject("alice")
        after = [_audit_detail(r) for r in await coord.audit_log("t1")]
        assert not any("Alice" in line for line in after)
        assert "delivered (erased)" in after[2]
        assert "text sha256 (erased)" in after[1]
        assert after[3].startswith("personal data erased:")
