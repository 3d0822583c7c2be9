"""Drive a graph served by LangGraph Server: the coordinator's driver over `RemoteGraph`.

A [`RemoteDriver`][hitl_compliance._coordination.remote.RemoteDriver] reads
and resumes a deployment's threads through LangGraph Server's API, exactly as
the in-process drivers read and resume a compiled graph: a factory graph's
`human_approval` pause, or a gate's pause at any depth. What kind of graph is
served is read once from the server (its drawn nodes and input schema), since
a remote graph's build options cannot be.

The coordinator's runs carry no in-process authority over HTTP. They are the
coordinator's own because it authenticates to the server as a service user
holding [`COORDINATOR_PERMISSION`][hitl_compliance.COORDINATOR_PERMISSION]:
the served graph (attached to the same review store) then records no pause of
those runs and applies only the decisions the store holds claimed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import messages_from_dict
from langgraph.types import Command, Durability

from hitl_compliance import _validate
from hitl_compliance._coordination.driver import (
    PAUSED,
    RESERVED,
    FactoryDriver,
    GateDriver,
    Position,
    _outcome_view,
    checkpoint_id,
    config_for,
    factory_delivered,
)
from hitl_compliance.errors import ConfigurationError, InvalidDecisionError, InvalidInputError
from hitl_compliance.gate import GatePause, pauses_in
from hitl_compliance.graph import GraphSpec
from hitl_compliance.models import ReviewRecord
from hitl_compliance.rules import RuleResult
from hitl_compliance.state import ComplianceState, Decision

__all__ = ["RemoteDriver", "RemoteKind", "is_remote", "missing_thread"]

RemoteKind = Literal["factory", "gated"]
"""What a served graph is: made by `build_compliance_graph`, or holding `compliance_gate`s."""


def is_remote(graph: Any) -> bool:
    """Whether `graph` is a `RemoteGraph` (a graph served by LangGraph Server)."""
    try:
        from langgraph.pregel.remote import RemoteGraph
    except ImportError:  # pragma: no cover - langgraph-sdk missing
        return False
    return isinstance(graph, RemoteGraph)


def missing_thread(exc: BaseException) -> bool:
    """Whether `exc` is LangGraph Server's answer for a thread it does not know (HTTP 404)."""
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None) == 404


@dataclass(frozen=True, slots=True)
class _Turn:
    """A turn's validated input, shaped for the served graph once its kind is known."""

    message: str | Mapping[str, Any]
    requested_by: str | None
    fields: Mapping[str, Any] = field(default_factory=dict)


def _revive(values: Any) -> Any:
    """State values read over HTTP, with serialized messages as LangChain messages again."""
    if not isinstance(values, dict):
        return values
    messages = values.get("messages")
    if not isinstance(messages, list):
        return values
    revived: list[Any] = []
    for message in messages:
        if isinstance(message, dict) and isinstance(message.get("type"), str):
            data = {k: v for k, v in message.items() if k != "type"}
            try:
                revived.extend(messages_from_dict([{"type": message["type"], "data": data}]))
                continue
            except (ValueError, TypeError, KeyError):
                pass
        revived.append(message)
    return {**values, "messages": revived}


def _refused(pos: Position) -> str | None:
    """The refusal a served graph answered the last resume with, shown on its new pause."""
    if pos.pause is not None:
        return pos.pause.raw.get("refused")
    snapshot = pos.snapshot
    if snapshot is None:
        return None
    for intr in snapshot.interrupts:
        if isinstance(intr.value, dict) and intr.value.get("refused"):
            return str(intr.value["refused"])
    return None


