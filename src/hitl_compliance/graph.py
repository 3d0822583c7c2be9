"""The graph factory: `draft -> compliance -> deliver | human_approval | rejected`.

[`build_compliance_graph`][hitl_compliance.build_compliance_graph] compiles a
LangGraph `StateGraph` in one of two pause styles and refuses the
configurations in which LangGraph would silently misbehave.

The coordinator and the testing kit read a graph's build options only through
[`graph_spec`][hitl_compliance.graph.graph_spec] (a frozen `GraphSpec`), copy a
graph only through [`copy_graph`][hitl_compliance.graph.copy_graph] and
evaluate rules through `run_rules`; the registry behind them stays private.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any, Literal, TypeAlias

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import GraphInterrupt
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from hitl_compliance._authority import (
    AuthoritySlot,
    DecisionAuthority,
    authenticated_reviewer,
    driven,
    limits_of,
    ready_store,
    remote_driven,
)
from hitl_compliance._builds import BuildRegistry
from hitl_compliance._drafting import (
    CONVERSATION,
    has_conversation,
    run_drafter,
    turn_conversation,
)
from hitl_compliance._inbox import describe, human_interrupt, signed_by_server_user
from hitl_compliance._normalize import release_long_views
from hitl_compliance._pause import ask, replayed
from hitl_compliance._personal import subject_of
from hitl_compliance._replies import AUTO, RuleSet, outcome_of, record_reply
from hitl_compliance._stops import holding, product_of, run_store
from hitl_compliance.errors import (
    ConfigurationError,
    HitlError,
    InputTooLargeError,
    InvalidDecisionError,
    NotAuthorizedError,
    PauseDisabledError,
    PolicyViolationError,
)
from hitl_compliance.models import ReviewRecord
from hitl_compliance.platform import (
    PLATFORM_CHECKPOINTER,
    PlatformCheckpointer,
    require_checkpointer,
)
from hitl_compliance.rules import ComplianceRule, RuleResult, worst_verdict
from hitl_compliance.state import ComplianceState, Decision, as_decision
from hitl_compliance.stops import stop_finding

__all__ = [
    "NODES",
    "ComplianceGraph",
    "Drafter",
    "PauseStyle",
    "build_compliance_graph",
    "copy_graph",
    "graph_spec",
    "is_factory_graph",
]

PauseStyle: TypeAlias = Literal["interrupt_before", "command_resume"]
"""`interrupt_before`: static pause before `human_approval`, resumed by
`aupdate_state` + `ainvoke(None)`. `command_resume`: the node calls
`interrupt(payload)` and is resumed with `Command(resume=decision)`."""

Drafter: TypeAlias = (
    Callable[[Any], "str | BaseMessage | Awaitable[str | BaseMessage]"] | Runnable[Any, Any]
)
"""The LLM step: a callable (sync or async) or a LangChain `Runnable`.

A callable receives the state; a chat model receives the conversation as
messages (`state.messages` where the state has them, else
`[HumanMessage(state.customer_message)]`); any other `Runnable` (an LCEL chain
such as `prompt | model`) receives the state's fields as a dict. Each returns
the reply as `str` or as a message (`AIMessage`) whose text is the reply;
content blocks are read as their text. A reply asking for tool calls raises
[`DraftError`][hitl_compliance.DraftError]."""

ComplianceGraph: TypeAlias = CompiledStateGraph[Any, Any, Any, Any]
"""A compiled compliance graph, as returned by `build_compliance_graph`."""

NODES = ("draft", "compliance", "human_approval", "deliver", "rejected")
"""The node names, exactly; `snapshot.next == ("human_approval",)` while paused."""

_STYLES: frozenset[str] = frozenset({"interrupt_before", "command_resume"})

# Under `ainvoke` LangGraph runs a sync node or router in a worker thread (a thread hop
# and an event-loop wake-up each), so every node and router here is `async def`.
# Before Python 3.11 asyncio tasks do not take the run's context, so `interrupt()`,
# `get_config()` and LangChain's tracing (which read the run's config from a context
# variable) find none inside a node; there `_in_run_context` sets it from the node's
# `config` argument around our nodes, the drafter and the rules included.
_ASYNC_INTERRUPT = sys.version_info >= (3, 11)

_Node = Callable[[ComplianceState], Awaitable[dict[str, Any]]]


def _in_run_context(node: _Node) -> Callable[..., Awaitable[dict[str, Any]]]:
    """`node`, with the run's config in context where asyncio does not put it there."""
    if _ASYNC_INTERRUPT:
        return node

    async def with_config(state: ComplianceState, config: RunnableConfig) -> dict[str, Any]:
        token = var_child_runnable_config.set(config)
        try:
            return await node(state)
        finally:
            var_child_runnable_config.reset(token)

    with_config.__name__ = getattr(node, "__name__", "node")
    return with_config


