"""Evidence packs on every backend: one review's record, complete, hashed and reproducible.

A full cycle (pause, a vote, an edit with a reason code, delivery) is packed and
the pack checked against the library's own records: the audit rows' hashes,
the `replied` row's rule versions and delivered hash, the decisions, and the
ledger verification with the last signed head.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from hitl_compliance import (
    Ed25519Signer,
    EvidencePack,
    HitlCoordinator,
    KeywordRule,
    Reviewer,
    ReviewNotFoundError,
    RoleBasedPolicy,
    Sealing,
    build_compliance_graph,
    open_backend,
    ruleset_fingerprint,
)
from hitl_compliance.backends import Backend
from hitl_compliance.evidence_pack import pdf_available
from hitl_compliance.models import sha256_text
from hitl_compliance.testing import FakeClock

RISKY = "Invest now: <b>guaranteed returns</b> of 8% & more."
EDIT = "Invest now: returns may go down as well as up."
RULES = (
    KeywordRule("guarantee", ["guaranteed returns"], reason="promises returns", version="2026.2"),
)
ANNA = Reviewer("anna@bank", roles=frozenset({"compliance"}))
BEN = Reviewer("ben@bank", roles=frozenset({"smcr_approver", "compliance"}))


@pytest_asyncio.fixture
async def backend(backend_url: str) -> AsyncIterator[Backend]:
    """The backend with tables of its own, so the whole-store check sees this test's rows only."""
    async with open_backend(backend_url, table_prefix=f"e{uuid.uuid4().hex[:8]}_") as opened:
        yield opened


def coordinator(backend: Backend, **options: object) -> HitlCoordinator:
    graph = build_compliance_graph(
        lambda state: RISKY if "fund" in state.customer_message else "Happy to help.",
        rules=RULES,
        checkpointer=backend.checkpointer,
        rejection_message="A colleague will call you.",
    )
    policy = RoleBasedPolicy(rule_roles={"guarantee": "compliance"}, quorum={"guarantee": 2})
    return HitlCoordinator(
        graph, reviews=backend.reviews, policy=policy, clock=FakeClock(), **options
    )  # type: ignore[arg-type]


async def full_cycle(coord: HitlCoordinator) -> str:
    """Pause, a vote by anna, ben's edit with a reason code: delivered. Returns the thread."""
    thread = f"t-{uuid.uuid4().hex}"
    assert (await coord.process(thread, "Which fund should I buy?")).awaiting_approval
    await coord.approve(thread, reviewer=ANNA, response=EDIT, reason_code="missing_risk_warning")
    done = await coord.approve(
        thread, reviewer=BEN, response=EDIT, reason_code="missing_risk_warning"
    )
    assert done.status == "completed"
    return thread


