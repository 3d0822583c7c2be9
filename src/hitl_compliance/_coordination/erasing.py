"""Erasure of a data subject: refuse held or open threads, then erase thread by thread.

The store erases each thread in one transaction with its `erased` row
([`PersonalStore.erase_thread`][hitl_compliance.PersonalStore]); this module
finds the subject's threads, refuses before anything changes, and deletes the
threads' checkpoints through the checkpointer's `adelete_thread`.
"""

from __future__ import annotations

from hitl_compliance import _validate
from hitl_compliance._coordination.context import Context
from hitl_compliance._personal import open_review_error
from hitl_compliance.erasure import ErasureReport, PersonalStore, ThreadErasure
from hitl_compliance.errors import ConfigurationError, InvalidInputError
from hitl_compliance.retention import RetentionStore, hold_error

__all__ = ["ERASURE_ACTOR", "erase_subject"]

ERASURE_ACTOR = "system:erasure"
"""The actor of every `erased` audit row."""


def _store(ctx: Context) -> PersonalStore:
    store = ctx.reviews
    if not isinstance(store, PersonalStore):
        raise ConfigurationError(
            f"The review store {type(store).__name__} cannot erase personal data "
            "(put_personal, erase_thread, ...); use InMemoryReviewStore, SqliteReviewStore "
            "or PostgresReviewStore, or implement hitl_compliance.PersonalStore."
        )
    return store


async def erase_subject(ctx: Context, subject: object) -> ErasureReport:
    """Erase every thread of `subject` (contract: the coordinator's method)."""
    text = _validate.text("subject", subject)
    if not text.strip():
        raise InvalidInputError("subject must not be empty: it names the data subject to erase.")
    store = _store(ctx)
    threads = await store.subject_threads(text)
    # Every refusal before any change: a held or open thread stops the whole erasure.
    if isinstance(store, RetentionStore):
        for thread_id in threads:
            hold = await store.get_hold(thread_id)
            if hold is not None:
                raise hold_error(hold, action="erase")
    for thread_id in threads:
        if await ctx.reviews.open_reviews(thread_id):
            raise open_review_error(thread_id)
    checkpointer = getattr(ctx.graph, "checkpointer", None)
    done: list[ThreadErasure] = []
    notes: list[str] = []
    for thread_id in threads:
        erased = await store.erase_thread(thread_id, now=ctx.now(), actor=ERASURE_ACTOR)
        deleted = False
        if checkpointer is not None and hasattr(checkpointer, "adelete_thread"):
            try:
                await checkpointer.adelete_thread(thread_id)
                deleted = True
            except NotImplementedError:
                pass
        if not deleted:
            notes.append(
                f"thread {thread_id!r}: its checkpoints were not deleted (the graph's "
                "checkpointer cannot delete a thread, or is a remote server's): delete them there."
            )
        if erased.legacy_rows:
            notes.append(
                f"thread {thread_id!r}: audit rows {list(erased.legacy_rows)} were written "
                "before personal values were kept beside the chain; their text is in the "
                "hashed bytes and cannot be redacted without breaking the chain."
            )
        done.append(
            ThreadErasure(
                thread_id,
                erased.values,
                erased.reviews,
                erased.evidence,
                checkpoints=deleted,
                legacy_rows=erased.legacy_rows,
            )
        )
    return ErasureReport(subject=text, threads=tuple(done), not_erased=tuple(notes))