@dataclass(frozen=True, slots=True)
class GraphSpec:
    """What the coordinator needs to know about a graph built by the factory."""

    style: PauseStyle
    rules: tuple[ComplianceRule, ...]
    state_schema: type[ComplianceState]
    rejection_message: str | None
    pause: bool
    ruleset: RuleSet = field(default_factory=lambda: RuleSet.of(()), compare=False)
    authority: AuthoritySlot = field(default_factory=AuthoritySlot, compare=False)


_SPECS: BuildRegistry[GraphSpec] = BuildRegistry()


def is_factory_graph(graph: Any) -> bool:
    """Whether `graph` (or what it is a copy of) was built by `build_compliance_graph`."""
    return _SPECS.find(graph) is not None


def graph_spec(graph: Any) -> GraphSpec:
    """The build options of a graph made by `build_compliance_graph` (or a copy of one).

    Raises:
        ConfigurationError: `graph` was not built by `build_compliance_graph`.
    """
    spec = _SPECS.find(graph)
    if spec is None:
        raise ConfigurationError(
            "HitlCoordinator needs a graph made by build_compliance_graph(); "
            f"got {type(graph).__name__}."
        )
    return spec


def copy_graph(graph: ComplianceGraph) -> ComplianceGraph:
    """A shallow copy of a factory-built graph that counts as the same build.

    The copy shares the checkpointer and nodes of `graph`, and
    [`graph_spec`][hitl_compliance.graph.graph_spec] returns the build options
    of `graph` for it, so `HitlCoordinator` accepts it. Wrappers such as
    [`FaultInjector.wrap_graph`][hitl_compliance.testing.faults.FaultInjector.wrap_graph]
    patch methods on the copy and leave `graph` itself unchanged.

    Raises:
        ConfigurationError: `graph` was not built by `build_compliance_graph`.
    """
    graph_spec(graph)
    # A copy shares the builder that graph_spec() looks graphs up by.
    copy: ComplianceGraph = graph.copy()
    return copy


async def run_rules(rules: Sequence[ComplianceRule], state: ComplianceState) -> list[RuleResult]:
    """Evaluate every rule; a rule that raises or misbehaves becomes a `review` finding."""
    results: list[RuleResult] = []
    for rule in rules:
        try:
            outcome = rule.evaluate(state)
            if inspect.isawaitable(outcome):
                outcome = await outcome
            if not isinstance(outcome, RuleResult):
                raise TypeError(f"evaluate() returned {type(outcome).__name__}, not RuleResult")
        except Exception as exc:  # a broken rule must fail closed, never let a draft through
            outcome = RuleResult(rule.name, "review", f"rule failed: {exc!r}")
        results.append(outcome)
    release_long_views()
    return results


