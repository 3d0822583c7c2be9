"""Signers, anchors, the sealing policy and `check_seals`, without a database."""

from __future__ import annotations

import base64
import builtins
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hitl_compliance import (
    ConfigurationError,
    Ed25519Signer,
    FileAnchor,
    HitlCoordinator,
    InMemoryReviewStore,
    SealedHead,
    Sealing,
    SigningUnavailableError,
    load_public_key,
)
from hitl_compliance.ledger import (
    GENESIS,
    check_seals,
    row_hash,
    seal_message,
    verify_rows,
)
from hitl_compliance.stores import _seals

AT = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def chain(n: int, *, actor_at: int = 0) -> list[dict[str, Any]]:
    """`n` well-linked rows over two threads; row `actor_at` (if any) by "mallory"."""
    rows: list[dict[str, Any]] = []
    thread_prev: dict[str, str] = {}
    global_prev = GENESIS
    for seq in range(1, n + 1):
        thread = f"t{seq % 2}"
        row: dict[str, Any] = {
            "seq": seq,
            "thread_id": thread,
            "review_id": None,
            "checkpoint_id": None,
            "event": "note",
            "actor": "mallory" if seq == actor_at else "ops",
            "payload": {"n": seq},
            "at": AT + timedelta(seconds=seq),
            "prev_hash": thread_prev.get(thread, GENESIS),
            "global_prev_hash": global_prev,
        }
        row["hash"] = row_hash(row)
        thread_prev[thread] = global_prev = row["hash"]
        rows.append(row)
    return rows


def seal(signer: Ed25519Signer, row: dict[str, Any]) -> SealedHead:
    message = seal_message(row["seq"], row["hash"], AT, signer.key_id)
    return SealedHead(row["seq"], row["hash"], AT, signer.key_id, signer.sign(message).hex())


SIGNER = Ed25519Signer.generate()
KEY = load_public_key(SIGNER.public_key_pem())


class TestSealMessage:
    def test_canonical_bytes(self) -> None:
        """The signed message is the domain prefix and sorted, compact JSON (documented form)."""
        message = seal_message(7, "ab" * 32, AT, "ed25519:0011223344556677")
        assert message == (
            b"hitl-compliance sealed head v1\n"
            b'{"hash":"' + b"ab" * 32 + b'","key_id":"ed25519:0011223344556677",'
            b'"sealed_at":"2026-12-01T09:00:00.000000+00:00","seq":7}'
        )

    def test_record_round_trip(self) -> None:
        """A sealed head survives its JSON Lines record unchanged."""
        head = seal(SIGNER, chain(1)[0])
        assert SealedHead.from_record(json.loads(json.dumps(head.to_record()))) == head


