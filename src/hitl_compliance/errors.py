"""The library's errors: one tree, rooted in [`HitlError`][hitl_compliance.HitlError].

```text
HitlError
├── ConfigurationError        the graph, coordinator or backend is set up wrongly
│   └── SigningUnavailableError  signed heads need the `signing` extra (cryptography)
├── ReviewNotFoundError       no paused review exists for the thread
│   └── QaReviewNotFoundError  no QA review has this id
├── AlreadyDecidedError       the review was decided (or is being decided) already
│   ├── DuplicateVoteError    this reviewer already voted on this review
│   └── QaAlreadyRecordedError  the QA review holds a verdict already
├── ThreadBusyError           the thread is paused, or another call is running on it
├── NotAuthorizedError        the reviewer may not decide this review (policy, requester)
├── PolicyViolationError      an edited reply breaks a `block` rule
├── QuorumPendingError        an approval made around the coordinator awaits more approvers
├── StaleReviewError          the paused state changed since the reviewer loaded it
├── TamperedError             a review row does not match what its audit ledger committed to
├── InvalidInputError         an argument failed validation before reaching LangGraph
│   ├── InvalidDecisionError  a decision (reviewer, response, metadata) is invalid
│   │   └── ReasonCodeError   a reason code is unknown, or missing where the policy needs one
│   ├── ReviewIdRequiredError  the thread has several pending reviews: pass review_id=
│   ├── LedgerValueError      an audit payload holds a value the ledger cannot hash exactly
│   ├── InputTooLargeError    a text or metadata exceeds the configured InputLimits (413)
│   └── UnsupportedMediaTypeError  a review-service request body is not JSON (415)
├── CrossOriginRequestError   a browser sent a decision from another site's page (403)
├── StoreError                the review store's database failed; the call changed nothing
│   └── LedgerHeadMissingError  the audit chain head row was deleted; no row is appended
├── LegalHoldError            the thread is under legal hold: it may not be pruned or erased
├── DraftError                the drafter returned something other than text
└── PauseDisabledError        a draft needed review in a graph built with pause=False
```

Every error says what happened and what to do, and carries its context as
keyword-only attributes (`thread_id`, `reviewer`, ...). A call that raises
leaves nothing half-done: the thread stays as it was.
"""

from __future__ import annotations

__all__ = [
    "AlreadyDecidedError",
    "ConfigurationError",
    "CrossOriginRequestError",
    "DraftError",
    "DuplicateVoteError",
    "HitlError",
    "InputTooLargeError",
    "InvalidDecisionError",
    "InvalidInputError",
    "LedgerHeadMissingError",
    "LedgerValueError",
    "LegalHoldError",
    "NotAuthorizedError",
    "PauseDisabledError",
    "PolicyViolationError",
    "QaAlreadyRecordedError",
    "QaReviewNotFoundError",
    "QuorumPendingError",
    "ReasonCodeError",
    "ReviewIdRequiredError",
    "ReviewNotFoundError",
    "SigningUnavailableError",
    "StaleReviewError",
    "StoreError",
    "TamperedError",
    "ThreadBusyError",
    "UnsupportedMediaTypeError",
]


