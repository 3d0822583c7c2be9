"""The `hitl-compliance` command line (also `python -m hitl_compliance`).

```text
hitl-compliance demo                       run the FCA scenario, leave one review pending
hitl-compliance pending                    list the reviews awaiting a decision
hitl-compliance show THREAD                one review: draft, findings, who may decide
hitl-compliance approve THREAD --reviewer ID [--role ROLE ...] [--response TEXT] [--expected H]
                                           [--tool-args JSON]
hitl-compliance reject THREAD --reason TEXT --reviewer ID [--role ROLE ...]
hitl-compliance audit [THREAD]             the audit log (--verify the ledger, --export PATH)
hitl-compliance evidence THREAD --out DIR  a review's evidence pack (HTML, JSON, manifest, PDF)
hitl-compliance expire [--every SECONDS]   resolve reviews past their SLA deadline
hitl-compliance recover                    finish work a crashed process left behind
```

Every command takes `--backend URL` (default `sqlite:///hitl_compliance.db`,
the file `demo` writes; only `demo` creates a missing SQLite file); every
command but `demo` takes `--app module:function` and `--json`. `show`,
`approve` and `reject` take `--review-id ID`: which of a thread's pending
reviews, required when it has several (a gate waiting for several tool calls).
`approve --tool-args '{"amount_gbp": 900}'` runs a gated tool call with these
arguments (a JSON object) instead of the model's; the rules re-check them.

Text other people supplied (customer messages, drafts, requester and reviewer
ids, reasons) is printed with its control characters escaped (`\x1b`,
`\x9b`, `\r`...), so it cannot erase, overwrite or hide anything on the
terminal; passwords in `--backend` are never printed.

The `--app` contract: `function(backend)` receives the opened
[`Backend`][hitl_compliance.Backend] and returns the
[`HitlCoordinator`][hitl_compliance.HitlCoordinator] your service uses, built
on `backend.checkpointer` and `backend.reviews` (it may be `async def`). The
CLI then decides reviews with your graph, rules and policy. The default,
`hitl_compliance._fca:app`, is the FCA scenario of `demo`.

A deployment on LangGraph Server: `--remote URL --graph ID` drives the served
graph through its API (a `RemoteGraph`) instead of `--app`, with `--backend
postgresql://...` naming the review store the served graph is attached to. The
server token is read from `HITL_REMOTE_TOKEN` (sent as `Authorization: Bearer`,
never printed); it must be the coordinator's service credential, holding
[`COORDINATOR_PERMISSION`][hitl_compliance.COORDINATOR_PERMISSION].
`--policy module:attr` names the `ApprovalPolicy` the CLI decides under (the
deployment's). `expire --every SECONDS` keeps sweeping until stopped: the SLA
worker of a deployment.

Exit codes: 0 done; 1 the library refused (unknown thread, not authorised,
already decided, stale, invalid decision) with one line on stderr naming the
error class, or `audit --verify` found the ledger broken; 2 a usage or
configuration error (bad arguments, bad `--app`, unreachable database). A
refused command changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import inspect
import json
import os
import shutil
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NoReturn

from pydantic import BaseModel, ValidationError

from hitl_compliance import _decision_kinds
from hitl_compliance._decision_kinds import DecisionKind
from hitl_compliance._fca import SMCR_APPROVER, fca_coordinator
from hitl_compliance._secrets import scrub
from hitl_compliance._terminal import json_visible, visible
from hitl_compliance.backends import Backend, _sqlite_path, mask_url, open_backend
from hitl_compliance.coordinator import HitlCoordinator
from hitl_compliance.errors import (
    AlreadyDecidedError,
    ConfigurationError,
    HitlError,
    InputTooLargeError,
    ReviewNotFoundError,
    TamperedError,
)
from hitl_compliance.models import AuditRecord, PendingReview, ProcessResult, sha256_text
from hitl_compliance.oversight import OutcomeStats, OversightThresholds
from hitl_compliance.policy import ApprovalPolicy, Reviewer, RoleBasedPolicy
from hitl_compliance.rules import RuleResult
from hitl_compliance.signing import FileAnchor
from hitl_compliance.stops import DELIVERY_RESUMED, DELIVERY_STOPPED, StopSwitch

__all__ = ["DEFAULT_APP", "DEFAULT_BACKEND", "REMOTE_TOKEN_ENV", "AppFactory", "main"]

DEFAULT_BACKEND = "sqlite:///hitl_compliance.db"
"""The backend every command uses unless `--backend` says otherwise (the demo's file)."""

DEFAULT_APP = "hitl_compliance._fca:app"
"""The `--app` used unless one is given: the FCA support-agent scenario."""

AppFactory = Callable[[Backend], "HitlCoordinator | Awaitable[HitlCoordinator]"]
"""What `--app module:function` names: takes the opened backend, returns the coordinator."""

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2

_PROG = "hitl-compliance"

REMOTE_TOKEN_ENV = "HITL_REMOTE_TOKEN"  # noqa: S105 (a variable name, not a secret)
"""The environment variable holding the bearer token `--remote` authenticates with."""


# -- output helpers ----------------------------------------------------------------


def _echo(text: str = "", *, err: bool = False) -> None:
    """Print one block of output; the only place the CLI writes to the terminal.

    Control characters are escaped here (`visible`), whoever supplied the text,
    so a customer message or a reviewer id cannot move the cursor, erase a
    line, set the window title or overprint what the officer reads.
    """
    print(visible(text, keep_newlines=True), file=sys.stderr if err else sys.stdout)


def _width() -> int:
    return max(60, shutil.get_terminal_size((100, 24)).columns)


def _say(text: str = "") -> None:
    text = visible(text)  # before wrapping, so widths count what is shown
    indent = " " * (len(text) - len(text.lstrip()) + 4)
    _echo(textwrap.fill(text, width=min(_width(), 100), subsequent_indent=indent) if text else "")


def _one_line(text: str) -> str:
    """`text` on one line: line breaks and runs of spaces become one space, controls escaped."""
    return " ".join(visible(str(text), keep_newlines=True).split())


def _clip(text: str, width: int) -> str:
    text = _one_line(text)
    return text if len(text) <= width else text[: max(1, width - 3)] + "..."


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print aligned columns; on a terminal, the last column is clipped to its width."""
    widths = [max(len(h), *(len(_one_line(r[i])) for r in rows)) for i, h in enumerate(headers)]
    if sys.stdout.isatty():  # piped output stays whole, for grep and friends
        room = _width() - sum(w + 2 for w in widths[:-1])
        widths[-1] = max(20, min(widths[-1], room))
    for row in [list(headers), *rows]:
        cells = [_one_line(c).ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)]
        _echo("  ".join([*cells, _clip(row[-1], widths[-1])]).rstrip())


def _fields(pairs: Sequence[tuple[str, str]]) -> None:
    """Print `name  value` lines, wrapping long values under themselves."""
    pad = max(len(name) for name, _ in pairs) + 2
    width = max(40, min(_width(), 100) - pad)
    for name, value in pairs:
        lines = textwrap.wrap(_one_line(value), width) or [""]
        _echo(name.ljust(pad) + lines[0])
        for line in lines[1:]:
            _echo(" " * pad + line)


def _json(value: Any) -> None:
    # json.dumps escapes C0 controls but not C1 ones (an 8-bit CSI is U+009B).
    _echo(json_visible(json.dumps(_plain(value), indent=2, ensure_ascii=False)))


def _plain(value: Any) -> Any:
    """JSON-ready data: pydantic models via `model_dump(mode="json")`, dataclasses via asdict."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _span(seconds: float) -> str:
    seconds = int(abs(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _ago(at: datetime) -> str:
    return f"{_span((datetime.now(timezone.utc) - at).total_seconds())} ago"


def _due(deadline: datetime | None) -> str:
    if deadline is None:
        return "-"
    seconds = (deadline - datetime.now(timezone.utc)).total_seconds()
    return f"in {_span(seconds)}" if seconds >= 0 else f"overdue {_span(seconds)}"


def _finding(finding: RuleResult) -> str:
    evidence = ", ".join(repr(e) for e in finding.evidence)
    text = f"{finding.rule} ({finding.verdict}, {finding.severity}): {finding.reason}"
    return f"{text} [{evidence}]" if evidence else text


_REVIEW_ID_HELP = (
    "which of the thread's pending reviews (as `pending` lists them); required when "
    "it has several (a gate waiting for several tool calls at once)"
)


def _command(args: argparse.Namespace, *words: str) -> str:
    """A command line to suggest, repeating the non-default --backend and --app."""
    parts = [_PROG, *words]
    if args.backend != DEFAULT_BACKEND:
        parts += ["--backend", mask_url(args.backend)]  # never repeat a password on screen
    app = getattr(args, "app", DEFAULT_APP)
    if app != DEFAULT_APP:
        parts += ["--app", app]
    if getattr(args, "remote", None):
        parts += ["--remote", mask_url(args.remote), "--graph", str(args.graph)]
        if args.policy:
            parts += ["--policy", args.policy]
    return " ".join(parts)


# -- the --app contract --------------------------------------------------------------


def load_app(spec: str) -> AppFactory:
    """Import the `module:function` named by `--app`.

    The current directory is importable (as with `python -m`), so
    `--app examples.fca_support_agent:factory` works from a checkout.

    Raises:
        ConfigurationError: the spec is malformed, the module does not import, or
            the attribute is missing or not callable.
    """
    target = _import_target(spec, "--app")
    if not callable(target):
        raise ConfigurationError(
            f"--app {spec!r} names a {type(target).__name__}, not a function taking the backend."
        )
    factory: AppFactory = target
    return factory


def _import_target(spec: str, flag: str) -> Any:
    """The object `module:attr` names (ConfigurationError, naming `flag`, if it does not)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        what = "module:function" if flag == "--app" else "module:attr"
        raise ConfigurationError(
            f"{flag} {spec!r} is not {what} (for example myservice.review:make_app)."
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # whatever the user's module raises on import
        raise ConfigurationError(
            f"{flag} {spec!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    for name in attr.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise ConfigurationError(
                f"{flag} {spec!r}: module {module_name!r} has no attribute {attr!r}."
            ) from None
    return target


async def build_coordinator(factory: AppFactory, backend: Backend, spec: str) -> HitlCoordinator:
    """Call the `--app` factory on `backend` and check what it returned."""
    try:
        made: Any = factory(backend)
        if inspect.isawaitable(made):
            made = await made
    except ConfigurationError:
        raise
    except Exception as exc:  # the user's factory failed: a configuration problem
        raise ConfigurationError(f"--app {spec!r} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(made, HitlCoordinator):
        raise ConfigurationError(
            f"--app {spec!r} returned {type(made).__name__}; it must return a HitlCoordinator."
        )
    if made.reviews is not backend.reviews:
        # Otherwise the CLI would read an empty in-memory queue and report nothing pending.
        # (The graph's checkpointer cannot be compared the same way: LangGraph may compile
        # the graph with a copy of the saver, e.g. one with a serializer allowlist.)
        raise ConfigurationError(
            f"--app {spec!r} must build on the backend it receives: "
            "build_compliance_graph(..., checkpointer=backend.checkpointer) and "
            "HitlCoordinator(graph, reviews=backend.reviews, ...)."
        )
    return made


# -- commands ------------------------------------------------------------------------


Handler = Callable[[HitlCoordinator, argparse.Namespace], Awaitable[int]]


def _reviewer(args: argparse.Namespace) -> Reviewer:
    return Reviewer(args.reviewer, roles=frozenset(args.role or ()))


async def cmd_pending(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """List the reviews awaiting a decision, oldest first."""
    who = _reviewer(args) if args.reviewer else None
    reviews: list[PendingReview] = await coord.pending(
        rule=args.rule, reviewer=who, limit=args.limit, assigned_to=args.assigned_to
    )
    if args.json:
        _json(reviews)
        return EXIT_OK
    hidden = Counter[str]() if who is None else await _hidden_from(coord, who, args.rule)
    if not reviews:
        if who is not None and hidden:
            _echo(f"No review {who.id} may decide.")
            _print_hidden(args, who, hidden)
        else:
            _echo("No reviews pending.")
        return EXIT_OK
    _table(
        ["THREAD", "WAITING", "DUE", "FINDINGS", "APPROVALS", "DRAFT"],
        [
            [
                r.thread_id,
                _ago(r.requested_at),
                _due(r.deadline),
                ",".join(v.rule for v in r.violations),
                f"{len(r.votes)}/{r.approvals_required}",
                r.draft_response,
            ]
            for r in reviews
        ],
    )
    for r in reviews:
        if r.assigned_to is not None:
            via = f" (delegated by {r.delegated_from})" if r.delegated_from else ""
            _echo(f"{r.thread_id}: assigned to {r.assigned_to}{via} because {r.assignment_reason}")
    _echo()
    _echo(f"{len(reviews)} pending. Next: {_command(args, 'show', reviews[0].thread_id)}")
    if who is not None and hidden:
        _print_hidden(args, who, hidden)
    return EXIT_OK


async def _hidden_from(coord: HitlCoordinator, who: Reviewer, rule: str | None) -> Counter[str]:
    """Why `who` may not decide each pending review it may not decide: reason -> count.

    Asks the coordinator (`may_decide`, the checks `approve` makes) for every
    pending review, so the answer is the policy's own; one store read each.
    """
    refused = Counter[str]()
    for review in await coord.pending(rule=rule):
        try:
            verdict = await coord.may_decide(review.thread_id, who)
        except (ReviewNotFoundError, AlreadyDecidedError):
            continue  # decided since the listing: no longer pending
        except TamperedError:
            # Nobody may decide it; the error is logged, and listed here as a reason.
            refused["its row does not match the audit ledger (TamperedError)"] += 1
            continue
        if not verdict.allowed:
            refused[verdict.reason or "the approval policy refuses"] += 1
    return refused


def _print_hidden(args: argparse.Namespace, who: Reviewer, hidden: Counter[str]) -> None:
    """Say how many pending reviews `--reviewer` hides, and why, instead of hiding them silently."""
    total = sum(hidden.values())
    _echo()
    plural = "review" if total == 1 else "reviews"
    _echo(f"{total} pending {plural} {who.id} may not decide:")
    for reason, count in hidden.most_common():
        _echo(f"  {count} x {_one_line(reason)}")
    _echo(
        "Give the roles they need (--role ROLE), or see the whole queue: "
        + _command(args, "pending")
    )


async def cmd_show(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """Show one thread's latest review (or `--review-id`): the draft, the findings, who decides."""
    opened = await coord.reviews.open_reviews(args.thread)
    if args.review_id is not None:
        review = next((r for r in opened if r.review_id == args.review_id), None)
        if review is None:
            raise ReviewNotFoundError(
                f"Thread {args.thread!r} has no open review {args.review_id!r}. "
                f"See `{_command(args, 'pending')}`.",
                thread_id=args.thread,
            )
    else:
        review = await coord.reviews.get_review(args.thread)
    if review is None:
        raise ReviewNotFoundError(
            f"Thread {args.thread!r} has no review: it is unknown or never paused. "
            f"See `{_command(args, 'pending')}`.",
            thread_id=args.thread,
        )
    draft_sha = sha256_text(review.draft_response)
    if args.json:
        _json({**review.model_dump(mode="json"), "draft_sha256": draft_sha})
        return EXIT_OK
    pairs = [
        ("thread", review.thread_id),
        ("status", review.status),
        ("requested", f"{review.requested_at:%Y-%m-%d %H:%M:%S} UTC ({_ago(review.requested_at)})"),
        ("requested by", review.requested_by or "-"),
        ("checkpoint", review.checkpoint_id),
        ("draft sha256", draft_sha),
        ("approvals", f"{len(review.votes)} of {review.approvals_required}"),
        (
            "deadline",
            "-" if review.deadline is None else f"{review.deadline:%Y-%m-%d %H:%M:%S} UTC",
        ),
        ("priority", str(review.priority)),
        ("customer", review.customer_message),
        ("draft", review.draft_response),
    ]
    for i, finding in enumerate(review.violations):
        pairs.append(("findings" if i == 0 else "", _finding(finding)))
    policy = coord.policy
    if isinstance(policy, RoleBasedPolicy):
        per_finding = [
            f"{f.rule}: {' or '.join(sorted(roles))}"
            for f in review.violations
            for roles in policy.required_roles(f)
        ]
        pairs.append(("needs roles", "; ".join(per_finding) or "-"))
    for vote in review.votes:
        pairs.append(("vote", f"{vote.reviewer} at {vote.at:%Y-%m-%d %H:%M:%S}"))
    if review.decision is not None:
        decision = review.decision
        verb = "approved" if decision.get("approved") else "rejected"
        detail = decision.get("response") or decision.get("reason") or ""
        pairs.append(("decision", f"{verb} by {decision.get('reviewer')} {detail}".strip()))
    _fields(pairs)
    others = [r.review_id for r in opened if r.review_id != review.review_id]
    if others:
        pairs = [("review id", review.review_id), ("other open", ", ".join(others))]
        _fields(pairs)
    if review.status == "pending":
        roles = _roles_needed(policy, review.violations)
        decider = ["--reviewer", "ID", *(w for r in roles or ["ROLE"] for w in ("--role", r))]
        if others:  # several wait at once (a gate's tool calls): each is named
            decider += ["--review-id", review.review_id]
        _echo()
        _echo("Decide it:")
        for kind in _decision_kinds.KINDS:
            option = f"--{kind.text.name}"
            # A code the reason policy requires is shown as required (`reason-codes` lists them).
            code = ["--reason-code", "CODE"] if kind.verb in coord.reason_policy.require else []
            if kind.text.cli_required:
                line = _command(args, kind.verb, review.thread_id, option, "TEXT", *code, *decider)
                _echo("  " + line)
            else:
                _echo("  " + _command(args, kind.verb, review.thread_id, *code, *decider))
                _echo(f"      [{option} TEXT] [--expected {draft_sha}]")
    elif review.status == "claimed":
        _echo()
        _echo("A decision is being applied. If it stays claimed, its process died; run:")
        _echo("  " + _command(args, "recover"))
    return EXIT_OK


def _roles_needed(policy: ApprovalPolicy, findings: Sequence[RuleResult]) -> list[str] | None:
    """A few roles that satisfy a `RoleBasedPolicy` for `findings` (None for other policies)."""
    if not isinstance(policy, RoleBasedPolicy):
        return None
    chosen: set[str] = set()
    for roles in sorted((r for f in findings for r in policy.required_roles(f)), key=len):
        if not roles & chosen:
            chosen.add(min(roles))
    return sorted(chosen)


def _print_result(result: ProcessResult, headline: str) -> None:
    _echo(headline)
    pairs = [("thread", result.thread_id), ("status", result.status)]
    if result.status == "paused":
        pairs.append(("approvals", f"{len(result.votes)} of {result.approvals_required}"))
    else:
        pairs.append(("delivered", "-" if result.agent_response is None else result.agent_response))
    if result.reviewer:
        pairs.append(("reviewer", result.reviewer))
    _fields(pairs)


def _decide_command(kind: DecisionKind) -> Handler:
    """The command of `kind`: call the coordinator method of that name, print the result."""

    async def handler(coord: HitlCoordinator, args: argparse.Namespace) -> int:
        decide = getattr(coord, kind.verb)
        text = {kind.text.name: getattr(args, kind.text.name)}
        if kind.edits_tool_args:
            text["tool_args"] = args.tool_args
        text["reason_code"] = args.reason_code
        if kind.text.name != "reason":
            text["reason"] = args.reason
        result: ProcessResult = await decide(
            args.thread,
            reviewer=_reviewer(args),
            expected=args.expected,
            review_id=args.review_id,
            **text,
        )
        if args.json:
            _json(result)
        elif result.status == "paused" and kind.votes:
            _print_result(result, "Vote recorded; the review waits for more approvers.")
        else:
            _print_result(result, f"{kind.done} by {args.reviewer}.")
        return EXIT_OK

    handler.__name__ = f"cmd_{kind.verb}"
    return handler


def _erased(value: object) -> bool:
    """Whether a payload value reads as erased (`{"$erased": true, ...}`)."""
    return isinstance(value, dict) and value.get("$erased") is True


def _audit_detail(record: AuditRecord) -> str:
    payload = record.payload
    if record.event == "paused":
        return "rules: " + ", ".join(str(v.get("rule")) for v in payload.get("violations", []))
    if record.event == "denied":
        return str(payload.get("reason", ""))
    if record.event == "voted":
        return f"approval vote for text sha256 {str(payload.get('text_sha256', ''))[:12]}"
    if record.event == "approved":
        edited = "edited, " if payload.get("diff") else ""
        delivered = payload.get("delivered")
        return f"{edited}delivered " + ("(erased)" if _erased(delivered) else repr(delivered))
    if record.event == "rejected":
        return f"reason {payload.get('reason')!r}"
    if record.event == "erased":
        values, reviews = payload.get("values"), payload.get("reviews")
        return f"personal data erased: {values} values, {reviews} reviews"
    if record.event in (DELIVERY_STOPPED, DELIVERY_RESUMED):
        verb = "stopped" if record.event == DELIVERY_STOPPED else "resumed"
        return f"delivery {verb} ({payload.get('scope')}): {payload.get('reason')!r}"
    if record.event in ("assigned", "reassigned"):
        moved = f" (was {payload.get('from')})" if payload.get("from") else ""
        return f"assigned to {payload.get('to')}{moved}: {payload.get('reason')}"
    if record.event in ("delegated", "delegation_revoked"):
        return f"{payload.get('from')} -> {payload.get('to')} until {payload.get('until')}"
    if record.event in ("hold_placed", "hold_released"):
        return f"legal hold: {payload.get('reason')!r}"
    if record.event == "pruned":
        what = payload.get("record_class")
        if what == "checkpoints":
            return (
                f"checkpoints pruned; state kept (sha256 {str(payload.get('state_sha256'))[:12]})"
            )
        return f"{payload.get('count')} {what} rows pruned by retention"
    if record.event == "replied":
        digest = payload.get("delivered_sha256")
        sent = "(erased)" if _erased(digest) else str(digest or "")[:12] or "nothing"
        drafter = payload.get("drafter")
        return (
            f"{payload.get('outcome')}, text sha256 {sent}, {len(payload.get('rules') or [])} "
            f"rules (set {str(payload.get('ruleset', ''))[:12]})"
            + (f", drafted by {drafter}" if drafter else "")
        )
    return json.dumps(payload, sort_keys=True, default=str)


async def cmd_audit(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """Print a thread's audit log (or the whole store's), verify the ledger, or export it."""
    if args.verify:
        return await _verify(coord, args)
    if args.export is not None:
        count = await coord.export_audit(args.export, thread_id=args.thread)
        if args.json:
            _json({"path": args.export, "rows": count})
        else:
            _echo(f"Wrote {count} audit rows to {args.export}.")
            _echo(f"Verify it offline: python -m hitl_compliance.ledger verify {args.export}")
        return EXIT_OK
    if args.thread is not None:
        records = await coord.audit_log(args.thread)
        if not records:
            raise ReviewNotFoundError(
                f"Thread {args.thread!r} has no audit records: it never paused for review.",
                thread_id=args.thread,
            )
    else:
        records = await coord.reviews.audit_rows()
    if args.json:
        _json(records)
        return EXIT_OK
    if not records:
        _echo("The audit log is empty.")
        return EXIT_OK
    _table(
        ["SEQ", "AT (UTC)", "THREAD", "EVENT", "ACTOR", "DETAIL"],
        [
            [
                str(r.seq),
                f"{r.at.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}",
                r.thread_id,
                r.event,
                r.actor,
                _audit_detail(r),
            ]
            for r in records
        ],
    )
    return EXIT_OK


async def _verify(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """Check the hash chain; exit 1 when a row was edited, deleted, inserted or reordered."""
    anchors = [FileAnchor(path) for path in args.anchor or ()]
    report = await coord.verify_audit(
        args.thread, public_key=args.public_key, anchors=anchors if args.anchor else None
    )
    scope = f"thread {args.thread}" if args.thread else "the whole store"
    if not args.json and report.proof is not None:
        for statement in report.proof.statements():
            _echo(f"  {statement}")
    if not args.json and args.thread and (args.public_key or args.anchor):
        _echo("  signatures not checked: sealed heads sign the whole store, not one thread")
    if args.json:
        _json(report)
    elif report.ok:
        _echo(
            f"ok: {report.checked} audit rows of {scope} verify; "
            f"chain head {report.head_hash or '-'}"
        )
    else:
        broken = report.first_broken
        where = "-" if broken is None else f"seq {broken.seq} (thread {broken.thread_id or '-'})"
        why = "" if broken is None else broken.reason
        _echo(f"BROKEN: the audit ledger of {scope} does not verify at {where}: {why}")
    return EXIT_OK if report.ok else EXIT_REFUSED


async def cmd_evidence(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """Write a review's evidence pack (evidence.html, evidence.json, manifest.json) to --out."""
    pack = await coord.evidence_pack(args.thread, review_id=args.review, public_key=args.public_key)
    files = pack.write(args.out)
    written = [p for p in (files.html, files.json, files.manifest, files.pdf) if p is not None]
    if args.json:
        _json(
            {
                "thread_id": pack.thread_id,
                "review_id": pack.review_id,
                "manifest_sha256": pack.manifest_sha256,
                "files": [str(p) for p in written],
            }
        )
        return EXIT_OK
    _echo(f"Wrote the evidence pack of review {pack.review_id} (thread {pack.thread_id}):")
    for path in written:
        _echo(f"  {path}")
    _echo(f"evidence.json SHA-256 (manifest hash): {pack.manifest_sha256}")
    if files.pdf is None:
        _echo('No PDF: install the pdf extra for one (pip install "hitl-compliance[pdf]").')
    return EXIT_OK


def _print_results(results: Sequence[ProcessResult], empty: str) -> None:
    if not results:
        _echo(empty)
        return
    _table(
        ["THREAD", "STATUS", "REVIEWER", "DELIVERED"],
        [
            [
                r.thread_id,
                r.status,
                r.reviewer or "-",
                "(awaiting a decision)" if r.status == "paused" else (r.agent_response or "-"),
            ]
            for r in results
        ],
    )


async def cmd_expire(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """Resolve reviews past their deadline by the app's `on_timeout` (reject by default).

    With `--every SECONDS`, sweep again every SECONDS until interrupted (the SLA
    worker of a deployment); a failed sweep is reported and the next one runs.
    """
    every: float | None = getattr(args, "every", None)
    while True:
        try:
            results = await coord.expire_overdue()
        except Exception as exc:  # a worker outlives one bad sweep (database, server down)
            if every is None:
                raise
            _echo(f"error: sweep failed: {type(exc).__name__}: {_one_line(str(exc))}", err=True)
            results = []
        if args.json:
            _json(results)
        elif every is None or results:
            _print_results(results, "No review is overdue.")
        if every is None:
            return EXIT_OK
        sys.stdout.flush()
        await asyncio.sleep(every)


_REPORT_COLUMNS = ("approve", "edit", "reject", "expire", "escalate")


def _stat_row(name: str, stats: OutcomeStats) -> list[str]:
    def minutes(seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds / 60:.1f}"

    rate = "-" if stats.override_rate is None else f"{stats.override_rate:.0%}"
    return [
        name,
        *(str(getattr(stats, c)) for c in _REPORT_COLUMNS),
        rate,
        minutes(stats.median_seconds),
        minutes(stats.p90_seconds),
        str(stats.sla_breaches),
    ]


async def cmd_report(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """Oversight analytics of a window: per reviewer, per rule, flags; `--html FILE` charts."""
    until: datetime = args.until or datetime.now(timezone.utc)
    since: datetime = args.since or until - timedelta(days=30)
    given = {
        "words_per_minute": args.words_per_minute,
        "min_reading_seconds": args.min_seconds,
        "streak_length": args.streak,
        "approval_rate_factor": args.rate_factor,
        "min_decisions": args.min_decisions,
    }
    try:
        thresholds = OversightThresholds(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"bad report threshold: {problems}.") from None
    report = await coord.oversight_report(
        since=since, until=until, thresholds=thresholds, period=args.period
    )
    if args.html:
        page = report.to_html()
        await asyncio.to_thread(Path(args.html).write_text, page, encoding="utf-8")
        if not args.json:
            _say(f"Wrote the oversight report to {args.html}.")
    if args.json:
        _json(report)
        return EXIT_OK
    if args.html:
        return EXIT_OK
    t = report.totals
    _say(f"Oversight report, {since.isoformat()} to {until.isoformat()} (until excluded).")
    headers = ["", *(c.upper() for c in _REPORT_COLUMNS), "OVERRIDE", "MEDIAN MIN", "P90 MIN"]
    headers.append("SLA BREACHES")
    _table(
        ["REVIEWER", *headers[1:]],
        [_stat_row("(all)", t), *(_stat_row(r.reviewer, r) for r in report.reviewers)],
    )
    if report.rules:
        _echo()
        _table(
            ["RULE", *headers[1:], "QA", "QA DISAGREE"],
            [
                [*_stat_row(r.rule, r), str(r.qa_reviews), str(r.qa_disagreements)]
                for r in report.rules
            ],
        )
    _echo()
    if not report.flags:
        _say("No rubber-stamp flags.")
    else:
        _table(
            ["FLAG", "REVIEWER", "REVIEWS", "WHAT"],
            [[f.kind, f.reviewer, str(len(f.review_ids)), f.detail] for f in report.flags],
        )
    return EXIT_OK


async def cmd_reason_codes(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """List the app's reason codes and which actions need one; or, `--counts`, count them."""
    if args.counts:
        counts = await coord.reason_code_counts(since=args.since, until=args.until)
        if args.json:
            _json([{"code": c.code, "event": c.event, "count": c.count} for c in counts])
        elif not counts:
            _say("No decision recorded a reason code.")
        else:
            _table(["CODE", "EVENT", "COUNT"], [[c.code, c.event, str(c.count)] for c in counts])
        return EXIT_OK
    codes = list(coord.reason_codes)
    policy = coord.reason_policy
    if args.json:
        _json(
            {
                "codes": [
                    {
                        "code": c.code,
                        "label": c.label,
                        "description": c.description,
                        "requires_text": c.requires_text,
                    }
                    for c in codes
                ],
                "required_for": sorted(policy.require),
                "expiry_code": policy.expiry_code,
            }
        )
        return EXIT_OK
    _table(
        ["CODE", "LABEL", "DESCRIPTION"],
        [[c.code + (" *" if c.requires_text else ""), c.label, c.description] for c in codes],
    )
    required = ", ".join(sorted(policy.require)) or "nothing (optional)"
    _say(f"\nA reason code is required to: {required}. (* needs a reason text too)")
    if policy.expiry_code is not None:
        _say(f"The SLA records: {policy.expiry_code}.")
    return EXIT_OK


async def cmd_recover(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """Finish decisions, turns and hook calls a crashed process left behind."""
    results = await coord.recover()
    if args.json:
        _json(results)
    else:
        _print_results(results, "Nothing to recover.")
    return EXIT_OK


async def cmd_retention(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """List the legal holds; with `--apply`, prune what the app's retention policies put past
    their ceiling (held threads are skipped and listed)."""
    if not args.apply:
        holds = await coord.holds()
        if args.json:
            _json(holds)
        elif not holds:
            _echo("No legal holds.")
        else:
            _table(
                ["THREAD", "PLACED (UTC)", "BY", "REASON"],
                [
                    [
                        h.thread_id,
                        f"{h.placed_at.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}",
                        h.placed_by,
                        h.reason,
                    ]
                    for h in holds
                ],
            )
        return EXIT_OK
    report = await coord.apply_retention(now=args.now)
    if args.json:
        _json(report)
    else:
        _echo(
            f"pruned: {report.reviews} reviews, {report.audit_rows} audit rows, checkpoints "
            f"of {report.checkpoint_threads} threads; held (kept): "
            f"{', '.join(report.held) or 'none'}"
        )
    return EXIT_OK


async def cmd_hold(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """Put a thread under legal hold: nothing of it is pruned or erased until released."""
    hold = await coord.place_hold(args.thread, reason=args.reason, by=args.by)
    if args.json:
        _json(hold)
    else:
        _echo(f"held: {hold.thread_id} ({hold.reason}, by {hold.placed_by})")
    return EXIT_OK


def _by(args: argparse.Namespace) -> Reviewer:
    """`--by` (for `delegate`, default: `--from`) with the `--role`s it holds."""
    return Reviewer(args.by or args.from_reviewer, roles=frozenset(args.role or ()))


async def cmd_assign(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """Reassign a thread's pending review (a `reassigned` audit row)."""
    done = await coord.reassign(
        args.thread, to=args.to, by=_by(args), reason=args.reason, review_id=args.review_id
    )
    if args.json:
        _json(done)
    else:
        _echo(f"assigned: {done.thread_id} -> {done.assigned_to} ({done.reason})")
    return EXIT_OK


async def cmd_delegate(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """Delegate a reviewer's reviews until a time, revoke a delegation, or list them."""
    if args.revoke:
        if args.from_reviewer is None:
            raise ConfigurationError("delegate --revoke needs --from: whose delegation ends.")
        gone = await coord.revoke_delegation(args.from_reviewer, by=_by(args))
        if args.json:
            _json(gone)
        elif gone is None:
            _echo(f"{args.from_reviewer} has no delegation.")
        else:
            _echo(f"revoked: {gone.from_reviewer} -> {gone.to_reviewer}")
        return EXIT_OK if gone is not None else EXIT_REFUSED
    if args.from_reviewer is None and args.to is None and args.until is None:
        active = await coord.delegations()
        if args.json:
            _json(active)
        elif not active:
            _echo("No delegations in force.")
        else:
            _table(
                ["FROM", "TO", "UNTIL", "BY"],
                [[d.from_reviewer, d.to_reviewer, d.until.isoformat(), d.by] for d in active],
            )
        return EXIT_OK
    if args.from_reviewer is None or args.to is None or args.until is None:
        raise ConfigurationError(
            "delegate needs --from, --to and --until (or none of them, to list delegations)."
        )
    made = await coord.delegate(args.from_reviewer, args.to, until=args.until, by=_by(args))
    if args.json:
        _json(made)
    else:
        _echo(
            f"delegated: {made.from_reviewer} -> {made.to_reviewer} until {made.until.isoformat()}"
        )
    return EXIT_OK


async def cmd_release(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """Release a thread's legal hold; exit 1 when it had none."""
    hold = await coord.release_hold(args.thread, by=args.by)
    if args.json:
        _json(hold)
    elif hold is None:
        _echo(f"{args.thread} has no legal hold.")
    else:
        _echo(f"released: {hold.thread_id} (was: {hold.reason}, by {hold.placed_by})")
    return EXIT_OK if hold is not None else EXIT_REFUSED


async def cmd_qa(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """Second-line QA: list sampled replies, record a verdict, or count disagreements per rule."""
    if args.qa_command == "pending":
        waiting = await coord.qa_pending(limit=args.limit)
        if args.json:
            _json(waiting)
        elif not waiting:
            _say("No sampled reply awaits a QA verdict.")
        else:
            _table(
                ["QA REVIEW", "SAMPLED AT", "PRODUCT", "RULES"],
                [
                    [q.qa_review_id, q.sampled_at.isoformat(), q.product or "-", ",".join(q.rules)]
                    for q in waiting
                ],
            )
        return EXIT_OK
    if args.qa_command == "verdict":
        judged = await coord.qa_verdict(
            args.qa_review_id,
            reviewer=_reviewer(args),
            verdict=args.verdict,
            reason_code=args.reason_code,
            reason=args.reason,
        )
        if args.json:
            _json(judged)
        else:
            code = f" ({judged.reason_code})" if judged.reason_code else ""
            _echo(f"{judged.verdict}{code}: {judged.qa_review_id} by {judged.reviewer}")
        return EXIT_OK
    counts = await coord.qa_disagreement(since=args.since, until=args.until)
    if args.json:
        _json([{**_plain(c), "disagreement_rate": c.disagreement_rate} for c in counts])
    elif not counts:
        _say("No reply was sampled for QA in this period.")
    else:
        _table(
            ["RULE", "SAMPLED", "REVIEWED", "DISAGREED", "RATE"],
            [
                [
                    c.rule,
                    str(c.sampled),
                    str(c.reviewed),
                    str(c.disagreements),
                    "-" if c.disagreement_rate is None else f"{c.disagreement_rate:.1%}",
                ]
                for c in counts
            ],
        )
    return EXIT_OK


def _add_qa(sub: Any) -> None:
    qa = sub.add_parser(
        "qa", help="second-line QA of auto-delivered replies: pending, verdict, disagreement"
    )
    _add_common(qa, top=False)
    _add_remote(qa, top=False)
    actions = qa.add_subparsers(dest="qa_command", required=True, metavar="ACTION")
    pending = actions.add_parser("pending", help="list sampled replies awaiting a QA verdict")
    pending.add_argument(
        "--limit", type=_positive_int, metavar="N", help="at most N reviews (N >= 1)"
    )
    verdict = actions.add_parser("verdict", help="record a QA verdict on a sampled reply")
    verdict.add_argument("qa_review_id", metavar="QA_REVIEW", help="qa:<thread>:<turn>")
    verdict.add_argument("verdict", choices=["agree", "disagree"])
    _add_decider(verdict)
    verdict.add_argument(
        "--reason-code", metavar="CODE", help="why (required to disagree; see `reason-codes`)"
    )
    verdict.add_argument("--reason", metavar="TEXT", help="free text recorded with the verdict")
    counts = actions.add_parser("disagreement", help="count QA disagreements per rule")
    counts.add_argument("--since", type=_aware_time, metavar="ISO", help="sampled at or after")
    counts.add_argument("--until", type=_aware_time, metavar="ISO", help="sampled before")
    for action in (pending, verdict, counts):
        _add_common(action, top=False)
        _add_remote(action, top=False)


def _stopper(args: argparse.Namespace) -> Reviewer:
    return Reviewer(args.by, roles=frozenset(args.role))


def _stop_rows(stops: list[StopSwitch]) -> list[list[str]]:
    return [
        [
            s.scope.key,
            f"{s.since.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}",
            s.by,
            s.reason,
        ]
        for s in stops
    ]


async def cmd_stops(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """List the stops in force: while one is on, every reply in its scope waits for review."""
    stops = await coord.stops()
    if args.json:
        _json(stops)
    elif not stops:
        _echo("Delivery is not stopped.")
    else:
        _table(["SCOPE", "SINCE (UTC)", "BY", "REASON"], _stop_rows(stops))
    return EXIT_OK


async def cmd_stop(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """Stop delivery in a scope: every reply waits for review until resumed (audited)."""
    stop = await coord.stop_delivery(args.scope, by=_stopper(args), reason=args.reason)
    if args.json:
        _json(stop)
    else:
        _echo(stop.banner)
    return EXIT_OK


async def cmd_resume_delivery(coord: HitlCoordinator, args: argparse.Namespace) -> int:
    """Resume delivery in a scope (audited); exit 1 when it was not stopped."""
    stop = await coord.resume_delivery(args.scope, by=_stopper(args))
    if args.json:
        _json(stop)
    elif stop is None:
        _echo(f"Delivery was not stopped ({args.scope}).")
    else:
        _echo(f"resumed: {stop.scope.key} (was stopped by {stop.by}: {stop.reason})")
    return EXIT_OK if stop is not None else EXIT_REFUSED


def _aware_time(text: str) -> datetime:
    """argparse type of `--now`: an ISO-8601 time with its offset, else a usage error.

    A trailing `Z` means UTC on every Python (3.10's `fromisoformat` refuses it).
    """
    try:
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"must be an ISO-8601 time with an offset like 2031-01-01T00:00:00+00:00, got {text!r}"
        )
    return value


# -- demo ----------------------------------------------------------------------------


def _show(result: ProcessResult) -> None:
    _say(f"  status: {result.status}")
    _say(f"  draft:  {result.draft_response}")
    for finding in result.violations:
        _say(f"  finding: {_finding(finding)}")
    if result.status != "paused":
        _say(f"  customer receives: {result.agent_response!r} (from {result.agent_type})")


async def run_demo(backend_url: str, style: str, args: argparse.Namespace | None = None) -> int:
    """Run the FCA scenario end to end, print each step, and leave one review pending."""
    run = uuid.uuid4().hex[:6]
    async with open_backend(backend_url) as backend:
        coord = fca_coordinator(
            backend, style="command_resume" if style == "command_resume" else "interrupt_before"
        )
        officer = Reviewer("officer@bank", roles=frozenset({SMCR_APPROVER}))
        colleague = Reviewer("ops@bank", roles=frozenset({"compliance_officer"}))
        _say(f"Backend: {backend.url}   pause style: {style}")
        _say("Rules: investment_advice and guaranteed_returns send a draft to review;")
        _say("account_details blocks it. Policy (SM&CR): a personal recommendation needs")
        _say(f"the {SMCR_APPROVER} role.")
        _say()

        _say("1. A customer asks something harmless; the draft passes every rule.")
        _show(await coord.process(f"faq-{run}", "What are your opening hours?"))
        _say()

        thread = f"advice-{run}"
        _say("2. A customer asks for investment advice; the LLM's draft breaks two rules,")
        _say("   so the graph pauses before `human_approval` and nothing reaches the customer.")
        _show(await coord.process(thread, "Should I move my savings into the Global Equity Fund?"))
        _say()

        _say("3. The compliance officer's queue (read from the review store, not checkpoints):")
        queue = await coord.pending()
        for item in queue:
            if item.thread_id != thread:
                continue
            _say(f"  - {item.thread_id}: {item.draft_response!r}")
            _say(
                f"    rules: {', '.join(v.rule for v in item.violations)}; draft sha256 "
                f"{item.draft_sha256[:12]}...; paused at checkpoint {item.checkpoint_id}"
            )
        if len(queue) > 1:
            _say(f"  (and {len(queue) - 1} more left by earlier runs on this backend)")
        _say()

        _say(f"4. A colleague without the {SMCR_APPROVER} role tries to approve it:")
        try:
            await coord.approve(thread, reviewer=colleague)
        except HitlError as exc:
            _say(f"  {type(exc).__name__}: {exc}")
        _say("  Nothing changed: the review is still pending, and the attempt is audited.")
        _say()

        _say("5. The SMCR approver edits the reply and approves it; the graph resumes")
        _say("   without re-running the LLM, and the decision is recorded.")
        edited = (
            "I can't recommend a specific fund, but one of our qualified advisers can review "
            "your circumstances. Would you like us to book a call?"
        )
        _show(
            await coord.approve(
                thread, reviewer=officer, response=edited, metadata={"ticket": "C-9"}
            )
        )
        _say()

        _say("6. A second decision on the same review is refused:")
        try:
            await coord.reject(thread, reviewer=officer, reason="too late")
        except HitlError as exc:
            _say(f"  {type(exc).__name__}: {exc}")
        _say()

        _say("7. The audit log of that thread:")
        for record in await coord.audit_log(thread):
            _say(
                f"  {record.at:%H:%M:%S} {record.event:<9} by {record.actor:<14} "
                f"checkpoint {record.checkpoint_id}"
            )
        _say()

        _say("8. A draft leaking account details is blocked outright, no human needed:")
        _show(await coord.process(f"leak-{run}", "What is the account number on my joint account?"))
        _say()

        left = f"pension-{run}"
        _say("9. One more customer asks about their pension; this review is left for you.")
        _show(await coord.process(left, "Is the Fixed Rate Saver safe for my pension lump sum?"))
        _say()
        if backend_url.startswith("memory:"):
            _say("memory:// keeps nothing after the demo; run it on the default SQLite file")
            _say("to decide this review from the command line.")
            return EXIT_OK
        if args is None:
            args = argparse.Namespace(backend=backend_url, app=DEFAULT_APP)
        if style == "command_resume":
            args.app = "hitl_compliance._fca:command_resume_app"
        _echo("Your turn: decide it from the command line, on the same database.")
        _echo(f"  {_command(args, 'pending')}")
        _echo(f"  {_command(args, 'show', left)}")
        approve = ["approve", left, "--reviewer", "you@bank"]
        _echo(f"  {_command(args, *approve)}   # refused: you lack the role")
        _echo(f"  {_command(args, *approve, '--role', SMCR_APPROVER)}")
        _echo(f"  {_command(args, 'audit', left)}")
    return EXIT_OK


# -- argument parsing ----------------------------------------------------------------


def _add_common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--backend, --app and --json, accepted before and after the command."""

    def default(value: object) -> object:
        # Sub-commands only set an option the user typed, so the top level's default stands.
        return value if top else argparse.SUPPRESS

    parser.add_argument(
        "--backend",
        metavar="URL",
        default=default(DEFAULT_BACKEND),
        help=f"memory://, sqlite:///file.db or postgresql://... (default {DEFAULT_BACKEND})",
    )
    parser.add_argument(
        "--app",
        metavar="MODULE:FUNCTION",
        default=default(DEFAULT_APP),
        help="function(backend) -> HitlCoordinator building your graph and policy "
        f"(default {DEFAULT_APP}, the demo's FCA scenario)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print JSON (the library's models) instead of tables",
    )


def _add_remote(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--remote, --graph and --policy: drive a LangGraph Server deployment."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    parser.add_argument(
        "--remote",
        metavar="URL",
        default=default(None),
        help="drive the graph served by LangGraph Server at URL (token from "
        f"{REMOTE_TOKEN_ENV}) instead of --app; --backend is the shared review store",
    )
    parser.add_argument(
        "--graph",
        metavar="ID",
        default=default(None),
        help="with --remote: the served graph id (or assistant id)",
    )
    parser.add_argument(
        "--policy",
        metavar="MODULE:ATTR",
        default=default(None),
        help="with --remote: the ApprovalPolicy to decide under (or a function returning it)",
    )


def _add_decider(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "--reviewer", metavar="ID", required=required, help="who decides (recorded in the audit)"
    )
    parser.add_argument(
        "--role",
        metavar="ROLE",
        action="append",
        default=[],
        help="a role the reviewer holds (repeat for several)",
    )


def _positive_seconds(text: str) -> float:
    """argparse type of `--every`: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    """argparse type of `--limit`: an int >= 1, else a usage error (exit 2)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _json_object(text: str) -> dict[str, Any]:
    """argparse type of `--tool-args`: a JSON object, else a usage error (exit 2)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"must be a JSON object like '{{\"amount_gbp\": 900}}', got {text!r}"
        )
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with the offending argument escaped in its error line (it may hold controls)."""

    def error(self, message: str) -> NoReturn:
        super().error(visible(message))


def build_parser() -> argparse.ArgumentParser:
    """The `hitl-compliance` argument parser."""
    parser = _Parser(
        prog=_PROG,
        description="Human-in-the-loop compliance graphs on LangGraph: run the demo, "
        "then list, inspect, approve and reject paused reviews.",
        epilog="Exit codes: 0 ok, 1 refused by the library, 2 usage or configuration error.",
    )
    _add_common(parser, top=True)
    _add_remote(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run the FCA support-agent scenario end to end (leaves one review pending)",
        description="Run the FCA support-agent scenario end to end, explaining each step.",
    )
    demo.add_argument(
        "--backend",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"backend URL (default {DEFAULT_BACKEND}; also memory:// or postgresql://...)",
    )
    demo.add_argument(
        "--style", choices=["interrupt_before", "command_resume"], default="interrupt_before"
    )

    pending = sub.add_parser("pending", help="list the reviews awaiting a decision")
    _add_common(pending, top=False)
    _add_remote(pending, top=False)
    pending.add_argument("--rule", help="only reviews with a finding of this rule")
    _add_decider(pending, required=False)
    pending.add_argument(
        "--limit", type=_positive_int, metavar="N", help="at most N reviews (N >= 1)"
    )
    pending.add_argument(
        "--assigned-to",
        metavar="ID",
        help="only reviews waiting for this reviewer (directly, its queues, delegations)",
    )

    show = sub.add_parser("show", help="show one thread's review: draft, findings, roles")
    _add_common(show, top=False)
    _add_remote(show, top=False)
    show.add_argument("thread", metavar="THREAD")
    show.add_argument("--review-id", metavar="ID", help=_REVIEW_ID_HELP)

    for kind in _decision_kinds.KINDS:
        decide = sub.add_parser(kind.verb, help=kind.cli_help)
        _add_common(decide, top=False)
        _add_remote(decide, top=False)
        decide.add_argument("thread", metavar="THREAD")
        decide.add_argument(
            f"--{kind.text.name}",
            metavar="TEXT",
            required=kind.text.cli_required,
            help=kind.text.cli_help,
        )
        _add_decider(decide)
        decide.add_argument(
            "--expected",
            metavar="HASH_OR_CHECKPOINT",
            help="the draft sha256 or checkpoint id you reviewed; refused if it changed",
        )
        decide.add_argument("--review-id", metavar="ID", help=_REVIEW_ID_HELP)
        decide.add_argument(
            "--reason-code",
            metavar="CODE",
            help="why, as a code of the app's taxonomy (see `reason-codes`); recorded",
        )
        if kind.text.name != "reason":
            decide.add_argument(
                "--reason", metavar="TEXT", help="free text recorded with the decision"
            )
        if kind.edits_tool_args:
            decide.add_argument(
                "--tool-args",
                metavar="JSON",
                type=_json_object,
                help="for a gated tool call: run it with these arguments (a JSON object) "
                "instead of the model's; the rules re-check them",
            )

    audit = sub.add_parser("audit", help="print the audit log of a thread (or of everything)")
    _add_common(audit, top=False)
    _add_remote(audit, top=False)
    audit.add_argument("thread", metavar="THREAD", nargs="?")
    what = audit.add_mutually_exclusive_group()
    what.add_argument(
        "--verify",
        action="store_true",
        help="verify the tamper-evident ledger (exit 1 if a row was tampered with)",
    )
    what.add_argument(
        "--export", metavar="PATH", help="write the ledger as JSON Lines an auditor can verify"
    )
    audit.add_argument(
        "--public-key",
        metavar="FILE",
        action="append",
        help="with --verify: check the sealed heads' signatures with this Ed25519 public key "
        "(PEM; repeat after a key rotation); catches truncation and re-hashing back to the "
        "last sealed head",
    )
    audit.add_argument(
        "--anchor",
        metavar="FILE",
        action="append",
        help="with --verify: also check the sealed heads in this anchor file (JSON Lines)",
    )

    evidence = sub.add_parser(
        "evidence", help="write a review's evidence pack: a printable page, JSON and a manifest"
    )
    _add_common(evidence, top=False)
    _add_remote(evidence, top=False)
    evidence.add_argument("thread", metavar="THREAD")
    evidence.add_argument(
        "--review",
        metavar="ID",
        help="which of the thread's reviews (a paused audit row's review id; default: latest)",
    )
    evidence.add_argument(
        "--out", metavar="DIR", required=True, help="the directory to write the pack into"
    )
    evidence.add_argument(
        "--public-key",
        metavar="FILE",
        action="append",
        help="check the signed heads' signatures with this Ed25519 public key (PEM)",
    )

    expire = sub.add_parser(
        "expire", help="resolve reviews past their SLA deadline (the app's on_timeout)"
    )
    _add_common(expire, top=False)
    _add_remote(expire, top=False)
    expire.add_argument(
        "--every",
        type=_positive_seconds,
        metavar="SECONDS",
        help="keep sweeping every SECONDS until stopped (a deployment's SLA worker)",
    )

    recover = sub.add_parser(
        "recover", help="finish decisions, turns and hook calls a crashed process left behind"
    )
    _add_common(recover, top=False)
    _add_remote(recover, top=False)

    retention = sub.add_parser(
        "retention", help="list legal holds; --apply prunes what is past the app's retention"
    )
    _add_common(retention, top=False)
    _add_remote(retention, top=False)
    retention.add_argument(
        "--apply",
        action="store_true",
        help="prune records past their policy's ceiling (never under its floor, never held)",
    )
    retention.add_argument(
        "--now", type=_aware_time, metavar="ISO", help="measure ages as of this time"
    )
    hold = sub.add_parser("hold", help="put a thread under legal hold (blocks pruning, erasure)")
    release = sub.add_parser("release", help="release a thread's legal hold")
    for held in (hold, release):
        _add_common(held, top=False)
        _add_remote(held, top=False)
        held.add_argument("thread", metavar="THREAD")
        held.add_argument("--by", required=True, metavar="WHO", help="who places/releases it")
    hold.add_argument("--reason", required=True, metavar="TEXT", help="why (the matter, ticket)")
    stops = sub.add_parser("stops", help="list the stops in force (delivery held for review)")
    stop = sub.add_parser("stop", help="stop delivery: every reply waits for review (audited)")
    resume = sub.add_parser("resume-delivery", help="switch a stop off (audited)")
    for switch in (stops, stop, resume):
        _add_common(switch, top=False)
        _add_remote(switch, top=False)
    for switch in (stop, resume):
        switch.add_argument(
            "--scope",
            default="all",
            metavar="SCOPE",
            help="all (default), ruleset:<fingerprint> or product:<name>",
        )
        switch.add_argument("--by", required=True, metavar="WHO", help="who switches it")
        switch.add_argument(
            "--role",
            metavar="ROLE",
            action="append",
            default=[],
            help="a role WHO holds (one of the app's stop_roles; repeat for several)",
        )
    stop.add_argument("--reason", required=True, metavar="TEXT", help="why (the incident)")
    assign = sub.add_parser("assign", help="reassign a thread's pending review (supervisors)")
    delegate = sub.add_parser(
        "delegate", help="delegate a reviewer's reviews until a time; --revoke; none: list"
    )
    for moving in (assign, delegate):
        _add_common(moving, top=False)
        _add_remote(moving, top=False)
        moving.add_argument(
            "--role", metavar="ROLE", action="append", default=[], help="a role --by holds"
        )
    assign.add_argument("thread", metavar="THREAD")
    assign.add_argument("--to", required=True, metavar="ID", help="reviewer id or queue:NAME")
    assign.add_argument("--by", required=True, metavar="WHO", help="who reassigns it")
    assign.add_argument("--reason", required=True, metavar="TEXT", help="why")
    assign.add_argument("--review-id", metavar="ID", help="which review (several pending)")
    delegate.add_argument("--from", dest="from_reviewer", metavar="ID", help="the delegator")
    delegate.add_argument("--to", metavar="ID", help="who sees their reviews meanwhile")
    delegate.add_argument("--until", type=_aware_time, metavar="ISO", help="when it ends")
    delegate.add_argument(
        "--by", metavar="WHO", default=None, help="who delegates (default --from)"
    )
    delegate.add_argument("--revoke", action="store_true", help="end --from's delegation now")
    reasons = sub.add_parser(
        "reason-codes", help="list the app's reason codes (or count the recorded ones)"
    )
    _add_common(reasons, top=False)
    _add_remote(reasons, top=False)
    reasons.add_argument(
        "--counts", action="store_true", help="count the codes the audit ledger recorded"
    )
    reasons.add_argument(
        "--since", type=_aware_time, metavar="ISO", help="with --counts: decided at or after"
    )
    reasons.add_argument(
        "--until", type=_aware_time, metavar="ISO", help="with --counts: decided before"
    )
    _add_qa(sub)
    report = sub.add_parser(
        "report",
        help="oversight analytics: per reviewer, rule and period, rubber-stamp flags",
        description="Oversight analytics of the reviews decided in a window (default: the "
        "last 30 days): counts, override rate, time to decision, SLA breaches, reason codes, "
        "QA, and rubber-stamp flags naming their reviews. --html FILE writes one "
        "self-contained page with charts (needs the report extra).",
    )
    _add_common(report, top=False)
    _add_remote(report, top=False)
    report.add_argument(
        "--since", type=_aware_time, metavar="ISO", help="decided at or after (default: 30 days)"
    )
    report.add_argument(
        "--until", type=_aware_time, metavar="ISO", help="decided before (default: now)"
    )
    report.add_argument("--period", choices=["day", "week", "month"], default="day")
    report.add_argument(
        "--html", metavar="FILE", help="write the report with charts as one HTML page"
    )
    report.add_argument(
        "--words-per-minute", type=_positive_seconds, metavar="N", help="reading speed floor"
    )
    report.add_argument(
        "--min-seconds", type=float, metavar="S", help="no decision is credible faster than S"
    )
    report.add_argument(
        "--streak", type=_positive_int, metavar="N", help="flag N unedited approvals in a row"
    )
    report.add_argument(
        "--rate-factor",
        type=_positive_seconds,
        metavar="F",
        help="flag a reviewer the rest of the team overrides F times as often as",
    )
    report.add_argument(
        "--min-decisions", type=_positive_int, metavar="N", help="decisions before rates compare"
    )
    return parser


_HANDLERS: dict[str, Handler] = {
    "qa": cmd_qa,
    "report": cmd_report,
    "reason-codes": cmd_reason_codes,
    "pending": cmd_pending,
    "show": cmd_show,
    "audit": cmd_audit,
    "evidence": cmd_evidence,
    "expire": cmd_expire,
    "recover": cmd_recover,
    "retention": cmd_retention,
    "hold": cmd_hold,
    "release": cmd_release,
    "stops": cmd_stops,
    "stop": cmd_stop,
    "resume-delivery": cmd_resume_delivery,
    "assign": cmd_assign,
    "delegate": cmd_delegate,
}


async def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        if args.app != DEFAULT_APP:
            raise ConfigurationError(
                "demo always runs the built-in FCA scenario; --app applies to the other commands."
            )
        return await run_demo(args.backend, args.style, args)
    if args.remote is not None:
        return await _run_remote(args)
    # Import the app before opening the database, so a typo fails fast and touches nothing.
    factory = load_app(args.app)
    _check_database_exists(args)
    async with open_backend(args.backend) as backend:
        coord = await build_coordinator(factory, backend, args.app)
        return await _handler(args.command)(coord, args)


def load_policy(spec: str) -> ApprovalPolicy:
    """The `ApprovalPolicy` `--policy module:attr` names (an instance, or a function returning one).

    Raises:
        ConfigurationError: the spec does not import or names no policy.
    """
    target: Any = _import_target(spec, "--policy")
    if not isinstance(target, ApprovalPolicy) and callable(target):
        try:
            target = target()
        except Exception as exc:  # the user's function failed: a configuration problem
            raise ConfigurationError(
                f"--policy {spec!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
    if not isinstance(target, ApprovalPolicy):
        raise ConfigurationError(
            f"--policy {spec!r} names a {type(target).__name__}, not an ApprovalPolicy."
        )
    return target


def remote_graph(url: str, graph_id: str, token: str | None) -> Any:
    """The `RemoteGraph` of `graph_id` at `url`, authenticated with the bearer `token`."""
    try:
        from langgraph.pregel.remote import RemoteGraph
    except ImportError as exc:  # pragma: no cover - langgraph-sdk is a langgraph dependency
        raise ConfigurationError(
            'Driving a deployment needs langgraph-sdk: pip install "hitl-compliance[server]"'
        ) from exc
    headers = {"Authorization": f"Bearer {token}"} if token else None
    # api_key="" keeps the SDK from sending a LangSmith key found in the environment.
    return RemoteGraph(graph_id, url=url, headers=headers, api_key="")


async def _run_remote(args: argparse.Namespace) -> int:
    """A command on the deployment at `--remote`, with the review store at `--backend`."""
    if not args.graph:
        raise ConfigurationError("--remote needs --graph ID: the served graph to drive.")
    if args.app != DEFAULT_APP:
        raise ConfigurationError(
            "--remote drives the served graph; --app builds a local one. Give one of them."
        )
    policy = None if args.policy is None else load_policy(args.policy)
    _check_database_exists(args)
    token = os.environ.get(REMOTE_TOKEN_ENV) or None
    graph = remote_graph(args.remote, args.graph, token)
    try:
        async with open_backend(args.backend) as backend:
            coord = HitlCoordinator(graph, reviews=backend.reviews, policy=policy)
            return await _handler(args.command)(coord, args)
    finally:
        await graph.client.aclose()
        graph.sync_client.close()


def _handler(command: str) -> Handler:
    """The handler of `command`: a decision kind's, or one of `_HANDLERS`."""
    for kind in _decision_kinds.KINDS:
        if kind.verb == command:
            return _decide_command(kind)
    return _HANDLERS[command]


def _check_database_exists(args: argparse.Namespace) -> None:
    """Refuse a SQLite file that does not exist: opening it would create an empty database.

    Only `demo` creates one; any other command on a mistyped path would
    otherwise print an empty queue (or "nothing overdue" from a cron job)
    and leave a stray file behind.
    """
    url = args.backend
    if url.partition("://")[0].lower() != "sqlite":
        return
    path = _sqlite_path(url)
    if path != ":memory:" and not os.path.exists(path):
        demo = " ".join([_PROG, "demo", *(["--backend", mask_url(url)] * (url != DEFAULT_BACKEND))])
        raise ConfigurationError(
            f"no such database: the SQLite file {os.path.abspath(path)} does not exist, and "
            f"{args.command} never creates one. Check --backend (now {mask_url(url)}); "
            f"databases are created by your service (open_backend) or by `{demo}`."
        )


def _error(exc: HitlError, args: argparse.Namespace) -> None:
    """One line on stderr naming the error; a password of --backend never shows in it."""
    # The library masks DSNs itself; this also covers text an --app factory raised.
    message = _one_line(scrub(str(exc), args.backend))
    if isinstance(exc, InputTooLargeError):
        message += " (The CLI's coordinator is the --app factory's: pass limits= there.)"
    _echo(f"error: {type(exc).__name__}: {message}", err=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hitl-compliance` console script; returns the exit code."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        sealed = getattr(args, "public_key", None) is not None or getattr(args, "anchor", None)
        if args.command == "audit" and sealed and not args.verify:
            parser.error("--public-key and --anchor go with --verify")
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        if exc.code is None:
            return EXIT_OK
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return asyncio.run(_run(args))
    except ConfigurationError as exc:
        _error(exc, args)
        return EXIT_USAGE
    except HitlError as exc:
        _error(exc, args)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
