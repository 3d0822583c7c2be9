"""Custom auth for the example deployment: static bearer tokens with roles.

`Authorization: Bearer <token>` is looked up in `USERS`; an unknown or missing
token gets 401. An `agent` sees and runs only the threads it created; a
`reviewer` sees every thread (the review queue) and is the only one who may
resume a paused run (send a `command`), so an agent's token cannot approve its
own draft (403). What a reviewer may decide is the graph's policy: the user's
permissions are its roles there (`compliance_officer` for replies that promise
returns), and a refused decision leaves the thread paused. The coordinator's
service token holds `COORDINATOR_PERMISSION`: a `HitlCoordinator` over
`RemoteGraph` checks and claims decisions in the shared store itself, and the
graph applies only what that store holds claimed. A real deployment verifies a
signed token (JWT, OAuth) instead of a table.
"""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

from hitl_compliance import COORDINATOR_PERMISSION

OFFICER = "compliance_officer"
REVIEWER = "reviewer"

USERS: dict[str, dict[str, Any]] = {
    "officer-token": {"identity": "alice@bank", "roles": [REVIEWER, OFFICER]},
    "trainee-token": {"identity": "bob@bank", "roles": [REVIEWER]},
    "agent-token": {"identity": "support-bot", "roles": ["agent"]},
    # The review service's HitlCoordinator (RemoteGraph, CLI --remote, SLA worker):
    # its runs apply only decisions the shared review store holds claimed. Grant
    # COORDINATOR_PERMISSION to this service credential and to nobody else.
    "coordinator-token": {
        "identity": "hitl-coordinator",
        "roles": [REVIEWER, COORDINATOR_PERMISSION],
    },
}
"""token -> user: the example's stand-in for an identity provider."""

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> Auth.types.MinimalUserDict:
    """The user a bearer token names; 401 for anything else."""
    scheme, _, token = (authorization or "").partition(" ")
    user = USERS.get(token) if scheme.lower() == "bearer" else None
    if user is None:
        raise Auth.exceptions.HTTPException(status_code=401, detail="Unknown bearer token")
    return {"identity": user["identity"], "permissions": list(user["roles"])}


def _own_threads(ctx: Auth.types.AuthContext) -> Auth.types.FilterType | None:
    """No filter for an officer; an agent's own threads only."""
    return None if REVIEWER in ctx.permissions else {"owner": ctx.user.identity}


@auth.on.threads.create
async def stamp_owner(ctx: Auth.types.AuthContext, value: Any) -> None:
    """A new thread belongs to whoever created it."""
    value.setdefault("metadata", {})["owner"] = ctx.user.identity


@auth.on.threads.create_run
async def run_or_resume(ctx: Auth.types.AuthContext, value: Any) -> Auth.types.FilterType | None:
    """A run that resumes a pause (`command`) needs the reviewer role."""
    command = (value.get("kwargs") or {}).get("command")
    if command and REVIEWER not in ctx.permissions:
        raise Auth.exceptions.HTTPException(
            status_code=403, detail="Only a reviewer may resume a paused review"
        )
    return _own_threads(ctx)


@auth.on.threads
async def thread_access(ctx: Auth.types.AuthContext, value: Any) -> Auth.types.FilterType | None:
    """Reading, searching, updating or deleting threads: officers all, agents their own."""
    return _own_threads(ctx)


@auth.on
async def known_users(ctx: Auth.types.AuthContext, value: Any) -> None:
    """Assistants, crons and the store: any authenticated user (the example has no others)."""
