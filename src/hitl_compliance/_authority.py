"""Who answers for a decision that reaches a pause without the coordinator.

A [`HitlCoordinator`][hitl_compliance.HitlCoordinator] attaches itself to the
graph it drives (each gate inside it, and a factory graph's approval step). A
decision the coordinator did not make, resumed by anyone else (a raw
`Command(resume=...)`, `update_state` then `ainvoke(None)`, a LangGraph Server
run), is then put through the checks `approve()` / `reject()` make (four-eyes,
the policy, quorum, the claim, the audit row) inside the graph, before it is
applied; a refused one leaves the thread paused at the same review.

The reviewer of such a decision is the server-authenticated user when the run
has one (`langgraph_auth_user` in its config), never a name in the resume value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from langchain_core.runnables import RunnableConfig

from hitl_compliance.errors import HitlError
from hitl_compliance.models import ReviewRecord
from hitl_compliance.policy import Reviewer
from hitl_compliance.rules import RuleResult
from hitl_compliance.state import Decision
from hitl_compliance.stores.base import ReviewStore

__all__ = [
    "AUTHORITY_KEY",
    "AuthoritySlot",
    "DecisionAuthority",
    "authenticated_reviewer",
    "driven",
    "replayed",
]

AUTHORITY_KEY = "__hitl_authority"
"""The `configurable` key under which `HitlCoordinator` tells the graph a run is its own
(the key starts with `__`, so LangGraph never copies it into checkpoint metadata)."""

AUTH_USER_KEY = "langgraph_auth_user"
"""Where LangGraph Server puts the custom-auth user in a run's `configurable`."""


class DecisionAuthority(Protocol):
    """What checks, claims and records a decision made around the coordinator."""

    @property
    def reviews(self) -> ReviewStore:
        """The review store decisions are claimed in."""
        ...

    async def decide(
        self,
        *,
        thread_id: str,
        review_id: str | None,
        made: Decision,
        edit_findings: list[RuleResult],
        reviewer: Reviewer | None,
    ) -> Decision | HitlError:
        """Claim `made` as `approve()` / `reject()` would: the decision as claimed, or the refusal.

        `review_id` None means the thread's one pending review. A decision the
        store already holds for the review (a node re-executed after a crash)
        is returned as held, without a second claim.
        """
        ...

    async def complete(
        self, *, thread_id: str, review_id: str | None, made: Decision, delivered: str | None
    ) -> None:
        """Record the outcome of a decision `decide` claimed (nothing if already recorded)."""
        ...

    async def record_pause(self, review: ReviewRecord) -> None:
        """Open the pending review of a pause no coordinator records (idempotent per pause)."""
        ...


class AuthoritySlot:
    """The place a coordinator attaches its authority to a compiled graph's nodes.

    Created once per build and shared by every copy of the graph (`copy()`,
    `with_config()`, LangGraph Server's copies), like the build options.
    """

    __slots__ = ("authority",)

    def __init__(self) -> None:
        self.authority: DecisionAuthority | None = None


def driven(config: RunnableConfig) -> bool:
    """Whether the coordinator runs this graph itself (its decisions are already claimed)."""
    return (config.get("configurable") or {}).get(AUTHORITY_KEY) is not None


def authenticated_reviewer(config: RunnableConfig) -> Reviewer | None:
    """The server-authenticated user of the run as a reviewer, or None outside a server.

    LangGraph Server puts the custom-auth user (an object or a mapping with
    `identity` and `permissions`) in `configurable["langgraph_auth_user"]`;
    its permissions, and any `roles` it carries, are the reviewer's roles.
    """
    user = (config.get("configurable") or {}).get(AUTH_USER_KEY)
    if user is None:
        return None

    def field(name: str) -> Any:
        if isinstance(user, Mapping):
            return user.get(name)
        return getattr(user, name, None)

    identity = field("identity")
    if not isinstance(identity, str) or not identity.strip():
        return None
    roles: set[str] = set()
    for name in ("permissions", "roles"):
        value = field(name)
        if isinstance(value, (list, tuple, set, frozenset)):
            roles.update(str(v) for v in value)
    return Reviewer(identity, roles=frozenset(roles))


def replayed(config: RunnableConfig, index: int) -> bool:
    """Whether the `index`-th `interrupt()` of this task returned a value answered before.

    A node that pauses again after refusing a resume value is re-executed from
    the top on the next resume, and LangGraph replays the earlier values to its
    earlier `interrupt()` calls: those were refused (and recorded) already. A
    value is replayed when a later one is saved, or a new one waits for a later
    call. (The last saved value with nothing after it is processed again: the
    node died before finishing, and the checks are idempotent.)
    """
    scratchpad = (config.get("configurable") or {}).get("__pregel_scratchpad")
    resume = getattr(scratchpad, "resume", None)
    if not isinstance(resume, list):
        return False
    if len(resume) > index + 1:
        return True
    peek = getattr(scratchpad, "get_null_resume", None)
    if len(resume) != index + 1 or not callable(peek):
        return False
    # LangGraph appends the new value it hands out to `resume`; a saved one differs.
    waiting = peek(False)
    return waiting is not None and resume[index] is not waiting