def build_compliance_graph(
    draft: Drafter,
    *,
    rules: Sequence[ComplianceRule] = (),
    checkpointer: BaseCheckpointSaver[Any] | PlatformCheckpointer | None,
    style: PauseStyle = "interrupt_before",
    state_schema: type[ComplianceState] = ComplianceState,
    rejection_message: str | None = None,
    pause: bool = True,
) -> ComplianceGraph:
    """Compile the compliance graph around your drafter and rules.

    Args:
        draft: The LLM step (see [`Drafter`][hitl_compliance.graph.Drafter]): a
            callable receiving the state, a chat model receiving the
            conversation as messages, or another LangChain `Runnable` (such as
            `prompt | model`) receiving the state's fields as a dict. It returns
            the reply as `str` or as an `AIMessage`. It runs with LangGraph's
            `nostream` tag, so `stream_mode="messages"` never carries an
            unreviewed draft. Where the state has a conversation (a `messages`
            field with the `add_messages` reducer), the customer's message is
            appended to it as a `HumanMessage` before drafting (unless the
            turn's input already ended with it) and the delivered reply after
            the outcome as an `AIMessage`.
        rules: [`ComplianceRule`][hitl_compliance.ComplianceRule]s with unique names.
        checkpointer: Any LangGraph checkpoint saver; required when `pause=True`,
            because LangGraph silently never pauses without one.
            [`PLATFORM_CHECKPOINTER`][hitl_compliance.PLATFORM_CHECKPOINTER] for
            LangGraph Server, which installs its own: the graph compiles without
            one and each run raises `ConfigurationError` if it has none.
        style: `"interrupt_before"` or `"command_resume"`; same outcomes.
        state_schema: [`ComplianceState`][hitl_compliance.ComplianceState] or a subclass.
        rejection_message: What the customer gets on rejection (default `None`).
        pause: `False` builds without a pause; reaching review then raises
            [`PauseDisabledError`][hitl_compliance.PauseDisabledError].

    Raises:
        ConfigurationError: On any configuration LangGraph would accept but misrun.

    Example:
        ```python
        graph = build_compliance_graph(
            lambda state: "Guaranteed returns!",
            rules=[KeywordRule("guarantee", ["guaranteed returns"])],
            checkpointer=InMemorySaver(),
        )
        ```

        Served by LangGraph Server (`langgraph dev`), which supplies persistence:

        ```python
        graph = build_compliance_graph(
            draft, rules=rules, style="command_resume", checkpointer=PLATFORM_CHECKPOINTER
        )
        ```

        A chat model drafts from the conversation:

        ```python
        class ChatState(ComplianceState):
            messages: Annotated[list[AnyMessage], add_messages] = []

        graph = build_compliance_graph(
            ChatOpenAI(model="gpt-4o-mini"),
            rules=rules,
            checkpointer=saver,
            state_schema=ChatState,
        )
        ```
    """
    if not (isinstance(draft, Runnable) or callable(draft)):
        raise ConfigurationError(
            "draft must be a callable taking the state and returning text, or a "
            "LangChain Runnable (a chat model or a chain)."
        )
    if style not in _STYLES:
        raise ConfigurationError(
            f"style must be 'interrupt_before' or 'command_resume', got {style!r}."
        )
    if not (isinstance(state_schema, type) and issubclass(state_schema, ComplianceState)):
        raise ConfigurationError("state_schema must be ComplianceState or a subclass of it.")
    if pause and checkpointer is None:
        raise ConfigurationError(
            "A graph that pauses for human review needs a checkpointer: without one "
            "LangGraph compiles the interrupt but silently never pauses. Pass "
            "checkpointer=InMemorySaver() (tests) or open_backend(...).checkpointer, "
            "or checkpointer=PLATFORM_CHECKPOINTER for LangGraph Server, which "
            "supplies its own."
        )
    # LangGraph Server refuses a graph with a checkpointer of its own and installs
    # its own on the copy it serves; the draft node checks every run has one.
    platform = checkpointer is PLATFORM_CHECKPOINTER
    saver = None if isinstance(checkpointer, PlatformCheckpointer) else checkpointer
    if saver is not None and not isinstance(saver, BaseCheckpointSaver):
        raise ConfigurationError(
            f"checkpointer must be a LangGraph BaseCheckpointSaver, got {type(saver).__name__}."
        )
    if rejection_message is not None and not isinstance(rejection_message, str):
        raise ConfigurationError("rejection_message must be a str or None.")
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
        field = getattr(rule, "field", None)
        if isinstance(field, str) and field not in state_schema.model_fields:
            raise ConfigurationError(
                f"Rule {rule.name!r} reads state field {field!r}, which "
                f"{state_schema.__name__} does not have."
            )

    spec = GraphSpec(
        style, rule_list, state_schema, rejection_message, pause, RuleSet.of(rule_list)
    )
    # Typed as Any: StateGraph.add_node's overloads cannot infer a node input type
    # from a state schema chosen at run time (a ComplianceState subclass).
    builder: Any = StateGraph(state_schema)
    # input_schema: without it LangGraph reads each node's annotation (ComplianceState)
    # and silently drops the fields of a user's state_schema subclass.
    conversation = has_conversation(state_schema)
    nodes: dict[str, Any] = {
        "draft": _draft_node(draft, conversation, platform),
        "compliance": _compliance_node(spec),
        "human_approval": _approval_node(spec),
        "deliver": _deliver_node(spec, conversation),
        "rejected": _rejected_node(spec, rejection_message, conversation),
    }
    for name, node in nodes.items():
        builder.add_node(name, node, input_schema=state_schema)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "compliance")
    builder.add_conditional_edges(
        "compliance", _route_findings, ["deliver", "human_approval", "rejected"]
    )
    builder.add_conditional_edges("human_approval", _route_decision(spec), ["deliver", "rejected"])
    builder.add_edge("deliver", END)
    builder.add_edge("rejected", END)
    static = pause and style == "interrupt_before"
    compiled: ComplianceGraph = builder.compile(
        checkpointer=saver,
        interrupt_before=["human_approval"] if static else None,
    )
    _SPECS.register(builder, spec)
    return compiled


