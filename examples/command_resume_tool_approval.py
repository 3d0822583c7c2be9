"""Inline approval of a tool call in a ReAct-style loop, with `style="command_resume"`.

An assistant works through a customer's request one step at a time. At each
step the model proposes one tool call as text (`CALL transfer(amount_gbp=5000,
to_account='12345678')`) or a final answer (`ANSWER ...`). Every proposal goes
through the compliance graph before anything runs:

* a rule flags tool calls that move money: `review` (an officer decides), or
  `block` above the daily limit (refused with no human involved);
* a flagged proposal pauses *inside* the `human_approval` node (LangGraph's
  `interrupt()`); the officer's decision resumes it with `Command(resume=...)`;
* the loop executes only the text the graph *delivered*: the approved call, or
  the rejection message, which becomes the model's next observation.

The "model" is a scripted stand-in and the tools are fakes; the officer decides
inline, where a real service would wait for a person. Run it from the
repository root: `python examples/command_resume_tool_approval.py`.
"""

from __future__ import annotations

import asyncio
import re

from langgraph.checkpoint.memory import InMemorySaver

from hitl_compliance import (
    ComplianceState,
    HitlCoordinator,
    PendingReview,
    Reviewer,
    RoleBasedPolicy,
    RuleResult,
    build_compliance_graph,
)

DAILY_LIMIT_GBP = 25_000
REJECTED = "REJECTED: compliance declined this tool call."
CALL = re.compile(r"^CALL (?P<tool>\w+)\((?P<args>.*)\)$")
ARG = re.compile(r"(\w+)=('[^']*'|\d+)")


def parse_call(text: str) -> tuple[str, dict[str, str | int]] | None:
    """`("transfer", {"amount_gbp": 5000, ...})` for a `CALL ...` line, else None."""
    match = CALL.match(text.strip())
    if match is None:
        return None
    args: dict[str, str | int] = {
        name: value.strip("'") if value.startswith("'") else int(value)
        for name, value in ARG.findall(match["args"])
    }
    return match["tool"], args


class MoneyMovementRule:
    """Tool calls that move money need a payments officer; above the daily limit, never."""

    name = "money_movement"

    def evaluate(self, state: ComplianceState) -> RuleResult:
        call = parse_call(state.draft_response or "")
        if call is None or call[0] != "transfer":
            return RuleResult(self.name, "pass")
        amount = int(call[1].get("amount_gbp", 0))
        evidence = (state.draft_response or "",)
        if amount > DAILY_LIMIT_GBP:
            return RuleResult(
                self.name, "block", f"£{amount:,} is over the daily limit", evidence, "critical"
            )
        return RuleResult(self.name, "review", f"moves £{amount:,}", evidence, "high")


def scripted_model(state: ComplianceState) -> str:
    """Stand-in for the LLM: the next step, from the task or the last observation."""
    seen = state.customer_message
    if seen.startswith("TASK "):
        task = seen.removeprefix("TASK ")
        amount, account = re.findall(r"£([\d,]+) to account (\d+)", task)[0]
        return f"CALL transfer(amount_gbp={amount.replace(',', '')}, to_account='{account}')"
    if seen.startswith("RESULT transfer"):
        return "ANSWER Done: " + seen.removeprefix("RESULT transfer: ")
    if seen.startswith("REJECTED"):
        return "ANSWER I couldn't make that transfer; a colleague from payments will call you."
    return "ANSWER Sorry, I can't help with that."


def transfer(amount_gbp: int, to_account: str) -> str:
    """A fake payments API."""
    return f"sent £{amount_gbp:,} to account {to_account}."


def officer_decision(review: PendingReview) -> tuple[bool, str]:
    """Stand-in for the officer's judgement: only known payees are approved."""
    call = parse_call(review.draft_response)
    known_payees = {"12345678"}
    if call is not None and call[1].get("to_account") in known_payees:
        return True, "known payee"
    return False, "payee not on the customer's list; possible scam"


async def run_task(coord: HitlCoordinator, officer: Reviewer, thread: str, task: str) -> str:
    """The ReAct loop: propose, check, (pause, decide), act, observe; until an answer."""
    print(f"== {thread}: {task}")
    observation = f"TASK {task}"
    for _ in range(5):  # a bounded loop, as every agent loop should be
        result = await coord.process(thread, observation)
        print(f"  model proposes: {result.draft_response}")
        if result.status == "paused":
            [review] = [r for r in await coord.pending() if r.thread_id == thread]
            findings = "; ".join(f"{v.rule}: {v.reason}" for v in review.violations)
            print(f"  paused in human_approval (interrupt): {findings}")
            approved, why = officer_decision(review)
            if approved:
                result = await coord.approve(thread, reviewer=officer, metadata={"why": why})
            else:
                result = await coord.reject(thread, reviewer=officer, reason=why)
            print(f"  {officer.id} {'approved' if approved else 'rejected'} it: {why}")
        elif result.status == "rejected":
            print(f"  blocked by {', '.join(v.rule for v in result.violations)}, no human needed")
        delivered = result.agent_response or ""
        call = parse_call(delivered)
        if call is not None and call[0] == "transfer":
            tool, args = call
            done = transfer(int(args["amount_gbp"]), str(args["to_account"]))
            observation = f"RESULT {tool}: {done}"
            print(f"  tool ran -> {observation}")
        elif delivered.startswith("ANSWER "):
            answer = delivered.removeprefix("ANSWER ")
            print(f"  answer: {answer}")
            return answer
        else:
            observation = delivered  # the rejection message: the model sees it was declined
            print(f"  observation: {observation}")
    raise RuntimeError(f"{thread}: no answer after 5 steps")


async def main() -> None:
    """Three requests: one approved, one rejected by the officer, one blocked by the rule."""
    graph = build_compliance_graph(
        scripted_model,
        rules=[MoneyMovementRule()],
        checkpointer=InMemorySaver(),
        style="command_resume",  # interrupt() inside human_approval, resumed by Command
        rejection_message=REJECTED,
    )
    coord = HitlCoordinator(
        graph, policy=RoleBasedPolicy(rule_roles={"money_movement": "payments_officer"})
    )
    officer = Reviewer("payments@bank", roles=frozenset({"payments_officer"}))
    await run_task(coord, officer, "pay-1", "Send £5,000 to account 12345678")
    await run_task(coord, officer, "pay-2", "Send £9,500 to account 99999999")
    await run_task(coord, officer, "pay-3", "Send £40,000 to account 12345678")
    print()
    for thread in ("pay-1", "pay-2", "pay-3"):
        events = [f"{r.event} by {r.actor}" for r in await coord.audit_log(thread)]
        print(f"audit {thread}: {', '.join(events) or 'nothing (never paused)'}")


if __name__ == "__main__":
    asyncio.run(main())