class TestFullCycle:
    async def test_contents_match_the_records(self, backend: Backend) -> None:
        """The pack holds message, draft, findings, votes, edit, reply and the ledger hashes."""
        coord = coordinator(backend)
        thread = await full_cycle(coord)
        pack = await coord.evidence_pack(thread)
        rows = await coord.audit_log(thread)
        review = await coord.reviews.get_review(thread)
        assert review is not None
        data = pack.data
        assert (pack.thread_id, pack.review_id) == (thread, review.review_id)
        assert data["customer_message"] == "Which fund should I buy?"
        assert data["draft"]["text"] == RISKY
        assert data["draft"]["sha256"] == rows[0].payload["draft_sha256"]
        assert data["draft"]["matches_ledger"] is True
        [span] = data["draft"]["highlights"]
        assert RISKY[span["start"] : span["end"]] == "guaranteed returns"
        assert [f["rule"] for f in data["findings"]] == ["guarantee"]
        assert data["rules"] == [{"name": "guarantee", "version": "2026.2"}]
        assert data["ruleset"] == ruleset_fingerprint(RULES)
        assert [(d["event"], d["actor"], d["roles"]) for d in data["decisions"]] == [
            ("paused", "system", []),
            ("voted", "anna@bank", ["compliance"]),
            ("replied", "ben@bank", []),
            ("approved", "ben@bank", ["compliance", "smcr_approver"]),
        ]
        approved = data["decisions"][-1]
        assert (approved["reason_code"], approved["reason_label"]) == (
            "missing_risk_warning",
            "Missing risk warning",
        )
        assert data["edit"]["edited"] == EDIT
        removed = "".join(text for op, text in data["edit"]["diff"] if op != "+")
        assert removed == RISKY
        assert data["delivered"] == {
            "outcome": "edited",
            "decided_by": "ben@bank",
            "sha256": sha256_text(EDIT),
            "text": EDIT,
            "text_matches_ledger": True,
        }
        # The ledger rows are the store's own, hash for hash.
        assert [(r["seq"], r["hash"], r["prev_hash"]) for r in data["ledger"]] == [
            (r.seq, r.hash, r.prev_hash) for r in rows
        ]
        # As exported: the hashed payload, and the personal values it commits to beside it.
        assert [r["payload"] for r in data["ledger"]] == [r.to_row()["payload"] for r in rows]
        assert [r.get("personal") for r in data["ledger"]] == [
            r.to_row().get("personal") for r in rows
        ]
        check = data["verification"]
        assert check["thread"]["ok"]
        assert check["thread"]["checked"] == len(rows)
        assert check["store"]["ok"]
        # The store's head: the last row's on one chain, the lanes' combined head on PostgreSQL.
        head = await coord.reviews.audit_head()
        assert head is not None
        assert check["store"]["head_hash"] == head[1]
        assert check["sealed_head"] is None

    async def test_page_says_it_in_plain_english(self, backend: Backend) -> None:
        """The page has the plain-English sections, the highlighted evidence and escaped text."""
        coord = coordinator(backend)
        pack = await coord.evidence_pack(await full_cycle(coord))
        for heading in (
            "What the customer asked",
            "What the AI drafted",
            "Why it was held",
            "Who decided, when",
            "What was sent",
            "The ledger record",
            "Verification",
        ):
            assert f"<h2>{heading}</h2>" in pack.html
        assert '<mark title="guarantee">guaranteed returns</mark>' in pack.html
        assert "&lt;b&gt;" in pack.html
        assert "<b>" not in pack.html
        assert "of 8% &amp; more." in pack.html
        assert "Missing risk warning (missing_risk_warning)" in pack.html
        assert "<del>" in pack.html
        assert "<ins>" in pack.html
        for row in await coord.audit_log(pack.thread_id):
            assert row.hash in pack.html
        assert "rows verify" in pack.html
        assert "No signed head" in pack.html

    async def test_manifest_hash_is_reproducible(self, backend: Backend, tmp_path: Path) -> None:
        """The same records give the same JSON bytes, so the same manifest hash, on every call."""
        coord = coordinator(backend)
        thread = await full_cycle(coord)
        first, second = await coord.evidence_pack(thread), await coord.evidence_pack(thread)
        assert first == second
        assert first.manifest_sha256 == hashlib.sha256(first.json_text.encode()).hexdigest()
        assert EvidencePack.from_data(first.data) == first
        files = first.write(tmp_path / "pack")
        manifest = json.loads(files.manifest.read_text())
        assert manifest["manifest_sha256"] == first.manifest_sha256
        written = {"evidence.html", "evidence.json"} | (
            {"evidence.pdf"} if pdf_available() else set()
        )
        assert set(manifest["files"]) == written
        for name, digest in manifest["files"].items():
            assert hashlib.sha256((tmp_path / "pack" / name).read_bytes()).hexdigest() == digest
        assert files.json.read_text() == first.json_text
        assert manifest["files"]["evidence.json"] == first.manifest_sha256


