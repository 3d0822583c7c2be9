"""Graphs served by LangGraph Server, which supplies its own persistence.

LangGraph Server (`langgraph dev`, LangGraph Platform) refuses a graph compiled
with a checkpointer of its own and installs its checkpointer on a copy of each
graph it serves. [`PLATFORM_CHECKPOINTER`][hitl_compliance.PLATFORM_CHECKPOINTER]
says so explicitly: the graph compiles without a checkpointer and checks at run
time that the platform gave it one, because LangGraph would otherwise silently
never pause.
"""

from __future__ import annotations

import enum
from typing import Any, Final

from langchain_core.runnables import RunnableConfig

from hitl_compliance.errors import ConfigurationError

__all__ = ["PLATFORM_CHECKPOINTER", "PlatformCheckpointer", "require_checkpointer"]

# LangGraph puts the checkpointer a run uses under this configurable key; the
# constant itself lives in a private LangGraph module.
_CHECKPOINTER_KEY = "__pregel_checkpointer"


class PlatformCheckpointer(enum.Enum):
    """The type of [`PLATFORM_CHECKPOINTER`][hitl_compliance.PLATFORM_CHECKPOINTER].

    A one-member enum, so `checkpointer is PLATFORM_CHECKPOINTER` narrows the
    type and the sentinel survives pickling and copying as itself.
    """

    PLATFORM = "platform"

    def __repr__(self) -> str:
        return "PLATFORM_CHECKPOINTER"


PLATFORM_CHECKPOINTER: Final = PlatformCheckpointer.PLATFORM
"""`checkpointer=PLATFORM_CHECKPOINTER`: LangGraph Server supplies persistence.

[`build_compliance_graph`][hitl_compliance.build_compliance_graph] then
compiles without a checkpointer (the server installs its own on the copy it
serves) and every run checks that one is there, raising
[`ConfigurationError`][hitl_compliance.ConfigurationError] otherwise.

Example:
    ```python
    # graph.py, named in langgraph.json: {"graphs": {"compliance": "./graph.py:graph"}}
    graph = build_compliance_graph(
        draft, rules=rules, style="command_resume", checkpointer=PLATFORM_CHECKPOINTER
    )
    ```
"""


def require_checkpointer(config: RunnableConfig | None) -> None:
    """Refuse a run of a platform graph that has no checkpointer.

    Raises:
        ConfigurationError: the run's config carries no checkpointer (the graph
            was built with `PLATFORM_CHECKPOINTER` but runs outside the server).
    """
    configurable: dict[str, Any] = dict((config or {}).get("configurable") or {})
    if configurable.get(_CHECKPOINTER_KEY) is None:
        raise ConfigurationError(
            "This graph was built with checkpointer=PLATFORM_CHECKPOINTER, for LangGraph "
            "Server to supply persistence, but it runs without a checkpointer: LangGraph "
            "would never pause it for review. Serve it with `langgraph dev` / LangGraph "
            "Platform, or outside a server build it with a real checkpointer "
            "(checkpointer=InMemorySaver() in tests, open_backend(...).checkpointer), or "
            "run a copy with one: graph.copy(update={'checkpointer': saver})."
        )
