"""`ComplianceMiddleware`: the compliance gate inside a LangChain agent (`create_agent`).

Install the `langchain` extra (`pip install "hitl-compliance[langchain]"`).

```python
agent = create_agent(
    model,
    tools=[transfer],
    middleware=[ComplianceMiddleware([ToolCallRule("transfer_limits", "transfer",
                                                   argument="amount_gbp", review_above=1_000)])],
    checkpointer=backend.checkpointer,
)
coord = HitlCoordinator(agent, reviews=backend.reviews, policy=policy)
```

After each model call the middleware runs the library's own
[`compliance_gate`][hitl_compliance.compliance_gate] on the agent's messages,
as a subgraph of its `after_model` node: the reply text and each tool call are
checked by the rules, and each flagged one pauses with its own review, exactly
as the gate does in a hand-built graph. So every guarantee of the gate holds:
a flagged call never runs before a decision; a decision is checked (policy,
four-eyes, quorum), claimed once and audited however it arrives (the
coordinator, the CLI, the review service, a raw `Command(resume=...)`, a
LangGraph Server run); an edit is re-checked by the rules; of two racing
decisions exactly one is applied. LangChain's `HumanInTheLoopMiddleware`
gives none of these: it records no reviewer, and of an approval and a
rejection racing it applies one and reports both as done.

The pause is resumed like any gate's: by the coordinator, or with
`Command(resume=...)` carrying a [`Decision`][hitl_compliance.Decision] or
LangChain's `HITLResponse` with one decision (`approve`, `edit` of the call's
`args`, `reject` with a `message` the model reads). Each flagged tool call
is its own pause (resume several at once with `{interrupt_id: value}`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import RemoveMessage
from langchain_core.runnables import RunnableConfig
from typing_extensions import NotRequired

from hitl_compliance.errors import ConfigurationError
from hitl_compliance.gate import CALLED_GATE, GATE_KEY, compliance_gate
from hitl_compliance.rules import ComplianceRule
from hitl_compliance.stores.base import ReviewStore

try:
    from langchain.agents.middleware import AgentMiddleware, AgentState
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError(
        'ComplianceMiddleware needs LangChain 1.x: pip install "hitl-compliance[langchain]"'
    ) from exc

__all__ = ["ComplianceAgentState", "ComplianceMiddleware"]


# Without LangChain installed (mypy of the core alone), AgentState is Any.
class ComplianceAgentState(AgentState[Any]):  # type: ignore[misc,unused-ignore]
    """The agent state with the gate's outcome of the latest model reply.

    `compliance` is read as a typed value with
    [`GateOutcome.from_state`][hitl_compliance.GateOutcome.from_state].
    """

    compliance: NotRequired[dict[str, Any] | None]  # type: ignore[valid-type,unused-ignore]


class ComplianceMiddleware(AgentMiddleware[ComplianceAgentState, Any, Any]):  # type: ignore[misc,unused-ignore]
    """Gates a LangChain agent's replies and tool calls with the library's rules and reviews.

    Args:
        rules: [`ComplianceRule`][hitl_compliance.ComplianceRule]s, as for
            [`compliance_gate`][hitl_compliance.compliance_gate]: text rules check
            the model's reply, [`ToolCallRule`][hitl_compliance.ToolCallRule]s
            each tool call it proposes.
        reviews: The review store the gate answers to when no
            [`HitlCoordinator`][hitl_compliance.HitlCoordinator] is attached (see
            `compliance_gate`); a coordinator built on the agent (or
            [`attach_authority`][hitl_compliance.attach_authority]) takes over.
        rejection_message: What the customer gets when the reply text is
            rejected or blocked (a refused tool call is answered to the model).
        name: The middleware's name; its node is `"<name>.after_model"`.

    Raises:
        ConfigurationError: a bad rule, message or name.

    The agent must be run asynchronously (`ainvoke`, `astream`), with a
    checkpointer, like every graph with a gate. `gate` is the compiled
    [`compliance_gate`][hitl_compliance.compliance_gate] the middleware runs.

    Example:
        ```python
        agent = create_agent(model, tools=[transfer], checkpointer=InMemorySaver(),
                             middleware=[ComplianceMiddleware([transfer_rule])])
        coord = HitlCoordinator(agent, reviews=InMemoryReviewStore(), policy=policy)
        result = await coord.process("t1", "Pay my landlord 5,000")
        [review] = await coord.pending()
        await coord.approve("t1", reviewer="payments@bank", review_id=review.review_id)
        ```
    """

    state_schema = ComplianceAgentState

    def __init__(
        self,
        rules: Sequence[ComplianceRule],
        *,
        reviews: ReviewStore | None = None,
        rejection_message: str | None = None,
        name: str = "ComplianceMiddleware",
    ) -> None:
        super().__init__()
        if not isinstance(name, str) or not name.strip() or "." in name or ":" in name:
            raise ConfigurationError(
                f"name must be a non-blank str without '.' or ':', got {name!r}."
            )
        self._name = name
        self.gate = compliance_gate(
            rules, key=GATE_KEY, rejection_message=rejection_message, reviews=reviews
        )
        gate = self.gate

        async def after_model(state: Any, runtime: Any, config: RunnableConfig) -> dict[str, Any]:
            # Called inside the node with the node's config, the compiled gate runs as
            # the node's subgraph: its own checkpoint namespace, its interrupts the
            # agent's, resumed with Command(resume=...) on the agent. LangGraph finds it
            # (for get_state(subgraphs=True)) among this function's closure variables.
            # (The config is passed explicitly: before Python 3.11 no context carries it.)
            messages = list(state["messages"])
            out = await gate.ainvoke({"messages": messages}, config)
            # The gate returns the messages it was given (as they were when it first
            # ran, on a resume), then its own: the draft's removal and the cleared
            # reply, with any answers to refused calls, all under new ids.
            seen = {m.id for m in messages if m.id is not None}
            own = [m for m in out["messages"] if isinstance(m, RemoveMessage) or m.id not in seen]
            return {"messages": own, GATE_KEY: out.get(GATE_KEY)}

        setattr(after_model, CALLED_GATE, gate)
        # An instance attribute: create_agent adds the node when the class overrides
        # `aafter_model` and then calls the instance's, which is this closure.
        self.aafter_model = after_model  # type: ignore[method-assign,assignment,unused-ignore]

    @property
    def name(self) -> str:
        """The middleware's name (its node is `"<name>.after_model"`)."""
        return self._name

    async def aafter_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Run the gate on the model's reply (replaced per instance in `__init__`)."""
        raise NotImplementedError  # pragma: no cover - shadowed by the instance's closure
