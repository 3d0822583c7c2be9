"""The compliance gate: review by a compliance officer as one node of your own graph.

[`compliance_gate`][hitl_compliance.compliance_gate] returns a compiled
subgraph that you add to your own `StateGraph` builder with
`builder.add_node("compliance", gate)` and wire with ordinary edges, typically
between the model node and whatever sends the reply (or runs its tool calls).

State contract (what the gate reads and writes in the parent graph):

* **reads** the candidate reply: the last message of `messages` when it is an
  `AIMessage` (the `MessagesState` shape, or a pydantic state with a
  `messages` field reduced by `add_messages`), or the field named by
  `text_field=` (e.g. `"draft_response"` on
  [`ComplianceState`][hitl_compliance.ComplianceState]); and, when the state
  has them, `customer_message` (else the last `HumanMessage`) and `requested_by`;
* **writes** what may reach the customer: the draft as it was when nothing was
  found, the approved or edited text, or the rejection message. With messages,
  the draft message is removed and the cleared reply appended as the gate's own
  `AIMessage` (a new id, the draft's tool calls kept unless rejected); with
  `text_field`, the field is overwritten;
* **writes** its outcome to the state key `key=` (default `"compliance"`): a
  plain dict with `status` (`clear`, `approved`, `edited`, `rejected`,
  `blocked`), the findings and the decision, read as a typed
  [`GateOutcome`][hitl_compliance.GateOutcome] with
  [`GateOutcome.from_state`][hitl_compliance.GateOutcome.from_state]. A state
  without that key still gets the outcome on the cleared message's
  `response_metadata["hitl_compliance"]`.

Both pause styles of [`build_compliance_graph`][hitl_compliance.build_compliance_graph]
exist here too. `command_resume` pauses with `interrupt()` and a `response_schema` (see
`hitl_compliance._pause`): LangGraph refuses a resume value that is not a
[`Decision`][hitl_compliance.Decision] before it saves it, so a bad value can
never poison the thread. `interrupt_before` stops before the gate's
`human_approval` node; a decision written there with `update_state(...,
as_node="human_approval")` is validated by the gate, and an invalid one sends
the thread back to the same pause with the refusal in `refused`.

Several flagged tool calls of one message: in the `command_resume` style each
waits in parallel, one `interrupt()` per call (one LangGraph `Send` task each),
so `Command(resume={interrupt_id: decision})` decides one and leaves the others
pending; the reply text, when flagged, is reviewed first and alone. The
`interrupt_before` style pauses for them one after another: a static pause is
one stop before one node, and its decision is one state write to that node.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from typing import Annotated, Any, Literal, Protocol, TypeAlias, cast

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langgraph.constants import TAG_HIDDEN, TAG_NOSTREAM
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Send, StateSnapshot
from pydantic import BaseModel, ConfigDict, ValidationError
from typing_extensions import TypedDict

from hitl_compliance._authority import (
    AUTHORITY_KEY,
    AuthoritySlot,
    DecisionAuthority,
    authenticated_reviewer,
    driven,
    limits_of,
    ready_store,
    remote_driven,
)
from hitl_compliance._builds import BuildRegistry
from hitl_compliance._drafting import drafter_name
from hitl_compliance._gate_items import (
    advance,
    check_items,
    cleared_messages,
    describe_call,
    focus,
    judge,
    plain_calls,
    waiting,
)
from hitl_compliance._inbox import (
    describe,
    fit_to_call,
    human_interrupt,
    signed_by_server_user,
)
from hitl_compliance._pause import ask, replayed
from hitl_compliance._replies import AUTO, RuleSet, outcome_of, record_reply
from hitl_compliance._stops import holding, product_of, run_store
from hitl_compliance._text import plain_text
from hitl_compliance.errors import (
    ConfigurationError,
    DraftError,
    HitlError,
    InputTooLargeError,
    InvalidDecisionError,
)
from hitl_compliance.models import ReviewRecord
from hitl_compliance.rules import ComplianceRule, RuleResult, rule_targets
from hitl_compliance.state import Decision, GateView
from hitl_compliance.stops import stop_finding
from hitl_compliance.stores._legacy import is_legacy, wrap_legacy
from hitl_compliance.stores.base import ReviewStore

__all__ = [
    "AUTHORITY_KEY",
    "CALLED_GATE",
    "DECIDED_KEY",
    "DEFAULT_REJECTION",
    "GATE_KEY",
    "GATE_NODES",
    "PAYLOAD_KIND",
    "Authority",
    "GateItem",
    "GateOutcome",
    "GatePause",
    "GateStatus",
    "GateTarget",
    "compliance_gate",
    "contains_gate",
    "gate_options",
    "gate_pauses",
    "gate_review_checkpoint",
    "gates_in",
    "is_gate",
    "pauses_in",
    "protect_stream",
    "resume_gate",
    "route_after_gate",
]

GATE_KEY = "compliance"
"""The default state key of a gate's outcome."""

DECIDED_KEY = "hitl_gate_decided"
"""The gate's own channel where its parallel `human_approval` tasks leave their decided items."""

GATE_NODES = ("check", "human_approval", "refuse", "settle", "apply")
"""The gate's own nodes; the pause is before (static) or inside (dynamic) `human_approval`."""

DEFAULT_REJECTION = "I'm sorry, I can't help with that here. A member of our team will follow up."
"""What the customer gets from a gate on rejection when no `rejection_message` is given."""

PAYLOAD_KIND = "hitl_compliance.review"
"""The `kind` of every gate interrupt payload, so a caller can tell gate pauses from others."""

GateStatus: TypeAlias = Literal["clear", "pending", "approved", "edited", "rejected", "blocked"]
"""Where a gate stands: `pending` while paused; the others once it has passed."""

_PauseStyle: TypeAlias = Literal["interrupt_before", "command_resume"]
_STYLES = frozenset({"interrupt_before", "command_resume"})
_ASYNC_CONTEXT = sys.version_info >= (3, 11)


GateTarget: TypeAlias = Literal["text", "tool_call"]
"""What one gate review is about: the reply text or one tool call."""