TURN_FIELDS = (
    "draft_response",
    "violations",
    "agent_response",
    "agent_type",
    "is_compliant",
    "decision",
)
"""The fields one turn produces; each new turn starts from their defaults."""


def _stale_turn_fields(state: ComplianceState) -> dict[str, Any]:
    """The previous turn's outputs still in `state`, each mapped to its default.

    The `draft` node clears only these, so a thread's first turn (all defaults)
    writes no reset values to its checkpoints.
    """
    stale: dict[str, Any] = {}
    for key in TURN_FIELDS:
        value = getattr(state, key)
        if key == "violations":
            if value:
                stale[key] = []
        elif value is not None:
            stale[key] = None
    return stale


def _draft_node(
    draft: Drafter, conversation: bool, platform: bool
) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def draft_node(state: ComplianceState) -> dict[str, Any]:
        if platform:
            # The first node of every turn: a platform graph run outside the server
            # (no checkpointer) is refused before it drafts, not left unpausable.
            require_checkpointer(var_child_runnable_config.get())
        # A new turn never sees the previous turn's draft, findings or decision: not the
        # drafter, not the rules (which run on the state this node writes).
        update = _stale_turn_fields(state)
        seen = dict(update)
        if conversation:
            messages, human = turn_conversation(state)
            if human is not None:
                update[CONVERSATION] = [human]
                seen[CONVERSATION] = messages
        written = await run_drafter(
            draft, state.model_copy(update=seen) if seen else state, conversation=conversation
        )
        update["draft_response"] = written.text
        update["turn"] = state.turn + 1
        if written.model_name is not None:
            update["metadata"] = {"drafted_by": written.model_name}
        return update

    return _in_run_context(draft_node)


def _compliance_node(spec: GraphSpec) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def compliance(state: ComplianceState, config: RunnableConfig) -> dict[str, Any]:
        findings = [r for r in await run_rules(spec.rules, state) if r.verdict != "pass"]
        # A stop switched on in the store holds every turn in its scope for review,
        # whatever the rules found (a block still rejects: it is the worse verdict).
        store = await run_store(config, spec.authority.authority)
        stops = await holding(store, ruleset=spec.ruleset.fingerprint, product=product_of(state))
        if stops:
            findings.append(stop_finding(stops))
        return {
            "violations": [f.to_dict() for f in findings],
            "is_compliant": not findings,
        }

    if _ASYNC_INTERRUPT:
        return compliance

    async def with_config(state: ComplianceState, config: RunnableConfig) -> dict[str, Any]:
        token = var_child_runnable_config.set(config)
        try:
            return await compliance(state, config)
        finally:
            var_child_runnable_config.reset(token)

    with_config.__name__ = "compliance"
    return with_config


async def _route_findings(state: ComplianceState) -> str:
    verdict = worst_verdict(state.rule_results)
    return {"pass": "deliver", "review": "human_approval", "block": "rejected"}[verdict]


def review_payload(state: ComplianceState, refused: str | None = None) -> dict[str, Any]:
    """What a paused review shows: plain data, as sent to `interrupt()`.

    Also in Agent Inbox's `HumanInterrupt` schema (`action_request`, `config`,
    and a Markdown `description` with the findings and their evidence).
    """
    description = describe(
        target="text",
        customer_message=state.customer_message,
        draft=state.draft_response,
        tool_call=None,
        findings=state.violations,
        refused=refused,
    )
    payload = {
        **human_interrupt(
            target="text", draft=state.draft_response, tool_call=None, description=description
        ),
        "customer_message": state.customer_message,
        "draft_response": state.draft_response,
        "violations": list(state.violations),
        "requested_by": state.requested_by,
    }
    if refused is not None:
        payload["refused"] = refused
    return payload


