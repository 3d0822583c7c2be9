"""How the coordinator reads and resumes a graph: the factory's own, or any graph with gates.

Everything the coordinator knows about a graph's shape is here, behind one
small interface, so turns, decisions and recovery read the same for both:

* [`FactoryDriver`][hitl_compliance._coordination.driver.FactoryDriver]: a graph
  made by `build_compliance_graph` (the pause is the top-level
  `human_approval` node; the state is the graph's `ComplianceState`);
* [`GateDriver`][hitl_compliance._coordination.driver.GateDriver]: a user's graph
  with [`compliance_gate`][hitl_compliance.compliance_gate]s in it, at any depth
  (the pause is inside a gate's subgraph; the coordinator sees the gate's
  outcome as a `ComplianceState` view).

A run ends at a [`Position`][hitl_compliance._coordination.driver.Position],
read from the run's own checkpoint stream where that is enough.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.types import Command, Durability, StateSnapshot
from pydantic import BaseModel, ValidationError

from hitl_compliance import _validate
from hitl_compliance._gate_items import edit_findings as item_edit_findings
from hitl_compliance.errors import ConfigurationError, InvalidDecisionError, InvalidInputError
from hitl_compliance.gate import (
    AUTHORITY_KEY,
    DECIDED_KEY,
    PAYLOAD_KIND,
    GateOutcome,
    GatePause,
    contains_gate,
    gate_options,
    gate_review_checkpoint,
    is_gate,
    pauses_in,
)
from hitl_compliance.graph import TURN_FIELDS, GraphSpec, run_rules
from hitl_compliance.models import ReviewRecord
from hitl_compliance.rules import RuleResult
from hitl_compliance.state import ComplianceState, Decision
from hitl_compliance.stores.base import ReviewStore

__all__ = [
    "PAUSED",
    "RESERVED",
    "Driver",
    "FactoryDriver",
    "GateDriver",
    "Position",
    "check_drivable",
    "checkpoint_config",
    "checkpoint_id",
    "config_for",
    "driver_for",
    "each_pause",
    "factory_delivered",
    "gate_at",
]

PAUSED = ("human_approval",)
"""A factory graph snapshot's `next` while the thread waits for a reviewer (both styles)."""

RESERVED = frozenset({*TURN_FIELDS, "customer_message", "requested_by", "turn", "compliance"})
"""State fields the library sets on every turn of a factory graph, never `process(**fields)`."""


@dataclass(frozen=True, slots=True)
class Position:
    """A thread after a run: its state (as `ComplianceState`), whether a review waits, where.

    `next` and `tasks` are the snapshot's (a run that stopped mid-way has
    them); `pause` is the waiting gate of a gated graph; `snapshot` the
    snapshot it was read from, when one was read (with subgraphs).
    """

    state: ComplianceState
    paused: bool
    checkpoint_id: str
    next: tuple[str, ...] = ()
    tasks: int = field(default=0, compare=False)
    pause: GatePause | None = field(default=None, compare=False)
    snapshot: StateSnapshot | None = field(default=None, compare=False)
    values: Any = field(default=None, compare=False)
    pauses: tuple[GatePause, ...] = field(default=(), compare=False)
    """Every gate pause waiting at once (the flagged calls of one message); `pause` is the first."""

    @property
    def review_checkpoint(self) -> str:
        """The key a review of this pause is stored under (`ReviewRecord.checkpoint_id`).

        The paused checkpoint's id; for a gate's pause, that (top-level) id and
        the gate's review id, `"<checkpoint_id>:<review_id>"`: one gate pass can
        pause several times at one parent checkpoint (one review per tool call).
        """
        if self.pause is None:
            return self.checkpoint_id
        return gate_review_checkpoint(self.checkpoint_id, self.pause.review_id)


def each_pause(pos: Position) -> list[Position]:
    """`pos` once per waiting gate pause (as if it were the only one), or `[pos]`."""
    if len(pos.pauses) <= 1:
        return [pos]
    return [replace(pos, state=_outcome_view(p.raw), pause=p) for p in pos.pauses]


def config_for(thread_id: str) -> Any:
    """The LangGraph config of the thread's latest checkpoint."""
    return {"configurable": {"thread_id": thread_id}}


def checkpoint_config(review: ReviewRecord) -> Any:
    """Config reading the exact paused (top-level) checkpoint of `review`."""
    return {
        "configurable": {
            "thread_id": review.thread_id,
            "checkpoint_ns": "",
            "checkpoint_id": review.checkpoint_id,
        }
    }