class GateItem(BaseModel):
    """One item a gate checked: the reply text or one tool call, with its own review.

    `tool_call` is the call as the model proposed it (`name`, `args`, `id`);
    `args` the arguments it runs with (the edit, if any), None when it does not
    run. A flagged item pauses on its own, under its own `review_id`.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    review_id: str
    target: GateTarget = "text"
    tool_call: dict[str, Any] | None = None
    draft: str = ""
    findings: tuple[RuleResult, ...] = ()
    status: GateStatus = "clear"
    decision: Decision | None = None
    edit_findings: tuple[RuleResult, ...] = ()
    refused: str | None = None
    args: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateItem:
        """The item from its plain-data form in state."""
        values = dict(data)
        for name in ("findings", "edit_findings"):
            values[name] = tuple(RuleResult.from_dict(f) for f in data.get(name) or ())
        return cls.model_validate(values)


class GateOutcome(BaseModel):
    """A gate's outcome as a typed value: what it found, who decided, what was let through.

    While a gate is paused, the top-level fields describe the item under review
    (`target` says whether it is the text or which `tool_call`; `review_id`,
    `draft`, `findings` are that item's). Once the gate has passed they describe
    the reply text, and each tool call's own outcome is in `items` (after the
    text item, in the message's order).

    Example:
        ```python
        outcome = GateOutcome.from_state(await graph.aget_state(config))
        if outcome is not None and outcome.status == "pending":
            print(outcome.target, outcome.tool_call, outcome.findings[0].reason)
        ```
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    status: GateStatus
    gate: str
    review_id: str
    draft: str
    findings: tuple[RuleResult, ...] = ()
    customer_message: str = ""
    requested_by: str | None = None
    decision: Decision | None = None
    delivered: str | None = None
    refused: str | None = None
    target: GateTarget = "text"
    tool_call: dict[str, Any] | None = None
    items: tuple[GateItem, ...] = ()
    pass_id: str | None = None

    @property
    def tool_calls(self) -> tuple[GateItem, ...]:
        """The items of the message's tool calls, in order."""
        return tuple(item for item in self.items if item.target == "tool_call")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateOutcome:
        """The outcome from its plain-data form in state."""
        values = dict(data)
        values["findings"] = tuple(RuleResult.from_dict(f) for f in data.get("findings") or ())
        values["items"] = tuple(GateItem.from_dict(i) for i in data.get("items") or ())
        for internal in ("draft_id", "kind", "current"):
            values.pop(internal, None)
        return cls.model_validate(values)

    @classmethod
    def from_state(cls, state: Any, key: str = GATE_KEY) -> GateOutcome | None:
        """The outcome a gate left in `state` (a dict, a pydantic state or a snapshot).

        Falls back to the last `AIMessage`'s `response_metadata["hitl_compliance"]`
        (after any tool messages) when the state has no `key`; None when no gate
        has run.
        """
        values = state if isinstance(state, dict) else getattr(state, "values", state)
        if isinstance(values, BaseModel):
            values = dict(values)
        data = values.get(key) if isinstance(values, dict) else None
        if data is None and isinstance(values, dict):
            for message in reversed(values.get("messages") or ()):
                if isinstance(message, ToolMessage):
                    continue
                if isinstance(message, AIMessage):
                    data = message.response_metadata.get("hitl_compliance")
                break
        return None if data is None else cls.from_dict(data)


class _GateSpec(BaseModel):
    """The build options of one gate, as the coordinator reads them."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    style: _PauseStyle
    rules: tuple[Any, ...]
    key: str
    text_field: str | None
    rejection_message: str
    reviews: Any = None
    slot: AuthoritySlot
    fallback: Any = None
    ruleset: RuleSet = RuleSet((), "")


_GATES: BuildRegistry[_GateSpec] = BuildRegistry()


def is_gate(node: Any) -> bool:
    """Whether `node` is a gate made by `compliance_gate` (or a copy of one)."""
    return _GATES.find(node) is not None


CALLED_GATE = "__hitl_compliance_gate__"
"""The attribute naming the gate a node's function runs itself (a LangChain agent's
`ComplianceMiddleware` hook): LangGraph runs it as that node's subgraph."""


def _called_gate(node: Any) -> Any:
    """The gate the function of node `node` runs (see `CALLED_GATE`), or None."""
    for attr in ("afunc", "func"):
        gate = getattr(getattr(node, attr, None), CALLED_GATE, None)
        if gate is not None:
            return gate
    return None


def gate_options(node: Any) -> _GateSpec:
    """The build options of a gate (or of the gate a node's function runs).

    Raises:
        ConfigurationError: `node` is not a gate.
    """
    spec = _GATES.find(node) or _GATES.find(_called_gate(node))
    if spec is None:
        raise ConfigurationError(f"{type(node).__name__} is not a compliance_gate().")
    return spec


def _keep_removals(left: Any, right: Any) -> list[Any]:
    """Append without applying `RemoveMessage`s, so the parent's `add_messages` applies them."""
    left_list = list(left) if isinstance(left, (list, tuple)) else ([] if left is None else [left])
    right_list = list(right) if isinstance(right, (list, tuple)) else [right]
    return left_list + right_list


def _text_of(message: BaseMessage) -> str:
    """The plain text of a message whose content may be a string or content blocks."""
    content = message.content
    if isinstance(content, str):
        return content
    return str(message.text)