def _approval_node(spec: GraphSpec) -> Callable[..., Any]:
    async def human_approval(state: ComplianceState, config: RunnableConfig) -> dict[str, Any]:
        if not spec.pause:
            raise PauseDisabledError(
                "This draft needs human review but the graph was built with pause=False: "
                f"findings {[v['rule'] for v in state.violations]}."
            )
        if spec.style == "interrupt_before":
            # Our coordinator resumes with aupdate_state(as_node="human_approval"),
            # which skips this body; running it means someone resumed without a decision.
            if state.decision is None:
                raise InvalidDecisionError(
                    "The static pause was resumed without a decision. Resume through "
                    "HitlCoordinator.approve()/reject(), not ainvoke(None) alone (nor by "
                    "writing agent_response / is_compliant into the state)."
                )
            return {}
        decider = _decider(spec, config)
        if decider is not None:
            # A pause no coordinator drives (a server run, a script): recorded here,
            # once, so a coordinator on the store lists it and its decision is claimable.
            await decider.record_pause(_pause_review(state, config))
        index = 0
        refused: str | None = None
        while True:
            # An invalid resume value (from any caller) is refused before LangGraph saves
            # it, so it can never poison the thread; one the checks refuse is answered
            # with a new pause, never an exception.
            try:
                answer = ask(
                    partial(review_payload, state, refused=refused), config, index, alone=True
                )
            except GraphInterrupt:
                if index == 0 and _written_around(state):
                    raise InvalidDecisionError(
                        "The reply fields (agent_response, is_compliant, agent_type) of a "
                        "paused thread were written directly, which decides nothing. Decide "
                        "with HitlCoordinator.approve(thread_id, reviewer=..., response=...) "
                        "or reject(...), or resume with Command(resume=decision)."
                    ) from None
                raise
            if replayed(config, index):
                index += 1  # refused (and recorded) when it first arrived
                continue
            index += 1
            decided = await _decide(spec, state, config, signed_by_server_user(answer, config))
            if isinstance(decided, Decision):
                return {"decision": decided.to_state()}
            refused = str(decided)

    if _ASYNC_INTERRUPT:
        return human_approval

    async def with_config(state: ComplianceState, config: RunnableConfig) -> dict[str, Any]:
        token = var_child_runnable_config.set(config)
        try:
            return await human_approval(state, config)
        finally:
            var_child_runnable_config.reset(token)

    with_config.__name__ = "human_approval"
    return with_config


def _pause_review(state: ComplianceState, config: RunnableConfig) -> ReviewRecord:
    """The pending review of this pause, with an id stable across re-executions of the node."""
    configurable = config.get("configurable") or {}
    thread_id = str(configurable.get("thread_id", ""))
    checkpoint = str(
        (configurable.get("checkpoint_map") or {}).get("", configurable.get("checkpoint_id", ""))
    )
    return ReviewRecord(
        review_id=hashlib.sha256(f"{thread_id}\x00{checkpoint}".encode()).hexdigest()[:32],
        thread_id=thread_id,
        checkpoint_id=checkpoint,
        status="pending",
        customer_message=state.customer_message,
        draft_response=state.draft_response or "",
        violations=state.rule_results,
        requested_at=datetime.now(timezone.utc),
        requested_by=state.requested_by,
    )


def _written_around(state: ComplianceState) -> bool:
    """Whether the outcome fields of a paused turn were written by hand (they are unset there)."""
    return (
        state.agent_response is not None
        or state.agent_type is not None
        or state.is_compliant is True
    )


def _decider(spec: GraphSpec, config: RunnableConfig) -> DecisionAuthority | None:
    """Who checks a decision the coordinator did not make (None: trust it)."""
    return None if driven(config) else spec.authority.authority