class HitlError(Exception):
    """Base class of every error raised by hitl-compliance.

    Catch this to handle any library failure; `thread_id` names the thread
    concerned when there is one.
    """

    def __init__(self, message: str, *, thread_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.thread_id = thread_id


class ConfigurationError(HitlError):
    """The graph, coordinator or backend was configured in a way that cannot work.

    Raised at build or open time, never half-way through a run: for example an
    interrupt compiled without a checkpointer (LangGraph would silently never
    pause), duplicate rule names, or a backend URL that cannot be reached.
    """


class ReviewNotFoundError(HitlError):
    """There is no review for this thread: it is unknown or never paused.

    (A thread whose latest review was already decided raises
    [`AlreadyDecidedError`][hitl_compliance.AlreadyDecidedError] instead.)

    Check `await coord.pending()` for the threads that are awaiting a decision.
    """


class AlreadyDecidedError(HitlError):
    """The review was already decided, or another reviewer's decision is in flight.

    Exactly one decision wins per review; reload the review and its audit log
    (`await coord.audit_log(thread_id)`) to see who decided it.
    """

    def __init__(
        self, message: str, *, thread_id: str | None = None, status: str | None = None
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.status = status


class DuplicateVoteError(AlreadyDecidedError):
    """This reviewer already approved this review; one person's vote never counts twice.

    A review needing several approvers waits for *other* reviewers.
    """


class QaReviewNotFoundError(ReviewNotFoundError):
    """No QA review has this id: the turn was not sampled, or the id is mistyped.

    QA review ids are `qa:<thread id>:<turn>`; list them with `await coord.qa_pending()`.
    """

    def __init__(self, message: str, *, thread_id: str | None = None, qa_review_id: str) -> None:
        super().__init__(message, thread_id=thread_id)
        self.qa_review_id = qa_review_id


class QaAlreadyRecordedError(AlreadyDecidedError):
    """The QA review holds a verdict already: one verdict per sampled reply, never replaced.

    Read it with `await coord.qa_review(qa_review_id)`; the ledger's `qa_verdict` row
    names who recorded it.
    """

    def __init__(
        self,
        message: str,
        *,
        thread_id: str | None = None,
        qa_review_id: str,
        verdict: str | None = None,
    ) -> None:
        super().__init__(message, thread_id=thread_id, status=verdict)
        self.qa_review_id = qa_review_id
        self.verdict = verdict


class QuorumPendingError(HitlError):
    """The approval was recorded as a vote; the review needs more approvers before it applies.

    Raised where a decision arrives around the coordinator (a raw resume or
    state write) and cannot return a paused result: the thread stays paused at
    the same review until another approver decides.
    """

    def __init__(
        self, message: str, *, thread_id: str | None = None, votes: int, required: int
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.votes = votes
        self.required = required


class ThreadBusyError(HitlError):
    """The thread cannot start a new turn now: it is paused for review or another call runs.

    Decide the pending review first (`approve` / `reject`), or, after a crash,
    call `await coord.recover()`.
    """


class InvalidInputError(HitlError):
    """An argument (thread id, message, state field, limit) failed validation.

    Nothing was sent to LangGraph, which would checkpoint invalid values
    unvalidated. Fix the input and call again.
    """


class InvalidDecisionError(InvalidInputError):
    """A decision (reviewer, response, reason, metadata) failed validation.

    Nothing was sent to LangGraph: an invalid resume value would otherwise be
    stored and poison the thread. Fix the input and call again.
    """


class ReasonCodeError(InvalidDecisionError):
    """A decision's reason code is not in the taxonomy, or is missing where the policy needs one.

    Raised (or, for a resume that reaches the graph around the coordinator,
    returned as the refusal) before anything is written: no claim, no audit
    row, no checkpoint change. Pick a code from the coordinator's
    [`ReasonCodes`][hitl_compliance.ReasonCodes] (`hitl-compliance reason-codes`,
    `GET /reason-codes`) and decide again; the code `other` also needs a reason text.
    `code` is the code given (None when missing), `action` what was decided
    (`approve`, `edit`, `reject`, `expiry`).
    """

    def __init__(
        self,
        message: str,
        *,
        thread_id: str | None = None,
        code: str | None = None,
        action: str | None = None,
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.code = code
        self.action = action


class LedgerValueError(InvalidInputError):
    """An audit row would hold a value its canonical form (RFC 8785) cannot write exactly.

    Integers beyond +/-(2**53-1), NaN, Infinity and lone surrogates have no exact
    JSON form a verifier in another language reads back, so the row is refused
    before anything is written (the store, its ledger and the thread are as they
    were). Store such a value as a string. `path` locates it (`row.payload.n`),
    `event` names the audit event.
    """

    def __init__(
        self, message: str, *, thread_id: str | None = None, event: str, path: str
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.event = event
        self.path = path


class ReviewIdRequiredError(InvalidInputError):
    """The thread has several pending reviews, and the call did not say which one.

    A gate whose message has several flagged tool calls waits for each in
    parallel, one review per call. Pass `review_id=` (one of `review_ids`, as
    `pending()` lists them) to `approve`, `reject`, `review` or `may_decide`.
    Nothing was changed.
    """

    def __init__(
        self, message: str, *, thread_id: str | None = None, review_ids: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.review_ids = review_ids


class StoreError(HitlError):
    """A review store's database failed during a call: connection, lock, constraint or trigger.

    Raised in place of the driver's own exception (`sqlite3.Error`,
    `psycopg.Error`), which is kept as `__cause__`, so no driver error crosses
    the [`ReviewStore`][hitl_compliance.ReviewStore] protocol. The call ran in
    one transaction that rolled back: nothing changed. Check the database
    (reachable, not locked, its tables not edited by hand) and call again.
    `backend` names the store (`"sqlite"`, `"postgres"`).
    """

    def __init__(
        self, message: str, *, thread_id: str | None = None, backend: str | None = None
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.backend = backend


class LegalHoldError(HitlError):
    """The thread is under legal hold: its records may not be pruned or erased.

    A hold (`await coord.place_hold(thread_id, reason=...)`) keeps every
    record of the thread, whatever its retention ceiling, until
    `await coord.release_hold(thread_id, by=...)`. `reason` and `placed_by`
    name the hold in force; nothing was deleted.
    """

    def __init__(
        self,
        message: str,
        *,
        thread_id: str | None = None,
        reason: str | None = None,
        placed_by: str | None = None,
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.reason = reason
        self.placed_by = placed_by


class DraftError(HitlError):
    """The drafter's reply is not text a store can keep.

    A drafter returns the reply as a `str` or as a message (`AIMessage`) with
    text content; format structured LLM output yourself. A reply asking for
    tool calls is refused: the factory graph delivers text only.
    """


class PauseDisabledError(HitlError):
    """A draft needed human review but the graph was built with `pause=False`.

    `pause=False` is for tests asserting the happy path never reaches review;
    reaching review there is a failure, never a silent pass.
    """


class NotAuthorizedError(HitlError):
    """The reviewer may not decide this review; a `denied` audit row records the attempt.

    The policy requires roles the reviewer lacks (`missing_roles`), or the
    reviewer requested the review and so may not approve it. The review stays
    paused and pending: ask an authorised reviewer.
    """

    def __init__(
        self,
        message: str,
        *,
        thread_id: str | None = None,
        reviewer: str | None = None,
        missing_roles: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.reviewer = reviewer
        self.missing_roles = missing_roles


class PolicyViolationError(HitlError):
    """The reviewer's edited reply breaks a `block` rule, so it cannot be delivered.

    Nothing changed; `findings` holds the rule results of the edit. Edit again
    or reject the review.
    """

    def __init__(
        self, message: str, *, thread_id: str | None = None, findings: tuple[object, ...] = ()
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.findings = findings


class StaleReviewError(HitlError):
    """The paused state differs from what the reviewer saw (`expected`): reload and re-check.

    Raised when `approve(..., expected=...)` names a draft hash or checkpoint id
    that is not the current review's, and when `approve()` meets a thread that
    was ended around its review (`update_state(..., as_node="__end__")`, Agent
    Inbox's "Mark as resolved"): nothing can be delivered there; `reject()`
    closes such a review. Nothing changed.
    """

    def __init__(
        self,
        message: str,
        *,
        thread_id: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.expected = expected
        self.actual = actual


class TamperedError(HitlError):
    """A review row differs from what the audit ledger committed to: it was edited in the database.

    Authorisation reads the review row (its findings, draft, requester, quorum,
    deadline, votes, status), so `approve`, `reject`, `may_decide` and the SLA
    sweeper first check it against the hash-chained ledger (the `paused` row's
    commitment, the `voted`, `dated`, `escalated` and decision rows). `mismatch`
    says what differs. Nothing was written (not even an audit row: the refusal
    is logged on the `hitl_compliance` logger). Investigate the database with
    `await coord.verify_audit(thread_id)` and restore the row from a backup.
    """

    def __init__(
        self,
        message: str,
        *,
        thread_id: str | None = None,
        review_id: str | None = None,
        mismatch: str = "",
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.review_id = review_id
        self.mismatch = mismatch


class UnsupportedMediaTypeError(InvalidInputError):
    """A state-changing request's body is not declared JSON, so it is refused (HTTP 415).

    A cross-site form or a `fetch` without a JSON `Content-Type` can carry the
    user's cookies without the browser asking the server first; refusing every
    body but JSON closes that path. Send `Content-Type: application/json` with
    a JSON body (`{}` for "no fields"). Nothing was decided.
    """

    def __init__(
        self, message: str, *, thread_id: str | None = None, content_type: str | None = None
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.content_type = content_type


class InputTooLargeError(InvalidInputError):
    """A text or metadata is larger than the [`InputLimits`][hitl_compliance.InputLimits] allow.

    Refused before anything is written: no checkpoint, no review row, no audit
    row. Shorten the input, or raise the limit where the coordinator (or
    `attach_authority`) is built. `field` names the input, `size` its size and
    `limit` the limit, both in `unit` (`"characters"` or `"bytes"`). The review
    service answers it with HTTP 413.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str,
        size: int,
        limit: int,
        unit: str,
        thread_id: str | None = None,
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.field = field
        self.size = size
        self.limit = limit
        self.unit = unit


class CrossOriginRequestError(HitlError):
    """A browser sent a state-changing request from a page of another origin (HTTP 403).

    With cookie authentication such a request would carry the reviewer's
    session, so it is refused before `authenticate` runs and nothing is
    decided or audited. A page of your own on another origin (a portal that
    calls the review API) must be listed in `create_review_router(...,
    trusted_origins=[...])`.
    """

    def __init__(
        self, message: str, *, thread_id: str | None = None, origin: str | None = None
    ) -> None:
        super().__init__(message, thread_id=thread_id)
        self.origin = origin


class SigningUnavailableError(ConfigurationError):
    """Signed audit heads need the `cryptography` package, which is not installed.

    Install the extra: `pip install "hitl-compliance[signing]"`.
    """


class LedgerHeadMissingError(StoreError):
    """The audit ledger's chain head row is gone: someone deleted it outside hitl-compliance.

    The store refuses to append (and to export) rather than rebuild the head
    from the last row, which would hide rows cut from the end with it. Run
    `verify_audit(public_key=...)` to see how far the ledger still proves
    itself, investigate, then restore the head row (`seq`, `hash` of the last
    row you trust) from a backup or by hand.
    """
