"""Review/audit stores: one protocol, one module per backend.

The SQL adapters import their drivers lazily: `hitl_compliance.stores.sqlite`
needs the `sqlite` extra, `hitl_compliance.stores.postgres` the `postgres` extra.
"""

from hitl_compliance.stores.base import (
    HOOK_FOR_EVENT,
    FinalStatus,
    OversightSource,
    PendingCounter,
    ReasonCodeCounter,
    ReviewStore,
    SealStore,
    TurnRecord,
    paused_payload,
)
from hitl_compliance.stores.memory import InMemoryReviewStore

__all__ = [
    "HOOK_FOR_EVENT",
    "FinalStatus",
    "InMemoryReviewStore",
    "OversightSource",
    "PendingCounter",
    "ReasonCodeCounter",
    "ReviewStore",
    "SealStore",
    "TurnRecord",
    "paused_payload",
]