def checkpoint_id(snapshot: StateSnapshot) -> str:
    """The checkpoint id a snapshot was read from."""
    return str(snapshot.config["configurable"]["checkpoint_id"])


def factory_delivered(pos: Position, made: Decision) -> bool:
    """Whether a factory run ended past the pause, with decision `made`'s outcome node run."""
    if pos.paused or pos.state.agent_type != "human_admin" or pos.state.decision is None:
        return False
    return _same_decision(pos.state.decision, made)


def _same_decision(held: Mapping[str, Any], made: Decision) -> bool:
    return bool(
        held.get("reviewer") == made.reviewer
        and held.get("approved") == made.approved
        and held.get("decided_at") == made.to_state()["decided_at"]
    )


class Driver(Protocol):
    """What the coordinator needs of a graph: run it, read where it stopped, resume a pause."""

    graph: Any
    spec: GraphSpec | None

    def turn_input(
        self, message: str | Mapping[str, Any], requested_by: str | None, fields: Mapping[str, Any]
    ) -> Any:
        """The graph input of one turn, validated (InvalidInputError, nothing written)."""
        ...

    def view(self, values: Any) -> ComplianceState:
        """The state values as the `ComplianceState` the coordinator reasons on."""
        ...

    async def run(
        self, graph_input: Any, thread_id: str, *, durability: Durability | None = None
    ) -> Position | None:
        """Run the graph on the thread; where it stopped (None: read the snapshot)."""
        ...

    async def position(self, thread_id: str) -> Position:
        """Where the thread stands now, read from its snapshot."""
        ...

    async def resume(self, review: ReviewRecord, made: Decision) -> Position | None:
        """Resume `review`'s pause with `made`; None when it is not paused there."""
        ...

    def at_review(self, pos: Position, review: ReviewRecord) -> bool:
        """Whether `pos` is exactly `review`'s pause."""
        ...

    async def delivered(self, pos: Position, review: ReviewRecord, made: Decision) -> bool:
        """Whether `made`'s outcome has been applied past `review`'s pause."""
        ...

    def delivered_text(self, pos: Position, review: ReviewRecord) -> str | None:
        """What `review`'s decision let through to the customer."""
        ...

    async def paused_state(self, review: ReviewRecord) -> ComplianceState:
        """The state the reviewer saw (the rules re-check edits on it)."""
        ...

    async def edit_findings(self, review: ReviewRecord, made: Decision) -> list[RuleResult]:
        """The rules' findings on the edit `made` carries (none without an edit).

        Raises:
            InvalidDecisionError: an edit of the wrong kind for what is reviewed.
        """
        ...

    def review_id(self, pos: Position) -> str | None:
        """The id a review of this pause must have, or None to draw a fresh one."""
        ...