def compliance_gate(
    rules: Sequence[ComplianceRule] = (),
    *,
    style: _PauseStyle = "command_resume",
    key: str = GATE_KEY,
    text_field: str | None = None,
    rejection_message: str | None = None,
    name: str = "compliance_gate",
    reviews: ReviewStore | None = None,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A node that holds a risky reply for a compliance officer, for any `StateGraph`.

    Args:
        rules: [`ComplianceRule`][hitl_compliance.ComplianceRule]s with unique names;
            they see a [`GateView`][hitl_compliance.GateView] (`customer_message`,
            `draft_response`, `requested_by`, `tool_calls`, `tool_call`). A rule
            checks the reply text unless its `applies_to` includes `"tool_call"`
            (as [`ToolCallRule`][hitl_compliance.ToolCallRule]'s does); then it
            checks each tool call of the message.
        style: `"command_resume"` (the gate calls `interrupt()`) or
            `"interrupt_before"` (a static pause before its `human_approval` node).
        key: The state key the outcome is written to (routing on it is optional).
        text_field: Read and write the reply in this string field instead of
            the last `AIMessage` of `messages`.
        rejection_message: What the customer gets when the reply is rejected or
            blocked (default [`DEFAULT_REJECTION`][hitl_compliance.gate.DEFAULT_REJECTION]).
        name: The subgraph's name (shown in traces).
        reviews: The review store the gate answers to when no
            [`HitlCoordinator`][hitl_compliance.HitlCoordinator] runs the graph
            (a raw `ainvoke`, a server, a script): the gate records each pause
            there itself (a pending review and its `paused` audit row, once per
            pause), so it is in `pending()` of any coordinator on that store, and
            it refuses any decision that store does not hold as claimed (a raw
            `Command(resume=...)` or `update_state`), sending the thread back to
            the same pause with the refusal in `refused`. Without it, and with no
            coordinator driving the run, the gate trusts whoever resumes it.

    Raises:
        ConfigurationError: a bad rule, style, key or message.

    Example:
        ```python
        builder = StateGraph(MessagesState)
        builder.add_node("model", call_model)
        builder.add_node("compliance", compliance_gate([KeywordRule("guarantee", ["guaranteed"])]))
        builder.add_edge(START, "model")
        builder.add_edge("model", "compliance")
        builder.add_edge("compliance", END)
        graph = builder.compile(checkpointer=InMemorySaver())
        ```
    """
    if style not in _STYLES:
        raise ConfigurationError(
            f"style must be 'interrupt_before' or 'command_resume', got {style!r}."
        )
    for label, value in (("key", key), ("name", name)):
        if not isinstance(value, str) or not value.isidentifier():
            raise ConfigurationError(f"{label} must be a Python identifier, got {value!r}.")
    if text_field is not None and not (isinstance(text_field, str) and text_field.isidentifier()):
        raise ConfigurationError(f"text_field must be a field name or None, got {text_field!r}.")
    if text_field in {key, "messages"}:
        raise ConfigurationError(f"text_field {text_field!r} clashes with the gate's own keys.")
    message = DEFAULT_REJECTION if rejection_message is None else rejection_message
    if not isinstance(message, str) or not message.strip():
        raise ConfigurationError("rejection_message must be a non-blank str.")
    rule_list = _check_rules(rules)
    if reviews is not None and is_legacy(reviews):
        reviews = cast(ReviewStore, wrap_legacy(reviews))  # a store from before newer methods
    if reviews is not None and not isinstance(reviews, ReviewStore):
        raise ConfigurationError(
            f"reviews must implement ReviewStore, got {type(reviews).__name__}."
        )
    spec = _GateSpec(
        name=name,
        style=style,
        rules=rule_list,
        key=key,
        text_field=text_field,
        rejection_message=message,
        reviews=reviews,
        slot=AuthoritySlot(),
        fallback=None if reviews is None else _store_authority(reviews),
        ruleset=RuleSet.of(rule_list),
    )
    return _compile(spec)


def _store_authority(reviews: ReviewStore) -> DecisionAuthority:
    # Imported here: the coordination package imports this module.
    from hitl_compliance._coordination.in_graph import store_authority

    return store_authority(reviews)


def _check_rules(rules: Sequence[ComplianceRule]) -> tuple[ComplianceRule, ...]:
    rule_list = tuple(rules)
    seen: set[str] = set()
    for rule in rule_list:
        if not isinstance(rule, ComplianceRule):
            raise ConfigurationError(
                f"{rule!r} is not a ComplianceRule: it needs a `name` and `evaluate(state)`."
            )
        if rule.name in seen:
            raise ConfigurationError(f"Rule names must be unique; {rule.name!r} appears twice.")
        seen.add(rule.name)
        rule_targets(rule)  # a bad `applies_to` fails here, not on the first draft
        field = getattr(rule, "field", None)
        if isinstance(field, str) and field not in GateView.model_fields:
            raise ConfigurationError(
                f"Rule {rule.name!r} reads field {field!r}; a gate's rules see the GateView "
                "(customer_message, draft_response, requested_by, tool_calls, tool_call)."
            )
    return rule_list


def _schemas(spec: _GateSpec) -> tuple[type[Any], type[Any], type[Any]]:
    """The gate's (state, input, output) TypedDicts for its configuration."""
    reply: dict[str, Any]
    if spec.text_field is None:
        reply = {"messages": Annotated[list[AnyMessage], _keep_removals]}
    else:
        reply = {spec.text_field: str | None}
    extra = {"customer_message": str | None, "requested_by": str | None}
    outcome = {spec.key: dict[str, Any] | None}
    decided = {DECIDED_KEY: Annotated[dict[str, Any], _merge_decided]}
    state = TypedDict("GateState", {**reply, **extra, **outcome, **decided}, total=False)  # type: ignore[misc]
    inputs = TypedDict("GateInput", {**reply, **extra}, total=False)  # type: ignore[misc]
    outputs = TypedDict("GateOutput", {**reply, **outcome}, total=False)  # type: ignore[misc]
    return state, inputs, outputs


def _merge_decided(left: Any, right: Any) -> dict[str, Any]:
    """The decided items of one wave of parallel reviews, by index; None clears them."""
    if right is None:
        return {}
    return {**(left or {}), **right}


def _compile(spec: _GateSpec) -> CompiledStateGraph[Any, Any, Any, Any]:
    state, inputs, outputs = _schemas(spec)
    builder: Any = StateGraph(state, input_schema=inputs, output_schema=outputs)
    builder.add_node("check", _node(_check_node(spec)))
    builder.add_node("human_approval", _node(_approval_node(spec)))
    builder.add_node("refuse", _node(_refuse_node(spec)))
    builder.add_node("settle", _node(_settle_node(spec)))
    builder.add_node("apply", _node(_apply_node(spec)))
    builder.add_edge(START, "check")
    builder.add_conditional_edges("check", _route_pending(spec), ["human_approval", "apply"])
    builder.add_conditional_edges("human_approval", _route_decision(spec), ["settle", "refuse"])
    builder.add_edge("refuse", "human_approval")
    # After a decision: the same item again (refused edit), the next flagged item, or apply.
    builder.add_conditional_edges("settle", _route_pending(spec), ["human_approval", "apply"])
    builder.add_edge("apply", END)
    static = spec.style == "interrupt_before"
    # No checkpointer of its own: a subgraph node uses its parent's. The gate checks
    # at run time that the parent has one (LangGraph would silently not pause).
    compiled: CompiledStateGraph[Any, Any, Any, Any] = builder.compile(
        interrupt_before=["human_approval"] if static else None, name=spec.name
    )
    _GATES.register(builder, spec)
    return compiled


def _node(fn: Any) -> Any:
    """`fn(state, config)` as a node; before 3.11 the run's config is set in context."""
    if _ASYNC_CONTEXT:
        return fn

    async def with_config(state: Any, config: RunnableConfig) -> Any:
        token = var_child_runnable_config.set(config)
        try:
            return await fn(state, config)
        finally:
            var_child_runnable_config.reset(token)

    with_config.__name__ = getattr(fn, "__name__", "node")
    return with_config


def _review_id(config: RunnableConfig) -> str:
    """A stable id for this gate pass: the same on every re-execution of its nodes."""
    configurable = config.get("configurable") or {}
    thread = str(configurable.get("thread_id", ""))
    ns = str(configurable.get("checkpoint_ns", ""))
    gate_ns = ns.rsplit("|", 1)[0] if "|" in ns else ns
    return hashlib.sha256(f"{thread}\x00{gate_ns}".encode()).hexdigest()[:32]


def _candidate(spec: _GateSpec, state: dict[str, Any]) -> tuple[str, AIMessage | None]:
    """The reply to check: its text, and the message carrying it (None in text mode)."""
    if spec.text_field is not None:
        value = state.get(spec.text_field)
        if value is not None and not isinstance(value, str):
            raise DraftError(
                f"The gate reads {spec.text_field!r} as the reply, which holds "
                f"{type(value).__name__}, not str."
            )
        return value or "", None
    messages = state.get("messages") or []
    last = messages[-1] if messages else None
    if not isinstance(last, AIMessage):
        return "", None
    return _text_of(last), last


def _customer_message(state: dict[str, Any]) -> str:
    given = state.get("customer_message")
    if isinstance(given, str):
        return given
    for message in reversed(state.get("messages") or []):
        if isinstance(message, HumanMessage):
            return _text_of(message)
    return ""


class Authority(Protocol):
    """What a coordinator driving the run gives its gates: the store decisions are claimed in."""

    @property
    def reviews(self) -> ReviewStore:
        """The coordinator's review store."""
        ...


def _decider(spec: _GateSpec, config: RunnableConfig) -> DecisionAuthority | None:
    """Who checks and claims a decision the coordinator did not make (None: a driven run)."""
    if driven(config):
        return None
    attached = spec.slot.authority
    return attached if attached is not None else spec.fallback


def gate_review_checkpoint(checkpoint_id: str, review_id: str) -> str:
    """The `ReviewRecord.checkpoint_id` of a gate's pause: parent checkpoint and review id."""
    return f"{checkpoint_id}:{review_id}"


async def _record_pause(
    decider: DecisionAuthority, config: RunnableConfig, outcome: dict[str, Any]
) -> None:
    """Open the pending review of a pause nobody else will record (idempotent per pause)."""
    configurable = config.get("configurable") or {}
    checkpoint_map = configurable.get("checkpoint_map") or {}
    review = ReviewRecord(
        review_id=outcome["review_id"],
        thread_id=str(configurable.get("thread_id", "")),
        checkpoint_id=gate_review_checkpoint(
            str(checkpoint_map.get("", configurable.get("checkpoint_id", ""))),
            outcome["review_id"],
        ),
        status="pending",
        customer_message=outcome["customer_message"],
        draft_response=outcome["draft"],
        violations=[RuleResult.from_dict(f) for f in outcome["findings"]],
        requested_at=datetime.now(timezone.utc),
        requested_by=outcome["requested_by"],
    )
    await decider.record_pause(review)


async def _refusal(
    spec: _GateSpec, config: RunnableConfig, outcome: dict[str, Any], decision: Decision
) -> str | None:
    """In a coordinator's run: why `decision` may not be applied, or None if it holds it claimed.

    A coordinator in this process names its store in the run's config; a trusted
    coordinator driving the deployment over its API shares the store attached here.
    """
    given = (config.get("configurable") or {}).get(AUTHORITY_KEY)
    if given is None and remote_driven(config):
        given = spec.slot.authority or spec.fallback
        if given is None:
            return (
                "refused: a coordinator's run reached a gate with no review store attached "
                "(attach_authority) to check its decision against."
            )
    if given is None:
        return None
    store: ReviewStore = await ready_store(given) if remote_driven(config) else given.reviews
    thread_id = str((config.get("configurable") or {}).get("thread_id", ""))
    review = await _held_review(store, thread_id, outcome["review_id"])
    held = None if review is None else review.decision
    if (
        review is not None
        and review.review_id == outcome["review_id"]
        and review.status != "pending"
        and held is not None
        and held.get("reviewer") == decision.reviewer
        and held.get("approved") == decision.approved
        and held.get("decided_at") == decision.to_state()["decided_at"]
    ):
        return None
    status = "not recorded" if review is None else review.status
    return (
        f"refused: review {outcome['review_id']} is {status} in the review store and holds "
        "no such decision; decide it with HitlCoordinator.approve()/reject() (or the "
        "review service), which check the policy, claim the review and record it."
    )


async def _held_review(store: ReviewStore, thread_id: str, review_id: str) -> ReviewRecord | None:
    """Review `review_id` while it is open (one of several, maybe), else the thread's latest."""
    # A store from before several open reviews per thread has no `open_reviews`.
    finder = getattr(store, "open_reviews", None)
    if callable(finder):
        for review in await finder(thread_id):
            if review.review_id == review_id:
                return review  # type: ignore[no-any-return]
    return await store.get_review(thread_id)


def _check_node(spec: _GateSpec) -> Any:
    async def check(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        configurable = config.get("configurable") or {}
        if configurable.get("__pregel_checkpointer") is None:
            raise ConfigurationError(
                "The graph holding this compliance gate has no checkpointer: LangGraph "
                "would not pause for review. Compile the parent graph with "
                "checkpointer=InMemorySaver() (tests) or open_backend(...).checkpointer."
            )
        text, message = _candidate(spec, state)
        try:
            plain_text(text)
        except ValueError as exc:
            raise DraftError(f"The reply under review {exc}; clean it first.") from None
        calls = [] if message is None else plain_calls(message)
        context = {
            "customer_message": _customer_message(state),
            "requested_by": state.get("requested_by"),
        }
        pass_id = _review_id(config)
        # A stop switched on in the store holds every item for review, whatever the rules say.
        store = await run_store(config, spec.slot.authority, spec.fallback)
        stops = await holding(store, ruleset=spec.ruleset.fingerprint, product=product_of(state))
        held = [stop_finding(stops)] if stops else []
        items = await check_items(spec.rules, pass_id, text, calls, context, held)
        outcome: dict[str, Any] = {
            **context,
            "gate": spec.name,
            "pass_id": pass_id,
            "items": items,
            "delivered": None,
            "draft_id": None if message is None else message.id,
            "kind": PAYLOAD_KIND,
        }
        advanced = advance(outcome)
        decider = _decider(spec, config)
        if advanced["status"] == "pending" and decider is not None:
            # A coordinator records the pauses of the runs it drives; anyone else's
            # pause is recorded here, so it is never invisible to pending().
            for index in _waves(spec, advanced):
                await _record_pause(decider, config, focus(advanced, index))
        return {spec.key: advanced}

    return check


def _waves(spec: _GateSpec, outcome: dict[str, Any]) -> list[int]:
    """The items the gate pauses for now: all flagged calls at once (dynamic), else one."""
    if spec.style == "command_resume":
        return waiting(outcome)
    current = outcome.get("current")
    return [] if outcome.get("status") != "pending" or current is None else [current]


def _route_pending(spec: _GateSpec) -> Any:
    async def route(state: dict[str, Any]) -> Any:
        outcome = state[spec.key]
        if outcome["status"] != "pending":
            return "apply"
        if spec.style == "interrupt_before":
            return "human_approval"
        # One task per waiting item: each pauses with its own interrupt, and a resume of
        # one (by its interrupt id) leaves the others waiting.
        return [
            Send("human_approval", {**state, spec.key: focus(outcome, index), DECIDED_KEY: {}})
            for index in waiting(outcome)
        ]

    return route


def review_payload(outcome: dict[str, Any]) -> dict[str, Any]:
    """What a gate pause shows a reviewer: plain data, as sent to `interrupt()`.

    `target` says what is under review: `"text"` (the reply in `draft_response`)
    or `"tool_call"` (`tool_call` holds its `name`, `args` and `id`, and
    `draft_response` a one-line rendering of it). The same review is also in
    Agent Inbox's `HumanInterrupt` schema (`action_request`, `config`, and a
    Markdown `description` with the findings and their evidence).
    """
    pending = [i for i in outcome.get("items") or () if i.get("status") == "pending"]
    target = outcome.get("target", "text")
    description = describe(
        target=target,
        customer_message=outcome["customer_message"],
        draft=outcome["draft"],
        tool_call=outcome.get("tool_call"),
        findings=outcome["findings"],
        refused=outcome.get("refused"),
        review_id=outcome["review_id"],
    )
    return {
        # Agent Inbox's HumanInterrupt: it lists only pauses in its own schema.
        **human_interrupt(
            target=target,
            draft=outcome["draft"],
            tool_call=outcome.get("tool_call"),
            description=description,
        ),
        "kind": PAYLOAD_KIND,
        "gate": outcome["gate"],
        "review_id": outcome["review_id"],
        "customer_message": outcome["customer_message"],
        "draft_response": outcome["draft"],
        "violations": list(outcome["findings"]),
        "requested_by": outcome["requested_by"],
        "refused": outcome.get("refused"),
        "target": target,
        "tool_call": outcome.get("tool_call"),
        "pending_items": len(pending),
    }


def _approval_node(spec: _GateSpec) -> Any:
    async def human_approval(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        outcome = state[spec.key]
        if spec.style == "interrupt_before":
            # A decision is written with update_state(..., as_node="human_approval"),
            # which skips this body; running it means a resume without a decision.
            raise InvalidDecisionError(
                "The gate's static pause was resumed without a decision. Write one with "
                "update_state(config, {...}, as_node='human_approval') or use "
                "HitlCoordinator.approve()/reject(); ainvoke(None) alone decides nothing."
            )
        index = 0
        shown = outcome
        while True:
            # Every resume value is validated by LangGraph before it is saved; one the
            # checks refuse is answered with a new pause, never an exception (which
            # would poison the thread with the saved value).
            answer = ask(partial(review_payload, shown), config, index)
            if replayed(config, index):
                index += 1  # refused (and recorded) when it first arrived
                continue
            index += 1
            made = fit_to_call(signed_by_server_user(answer, config), _call_under_review(outcome))
            decided = made if isinstance(made, str) else await _decide(spec, config, outcome, made)
            if not isinstance(decided, str):
                # Recorded now, not when the wave ends: the other reviews of the wave
                # stay decidable. `settle` applies the wave's items once every
                # parallel task of it has ended.
                await _complete(spec, config, [decided])
                return {DECIDED_KEY: {str(outcome["current"]): decided}}
            shown = {**outcome, "refused": decided}

    return human_approval


def _call_under_review(outcome: dict[str, Any]) -> dict[str, Any] | None:
    """The tool call a review is of (None for the reply text)."""
    call: dict[str, Any] | None = outcome.get("tool_call")
    return call if outcome.get("target") == "tool_call" else None


async def _decide(
    spec: _GateSpec, config: RunnableConfig, outcome: dict[str, Any], decision: Decision
) -> dict[str, Any] | str:
    """The item under review with `decision` applied; or why it is refused.

    The edit is re-checked by the rules first (as `approve()` does before it
    claims). Then, in a coordinator's run, the decision must be the one its
    store holds claimed; in anyone else's, the authority attached to the gate
    checks and claims it as `approve()` / `reject()` would.
    """
    if not driven(config) or remote_driven(config):
        # Before the rules scan an edit: a resume past the limits is refused unread.
        try:
            limits_of(spec.slot.authority or spec.fallback).check_decision(
                decision, thread_id=_thread_id(config)
            )
        except InputTooLargeError as exc:
            return f"refused: {exc}"
    decided = await judge(spec.rules, outcome, decision)
    if isinstance(decided, str):
        return decided
    decider = _decider(spec, config)
    if decider is None:
        reason = await _refusal(spec, config, outcome, decision)
        return decided if reason is None else reason
    claimed = await decider.decide(
        thread_id=_thread_id(config),
        review_id=outcome["review_id"],
        made=decision,
        edit_findings=[RuleResult.from_dict(f) for f in decided["edit_findings"]],
        reviewer=authenticated_reviewer(config),
    )
    if isinstance(claimed, HitlError):
        return f"refused: {claimed}"
    # As claimed: the authenticated reviewer, the approvers of a quorum.
    return {**decided, "decision": claimed.to_state()}


def _thread_id(config: RunnableConfig) -> str:
    return str((config.get("configurable") or {}).get("thread_id", ""))


async def _complete(spec: _GateSpec, config: RunnableConfig, items: list[dict[str, Any]]) -> None:
    """Record the outcome of decisions claimed inside the graph (not in a coordinator's run)."""
    decider = _decider(spec, config)
    if decider is None:
        return
    for item in items:
        if item.get("decision") is None:
            continue
        await decider.complete(
            thread_id=_thread_id(config),
            review_id=item["review_id"],
            made=Decision.model_validate(item["decision"]),
            delivered=_item_delivered(spec, item),
        )


def _item_delivered(spec: _GateSpec, item: dict[str, Any]) -> str | None:
    """What one decided item lets through: the text, or the call that runs (None: refused)."""
    if item["target"] == "text":
        return _delivered(spec, item)
    if item["status"] not in {"approved", "edited"}:
        return None
    return describe_call({"name": item["tool_call"]["name"], "args": item.get("args") or {}})


def _valid_decision(outcome: dict[str, Any]) -> Decision | str:
    """The outcome's decision, validated; or why it was refused."""
    raw = outcome.get("decision")
    if raw is None:
        return "no decision was given"
    try:
        return raw if isinstance(raw, Decision) else Decision.model_validate(raw)
    except ValidationError as exc:
        return f"invalid decision: {exc.errors(include_url=False)}"


async def _why_refused(
    spec: _GateSpec, config: RunnableConfig, outcome: dict[str, Any]
) -> str | None:
    """Why the decision written into a static pause may not be applied, or None.

    Read-only (it runs in `update_state` too): a coordinator's run needs the
    decision its store holds claimed; anyone else's is checked and claimed in
    `settle`.
    """
    checked = _valid_decision(outcome)
    if isinstance(checked, str):
        return checked
    return await _refusal(spec, config, outcome, checked)


def _route_decision(spec: _GateSpec) -> Any:
    async def route(state: dict[str, Any], config: RunnableConfig) -> str:
        outcome = state[spec.key]
        if spec.style == "command_resume":
            return "settle"  # checked inside human_approval, before it returned
        return "settle" if await _why_refused(spec, config, outcome) is None else "refuse"

    return route


def _refuse_node(spec: _GateSpec) -> Any:
    async def refuse(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        outcome = state[spec.key]
        refused = await _why_refused(spec, config, outcome) or "the decision was refused"
        return {spec.key: {**outcome, "decision": None, "refused": refused}}

    return refuse


def _settle_node(spec: _GateSpec) -> Any:
    async def settle(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        outcome = state[spec.key]
        if spec.style == "command_resume":
            items = list(outcome["items"])
            decided = (state.get(DECIDED_KEY) or {}).items()
            for index, item in decided:
                items[int(index)] = item
            return {spec.key: advance({**outcome, "items": items}), DECIDED_KEY: None}
        decision = _valid_decision(outcome)
        assert isinstance(decision, Decision)  # routed here only with a valid one
        judged = await _decide(spec, config, outcome, decision)
        if isinstance(judged, str):
            # Back to the same pause: nothing of this decision is applied.
            return {spec.key: {**outcome, "decision": None, "refused": judged}}
        await _complete(spec, config, [judged])
        items = list(outcome["items"])
        items[outcome["current"]] = judged
        return {spec.key: advance({**outcome, "items": items})}

    return settle


def _delivered(spec: _GateSpec, text_item: dict[str, Any]) -> str:
    status = text_item["status"]
    if status in {"clear", "approved"}:
        return str(text_item["draft"])
    if status == "edited":
        return str(text_item["decision"]["response"])
    return spec.rejection_message


def _apply_node(spec: _GateSpec) -> Any:
    async def apply(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        outcome = advance(state[spec.key])  # the text's view: every item is decided here
        text_item = outcome["items"][0]
        delivered = _delivered(spec, text_item)
        final = {**outcome, "delivered": delivered, "refused": None}
        update: dict[str, Any] = {spec.key: final}
        _text, draft = _candidate(spec, state)
        if spec.text_field is not None:
            await _record_reply(spec, config, final, delivered, None)
            update[spec.text_field] = delivered
            return update
        if draft is None:
            await _record_reply(spec, config, final, delivered, None)
            return update
        await _record_reply(spec, config, final, delivered, draft)
        summary = {k: v for k, v in final.items() if k != "draft_id"}
        # The draft leaves the conversation and the cleared reply takes its place, under a
        # new id: LangGraph's `messages` stream dedupes by id, and the draft's id was seen.
        cleared = cleared_messages(draft, delivered, final, summary)
        update["messages"] = [RemoveMessage(id=str(draft.id)), *cleared] if draft.id else cleared
        return update

    return apply


def _decided_by(item: dict[str, Any]) -> str:
    decision = item.get("decision") or {}
    return str(decision.get("reviewer") or AUTO)


async def _record_reply(
    spec: _GateSpec,
    config: RunnableConfig,
    final: dict[str, Any],
    delivered: str,
    draft: AIMessage | None,
) -> None:
    """Append this pass's `replied` ledger event to the gate's store (see `_replies`)."""
    text_item, *call_items = final["items"]
    decided_by = _decided_by(text_item)
    configurable = config.get("configurable") or {}
    await record_reply(
        spec.slot.authority or spec.fallback,
        thread_id=str(configurable.get("thread_id", "")),
        # The reply's review, when one was opened (a rule's block opens none).
        review_id=text_item["review_id"] if text_item.get("decision") else None,
        checkpoint_id=str(configurable.get("checkpoint_id") or "") or None,
        outcome=outcome_of(
            sent=text_item["status"] in {"clear", "approved", "edited"},
            edited=text_item["status"] == "edited",
            decided_by=decided_by,
        ),
        delivered=delivered,
        ruleset=spec.ruleset,
        drafter=None if draft is None else drafter_name(draft),
        decided_by=decided_by,
        turn=final["pass_id"],
        tool_calls=[
            {
                "id": item["tool_call"]["id"],
                "name": item["tool_call"]["name"],
                "status": item["status"],
                "decided_by": _decided_by(item),
            }
            for item in call_items
        ],
    )


@dataclass(frozen=True, slots=True)
class GatePause:
    """One gate of a thread waiting for a decision, wherever it sits in the graph.

    `config` is the gate's own checkpoint config (its namespace inside the
    parent): a static pause is decided by writing there. `interrupt_id` is the
    LangGraph interrupt a dynamic pause is resumed by. `target` is what is under
    review: the reply `"text"`, or a `"tool_call"` (then `tool_call` holds its
    `name`, `args` and `id`). In the `command_resume` style, the flagged tool
    calls of one message wait in parallel, one pause each (each with its own
    `review_id` and `interrupt_id`); in the `interrupt_before` style a gate
    pauses for its items one after another, and this is the one under review now.
    """

    review_id: str
    style: _PauseStyle
    key: str
    config: RunnableConfig
    interrupt_id: str | None
    outcome: GateOutcome
    raw: dict[str, Any]
    target: GateTarget = "text"
    tool_call: dict[str, Any] | None = None


def _outcome_in(values: Any) -> tuple[str, dict[str, Any]] | None:
    """The (key, outcome) a gate's own state holds, if `values` is a gate's state."""
    if not isinstance(values, dict):
        return None
    for key, value in values.items():
        if isinstance(value, dict) and value.get("kind") == PAYLOAD_KIND:
            return key, value
    return None


async def gate_pauses(graph: Any, config: RunnableConfig) -> list[GatePause]:
    """Every gate of the thread in `config` that waits for a decision, at any depth.

    Reads the thread's snapshot with its subgraphs once; works on the parent
    graph, on copies of it and on any graph the gate is nested in.
    """
    return pauses_in(await graph.aget_state(config, subgraphs=True))


def pauses_in(snapshot: StateSnapshot) -> list[GatePause]:
    """Every waiting gate in a snapshot read with `subgraphs=True`."""
    found: list[GatePause] = []
    _collect(snapshot, found)
    return found


def _collect(snapshot: StateSnapshot, found: list[GatePause]) -> None:
    for task in snapshot.tasks:
        sub = task.state
        if not isinstance(sub, StateSnapshot):
            continue
        held = _outcome_in(sub.values)
        if held is not None and held[1].get("status") == "pending":
            key, outcome = held
            dynamic = _dynamic_pauses(sub, key, outcome)
            if dynamic:
                found.extend(dynamic)
                continue
            if tuple(sub.next) == ("human_approval",):
                found.append(_pause(sub, key, outcome, "interrupt_before", None))
                continue
        _collect(sub, found)


def _dynamic_pauses(sub: StateSnapshot, key: str, outcome: dict[str, Any]) -> list[GatePause]:
    """One pause per waiting `interrupt()` of a gate's parallel `human_approval` tasks."""
    found: list[GatePause] = []
    by_id = {item["review_id"]: i for i, item in enumerate(outcome.get("items") or ())}
    for inner in sub.tasks:
        for intr in inner.interrupts:
            value = intr.value
            if not (isinstance(value, dict) and value.get("kind") == PAYLOAD_KIND):
                continue
            index = by_id.get(value.get("review_id"))
            shown = outcome if index is None else focus(outcome, index)
            # A refused resume re-pauses inside the node: the refusal is on the new
            # interrupt's payload, not in the gate's state.
            shown = {**shown, "refused": value.get("refused")}
            found.append(_pause(sub, key, shown, "command_resume", intr.id))
    return found


def _pause(
    sub: StateSnapshot,
    key: str,
    outcome: dict[str, Any],
    style: _PauseStyle,
    interrupt_id: str | None,
) -> GatePause:
    return GatePause(
        review_id=str(outcome["review_id"]),
        style=style,
        key=key,
        config=sub.config,
        interrupt_id=interrupt_id,
        outcome=GateOutcome.from_dict(outcome),
        raw=outcome,
        target=outcome.get("target", "text"),
        tool_call=outcome.get("tool_call"),
    )


async def resume_gate(
    graph: Any,
    config: RunnableConfig,
    pause: GatePause,
    decision: Decision,
    **invoke_kwargs: Any,
) -> Any:
    """Resume one paused gate with `decision`, the right way for its style.

    Static: the decision is written into the gate as `human_approval` (which
    skips that node's body) and the thread runs on with `ainvoke(None)`.
    Dynamic: `Command(resume={interrupt_id: decision})`, which leaves any
    other pending interrupt of the thread waiting (the other flagged calls of
    the message, each its own pause). In the static style, when the gate has
    another flagged item, the thread pauses again for it (see `gate_pauses`).

    Example:
        ```python
        [pause] = await gate_pauses(graph, config)
        if pause.target == "tool_call":  # edit the call's arguments; re-checked by the rules
            decision = Decision(approved=True, reviewer="payments@bank",
                                tool_args={**pause.tool_call["args"], "amount_gbp": 900},
                                decided_at=datetime.now(timezone.utc))
        await resume_gate(graph, config, pause, decision)
        ```
    """
    if pause.style == "interrupt_before":
        await graph.aupdate_state(
            pause.config,
            {pause.key: {**pause.raw, "decision": decision.to_state(), "refused": None}},
            as_node="human_approval",
        )
        return await graph.ainvoke(None, config, **invoke_kwargs)
    assert pause.interrupt_id is not None
    command: Command[Any] = Command(resume={pause.interrupt_id: decision.to_state()})
    return await graph.ainvoke(command, config, **invoke_kwargs)


def route_after_gate(
    state: Any,
    *,
    tools: str = "tools",
    model: str = "model",
    messages_key: str = "messages",
) -> str:
    """Where a ReAct loop goes after the gate: `tools`, back to `model`, or `END`.

    * the last message is an `AIMessage` with tool calls: `tools` (LangGraph's
      `ToolNode` runs exactly those: the gate left only approved, edited or
      clean calls in it);
    * the last message is a `ToolMessage`: every call of the turn was refused
      and answered by the gate, so the model runs again and reads why;
    * otherwise (a plain reply, or the rejection message): `END`.

    LangGraph's `tools_condition` is right in the first and last cases but ends
    the run in the second, so the agent would not answer the customer.

    Example:
        ```python
        builder.add_node("model", call_model)
        builder.add_node("compliance", compliance_gate([ToolCallRule(...)]))
        builder.add_node("tools", ToolNode([transfer]))
        builder.add_edge(START, "model")
        builder.add_edge("model", "compliance")
        builder.add_conditional_edges("compliance", route_after_gate, ["tools", "model", END])
        builder.add_edge("tools", "model")
        ```
        Other node names: `functools.partial(route_after_gate, tools="act", model="llm")`.
    """
    if isinstance(state, list):
        messages = state
    elif isinstance(state, dict):
        messages = state.get(messages_key) or []
    else:
        messages = getattr(state, messages_key, None) or []
    last = messages[-1] if messages else None
    if isinstance(last, AIMessage) and last.tool_calls:
        return tools
    if isinstance(last, ToolMessage):
        return model
    return END


_QUIET = (TAG_NOSTREAM, TAG_HIDDEN)


def contains_gate(node: Any) -> bool:
    """Whether `node` is a gate or a compiled graph with a gate at any depth."""
    if is_gate(node) or _called_gate(node) is not None:
        return True
    builder = getattr(node, "builder", None)
    specs = getattr(builder, "nodes", None)
    if not isinstance(specs, dict):
        return False
    return any(contains_gate(spec.runnable) for spec in specs.values())


def gates_in(node: Any) -> list[_GateSpec]:
    """The build options of every gate in `node` (itself a gate, or a graph), at any depth."""
    spec = _GATES.find(node) or _GATES.find(_called_gate(node))
    if spec is not None:
        return [spec]
    builder = getattr(node, "builder", None)
    specs = getattr(builder, "nodes", None)
    if not isinstance(specs, dict):
        return []
    return [found for child in specs.values() for found in gates_in(child.runnable)]


def _sources(builder: Any, target: str) -> set[str]:
    """The nodes of `builder` with an edge (plain, conditional or Command) into `target`."""
    names = set(builder.nodes)
    found: set[str] = set()
    for start, end in builder.edges:
        if end == target:
            found.add(start)
    for starts, end in getattr(builder, "waiting_edges", ()):
        if end == target:
            found.update(starts)
    for start, branches in builder.branches.items():
        for branch in branches.values():
            ends = branch.ends
            if ends is None or target in ends.values():
                found.add(start)
    for name, spec in builder.nodes.items():
        ends = getattr(spec, "ends", None) or ()
        if target in ends:
            found.add(name)
    return found & names


def protect_stream(graph: Any) -> Any:
    """Keep unreviewed drafts off `stream_mode="messages"`; returns `graph`.

    LangGraph streams a chat model's tokens from inside any node, and every
    message a node returns, before any later node runs: a chat UI would show
    the customer the draft the gate is about to hold. This marks every node
    that can reach a gate (in `graph` and in each of its subgraphs) with
    LangGraph's `nostream` and hidden tags, so neither its tokens nor its
    returned messages are streamed; the gate's cleared reply (a new message)
    is. `updates`/`values` streams and LangSmith traces no longer show those
    nodes' own updates either; the state still holds everything.
    `HitlCoordinator` applies it to the graph it drives. Idempotent.

    Example:
        ```python
        graph = protect_stream(builder.compile(checkpointer=saver))
        async for chunk, meta in graph.astream(inputs, config, stream_mode="messages"):
            send_to_customer(chunk)  # never an unreviewed draft
        ```
    """
    builder = getattr(graph, "builder", None)
    if builder is None or not isinstance(getattr(builder, "nodes", None), dict):
        return graph
    gates = {n for n, spec in builder.nodes.items() if contains_gate(spec.runnable)}
    upstream: set[str] = set()
    frontier = list(gates)
    while frontier:
        for source in _sources(builder, frontier.pop()):
            if source not in upstream:
                upstream.add(source)
                frontier.append(source)
    for name in upstream - gates:
        node = graph.nodes.get(name)
        if node is not None:
            node.tags = [*(node.tags or ()), *(t for t in _QUIET if t not in (node.tags or ()))]
    for name in gates:
        spec = builder.nodes[name]
        if not is_gate(spec.runnable):
            protect_stream(spec.runnable)
    return graph