class TestEd25519Signer:
    def test_sources_agree(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The same key from PEM bytes, a PEM file and an env var (PEM or base64) signs alike."""
        pem = SIGNER.private_key_pem()
        path = tmp_path / "key.pem"
        path.write_bytes(pem)
        raw = Ed25519Signer(pem)
        monkeypatch.setenv("K_PEM", pem.decode())
        der = SIGNER._key.private_bytes_raw()
        monkeypatch.setenv("K_RAW", base64.b64encode(der).decode())
        signers = [
            raw,
            Ed25519Signer.from_pem_file(path),
            Ed25519Signer.from_env("K_PEM"),
            Ed25519Signer.from_env("K_RAW"),
        ]
        assert {s.key_id for s in signers} == {SIGNER.key_id}
        for signer in signers:
            assert KEY.verify(b"m", signer.sign(b"m"))
        assert "PRIVATE" not in repr(raw)

    def test_bad_keys_are_configuration_errors(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A missing file, an empty env var or garbage say what is wrong."""
        with pytest.raises(ConfigurationError, match="Cannot read the signing key"):
            Ed25519Signer.from_pem_file(tmp_path / "none.pem")
        monkeypatch.delenv("K_NONE", raising=False)
        with pytest.raises(ConfigurationError, match="holds no signing key"):
            Ed25519Signer.from_env("K_NONE")
        with pytest.raises(ConfigurationError, match="Not an Ed25519 private key"):
            Ed25519Signer(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
        with pytest.raises(ConfigurationError, match="Not an Ed25519 public key"):
            load_public_key(b"not a pem")

    def test_missing_extra_names_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without `cryptography`, a signer raises SigningUnavailableError naming the extra."""
        real = builtins.__import__

        def blocked(name: str, *args: Any, **kwargs: Any) -> Any:
            if name.startswith("cryptography"):
                raise ImportError(name)
            return real(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", blocked)
        with pytest.raises(SigningUnavailableError, match=r"hitl-compliance\[signing\]"):
            Ed25519Signer.generate()
        with pytest.raises(SigningUnavailableError):
            load_public_key(SIGNER.public_key_pem())


class TestSealing:
    @pytest.mark.parametrize(
        "kwargs",
        [{"every_rows": 0}, {"every_rows": True}, {"every": timedelta(0)}, {"anchors": (1,)}],
    )
    def test_bad_policy(self, kwargs: dict[str, Any]) -> None:
        """Nonsense policies fail when built, not at the first write."""
        with pytest.raises(ConfigurationError):
            Sealing(SIGNER, **kwargs)

    def test_coordinator_takes_a_sealing_only(self, make_coordinator: Any) -> None:
        """HitlCoordinator(sealing=) refuses anything but a Sealing, and configures the store."""
        graph = make_coordinator().graph
        with pytest.raises(ConfigurationError, match="sealing must be"):
            HitlCoordinator(graph, sealing="yes")  # type: ignore[arg-type]
        store = InMemoryReviewStore()
        policy = Sealing(SIGNER)
        HitlCoordinator(graph, reviews=store, sealing=policy)
        assert store.sealing is policy

    async def test_every_rows_and_every_seconds(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Seals follow every N rows, and T seconds after the last seal."""
        now = [AT]
        monkeypatch.setattr(_seals, "_utcnow", lambda: now[0])
        store = InMemoryReviewStore()
        store.configure_sealing(Sealing(SIGNER, every_rows=3, every=timedelta(seconds=60)))

        async def append() -> None:
            await store.append_audit(
                thread_id="t",
                review_id=None,
                checkpoint_id=None,
                event="note",
                actor="ops",
                payload={},
                at=now[0],
            )

        for _ in range(4):
            await append()
        assert [s.seq for s in await store.seals()] == [3]
        now[0] += timedelta(seconds=61)
        await append()
        assert [s.seq for s in await store.seals()] == [3, 5]
        assert store.sealing is not None

    async def test_file_anchor_appends(self, tmp_path: Path) -> None:
        """FileAnchor appends one seal line per head, and reads them back in order."""
        anchor = FileAnchor(tmp_path / "a.jsonl")
        assert await anchor.heads() == []
        heads = [seal(SIGNER, row) for row in chain(2)]
        for head in heads:
            await anchor.publish(head)
        assert await anchor.heads() == heads
        assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 2

    async def test_failing_anchor_never_fails_the_write(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An anchor that raises is logged after the write; an export's explicit seal raises."""

        class Broken:
            async def publish(self, head: SealedHead) -> None:
                raise OSError("bucket unreachable")

            async def heads(self) -> list[SealedHead]:
                return []

        store = InMemoryReviewStore()
        store.configure_sealing(Sealing(SIGNER, every_rows=1, every=None, anchors=(Broken(),)))
        record = await store.append_audit(
            thread_id="t",
            review_id=None,
            checkpoint_id=None,
            event="note",
            actor="ops",
            payload={},
            at=AT,
        )
        assert await store.audit_rows() == [record]
        assert "sealing the audit chain head failed" in caplog.text
        assert [s.seq for s in await store.seals()] == [1]  # stored before publishing
        with pytest.raises(OSError, match="bucket unreachable"):
            await store.seal_head()

    async def test_seal_head_without_policy(self) -> None:
        """seal_head on a store without sealing says how to configure it."""
        with pytest.raises(ConfigurationError, match="configure_sealing"):
            await InMemoryReviewStore().seal_head()

    async def test_coordinator_seals_on_demand(self, make_coordinator: Any) -> None:
        """coord.seal_audit() seals the current head regardless of the policy's timing."""
        store = InMemoryReviewStore()
        coord = HitlCoordinator(
            make_coordinator().graph,
            reviews=store,
            sealing=Sealing(SIGNER, every_rows=None, every=None),
        )
        assert await coord.seal_audit() is None
        record = await store.append_audit(
            thread_id="t",
            review_id=None,
            checkpoint_id=None,
            event="note",
            actor="ops",
            payload={},
            at=AT,
        )
        assert await store.seals() == []
        head = await coord.seal_audit()
        assert head is not None
        assert (head.seq, head.hash) == (record.seq, record.hash)
        assert (await coord.verify_audit(public_key=KEY)).proof.sealed_seq == 1  # type: ignore[union-attr]


class TestRotation:
    async def test_seals_of_two_keys_verify_with_both(self) -> None:
        """After a rotation, seals of the old and new key verify when both keys are given."""
        new = Ed25519Signer.generate()
        store = InMemoryReviewStore()
        for signer in (SIGNER, new):
            store.configure_sealing(Sealing(signer, every_rows=None, every=None))
            await store.append_audit(
                thread_id="t",
                review_id=None,
                checkpoint_id=None,
                event="note",
                actor="ops",
                payload={},
                at=AT,
            )
            await store.seal_head()
        rows = [r.to_row() for r in await store.audit_rows()]
        keys = [load_public_key(SIGNER.public_key_pem()), load_public_key(new.public_key_pem())]
        both = check_seals(
            rows, verify_rows(rows), await store.seals(), keys={k.key_id: k.verify for k in keys}
        )
        assert both.ok
        assert both.proof is not None
        assert (both.proof.sealed_seq, both.proof.key_id) == (2, new.key_id)
        only_new = check_seals(
            rows, verify_rows(rows), await store.seals(), keys={keys[1].key_id: keys[1].verify}
        )
        assert not only_new.ok
        assert only_new.first_broken is not None
        assert "not by the given key" in only_new.first_broken.reason


@given(n=st.integers(2, 12), data=st.data())
def test_any_cut_before_a_seal_is_caught(n: int, data: st.DataObject) -> None:
    """Cutting rows anywhere before a seal breaks verification, though the chain verifies."""
    rows = chain(n)
    sealed_at = data.draw(st.integers(2, n))
    keep = data.draw(st.integers(0, sealed_at - 1))
    cut = rows[:keep]
    head = (keep, cut[-1]["hash"]) if cut else (0, "")
    report = verify_rows(cut, head=head)
    assert report.ok  # the chain alone cannot see it
    checked = check_seals(
        cut, report, [seal(SIGNER, rows[sealed_at - 1])], verify=KEY.verify, key_id=KEY.key_id
    )
    assert not checked.ok
    assert checked.first_broken is not None
    assert "were deleted" in checked.first_broken.reason


@given(n=st.integers(1, 12), data=st.data())
def test_any_rehash_up_to_a_seal_is_caught(n: int, data: st.DataObject) -> None:
    """Re-hashing any row up to the sealed one is caught; later rows stay unproven."""
    sealed_at = data.draw(st.integers(1, n))
    edited = data.draw(st.integers(1, n))
    forged = chain(n, actor_at=edited)
    report = verify_rows(forged, head=(n, forged[-1]["hash"]))
    assert report.ok
    honest_seal = seal(SIGNER, chain(n)[sealed_at - 1])
    checked = check_seals(forged, report, [honest_seal], verify=KEY.verify, key_id=KEY.key_id)
    assert checked.ok is (edited > sealed_at)
    assert checked.proof is not None
    if checked.ok:
        assert checked.proof.unsealed_rows == n - sealed_at


class TestWithRetention:
    async def test_a_seal_on_a_pruned_row_still_verifies(self) -> None:
        """Retention's documented pruning keeps seals provable: the tombstone lists the hash."""
        from langgraph.checkpoint.memory import InMemorySaver

        from hitl_compliance import KeywordRule, RetentionPolicy, build_compliance_graph
        from hitl_compliance.testing import FakeClock

        clock = FakeClock()
        graph = build_compliance_graph(
            lambda state: "Guaranteed returns!",
            rules=[KeywordRule("guarantee", ["guaranteed returns"])],
            checkpointer=InMemorySaver(),
        )
        store = InMemoryReviewStore()
        coord = HitlCoordinator(
            graph,
            reviews=store,
            clock=clock,
            retention=[
                RetentionPolicy("audit", floor=timedelta(days=1), ceiling=timedelta(days=1))
            ],
            sealing=Sealing(SIGNER, every_rows=None, every=None),
        )
        await coord.process("old", "Is this fund safe?")
        await coord.reject("old", reviewer="officer@bank", reason="misleading")
        sealed = await coord.seal_audit()
        assert sealed is not None
        assert sealed.seq == 3  # paused, replied, rejected
        clock.advance(timedelta(days=2))
        await coord.process("new", "Is this fund safe?")
        await coord.apply_retention()
        assert 3 not in {r.seq for r in await store.audit_rows()}  # the sealed row is pruned
        report = await coord.verify_audit(public_key=KEY)
        assert report.ok, report.first_broken
        assert report.proof is not None
        assert report.proof.sealed_seq == 3
