"""Crash a coordinator at a named step, and prove that `recover()` finishes its work.

A [`FaultInjector`][hitl_compliance.testing.FaultInjector] sits between a
coordinator and its review store, graph and hooks. Armed with a
[`FaultPoint`][hitl_compliance.testing.FaultPoint], it lets the named step
happen and then "kills the process": the call raises
[`SimulatedCrash`][hitl_compliance.testing.SimulatedCrash], and so does every
later store, graph or hook call made through the injector, until
[`restart()`][hitl_compliance.testing.faults.FaultInjector.restart]. The
coordinator's own clean-up (releasing a claim, ending a turn) therefore cannot
run, exactly as after a real crash; the stores and the checkpointer keep what
was committed, as a database would.

| point | what has happened when the process dies |
|---|---|
| `after_claim` | the decision claimed the review; the graph was not resumed |
| `before_resume` | as `after_claim`, dying in the graph call that applies the decision |
| `after_resume_before_record` | the graph applied the decision (any graph); nothing recorded it |
| `in_hook` | a hook was about to run (the event is durable; the call is owed) |

Example:
    ```python
    injector = FaultInjector()
    coord = injector.coordinator(graph, reviews=backend.reviews, clock=clock)
    await coord.process("t1", "Can I claim for the flood?")
    injector.arm("after_claim")
    with pytest.raises(SimulatedCrash):
        await coord.approve("t1", reviewer="adjuster@insurer")
    injector.restart()  # a new process
    clock.advance(minutes=5)  # past the lease
    await coord.recover()
    await assert_invariants(coord)
    ```
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, cast

from langgraph.types import Command

from hitl_compliance._coordination.driver import check_drivable
from hitl_compliance.coordinator import HitlCoordinator
from hitl_compliance.graph import ComplianceGraph, copy_graph, is_factory_graph
from hitl_compliance.hooks import Hooks
from hitl_compliance.models import ReviewRecord
from hitl_compliance.stores.base import ReviewStore
from hitl_compliance.stores.memory import InMemoryReviewStore

__all__ = ["FAULT_POINTS", "FaultInjector", "FaultPoint", "HookCall", "SimulatedCrash"]

FaultPoint: TypeAlias = Literal[
    "after_claim", "before_resume", "after_resume_before_record", "in_hook"
]
"""Where a [`FaultInjector`][hitl_compliance.testing.FaultInjector] kills the process."""

FAULT_POINTS: tuple[FaultPoint, ...] = (
    "after_claim",
    "before_resume",
    "after_resume_before_record",
    "in_hook",
)
"""Every fault point, in the order a decision passes them."""

_HOOK_NAMES = ("on_paused", "on_decided", "on_expired")
_PAUSED_NODE = "human_approval"


class SimulatedCrash(BaseException):
    """The injected process died; raised by every call through the injector until restart.

    A `BaseException`, like `KeyboardInterrupt`: code that catches `Exception`
    (a retry loop, the coordinator's hook error handling) does not swallow it,
    because a crashed process does not carry on.
    """

    def __init__(self, message: str, *, point: FaultPoint, thread_id: str | None) -> None:
        super().__init__(message)
        self.point = point
        self.thread_id = thread_id


@dataclass(frozen=True, slots=True)
class HookCall:
    """One hook call that went through the injector to the application's hook."""

    hook: str
    thread_id: str
    seq: int
    delivery_id: str = ""
    """The event's [`delivery_id`][hitl_compliance.hooks.ReviewEvent.delivery_id]."""


@dataclass(frozen=True, slots=True)
class _Armed:
    point: FaultPoint
    thread_id: str | None
    hook: str | None


class FaultInjector:
    """Wraps a review store, a graph and hooks; crashes them at an armed fault point.

    Wrap everything one coordinator uses (or let
    [`coordinator`][hitl_compliance.testing.faults.FaultInjector.coordinator] do it),
    `arm` a point, make the call that crashes, `restart()`, move the clock past
    the lease and `recover()`.

    Attributes:
        fired: The fault points that fired, oldest first.
        hook_calls: Every hook call that reached the application's hooks.
    """

    def __init__(self) -> None:
        self._armed: _Armed | None = None
        self._dead: SimulatedCrash | None = None
        self._resuming: set[str] = set()
        self.fired: list[FaultPoint] = []
        self.hook_calls: list[HookCall] = []

    # -- control ---------------------------------------------------------------

    def arm(
        self,
        point: FaultPoint,
        *,
        thread_id: str | None = None,
        hook: str | None = None,
    ) -> None:
        """Crash at the next `point` (on `thread_id` only, and for `in_hook` `hook` only, if given).

        Raises:
            ValueError: unknown point or hook name, or `hook` with another point.
            RuntimeError: the injected process is dead; `restart()` it first.
        """
        if point not in FAULT_POINTS:
            raise ValueError(f"Unknown fault point {point!r}; use one of {list(FAULT_POINTS)}.")
        if hook is not None and (point != "in_hook" or hook not in _HOOK_NAMES):
            raise ValueError(f"hook= needs point 'in_hook' and one of {list(_HOOK_NAMES)}.")
        if self._dead is not None:
            raise RuntimeError("The injected process is dead; call restart() before arming.")
        self._armed = _Armed(point, thread_id, hook)

    def disarm(self) -> None:
        """Forget the armed fault point, if it has not fired."""
        self._armed = None

    def restart(self) -> None:
        """Bring the injected process back to life, as a new process: nothing is armed."""
        self._dead = None
        self._armed = None
        self._resuming.clear()

    @property
    def armed(self) -> FaultPoint | None:
        """The armed fault point that has not fired yet, if any."""
        return None if self._armed is None else self._armed.point

    @property
    def dead(self) -> bool:
        """Whether a fault fired and the injected process has not been restarted."""
        return self._dead is not None

    def _alive(self) -> None:
        if self._dead is not None:
            raise SimulatedCrash(
                f"{self._dead} The process is dead: call injector.restart().",
                point=self._dead.point,
                thread_id=self._dead.thread_id,
            )

    def _fire(self, point: FaultPoint, thread_id: str | None, hook: str | None = None) -> None:
        armed = self._armed
        if armed is None or armed.point != point:
            return
        if armed.thread_id is not None and armed.thread_id != thread_id:
            return
        if armed.hook is not None and armed.hook != hook:
            return
        self._armed = None
        self.fired.append(point)
        crash = SimulatedCrash(
            f"Simulated crash at {point!r} on thread {thread_id!r}.",
            point=point,
            thread_id=thread_id,
        )
        self._dead = crash
        raise crash

    # -- wrapping --------------------------------------------------------------

    def wrap_store(self, store: ReviewStore) -> ReviewStore:
        """A store delegating each [`ReviewStore`][hitl_compliance.ReviewStore] method to `store`.

        `after_claim` fires once `claim()` (or the `vote()` that completes a
        quorum) has committed.
        """
        return cast(ReviewStore, _FaultyStore(store, self))

    def wrap_graph(self, graph: ComplianceGraph) -> ComplianceGraph:
        """A copy of `graph` whose async state and run methods go through the injector.

        `graph` is a `build_compliance_graph` graph or any compiled graph with
        [`compliance_gate`][hitl_compliance.compliance_gate]s in it. The copy
        shares the checkpointer and nodes (a factory graph's copy is registered
        with its build options), so `HitlCoordinator` accepts it; `graph`
        itself is not changed. `before_resume` fires in the first call that
        applies a decision (`aupdate_state(..., as_node="human_approval")`, on
        the graph or a gate's subgraph, or `ainvoke(Command(resume=...))`),
        before it reaches LangGraph;
        `after_resume_before_record` once the run that applies it has returned.
        """
        if graph in _ORIGINALS:
            raise ValueError("This graph is wrapped already; wrap the graph you built.")
        if is_factory_graph(graph):
            copy = copy_graph(graph)
        else:
            # A graph with gates: the coordinator reads it through its gates, which a
            # copy shares (ConfigurationError for a graph without any).
            check_drivable(graph)
            copy = graph.copy()
        _ORIGINALS[copy] = graph
        for name, method in self._graph_methods(graph).items():
            setattr(copy, name, method)
        return copy

    def wrap_hooks(self, hooks: Hooks | None = None) -> Hooks:
        """`hooks` with every hook going through the injector (`in_hook` fires before it runs).

        With no `hooks`, each of `on_paused`, `on_decided` and `on_expired` is a
        no-op, so the coordinator owes (and `in_hook` can interrupt) a hook call
        for every pause and decision.
        """
        wrapped: dict[str, Callable[[Any], Awaitable[None]]] = {}
        for name in _HOOK_NAMES:
            hook = None if hooks is None else getattr(hooks, name)
            if hooks is None or hook is not None:
                wrapped[name] = self._hook(name, hook)
        return Hooks(**wrapped)

    def coordinator(
        self,
        graph: ComplianceGraph,
        *,
        reviews: ReviewStore | None = None,
        hooks: Hooks | None = None,
        **options: Any,
    ) -> HitlCoordinator:
        """A `HitlCoordinator` over the wrapped `graph`, store (in memory by default) and hooks.

        `options` are passed on (`policy=`, `clock=`, `lease=`, `sla=`...).
        """
        return HitlCoordinator(
            self.wrap_graph(graph),
            reviews=self.wrap_store(reviews if reviews is not None else InMemoryReviewStore()),
            hooks=self.wrap_hooks(hooks),
            **options,
        )

    def _hook(
        self, name: str, hook: Callable[[Any], Awaitable[None] | None] | None
    ) -> Callable[[Any], Awaitable[None]]:
        async def call(event: Any) -> None:
            self._alive()
            self._fire("in_hook", event.thread_id, name)
            self.hook_calls.append(HookCall(name, event.thread_id, event.seq, event.delivery_id))
            if hook is not None:
                outcome = hook(event)
                if inspect.isawaitable(outcome):
                    await outcome

        return call

    def _graph_methods(self, graph: ComplianceGraph) -> dict[str, Any]:
        async def ainvoke(input: Any, config: Any = None, **kwargs: Any) -> Any:
            self._alive()
            thread_id = _thread_of(config)
            command = isinstance(input, Command) and input.resume is not None
            if command:
                self._fire("before_resume", thread_id)
            resume = command or (input is None and thread_id in self._resuming)
            try:
                result = await graph.ainvoke(input, config, **kwargs)
            finally:
                self._resuming.discard(thread_id or "")
            if resume:
                self._fire("after_resume_before_record", thread_id)
            return result

        async def aupdate_state(
            config: Any, values: Any, as_node: str | None = None, task_id: str | None = None
        ) -> Any:
            self._alive()
            thread_id = _thread_of(config)
            if as_node == _PAUSED_NODE:
                self._fire("before_resume", thread_id)
            result = await graph.aupdate_state(config, values, as_node=as_node, task_id=task_id)
            if as_node == _PAUSED_NODE and thread_id is not None:
                self._resuming.add(thread_id)
            return result

        async def aget_state(config: Any, **kwargs: Any) -> Any:
            self._alive()
            return await graph.aget_state(config, **kwargs)

        async def aget_state_history(config: Any, **kwargs: Any) -> AsyncIterator[Any]:
            self._alive()
            async for snapshot in graph.aget_state_history(config, **kwargs):
                yield snapshot

        return {
            "ainvoke": ainvoke,
            "aupdate_state": aupdate_state,
            "aget_state": aget_state,
            "aget_state_history": aget_state_history,
        }


_ORIGINALS: weakref.WeakKeyDictionary[Any, ComplianceGraph] = weakref.WeakKeyDictionary()


def _thread_of(config: Any) -> str | None:
    thread_id = (config or {}).get("configurable", {}).get("thread_id")
    return None if thread_id is None else str(thread_id)


def unwrap_graph(graph: ComplianceGraph) -> ComplianceGraph:
    """The graph a [`FaultInjector`][hitl_compliance.testing.FaultInjector] wrapped (or `graph`)."""
    return _ORIGINALS.get(graph, graph)


def unwrap_store(store: ReviewStore) -> ReviewStore:
    """The store a [`FaultInjector`][hitl_compliance.testing.FaultInjector] wrapped (or `store`)."""
    return store.wrapped if isinstance(store, _FaultyStore) else store


class _FaultyStore:
    """Delegates to a review store through a fault injector.

    Its methods are generated from the `ReviewStore` protocol below, so the
    wrapper always implements the whole protocol, also when it grows.
    """

    def __init__(self, store: ReviewStore, injector: FaultInjector) -> None:
        self.wrapped = store
        self._injector = injector

    def __getattr__(self, name: str) -> Any:
        # Adapter-specific extras (not part of the protocol) pass through unchanged.
        return getattr(self.wrapped, name)

    async def claim(self, thread_id: str, **kwargs: Any) -> ReviewRecord:
        self._injector._alive()
        claimed = await self.wrapped.claim(thread_id, **kwargs)
        self._injector._fire("after_claim", thread_id)
        return claimed

    async def vote(self, thread_id: str, **kwargs: Any) -> ReviewRecord:
        self._injector._alive()
        updated = await self.wrapped.vote(thread_id, **kwargs)
        if updated.status == "claimed":
            self._injector._fire("after_claim", thread_id)
        return updated


def _delegate(name: str, is_async: bool) -> Callable[..., Any]:
    if is_async:

        async def async_method(self: _FaultyStore, *args: Any, **kwargs: Any) -> Any:
            self._injector._alive()
            return await getattr(self.wrapped, name)(*args, **kwargs)

        method: Callable[..., Any] = async_method
    else:

        def sync_method(self: _FaultyStore, *args: Any, **kwargs: Any) -> Any:
            self._injector._alive()
            return getattr(self.wrapped, name)(*args, **kwargs)

        method = sync_method
    method.__name__ = method.__qualname__ = name
    return method


for _name, _member in vars(ReviewStore).items():
    if callable(_member) and not _name.startswith("_") and _name not in vars(_FaultyStore):
        setattr(_FaultyStore, _name, _delegate(_name, inspect.iscoroutinefunction(_member)))
