"""Custom auth for the example deployment: static bearer tokens with roles.

`Authorization: Bearer <token>` is looked up in `USERS`; an unknown or missing
token gets 401. Anyone known may start runs and read threads; only a
`compliance_officer` may resume a paused run (send a `command`), so an agent's
token cannot approve its own draft. A real deployment verifies a signed token
(JWT, OAuth) instead of a table.
"""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

USERS: dict[str, dict[str, Any]] = {
    "officer-token": {"identity": "alice@bank", "roles": ["compliance_officer"]},
    "agent-token": {"identity": "support-bot", "roles": ["agent"]},
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
    return {
        "identity": user["identity"],
        "permissions": list(user["roles"]),
        "roles": list(user["roles"]),
    }


@auth.on.threads.create_run
async def only_officers_resume(
    ctx: Auth.types.AuthContext, value: Auth.types.on.threads.create_run.value
) -> None:
    """A run that resumes a pause (`command`) needs the compliance_officer role."""
    command = (value.get("kwargs") or {}).get("command")
    if command and "compliance_officer" not in ctx.permissions:
        raise Auth.exceptions.HTTPException(
            status_code=403, detail="Only a compliance_officer may resume a paused review"
        )