class TestWhichReview:
    async def test_an_earlier_review_by_id(self, backend: Backend) -> None:
        """`review_id` picks an earlier review, rebuilt from its rows and its checkpoint."""
        coord = coordinator(backend)
        thread = await full_cycle(coord)
        first = (await coord.audit_log(thread))[0].review_id
        await coord.process(thread, "And which fund next?")
        await coord.reject(thread, reviewer=ANNA, reason_code="missing_risk_warning")
        latest = await coord.evidence_pack(thread)
        earlier = await coord.evidence_pack(thread, review_id=first)
        assert latest.review_id != first
        assert earlier.review_id == first
        assert latest.data["customer_message"] == "And which fund next?"
        assert latest.data["delivered"]["outcome"] == "rejected"
        assert earlier.data["customer_message"] == "Which fund should I buy?"
        assert earlier.data["delivered"]["outcome"] == "edited"
        assert earlier.data["edit"]["edited"] == EDIT
        assert earlier.data["draft"]["matches_ledger"] is True  # read from its checkpoint
        assert [d["seq"] for d in earlier.data["decisions"]] == [1, 2, 3, 4]

    async def test_unknown_thread_and_review(self, backend: Backend) -> None:
        """An unknown thread or review is ReviewNotFoundError, and nothing is recorded."""
        coord = coordinator(backend)
        thread = await full_cycle(coord)
        before = await coord.reviews.audit_rows()
        with pytest.raises(ReviewNotFoundError) as caught:
            await coord.evidence_pack("no-such-thread")
        assert caught.value.thread_id == "no-such-thread"
        with pytest.raises(ReviewNotFoundError):
            await coord.evidence_pack(thread, review_id="no-such-review")
        assert await coord.reviews.audit_rows() == before

    async def test_a_pending_review(self, backend: Backend) -> None:
        """A review still waiting is packed with its vote and no reply yet."""
        coord = coordinator(backend)
        thread = f"t-{uuid.uuid4().hex}"
        await coord.process(thread, "Which fund should I buy?")
        await coord.approve(thread, reviewer=ANNA)
        data = (await coord.evidence_pack(thread)).data
        assert data["review"]["status"] == "pending"
        assert [d["event"] for d in data["decisions"]] == ["paused", "voted"]
        assert data["delivered"] is None
        assert data["rules"] == []


async def test_signed_head_is_verified(backend: Backend) -> None:
    """With sealing, the pack names the last signed head and what its signature proves."""
    signer = Ed25519Signer.generate()
    coord = coordinator(backend, sealing=Sealing(signer, every_rows=1, every=None))
    thread = await full_cycle(coord)
    pack = await coord.evidence_pack(thread, public_key=signer.public_key_pem())
    check = pack.data["verification"]
    rows = await coord.audit_log(thread)
    head = await coord.reviews.audit_head()
    assert head is not None
    assert (check["sealed_head"]["seq"], check["sealed_head"]["hash"]) == head
    assert head[0] == rows[-1].seq
    assert check["sealed_head"]["covers_review"] is True
    assert check["store"]["signatures_checked"] is True
    assert any("signed head at seq" in s for s in check["store"]["proof"])
    assert "Last signed head: seq" in pack.html


async def test_gate_reviews_share_their_turns_reply(backend: Backend) -> None:
    """Two tool-call reviews of one gate pass each get the pass's `replied` row."""
    from langchain_core.messages import AIMessage

    from tests.gate_graphs import Bank, build_react, call

    turn = AIMessage(
        "",
        tool_calls=[
            call("transfer", "c1", amount_gbp=5_000, to_account="111"),
            call("transfer", "c3", amount_gbp=3_000, to_account="222"),
        ],
    )
    graph, _ = build_react("command_resume", backend.checkpointer, Bank(), turn, AIMessage("Done."))
    coord = HitlCoordinator(graph, reviews=backend.reviews, clock=FakeClock())
    thread = f"g-{uuid.uuid4().hex}"
    await coord.process(thread, "Pay both")
    first, second = await coord.pending()
    await coord.approve(thread, reviewer="pay@bank", review_id=first.review_id)
    await coord.reject(thread, reviewer="pay@bank", review_id=second.review_id, reason="no")
    packs = [await coord.evidence_pack(thread, review_id=r.review_id) for r in (first, second)]
    # The gate pass that ran the calls replied first (naming both), then the model's answer.
    replied, _answer = [r for r in await coord.audit_log(thread) if r.event == "replied"]
    assert {c["id"] for c in replied.payload["tool_calls"]} == {"c1", "c3"}
    for pack in packs:
        assert [r["hash"] for r in pack.data["ledger"] if r["event"] == "replied"] == [replied.hash]
        assert pack.data["verification"]["thread"]["ok"]
    assert [p.data["review"]["status"] for p in packs] == ["approved", "rejected"]
    # The store keeps the latest review's text; the earlier one's is proven by its hash only.
    kept = await coord.reviews.get_review(thread)
    assert kept is not None
    [latest] = [p for p in packs if p.review_id == kept.review_id]
    [earlier] = [p for p in packs if p.review_id != kept.review_id]
    assert latest.data["draft"]["matches_ledger"] is True
    assert earlier.data["draft"]["matches_ledger"] is False
    assert "not the one the ledger recorded" in earlier.html