class FactoryDriver:
    """A graph made by `build_compliance_graph`: the pause is its `human_approval` node."""

    def __init__(self, graph: Any, spec: GraphSpec, reviews: ReviewStore | None = None) -> None:
        self.graph = graph
        self.spec: GraphSpec | None = spec
        self._spec = spec
        # Its runs are the coordinator's own: the graph takes their decisions as claimed.
        self._driven = None if reviews is None else _Driven(reviews)

    def _config(self, thread_id: str) -> Any:
        if self._driven is None:
            return config_for(thread_id)
        return {"configurable": {"thread_id": thread_id, AUTHORITY_KEY: self._driven}}

    def turn_input(
        self, message: str | Mapping[str, Any], requested_by: str | None, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        if isinstance(message, Mapping):
            fields = {k: v for k, v in message.items() if k != "customer_message"}
            text = message.get("customer_message")
            if not isinstance(text, str):
                raise InvalidInputError(
                    "A mapping given to process() on a factory graph needs a "
                    "'customer_message' str; pass the message as a str instead."
                )
            message = text
        _validate.text("message", message)
        if requested_by is not None:
            _validate.text("requested_by", requested_by)
        schema = self._spec.state_schema
        if fields:
            unknown = fields.keys() - schema.model_fields.keys()
            if unknown:
                raise InvalidInputError(
                    f"Unknown state fields {sorted(unknown)} for {schema.__name__}; "
                    "add them to your state_schema subclass."
                )
            clash = fields.keys() & RESERVED
            if clash:
                raise InvalidInputError(f"Fields {sorted(clash)} are set by the library.")
            if "metadata" in fields:
                # Refused exactly as a decision's metadata is: LangGraph would checkpoint
                # NaN or NUL as given and fail only later, in a store or the serializer.
                fields = {**fields, "metadata": _validate.json_metadata(fields["metadata"])}
        # The previous turn's draft, findings and decision are cleared by the `draft`
        # node, only where set (a first turn writes no resets to its checkpoints).
        values: dict[str, Any] = {
            "customer_message": message,
            "requested_by": requested_by,
            **fields,
        }
        try:
            # LangGraph does not validate input against a pydantic schema before
            # checkpointing it; validate here so bad input changes nothing, and send
            # the validated (coerced) values rather than the raw ones.
            validated = schema.model_validate(values)
        except ValidationError as exc:
            raise InvalidInputError(f"Invalid input for this graph: {exc}") from exc
        dumped = validated.model_dump(include=set(values))
        for name in fields:
            try:
                _validate.check_storable(dumped[name])
            except ValueError as exc:
                raise InvalidInputError(f"{name} {exc}; no checkpoint could keep it.") from None
        return dumped

    def view(self, values: Any) -> ComplianceState:
        # A command_resume run's output carries "__interrupt__"; the schema ignores it.
        return self._spec.state_schema.model_validate(values)

    async def run(
        self, graph_input: Any, thread_id: str, *, durability: Durability | None = None
    ) -> Position | None:
        events = await self.graph.ainvoke(
            graph_input, self._config(thread_id), stream_mode="checkpoints", durability=durability
        )
        event = _last_top_level(events)
        if event is None:
            return None
        nxt = tuple(event["next"])
        return Position(
            self.view(event["values"]),
            nxt == PAUSED,
            str(event["config"]["configurable"]["checkpoint_id"]),
            next=nxt,
        )

    async def position(self, thread_id: str) -> Position:
        snapshot = await self.graph.aget_state(config_for(thread_id))
        nxt = tuple(snapshot.next)
        return Position(
            self.view(snapshot.values),
            nxt == PAUSED,
            checkpoint_id(snapshot),
            next=nxt,
            tasks=len(snapshot.tasks),
            snapshot=snapshot,
        )

    async def resume(self, review: ReviewRecord, made: Decision) -> Position | None:
        payload = made.to_state()
        if self._spec.style == "interrupt_before":
            # as_node="human_approval" skips the node body and routes on its edge;
            # Command(goto=...) here would run rejected twice (LANGGRAPH_FACTS.md).
            config = self._config(review.thread_id)
            await self.graph.aupdate_state(config, {"decision": payload}, as_node="human_approval")
            return await self.run(None, review.thread_id, durability="sync")
        return await self.run(Command(resume=payload), review.thread_id, durability="sync")

    def at_review(self, pos: Position, review: ReviewRecord) -> bool:
        return pos.paused and pos.checkpoint_id == review.checkpoint_id

    async def delivered(self, pos: Position, review: ReviewRecord, made: Decision) -> bool:
        return factory_delivered(pos, made)

    def delivered_text(self, pos: Position, review: ReviewRecord) -> str | None:
        return pos.state.agent_response

    async def paused_state(self, review: ReviewRecord) -> ComplianceState:
        paused = await self.graph.aget_state(checkpoint_config(review))
        return self.view(paused.values)

    async def edit_findings(self, review: ReviewRecord, made: Decision) -> list[RuleResult]:
        if made.tool_args is not None:
            raise InvalidDecisionError(
                "tool_args edit a tool call; a build_compliance_graph() review is of "
                "reply text: edit it with response=."
            )
        if made.response is None or made.response == review.draft_response:
            return []
        state = (await self.paused_state(review)).model_copy(
            update={"draft_response": made.response}
        )
        return [r for r in await run_rules(self._spec.rules, state) if r.verdict != "pass"]

    def review_id(self, pos: Position) -> str | None:
        return None


def _last_top_level(events: Any) -> dict[str, Any] | None:
    """The last top-level event of a `stream_mode="checkpoints"` run, if it gave any.

    With that mode `ainvoke` returns every checkpoint the run created, in the
    format of `aget_state`; events of nested graphs (other namespaces) are
    skipped. A wrapper that drops the stream mode gives None.
    """
    if not isinstance(events, list):
        return None
    for event in reversed(events):
        if not isinstance(event, dict) or "next" not in event:
            return None
        if not event["config"]["configurable"].get("checkpoint_ns"):
            return event
    return None


@dataclass(frozen=True, slots=True)
class _Driven:
    """What the gates of a run the coordinator drives are told: its store ([`Authority`])."""

    reviews: ReviewStore


class GateDriver:
    """A graph with `compliance_gate`s at any depth: each pause is one gate's pass.

    Every run carries the coordinator's store in its config, so the gates
    leave pauses to the coordinator to record and accept only the decisions
    that store holds as claimed.
    """

    def __init__(self, graph: Any, reviews: ReviewStore) -> None:
        self.graph = graph
        self.spec: GraphSpec | None = None
        self._driven = _Driven(reviews)
        builder = graph.builder
        self._channels = set(builder.schemas.get(builder.input_schema, {}))
        self._schema = builder.state_schema

    def turn_input(
        self, message: str | Mapping[str, Any], requested_by: str | None, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        if requested_by is not None:
            _validate.text("requested_by", requested_by)
        if isinstance(message, Mapping):
            values = dict(message)
        else:
            _validate.text("message", message)
            if "messages" in self._channels:
                values = {"messages": [HumanMessage(message)]}
            elif "customer_message" in self._channels:
                values = {"customer_message": message}
            else:
                raise InvalidInputError(
                    "This graph's input has neither 'messages' nor 'customer_message'; "
                    "pass process() a mapping that is the graph's input as is."
                )
        if requested_by is not None and "requested_by" in self._channels:
            values["requested_by"] = requested_by
        unknown = (values.keys() | fields.keys()) - self._channels
        if unknown:
            raise InvalidInputError(
                f"Unknown input keys {sorted(unknown)} for this graph; its input has "
                f"{sorted(self._channels)}."
            )
        values.update(fields)
        for name, value in values.items():
            if name == "messages":
                continue
            try:
                _validate.check_storable(value)
            except ValueError as exc:
                raise InvalidInputError(f"{name} {exc}; no checkpoint could keep it.") from None
        if isinstance(self._schema, type) and issubclass(self._schema, BaseModel):
            try:
                self._schema.model_validate(values)
            except ValidationError as exc:
                raise InvalidInputError(f"Invalid input for this graph: {exc}") from exc
        return values

    def view(self, values: Any) -> ComplianceState:
        outcome = _latest_outcome(values)
        if outcome is None:
            return ComplianceState(customer_message=_customer_text(values))
        return _outcome_view(outcome)

    async def run(
        self, graph_input: Any, thread_id: str, *, durability: Durability | None = None
    ) -> Position | None:
        events = await self.graph.ainvoke(
            graph_input, self._config(thread_id), stream_mode="checkpoints", durability=durability
        )
        event = _last_top_level(events)
        if event is None:
            return None
        if not event["next"]:
            return Position(
                self.view(event["values"]),
                False,
                str(event["config"]["configurable"]["checkpoint_id"]),
                values=event["values"],
            )
        # Stopped before a node: a gate's pause lives in its subgraph's checkpoint.
        return await self.position(thread_id)

    def _config(self, thread_id: str) -> Any:
        return {"configurable": {"thread_id": thread_id, AUTHORITY_KEY: self._driven}}

    async def position(self, thread_id: str) -> Position:
        snapshot = await self.graph.aget_state(config_for(thread_id), subgraphs=True)
        pauses = pauses_in(snapshot)
        pause = pauses[0] if pauses else None
        state = _outcome_view(pause.raw) if pause is not None else self.view(snapshot.values)
        return Position(
            state,
            pause is not None,
            checkpoint_id(snapshot),
            next=tuple(snapshot.next),
            tasks=len(snapshot.tasks),
            pause=pause,
            snapshot=snapshot,
            values=snapshot.values,
            pauses=tuple(pauses),
        )

    def _pause_of(self, pos: Position, review: ReviewRecord) -> GatePause | None:
        """The waiting pause `review` is of, among those `pos` shows, if any."""
        for pause in pos.pauses or ((pos.pause,) if pos.pause is not None else ()):
            if pause.review_id == review.review_id and (
                gate_review_checkpoint(pos.checkpoint_id, pause.review_id) == review.checkpoint_id
            ):
                return pause
        return None

    async def resume(self, review: ReviewRecord, made: Decision) -> Position | None:
        pos = await self.position(review.thread_id)
        pause = self._pause_of(pos, review)
        if pause is None:
            return None
        payload = made.to_state()
        if pause.style == "interrupt_before":
            await self.graph.aupdate_state(
                pause.config,
                {pause.key: {**pause.raw, "decision": payload, "refused": None}},
                as_node="human_approval",
            )
            return await self.run(None, review.thread_id, durability="sync")
        return await self.run(
            self._resume_command(pos, pause, payload), review.thread_id, durability="sync"
        )

    def _resume_command(self, pos: Position, pause: GatePause, payload: Any) -> Command[Any]:
        """The resume answering `pause` with `payload`: keyed by its interrupt id."""
        assert pause.interrupt_id is not None
        return Command(resume={pause.interrupt_id: payload})

    def at_review(self, pos: Position, review: ReviewRecord) -> bool:
        return self._pause_of(pos, review) is not None

    async def delivered(self, pos: Position, review: ReviewRecord, made: Decision) -> bool:
        if self.at_review(pos, review):
            return False
        outcome = self._decided(pos, review)
        if outcome is None and pos.snapshot is None:
            outcome = self._decided(await self.position(review.thread_id), review)
        held = None if outcome is None else outcome.get("decision")
        return isinstance(held, Mapping) and _same_decision(held, made)

    def delivered_text(self, pos: Position, review: ReviewRecord) -> str | None:
        outcome = self._decided(pos, review)
        return None if outcome is None else outcome.get("delivered")

    def _decided(self, pos: Position, review: ReviewRecord) -> dict[str, Any] | None:
        """The applied outcome of `review`'s gate pass, found in the state (or a subgraph's)."""
        sources: list[Any] = [pos.values]
        if pos.snapshot is not None:
            sources.extend(_nested_values(pos.snapshot))
        for values in sources:
            found = _outcome_by_id(values, review.review_id)
            if found is not None and found.get("status") != "pending":
                return found
        if pos.snapshot is not None:
            # One of several parallel pauses decided while the others wait: its item
            # is the result of its finished task, applied to the state only once
            # every task of the wave has finished.
            return _decided_in_tasks(pos.snapshot, review.review_id)
        return None

    async def paused_state(self, review: ReviewRecord) -> ComplianceState:
        return ComplianceState(
            customer_message=review.customer_message,
            draft_response=review.draft_response,
            violations=[v.to_dict() for v in review.violations],
            requested_by=review.requested_by,
        )

    async def edit_findings(self, review: ReviewRecord, made: Decision) -> list[RuleResult]:
        if made.response is None and made.tool_args is None:
            return []  # no edit: nothing to re-check, and no snapshot to read
        pause = _by_review_id(await self.position(review.thread_id), review.review_id)
        if pause is None:
            return []  # not paused there any more: the claim will say why
        rules = gate_at(self.graph, pause.config).rules
        return await item_edit_findings(rules, pause.raw, made)

    def review_id(self, pos: Position) -> str | None:
        return None if pos.pause is None else pos.pause.review_id


def _by_review_id(pos: Position, review_id: str) -> GatePause | None:
    """The waiting pause of `review_id` among those `pos` shows, if any."""
    return next((p for p in pos.pauses if p.review_id == review_id), None)


def _decided_in_tasks(snapshot: StateSnapshot, review_id: str) -> dict[str, Any] | None:
    """Item `review_id` as decided by a finished parallel task of a gate, if one holds it."""
    for task in snapshot.tasks:
        sub = task.state
        if not isinstance(sub, StateSnapshot):
            continue
        held = _latest_outcome(sub.values)
        for inner in sub.tasks:
            written = inner.result.get(DECIDED_KEY) if isinstance(inner.result, dict) else None
            for item in (written or {}).values():
                if isinstance(item, dict) and item.get("review_id") == review_id:
                    return _item_outcome(held or {}, item)
        found = _decided_in_tasks(sub, review_id)
        if found is not None:
            return found
    return None


def gate_at(graph: Any, config: Any) -> Any:
    """The options of the gate whose subgraph checkpoint config is `config`."""
    ns = str(config["configurable"].get("checkpoint_ns", ""))
    node: Any = graph
    for part in ns.split("|"):
        name = part.split(":", 1)[0]
        node = node.builder.nodes[name].runnable
    return gate_options(node)


def _nested_values(snapshot: StateSnapshot) -> list[Any]:
    found: list[Any] = []
    for task in snapshot.tasks:
        if isinstance(task.state, StateSnapshot):
            found.append(task.state.values)
            found.extend(_nested_values(task.state))
    return found


def _outcomes(values: Any) -> list[dict[str, Any]]:
    """Every gate outcome `values` holds: in a key, and on its AI messages' metadata."""
    if isinstance(values, BaseModel):
        values = dict(values)
    if not isinstance(values, Mapping):
        return []
    found = [v for v in values.values() if isinstance(v, dict) and v.get("kind") == PAYLOAD_KIND]
    for message in values.get("messages") or ():
        if isinstance(message, AIMessage):
            meta = message.response_metadata.get("hitl_compliance")
            if isinstance(meta, dict):
                found.append(meta)
    return found


def _outcome_by_id(values: Any, review_id: str) -> dict[str, Any] | None:
    """The outcome of review `review_id`: a gate pass's text, or one of its tool calls."""
    for outcome in _outcomes(values):
        for item in outcome.get("items") or ():
            if item.get("review_id") == review_id:
                return _item_outcome(outcome, item)
        if outcome.get("review_id") == review_id:
            return outcome
    return None


def _item_outcome(outcome: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """One item of a gate pass as an outcome: its status and decision, what it let through."""
    if item.get("target") != "tool_call":
        return {**outcome, **item, "delivered": outcome.get("delivered")}
    call = item["tool_call"]
    delivered = None
    if item.get("status") in {"clear", "approved", "edited"}:
        args = json.dumps(item.get("args") or {}, ensure_ascii=False, sort_keys=True)
        delivered = f"{call['name']}({args})"
    return {**outcome, **item, "delivered": delivered}


def _latest_outcome(values: Any) -> dict[str, Any] | None:
    """The outcome of the last gate pass `values` shows: its key, else the last AI message."""
    if isinstance(values, BaseModel):
        values = dict(values)
    if not isinstance(values, Mapping):
        return None
    for value in values.values():
        if isinstance(value, dict) and value.get("kind") == PAYLOAD_KIND:
            return value
    for message in reversed(values.get("messages") or ()):
        if isinstance(message, AIMessage):
            meta = message.response_metadata.get("hitl_compliance")
            return meta if isinstance(meta, dict) else None
    return None


def _customer_text(values: Any) -> str:
    if isinstance(values, BaseModel):
        values = dict(values)
    if not isinstance(values, Mapping):
        return ""
    text = values.get("customer_message")
    if isinstance(text, str):
        return text
    for message in reversed(values.get("messages") or ()):
        if isinstance(message, HumanMessage):
            return str(message.text)
    return ""


def _outcome_view(raw: Mapping[str, Any]) -> ComplianceState:
    """A gate outcome as the `ComplianceState` the coordinator's results are built from."""
    outcome = GateOutcome.from_dict(dict(raw))
    decision = outcome.decision
    status = outcome.status
    metadata: dict[str, Any] = {}
    if decision is not None:
        metadata.update(decision.metadata)
        metadata["reviewer"] = decision.reviewer
        metadata["decided_at"] = decision.to_state()["decided_at"]
        if not decision.approved and decision.reason:
            metadata["rejection_reason"] = decision.reason
    agent_type = None
    if status in {"approved", "edited", "rejected"}:
        agent_type = "human_admin"
    elif status == "clear":
        agent_type = "llm"
    elif status == "blocked":
        agent_type = "system"
    return ComplianceState(
        customer_message=outcome.customer_message,
        draft_response=outcome.draft,
        violations=[f.to_dict() for f in outcome.findings],
        agent_response=outcome.delivered,
        agent_type=agent_type,
        is_compliant=None if status == "pending" else status in {"clear", "approved", "edited"},
        metadata=metadata,
        decision=None if decision is None else decision.to_state(),
        requested_by=outcome.requested_by,
    )


def driver_for(graph: Any, spec: GraphSpec | None, reviews: ReviewStore) -> Driver:
    """The driver of `graph`: the factory's when `spec` is given, else one for its gates.

    Raises:
        ConfigurationError: `graph` is neither a factory graph nor holds a gate.
    """
    if spec is not None:
        return FactoryDriver(graph, spec, reviews)
    check_drivable(graph)
    return GateDriver(graph, reviews)


def check_drivable(graph: Any) -> None:
    """ConfigurationError unless `graph` is a compiled graph holding a gate (not a gate alone)."""
    if is_gate(graph) or not contains_gate(graph):
        raise ConfigurationError(
            "HitlCoordinator needs a graph made by build_compliance_graph(), or a "
            "compiled graph with a compliance_gate() node (at any depth); "
            f"got {type(graph).__name__} without one."
        )