class _RemoteFactory(FactoryDriver):
    """A served `build_compliance_graph` graph (its build spec is not known here)."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.spec: GraphSpec | None = None
        self._driven = None

    def view(self, values: Any) -> ComplianceState:
        fields = ComplianceState.model_fields
        known = {k: v for k, v in (values or {}).items() if k in fields}
        return ComplianceState.model_validate(known)

    def shape(self, turn: _Turn) -> dict[str, Any]:
        message = turn.message
        fields = dict(turn.fields)
        if isinstance(message, Mapping):
            fields.update({k: v for k, v in message.items() if k != "customer_message"})
            text = message.get("customer_message")
            if not isinstance(text, str):
                raise InvalidInputError(
                    "A mapping given to process() on a factory graph needs a "
                    "'customer_message' str; pass the message as a str instead."
                )
            message = text
        _validate.text("message", message)
        clash = fields.keys() & RESERVED
        if clash:
            raise InvalidInputError(f"Fields {sorted(clash)} are set by the library.")
        for name, value in fields.items():
            try:
                _validate.check_storable(value)
            except ValueError as exc:
                raise InvalidInputError(f"{name} {exc}; no checkpoint could keep it.") from None
        return {"customer_message": message, "requested_by": turn.requested_by, **fields}

    async def run(
        self, graph_input: Any, thread_id: str, *, durability: Durability | None = None
    ) -> Position | None:
        await self.graph.ainvoke(graph_input, config_for(thread_id), durability=durability)
        return await self.position(thread_id)

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
            values=snapshot.values,
        )

    async def resume(self, review: ReviewRecord, made: Decision) -> Position | None:
        pos = await self.position(review.thread_id)
        if not self.at_review(pos, review):
            return None
        payload = made.to_state()
        snapshot = pos.snapshot
        interrupts = () if snapshot is None else snapshot.interrupts
        if interrupts:
            # Not keyed by the interrupt id read above: the server runs a thread's queued
            # runs in turn, and a client's resume queued before this one (refused: the
            # review is claimed) pauses again under a new id. A keyed resume then answers
            # nothing and the graph re-checks that client's value; a plain one answers
            # whichever pause is waiting when this run starts.
            command: Command[Any] = Command(resume=payload)
            return await self.run(command, review.thread_id, durability="sync")
        await self.graph.aupdate_state(
            config_for(review.thread_id), {"decision": payload}, as_node="human_approval"
        )
        return await self.run(None, review.thread_id, durability="sync")

    def at_review(self, pos: Position, review: ReviewRecord) -> bool:
        # A resume the served graph refused pauses the same node again, at a new checkpoint.
        return pos.paused and (pos.checkpoint_id == review.checkpoint_id or bool(_refused(pos)))

    async def delivered(self, pos: Position, review: ReviewRecord, made: Decision) -> bool:
        return factory_delivered(pos, made)

    async def edit_findings(self, review: ReviewRecord, made: Decision) -> list[RuleResult]:
        if made.tool_args is not None:
            raise InvalidDecisionError(
                "tool_args edit a tool call; a build_compliance_graph() review is of "
                "reply text: edit it with response=."
            )
        return []  # the served graph runs its rules on the edit before applying it


class _RemoteGates(GateDriver):
    """A served graph with `compliance_gate`s: pauses read from `aget_state(subgraphs=True)`."""

    def __init__(self, graph: Any, channels: set[str]) -> None:
        self.graph = graph
        self.spec: GraphSpec | None = None
        self._driven = None  # type: ignore[assignment]
        self._channels = channels
        self._schema = None

    def shape(self, turn: _Turn) -> dict[str, Any]:
        message = turn.message
        if isinstance(message, Mapping):
            values = dict(message)
        elif "messages" in self._channels or not self._channels:
            values = {"messages": [{"type": "human", "content": message}]}
        elif "customer_message" in self._channels:
            values = {"customer_message": message}
        else:
            raise InvalidInputError(
                "This graph's input has neither 'messages' nor 'customer_message'; "
                "pass process() a mapping that is the graph's input as is."
            )
        if turn.requested_by is not None and "requested_by" in self._channels:
            values["requested_by"] = turn.requested_by
        values.update(turn.fields)
        for name, value in values.items():
            if name == "messages":
                continue
            try:
                _validate.check_storable(value)
            except ValueError as exc:
                raise InvalidInputError(f"{name} {exc}; no checkpoint could keep it.") from None
        return values

    def view(self, values: Any) -> ComplianceState:
        return super().view(_revive(values))

    def _config(self, thread_id: str) -> Any:
        return config_for(thread_id)

    async def run(
        self, graph_input: Any, thread_id: str, *, durability: Durability | None = None
    ) -> Position | None:
        await self.graph.ainvoke(graph_input, config_for(thread_id), durability=durability)
        return await self.position(thread_id)

    async def position(self, thread_id: str) -> Position:
        snapshot = await self.graph.aget_state(config_for(thread_id), subgraphs=True)
        pauses = pauses_in(snapshot)
        pause = pauses[0] if pauses else None
        values = _revive(snapshot.values)
        state = self.view(values) if pause is None else _outcome_view(pause.raw)
        return Position(
            state,
            pause is not None,
            checkpoint_id(snapshot),
            next=tuple(snapshot.next),
            tasks=len(snapshot.tasks),
            pause=pause,
            snapshot=snapshot,
            values=values,
            pauses=tuple(pauses),
        )

    def _resume_command(self, pos: Position, pause: GatePause, payload: Any) -> Command[Any]:
        # The only pause waiting is answered with a plain resume, as the factory's is
        # (`_RemoteFactory.resume`): a client's resume the server ran first may have
        # paused it again under a new id. Several waiting need their ids.
        if len(pos.pauses or ()) == 1:
            return Command(resume=payload)
        return super()._resume_command(pos, pause, payload)

    def _pause_of(self, pos: Position, review: ReviewRecord) -> Any:
        # A gate's review id names one gate pass: the same id waiting is the same review,
        # even at a new checkpoint (a resume the served graph refused pauses again).
        for pause in pos.pauses or ((pos.pause,) if pos.pause is not None else ()):
            if pause.review_id == review.review_id:
                return pause
        return None

    async def edit_findings(self, review: ReviewRecord, made: Decision) -> list[RuleResult]:
        return []  # the served gate re-checks an edit with its rules before applying it


class RemoteDriver:
    """The coordinator's driver of a `RemoteGraph`: a served factory graph or gated graph.

    A deployment usually serves several graphs attached to one review store, so
    the store lists reviews of threads of each. Each thread is driven with the
    graph it was created for (its `graph_id` metadata on the server), through
    the same client; a thread the server does not know yet (a first turn) with
    the graph given.

    Args:
        graph: The `RemoteGraph` (its client authenticates as the coordinator's
            service user, holding `COORDINATOR_PERMISSION`).
    """

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.spec: GraphSpec | None = None
        self._drivers: dict[str, _RemoteFactory | _RemoteGates] = {}
        self._thread_graph: dict[str, str] = {}

    async def _driver(self, thread_id: str | None = None) -> _RemoteFactory | _RemoteGates:
        graph_id = str(self.graph.assistant_id)
        if thread_id is not None:
            graph_id = await self._graph_of(thread_id)
        found = self._drivers.get(graph_id)
        if found is None:
            graph = self.graph if graph_id == self.graph.assistant_id else self._sibling(graph_id)
            if await _read_kind(graph) == "factory":
                found = _RemoteFactory(graph)
            else:
                found = _RemoteGates(graph, await _input_channels(graph))
            self._drivers[graph_id] = found
        return found

    def _sibling(self, graph_id: str) -> Any:
        """The served graph `graph_id`, through this graph's clients and config."""
        from langgraph.pregel.remote import RemoteGraph

        return RemoteGraph(
            graph_id,
            client=self.graph.client,
            sync_client=self.graph.sync_client,
            config=self.graph.config,
        )

    async def _graph_of(self, thread_id: str) -> str:
        """The graph the server runs `thread_id` with (the given one for a new thread)."""
        known = self._thread_graph.get(thread_id)
        if known is not None:
            return known
        graph_id = str(self.graph.assistant_id)
        try:
            thread = await self.graph.client.threads.get(thread_id)
        except Exception:  # not created yet (a first turn), or not readable: the given graph
            return graph_id
        metadata = thread.get("metadata") or {}
        named = metadata.get("graph_id")
        if not isinstance(named, str) or not named:
            return graph_id  # no run yet: its first runs are the given graph's
        if graph_id not in (named, metadata.get("assistant_id")):
            graph_id = named
        self._thread_graph[thread_id] = graph_id
        return graph_id

    def _known(self, thread_id: str | None = None) -> _RemoteFactory | _RemoteGates:
        graph_id = self._thread_graph.get(thread_id or "", str(self.graph.assistant_id))
        found = self._drivers.get(graph_id) or next(iter(self._drivers.values()), None)
        if found is None:
            raise ConfigurationError(
                "The remote graph has not been read yet; run or read a thread first."
            )
        return found

    # -- the Driver protocol --------------------------------------------------------

    def turn_input(
        self, message: str | Mapping[str, Any], requested_by: str | None, fields: Mapping[str, Any]
    ) -> Any:
        if not isinstance(message, Mapping):
            _validate.text("message", message)
        if requested_by is not None:
            _validate.text("requested_by", requested_by)
        return _Turn(message, requested_by, dict(fields))

    def view(self, values: Any) -> ComplianceState:
        return self._known().view(values)

    async def run(
        self, graph_input: Any, thread_id: str, *, durability: Durability | None = None
    ) -> Position | None:
        inner = await self._driver(thread_id)
        if isinstance(graph_input, _Turn):
            graph_input = inner.shape(graph_input)
        return await inner.run(graph_input, thread_id, durability=durability)

    async def position(self, thread_id: str) -> Position:
        return await (await self._driver(thread_id)).position(thread_id)

    async def resume(self, review: ReviewRecord, made: Decision) -> Position | None:
        inner = await self._driver(review.thread_id)
        pos = await inner.resume(review, made)
        if pos is not None and inner.at_review(pos, review):
            refused = _refused(pos)
            if refused:
                # The served graph checked the decision and refused it (say, an edit its
                # rules block): the thread still waits at the review; the claim is released.
                raise InvalidDecisionError(
                    f"The deployment refused the decision on thread {review.thread_id!r}: "
                    f"{refused}",
                    thread_id=review.thread_id,
                )
        return pos

    def at_review(self, pos: Position, review: ReviewRecord) -> bool:
        return self._known(review.thread_id).at_review(pos, review)

    async def delivered(self, pos: Position, review: ReviewRecord, made: Decision) -> bool:
        return await (await self._driver(review.thread_id)).delivered(pos, review, made)

    def delivered_text(self, pos: Position, review: ReviewRecord) -> str | None:
        return self._known(review.thread_id).delivered_text(pos, review)

    async def paused_state(self, review: ReviewRecord) -> ComplianceState:
        return await (await self._driver(review.thread_id)).paused_state(review)

    async def edit_findings(self, review: ReviewRecord, made: Decision) -> list[RuleResult]:
        return await (await self._driver(review.thread_id)).edit_findings(review, made)

    def review_id(self, pos: Position) -> str | None:
        thread_id = None
        if pos.snapshot is not None:
            thread_id = pos.snapshot.config["configurable"].get("thread_id")
        return self._known(thread_id).review_id(pos)


async def _read_kind(graph: Any) -> RemoteKind:
    """Whether the served graph is a factory graph or holds gates, from its drawn nodes."""
    drawn = await graph.aget_graph(xray=True)
    nodes = set(drawn.nodes)
    if {"human_approval", "deliver", "rejected"} <= nodes:
        return "factory"
    if any(str(n).endswith(":human_approval") for n in nodes):
        return "gated"
    raise ConfigurationError(
        f"The served graph {graph.assistant_id!r} is neither a build_compliance_graph() "
        "graph nor holds a compliance_gate(); HitlCoordinator cannot drive it."
    )


async def _input_channels(graph: Any) -> set[str]:
    """The input keys of the served graph (empty when the server does not say)."""
    client = graph.client
    assistant = str(graph.assistant_id)
    try:
        found = await client.assistants.search(graph_id=assistant, limit=1)
        if found:
            assistant = str(found[0]["assistant_id"])
        schemas = await client.assistants.get_schemas(assistant)
    except Exception:  # a server without schemas: a conversation is the usual input
        return set()
    schema = schemas.get("input_schema") or schemas.get("state_schema") or {}
    return set((schema.get("properties") or {}).keys())