async def _decide(
    spec: GraphSpec, state: ComplianceState, config: RunnableConfig, made: Decision
) -> Decision | HitlError:
    """`made` as claimed by the coordinator attached to this graph, or why it is refused.

    In the coordinator's own runs (and in a graph no coordinator is attached
    to) the decision is taken as given: the coordinator checked and claimed it.
    """
    decider = _decider(spec, config)
    if decider is None and not remote_driven(config) and driven(config):
        return made  # the coordinator of this run checked and claimed it
    thread_id = str((config.get("configurable") or {}).get("thread_id", ""))
    try:
        # Before the rules scan an edit: a resume past the limits is refused unread.
        limits_of(spec.authority.authority).check_decision(made, thread_id=thread_id)
    except InputTooLargeError as exc:
        return exc
    if decider is None:
        if remote_driven(config):
            return await _claimed_remotely(spec, state, config, made)
        return made
    if made.tool_args is not None:
        return InvalidDecisionError(
            "tool_args edit a tool call; a build_compliance_graph() review is of reply "
            "text: edit it with response=.",
            thread_id=thread_id,
        )
    edit_findings: list[RuleResult] = []
    if made.approved and made.response is not None and made.response != state.draft_response:
        edited = state.model_copy(update={"draft_response": made.response})
        edit_findings = [r for r in await run_rules(spec.rules, edited) if r.verdict != "pass"]
        blocked = [f for f in edit_findings if f.verdict == "block"]
        if blocked:
            return PolicyViolationError(
                f"The edited reply breaks {[f.rule for f in blocked]}: "
                + "; ".join(f"{f.rule}: {f.reason} {list(f.evidence)}" for f in blocked),
                thread_id=thread_id,
                findings=tuple(edit_findings),
            )
    return await decider.decide(
        thread_id=thread_id,
        review_id=None,
        made=made,
        edit_findings=edit_findings,
        reviewer=authenticated_reviewer(config),
    )


async def _claimed_remotely(
    spec: GraphSpec, state: ComplianceState, config: RunnableConfig, made: Decision
) -> Decision | HitlError:
    """In a trusted coordinator's server run: `made` if the attached store holds it claimed.

    The coordinator checked and claimed the decision before resuming over the
    API; the graph applies only that decision, never one it merely carries. The
    coordinator cannot run a served graph's rules, so an edit is re-checked
    here: one a `block` rule refuses is not applied (the thread stays paused).
    """
    thread_id = str((config.get("configurable") or {}).get("thread_id", ""))
    if made.approved and made.response is not None and made.response != state.draft_response:
        edited = state.model_copy(update={"draft_response": made.response})
        blocked = [r for r in await run_rules(spec.rules, edited) if r.verdict == "block"]
        if blocked:
            return PolicyViolationError(
                f"refused: the edited reply breaks {[f.rule for f in blocked]}: "
                + "; ".join(f"{f.rule}: {f.reason} {list(f.evidence)}" for f in blocked),
                thread_id=thread_id,
                findings=tuple(blocked),
            )
    attached = spec.authority.authority
    if attached is None:
        return NotAuthorizedError(
            "A coordinator's run reached a graph with no review store attached "
            "(attach_authority) to check its decision against; nothing was applied.",
            thread_id=thread_id,
        )
    for review in await (await ready_store(attached)).open_reviews(thread_id):
        held = review.decision
        if (
            review.status == "claimed"
            and held is not None
            and held.get("reviewer") == made.reviewer
            and held.get("approved") == made.approved
            and held.get("decided_at") == made.to_state()["decided_at"]
        ):
            return made
    return NotAuthorizedError(
        f"refused: the review of thread {thread_id!r} holds no such claimed decision; "
        "decide it with HitlCoordinator.approve()/reject() (or the review service).",
        thread_id=thread_id,
    )


def _route_decision(spec: GraphSpec) -> Callable[..., Awaitable[str]]:
    async def route(state: ComplianceState, config: RunnableConfig) -> str:
        decision = state.decision
        if spec.style == "interrupt_before" and decision is not None:
            # A decision written around the coordinator (update_state as_node=
            # "human_approval"): checked and claimed here, while LangGraph has saved
            # nothing yet, so a refusal raises from update_state and changes nothing.
            made = as_decision(decision)
            if _decider(spec, config) is not None or remote_driven(config):
                decided = await _decide(spec, state, config, made)
                if isinstance(decided, HitlError):
                    raise decided
        if decision is not None and decision.get("approved") is True:
            return "deliver"
        return "rejected"

    return route


_DECISION_KEYS = ("reviewer", "decided_at", "rejection_reason", "reason_code")


