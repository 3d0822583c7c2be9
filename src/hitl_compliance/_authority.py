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
A server user holding `COORDINATOR_PERMISSION` is a coordinator driving the
deployment over the API: its runs are driven, like the in-process
coordinator's, and apply only decisions the attached store holds claimed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from langchain_core.runnables import RunnableConfig

from hitl_compliance.errors import HitlError
from hitl_compliance.limits import DEFAULT_INPUT_LIMITS, InputLimits
from hitl_compliance.models import ReviewRecord
from hitl_compliance.policy import Reviewer
from hitl_compliance.rules import RuleResult
from hitl_compliance.state import Decision
from hitl_compliance.stores.base import ReviewStore

__all__ = [
    "AUTHORITY_KEY",
    "COORDINATOR_PERMISSION",
    "AuthoritySlot",
    "DecisionAuthority",
    "authenticated_reviewer",
    "driven",
    "limits_of",
    "ready_store",
    "remote_driven",
]

AUTHORITY_KEY = "__hitl_authority"
"""The `configurable` key under which `HitlCoordinator` tells the graph a run is its own
(the key starts with `__`, so LangGraph never copies it into checkpoint metadata)."""

AUTH_USER_KEY = "langgraph_auth_user"
"""Where LangGraph Server puts the custom-auth user in a run's `configurable`."""

COORDINATOR_PERMISSION = "hitl:coordinator"
"""The server permission of a trusted coordinator's service credentials.

A run whose authenticated user holds it is a coordinator's own run (a
`HitlCoordinator` driving a deployment through `RemoteGraph`): the graph
records no pause of it and applies only a decision its review store already
holds claimed, with the reviewer named in the claim. Grant it in the server's
auth to the coordinator's service token only: anyone holding it can resume a
review the store holds claimed, never decide one.
"""


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


async def ready_store(authority: DecisionAuthority) -> ReviewStore:
    """The authority's review store, set up first where the authority sets it up lazily."""
    prepare = getattr(authority, "ready", None)
    if callable(prepare):
        await prepare()
    return authority.reviews


class AuthoritySlot:
    """The place a coordinator attaches its authority to a compiled graph's nodes.

    Created once per build and shared by every copy of the graph (`copy()`,
    `with_config()`, LangGraph Server's copies), like the build options.
    """

    __slots__ = ("authority",)

    def __init__(self) -> None:
        self.authority: DecisionAuthority | None = None


def driven(config: RunnableConfig) -> bool:
    """Whether a coordinator runs this graph itself (its decisions are already claimed).

    In process the coordinator says so with `AUTHORITY_KEY`; over LangGraph
    Server's API, with service credentials holding `COORDINATOR_PERMISSION`.
    """
    in_process = (config.get("configurable") or {}).get(AUTHORITY_KEY) is not None
    return in_process or remote_driven(config)


def _auth_user_field(config: RunnableConfig, name: str) -> Any:
    user = (config.get("configurable") or {}).get(AUTH_USER_KEY)
    if user is None:
        return None
    if isinstance(user, Mapping):
        return user.get(name)
    return getattr(user, name, None)


def _permissions(config: RunnableConfig) -> set[str]:
    found: set[str] = set()
    for name in ("permissions", "roles"):
        value = _auth_user_field(config, name)
        if isinstance(value, (list, tuple, set, frozenset)):
            found.update(str(v) for v in value)
    return found


def remote_driven(config: RunnableConfig) -> bool:
    """Whether the server-authenticated user of the run is a trusted coordinator.

    Such a run carries no in-process store: the graph checks its decisions
    against the review store attached to it (`attach_authority`).
    """
    if (config.get("configurable") or {}).get(AUTHORITY_KEY) is not None:
        return False
    return COORDINATOR_PERMISSION in _permissions(config)


def authenticated_reviewer(config: RunnableConfig) -> Reviewer | None:
    """The server-authenticated user of the run as a reviewer, or None outside a server.

    LangGraph Server puts the custom-auth user (an object or a mapping with
    `identity` and `permissions`) in `configurable["langgraph_auth_user"]`;
    its permissions, and any `roles` it carries, are the reviewer's roles. A
    trusted coordinator (`COORDINATOR_PERMISSION`) is nobody's reviewer: the
    reviewer of its decisions is the one the store holds claimed.
    """
    identity = _auth_user_field(config, "identity")
    if not isinstance(identity, str) or not identity.strip():
        return None
    roles = _permissions(config)
    if COORDINATOR_PERMISSION in roles:
        return None
    return Reviewer(identity, roles=frozenset(roles))


def limits_of(authority: object) -> InputLimits:
    """The input limits `authority` enforces (the defaults for none, or one without)."""
    limits = getattr(authority, "limits", None)
    return limits if isinstance(limits, InputLimits) else DEFAULT_INPUT_LIMITS
