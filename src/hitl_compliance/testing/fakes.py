"""Test doubles: a scripted drafter, a fake clock and an in-memory backend.

None of them needs anything beyond the core install. Use them directly, or
through the pytest fixtures `scripted_drafter`, `hitl_clock` and
`hitl_backend` of the plugin (`pytest_hitl_compliance`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Iterable, Mapping
from datetime import datetime, timedelta, timezone

from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance.backends import Backend
from hitl_compliance.state import ComplianceState
from hitl_compliance.stores.memory import InMemoryReviewStore

__all__ = ["EPOCH", "FakeClock", "ScriptedDrafter", "ScriptedDrafterError", "memory_backend"]

EPOCH = datetime(2025, 1, 1, 9, 0, tzinfo=timezone.utc)
"""Where a [`FakeClock`][hitl_compliance.testing.FakeClock] starts by default."""


class ScriptedDrafterError(RuntimeError):
    """Raised by a [`ScriptedDrafter`][hitl_compliance.testing.ScriptedDrafter] told to fail."""


class ScriptedDrafter:
    """A drafter that replies from a script keyed by the customer message, and counts calls.

    Messages missing from `script` get `default`, with `{message}` filled in.
    Every successful call is recorded with its customer message and its
    thread id (read from LangGraph's run config, `None` outside a run), so a
    test can assert that the LLM ran exactly once per turn.

    Args:
        script: Customer message -> draft text.
        default: The draft for any other message (`{message}` is substituted).
        is_async: Behave as an `async` drafter (returns an awaitable).
        fail_on: Customer messages for which every call raises
            [`ScriptedDrafterError`][hitl_compliance.testing.ScriptedDrafterError].

    Example:
        ```python
        drafter = ScriptedDrafter({"Can I claim?": "Your claim is guaranteed to pay out."})
        graph = build_compliance_graph(drafter, rules=rules, checkpointer=InMemorySaver())
        ...
        assert drafter.thread_counts == {"t1": 1}
        ```
    """

    def __init__(
        self,
        script: Mapping[str, str] | None = None,
        *,
        default: str = "Reply to: {message}",
        is_async: bool = False,
        fail_on: Iterable[str] = (),
    ) -> None:
        self.script: dict[str, str] = dict(script or {})
        self.default = default
        self.is_async = is_async
        self.fail_on: set[str] = set(fail_on)
        self.calls: list[str] = []
        """Customer messages of the successful calls, in call order."""
        self.threads: list[str | None] = []
        """Thread ids of the successful calls, in call order."""
        self.states: list[ComplianceState] = []
        """The states the successful calls received."""
        self.failures: list[str] = []
        """Customer messages of the calls that raised."""
        self._fail_next: list[BaseException] = []

    def text_for(self, message: str) -> str:
        """The draft this drafter gives for `message`."""
        return self.script.get(message, self.default.format(message=message))

    def fail_next(self, times: int = 1, error: BaseException | None = None) -> None:
        """Make the next `times` calls raise `error` (a `ScriptedDrafterError` by default)."""
        for _ in range(times):
            self._fail_next.append(error or ScriptedDrafterError("scripted drafter failure"))

    def __call__(self, state: ComplianceState) -> str | Awaitable[str]:
        if self.is_async:
            return self._adraft(state)
        return self._draft(state)

    async def _adraft(self, state: ComplianceState) -> str:
        return self._draft(state)

    def _draft(self, state: ComplianceState) -> str:
        message = state.customer_message
        if self._fail_next:
            self.failures.append(message)
            raise self._fail_next.pop(0)
        if message in self.fail_on:
            self.failures.append(message)
            raise ScriptedDrafterError(f"scripted drafter fails on {message!r}")
        self.calls.append(message)
        self.threads.append(_current_thread_id())
        self.states.append(state)
        return self.text_for(message)

    @property
    def counts(self) -> Counter[str]:
        """Successful calls per customer message."""
        return Counter(self.calls)

    @property
    def thread_counts(self) -> Counter[str]:
        """Successful calls per thread id (calls made outside a graph run are not counted)."""
        return Counter(t for t in self.threads if t is not None)

    def calls_for(self, thread_id: str) -> int:
        """How many times the drafter ran for `thread_id`."""
        return self.thread_counts[thread_id]


def _current_thread_id() -> str | None:
    """The thread id of the LangGraph run calling us, if any."""
    try:
        from langgraph.config import get_config

        config = get_config()
    except (ImportError, RuntimeError):  # outside a run, or an async run on Python < 3.11
        return None
    thread_id = config.get("configurable", {}).get("thread_id")
    return None if thread_id is None else str(thread_id)


class FakeClock:
    """An injectable clock for `HitlCoordinator(clock=...)`: time moves only when you say.

    Returns `now`, then moves it on by `step` (zero by default), so every
    timestamp in a test is predictable. Lease expiry, SLA deadlines and
    `recover()` are tested by advancing it, never by sleeping.

    Example:
        ```python
        clock = FakeClock()
        coord = HitlCoordinator(graph, clock=clock)
        clock.advance(minutes=5)
        ```
    """

    def __init__(self, start: datetime = EPOCH, *, step: timedelta = timedelta(0)) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start time.")
        self.now = start
        self.step = step
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        now = self.now
        self.now = now + self.step
        return now

    def advance(self, delta: timedelta | None = None, /, **units: float) -> datetime:
        """Move forward by `delta` or `timedelta(**units)`; return the new time."""
        self.now += (delta or timedelta()) + timedelta(**units)
        return self.now


def memory_backend() -> Backend:
    """A fresh in-process [`Backend`][hitl_compliance.Backend] (in-memory saver and review store).

    The synchronous twin of `open_backend("memory://")`, for tests that need no
    `async with`.
    """
    return Backend(url="memory://", checkpointer=InMemorySaver(), reviews=InMemoryReviewStore())