def _decision_metadata(state: ComplianceState, decision: dict[str, Any]) -> dict[str, Any]:
    """Patch of the decision's facts; clears an earlier turn's facts it does not replace."""
    patch = _clear_decision_metadata(state)
    patch.update(decision.get("metadata") or {})
    patch["reviewer"] = decision["reviewer"]
    patch["decided_at"] = decision["decided_at"]
    if not decision.get("approved") and decision.get("reason"):
        patch["rejection_reason"] = decision["reason"]
    if decision.get("reason_code"):
        patch["reason_code"] = decision["reason_code"]
    return patch


def _clear_decision_metadata(state: ComplianceState) -> dict[str, Any]:
    """A turn decided without a human must not show an earlier turn's reviewer."""
    return {k: None for k in _DECISION_KEYS if state.metadata.get(k) is not None}


def _reply(update: dict[str, Any], conversation: bool) -> dict[str, Any]:
    """`update`, plus the delivered reply as an `AIMessage` where the state has a conversation."""
    text = update.get("agent_response")
    if conversation and text is not None:
        update[CONVERSATION] = [AIMessage(text)]
    return update


async def _record_outcome(
    spec: GraphSpec, state: ComplianceState, config: RunnableConfig, delivered: str | None
) -> None:
    """Record a decision claimed around the coordinator, now that its outcome applies."""
    decider = _decider(spec, config)
    if decider is None or state.decision is None:
        return
    await decider.complete(
        thread_id=str((config.get("configurable") or {}).get("thread_id", "")),
        review_id=None,
        made=as_decision(state.decision),
        delivered=delivered,
    )


async def _record_reply(
    spec: GraphSpec, state: ComplianceState, config: RunnableConfig, sent: str | None, *, went: bool
) -> None:
    """Append this turn's `replied` ledger event (see `_replies`); `went`: the draft went out."""
    decision = state.decision
    decided_by = AUTO if decision is None else str(decision.get("reviewer") or AUTO)
    response = None if decision is None else decision.get("response")
    configurable = config.get("configurable") or {}
    await record_reply(
        spec.authority.authority,
        thread_id=str(configurable.get("thread_id", "")),
        review_id=None,
        checkpoint_id=str(configurable.get("checkpoint_id") or "") or None,
        outcome=outcome_of(
            sent=went,
            edited=bool(response) and response != state.draft_response,
            decided_by=decided_by,
        ),
        delivered=sent,
        ruleset=spec.ruleset,
        drafter=_drafter_of(state),
        decided_by=decided_by,
        turn=str(state.turn),
        subject=subject_of(state),
        product=_product_of(state),
    )


def _product_of(state: ComplianceState) -> str | None:
    """The turn's product (`metadata["product"]`), its QA sampling stratum; None if unnamed."""
    product = (state.metadata or {}).get("product")
    return product if isinstance(product, str) and product else None


def _drafter_of(state: ComplianceState) -> str | None:
    name = (state.metadata or {}).get("drafted_by")
    return name if isinstance(name, str) else None


def _deliver_node(spec: GraphSpec, conversation: bool) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def deliver(state: ComplianceState, config: RunnableConfig) -> dict[str, Any]:
        decision = state.decision
        if decision is None:
            update = {
                "agent_response": state.draft_response,
                "agent_type": "llm",
                "is_compliant": True,
                "metadata": _clear_decision_metadata(state),
            }
            await _record_reply(spec, state, config, state.draft_response, went=True)
        else:
            sent = decision.get("response") or state.draft_response
            update = {
                "agent_response": sent,
                "agent_type": "human_admin",
                "is_compliant": True,
                "metadata": _decision_metadata(state, decision),
            }
            await _record_outcome(spec, state, config, sent)
            await _record_reply(spec, state, config, sent, went=True)
        return _reply(update, conversation)

    return deliver


def _rejected_node(
    spec: GraphSpec, message: str | None, conversation: bool
) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def rejected(state: ComplianceState, config: RunnableConfig) -> dict[str, Any]:
        decision = state.decision
        update: dict[str, Any] = {
            "agent_response": message,
            "agent_type": "system" if decision is None else "human_admin",
            "is_compliant": False,
        }
        update["metadata"] = (
            _clear_decision_metadata(state)
            if decision is None
            else _decision_metadata(state, decision)
        )
        await _record_outcome(spec, state, config, message)
        await _record_reply(spec, state, config, message, went=False)
        return _reply(update, conversation)

    return rejected
