"""Sealed heads in the stores: the seals table, its statements, and when to seal.

Every store mixes in [`Sealed`][hitl_compliance.stores._seals.Sealed]: after a
write that appended audit rows (committed), `_after_write` asks the store's
[`Sealer`][hitl_compliance.stores._seals.Sealer] whether a seal is due (every N
rows, every T), signs the committed head, stores the seal and publishes it to
the anchors. Sealing after the commit never signs a head that rolls back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timezone
from functools import wraps
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from hitl_compliance.errors import ConfigurationError, LedgerHeadMissingError
from hitl_compliance.ledger import SealedHead, combined_head, seal_message

if TYPE_CHECKING:
    from hitl_compliance.signing import Sealing
    from hitl_compliance.stores._sql import Dialect

__all__ = ["SealStatements", "Sealed", "Sealer", "head_missing", "seals_after", "seals_table"]

_P = ParamSpec("_P")
_T = TypeVar("_T")
_S = TypeVar("_S", bound="Sealed")

logger = logging.getLogger("hitl_compliance")


def seals_table(d: Dialect, p: str) -> str:
    """The sealed heads: one row per (seq, key) signed; never updated."""
    return f"""CREATE TABLE IF NOT EXISTS {p}audit_seals (
            seq {d.types.seq} NOT NULL,
            key_id TEXT NOT NULL,
            hash TEXT NOT NULL,
            sealed_at {d.types.time} NOT NULL,
            signature TEXT NOT NULL,
            PRIMARY KEY (seq, key_id)
        )"""


class SealStatements:
    """The seals table's two statements in one dialect."""

    def __init__(self, d: Dialect, p: str) -> None:
        # `ON CONFLICT DO NOTHING`: two processes sealing the same head store it once.
        self.insert = d.sql(
            f"INSERT INTO {p}audit_seals (seq, key_id, hash, sealed_at, signature) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (seq, key_id) DO NOTHING"
        )
        self.select = (
            f"SELECT seq, key_id, hash, sealed_at, signature FROM {p}audit_seals "
            "ORDER BY seq, key_id"
        )


def head_missing(table: str, *, backend: str | None = None) -> LedgerHeadMissingError:
    """The error of a write that found no chain head row: never rebuilt, it would hide a cut."""
    return LedgerHeadMissingError(
        f"The audit chain head row ({table}) is missing: it was deleted outside "
        "hitl-compliance, and rebuilding it from the last row would hide rows cut from "
        "the end with it. Nothing was written. Run verify_audit(public_key=...) to see "
        "how far the ledger still proves itself, then restore the head row "
        "(seq and hash of the last row you trust).",
        backend=backend,
    )


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Sealer:
    """Decides when a store seals its head, and seals it (sign, store, publish)."""

    def __init__(self, sealing: Sealing) -> None:
        self.sealing = sealing
        self._last: tuple[int, datetime] | None = None
        self._lock = asyncio.Lock()

    async def after_write(self, store: Sealed) -> None:
        """Seal the committed head when due; a failure is logged, never raised.

        The write it follows has committed: raising would tell its caller the
        write failed. The next due seal, or the next export, retries.
        """
        try:
            async with self._lock:
                head = await store.audit_head()
                if head is None:
                    return
                now = _utcnow()
                if self._last is None:
                    key_id = self.sealing.signer.key_id
                    mine = [s for s in await store.seals() if s.key_id == key_id]
                    self._last = (mine[-1].seq, mine[-1].sealed_at) if mine else (0, now)
                last_seq, last_at = self._last
                if head[0] <= last_seq:
                    return
                rows, every = self.sealing.every_rows, self.sealing.every
                if (rows is not None and head[0] - last_seq >= rows) or (
                    every is not None and now - last_at >= every
                ):
                    await self._seal(store, head, now)
        except Exception:
            logger.exception("sealing the audit chain head failed; the next due seal retries")

    async def seal(self, store: Sealed) -> SealedHead | None:
        """Seal the current head now (an export's); None when the ledger is empty."""
        async with self._lock:
            head = await store.audit_head()
            if head is None:
                return None
            return await self._seal(store, head, _utcnow())

    async def _seal(self, store: Sealed, head: tuple[int, str], now: datetime) -> SealedHead:
        signer = self.sealing.signer
        # All lane heads from one snapshot (the head read before may be older).
        lanes = await store.audit_lanes()
        if lanes is None:
            raise head_missing("audit_lanes")
        found = combined_head(lanes)
        if found is None:  # pragma: no cover - the head had a row a moment ago
            raise head_missing("audit_lanes")
        seq, digest = found
        live = tuple(h for h in lanes if h[1] > 0)
        # One lane (every store without lanes): the seal is exactly the old one.
        listed = () if (seq, digest) == (live[0][1], live[0][2]) and len(live) == 1 else live
        message = seal_message(seq, digest, now, signer.key_id)
        sealed = SealedHead(
            seq, digest, now, signer.key_id, signer.sign(message).hex(), lanes=listed
        )
        await store._add_seal(sealed)
        self._last = (seq, now)
        for anchor in self.sealing.anchors:
            await anchor.publish(sealed)
        return sealed


class Sealed:
    """The sealing half of a store: `configure_sealing`, `seal_head`, `seals`.

    A store supplies `audit_head`, `seals` and `_add_seal`, and awaits
    `_after_write()` after each write that may have appended audit rows.
    """

    _sealer: Sealer | None = None

    def configure_sealing(self, sealing: Sealing | None) -> None:
        """Sign the chain head under `sealing` from now on (None stops sealing)."""
        self._sealer = None if sealing is None else Sealer(sealing)

    @property
    def sealing(self) -> Sealing | None:
        """The sealing policy in force, or None."""
        return None if self._sealer is None else self._sealer.sealing

    async def seal_head(self) -> SealedHead | None:
        """Sign, store and publish the current chain head now; None when the ledger is empty.

        Raises:
            ConfigurationError: no sealing is configured.
            LedgerHeadMissingError: the chain head row was deleted.
        """
        if self._sealer is None:
            raise ConfigurationError(
                "This store has no sealing configured: pass sealing= to HitlCoordinator "
                "or call configure_sealing(Sealing(signer)) first."
            )
        return await self._sealer.seal(self)

    async def _after_write(self) -> None:
        if self._sealer is not None:
            await self._sealer.after_write(self)

    async def audit_head(self) -> tuple[int, str] | None:
        raise NotImplementedError

    async def audit_lanes(self) -> tuple[tuple[int, int, str], ...] | None:
        """The lane heads `(lane, seq, hash)`: in a store without lanes, its one chain head."""
        head = await self.audit_head()
        return ((0, 0, "0" * 64),) if head is None else ((0, *head),)

    async def seals(self) -> list[SealedHead]:
        """Every sealed head the store keeps, by seq."""
        raise NotImplementedError

    async def _add_seal(self, head: SealedHead) -> None:
        raise NotImplementedError


def seals_after(
    method: Callable[Concatenate[_S, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[_S, _P], Coroutine[Any, Any, _T]]:
    """Await the store's `_after_write` once `method` (a write that may append rows) returned."""

    @wraps(method)
    async def write(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        result = await method(self, *args, **kwargs)
        await self._after_write()
        return result

    return write
