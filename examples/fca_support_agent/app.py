"""A UK bank's support agent whose risky replies wait for an SM&CR-approved officer.

The pieces a real service has, small enough to read in one sitting:

* the compliance graph and its rules, from the library's FCA scenario
  (`hitl_compliance._fca`): personal recommendations and misleading promotions
  go to review, replies leaking account details are blocked;
* a `RoleBasedPolicy`: only an officer with the `smcr_approver` role may sign
  off a personal recommendation;
* `MessageService`, the bank's own conversation store (a SQLite file): the
  messages, and an `is_escalated` flag per conversation that the support
  dashboard shows while a reply waits for compliance;
* decision hooks that keep the two in step: `on_paused` escalates the
  conversation, `on_decided` stores the reply a human decided on and clears
  the flag, whoever decided and wherever (this process, the CLI, another
  service);
* `factory(backend)`, the same coordinator for the command line:
  `hitl-compliance pending --app examples.fca_support_agent:factory`.

Run it from the repository root: `python -m examples.fca_support_agent`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sqlite3
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path

from hitl_compliance import (
    Backend,
    DecidedEvent,
    HitlCoordinator,
    HitlError,
    Hooks,
    PausedEvent,
    ProcessResult,
    Reviewer,
    RoleBasedPolicy,
    build_compliance_graph,
    open_backend,
)
from hitl_compliance._fca import (
    COMPLIANCE_OFFICER,
    REJECTION_MESSAGE,
    SMCR_APPROVER,
    fca_drafter,
    fca_rules,
)

MESSAGES_ENV = "FCA_AGENT_MESSAGES"
"""Where `factory` (the CLI's `--app`) finds the MessageService file."""

POLICY = RoleBasedPolicy(
    # A personal recommendation is a certified function under SM&CR: only an
    # approver may sign it off. Anything else may also be decided by compliance.
    rule_roles={"investment_advice": SMCR_APPROVER},
    default_roles={COMPLIANCE_OFFICER, SMCR_APPROVER},
)


class MessageService:
    """The bank's conversation store: messages, and whether a conversation is escalated."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(path)
        with self._db:
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS conversations (
                    id TEXT PRIMARY KEY,
                    is_escalated INTEGER NOT NULL DEFAULT 0
                );
                CREATE TABLE IF NOT EXISTS messages (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    conversation_id TEXT NOT NULL REFERENCES conversations (id),
                    author TEXT NOT NULL,
                    text TEXT NOT NULL,
                    at TEXT NOT NULL,
                    audit_seq INTEGER UNIQUE  -- the decision it came from, if any
                );
                """
            )

    def add(self, conversation_id: str, author: str, text: str) -> None:
        """Append a message to the conversation (creating the conversation if new)."""
        with self._db:
            self._add(conversation_id, author, text, None)

    def escalate(self, conversation_id: str) -> None:
        """Flag the conversation: a reply is waiting for compliance."""
        with self._db:
            self._conversation(conversation_id)
            self._db.execute(
                "UPDATE conversations SET is_escalated = 1 WHERE id = ?", (conversation_id,)
            )

    def record_human_reply(
        self, conversation_id: str, author: str, text: str, *, audit_seq: int | None = None
    ) -> None:
        """Store the reply a human decided on and clear the escalation, in one transaction.

        `audit_seq` makes it idempotent: hooks are delivered at least once, so a
        retried call for the same decision stores nothing twice.
        """
        with self._db:
            self._add(conversation_id, author, text, audit_seq)
            self._db.execute(
                "UPDATE conversations SET is_escalated = 0 WHERE id = ?", (conversation_id,)
            )

    def is_escalated(self, conversation_id: str) -> bool:
        """Whether the conversation waits for compliance."""
        row = self._db.execute(
            "SELECT is_escalated FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        return bool(row and row[0])

    def transcript(self, conversation_id: str) -> list[tuple[str, str]]:
        """The conversation's `(author, text)` pairs, oldest first."""
        rows = self._db.execute(
            "SELECT author, text FROM messages WHERE conversation_id = ? ORDER BY seq",
            (conversation_id,),
        )
        return [(author, text) for author, text in rows]

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def _conversation(self, conversation_id: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO conversations (id) VALUES (?)", (conversation_id,))

    def _add(self, conversation_id: str, author: str, text: str, audit_seq: int | None) -> None:
        self._conversation(conversation_id)
        self._db.execute(
            "INSERT OR IGNORE INTO messages (conversation_id, author, text, at, audit_seq) "
            "VALUES (?, ?, ?, ?, ?)",
            (conversation_id, author, text, datetime.now(timezone.utc).isoformat(), audit_seq),
        )


def message_hooks(messages: MessageService) -> Hooks:
    """Hooks keeping the MessageService in step with reviews, called once each is durable."""

    def on_paused(event: PausedEvent) -> None:
        messages.escalate(event.thread_id)

    def on_decided(event: DecidedEvent) -> None:
        author = f"human agent ({event.reviewer})" if event.approved else "system"
        messages.record_human_reply(
            event.thread_id, author, event.agent_response or "", audit_seq=event.seq
        )

    return Hooks(on_paused=on_paused, on_decided=on_decided)


def make_coordinator(backend: Backend, messages: MessageService) -> HitlCoordinator:
    """The support agent's coordinator on `backend`, with hooks writing to `messages`."""
    graph = build_compliance_graph(
        fca_drafter,
        rules=fca_rules(),
        checkpointer=backend.checkpointer,
        rejection_message=REJECTION_MESSAGE,
    )
    return HitlCoordinator(
        graph, reviews=backend.reviews, policy=POLICY, hooks=message_hooks(messages)
    )


def factory(backend: Backend) -> HitlCoordinator:
    """The CLI's `--app`: the same coordinator, its hooks writing to `$FCA_AGENT_MESSAGES`."""
    return make_coordinator(backend, MessageService(os.environ.get(MESSAGES_ENV, "messages.db")))


class SupportAgent:
    """The chat front end's entry point: every customer message goes through the graph."""

    def __init__(self, coord: HitlCoordinator, messages: MessageService) -> None:
        self.coord = coord
        self.messages = messages

    async def on_customer_message(self, conversation_id: str, text: str) -> ProcessResult:
        """Draft a reply and deliver it, or hold it for compliance (the hook escalates)."""
        self.messages.add(conversation_id, "customer", text)
        result = await self.coord.process(conversation_id, text)
        if result.status != "paused":
            self.messages.add(conversation_id, f"agent ({result.agent_type})", _text(result))
        return result


def _text(result: ProcessResult) -> str:
    return result.agent_response or ""


def _log(conversation_id: str, text: str) -> None:
    print(f"[{conversation_id}] {text}")


async def run(backend_url: str, messages_path: Path) -> int:
    """Play four conversations: delivered, decided here, blocked, and one left for the CLI."""
    suffix = uuid.uuid4().hex[:4]
    faq, advice, leak, pension = (f"conv-{n}-{suffix}" for n in (1001, 1002, 1003, 1004))
    compliance = Reviewer("ops@bank", roles=frozenset({COMPLIANCE_OFFICER}))
    approver = Reviewer("officer@bank", roles=frozenset({SMCR_APPROVER}))
    messages = MessageService(messages_path)
    try:
        async with open_backend(backend_url) as backend:
            agent = SupportAgent(make_coordinator(backend, messages), messages)
            print(f"backend: {backend.url}")
            print(f"messages: {messages_path}")
            print()

            result = await agent.on_customer_message(faq, "What are your opening hours?")
            _log(faq, f"{result.status}: delivered {result.agent_response!r}")

            question = "Should I move my savings into the Global Equity Fund?"
            result = await agent.on_customer_message(advice, question)
            rules = ", ".join(v.rule for v in result.violations)
            _log(advice, f"{result.status}: held for compliance ({rules})")
            _log(advice, f"is_escalated={messages.is_escalated(advice)}")

            queue = [r.thread_id for r in await agent.coord.pending(reviewer=approver)]
            print(f"review queue of {approver.id}: {queue}")

            try:
                await agent.coord.approve(advice, reviewer=compliance)
            except HitlError as exc:
                _log(advice, f"{compliance.id} refused: {type(exc).__name__}")

            edited = (
                "I can't recommend a specific fund, but one of our qualified advisers can "
                "review your circumstances. Shall I book a call?"
            )
            result = await agent.coord.approve(advice, reviewer=approver, response=edited)
            _log(advice, f"{result.status}: {approver.id} approved an edited reply")
            _log(advice, f"is_escalated={messages.is_escalated(advice)}")

            result = await agent.on_customer_message(
                leak, "What is the account number on my joint account?"
            )
            _log(leak, f"{result.status}: blocked, customer got {result.agent_response!r}")

            question = "Is the Fixed Rate Saver safe for my pension lump sum?"
            result = await agent.on_customer_message(pension, question)
            _log(pension, f"{result.status}: left for you to decide from the command line")
            _log(pension, f"is_escalated={messages.is_escalated(pension)}")

            print()
            print(f"transcript of {advice}:")
            for author, text in messages.transcript(advice):
                print(f"  {author}: {text}")
            print(f"audit of {advice}:")
            for record in await agent.coord.audit_log(advice):
                print(f"  {record.seq:>3} {record.event:<8} by {record.actor}")
            if backend.url.startswith("memory:"):
                return 0  # nothing outlives this process: no review for the CLI to decide
            print()
            app = f"--backend {shlex.quote(backend.url)} --app examples.fca_support_agent:factory"
            print("Decide the last one from the command line; the CLI runs this app's hooks,")
            print("so the message store is updated just the same:")
            print(f"  export {MESSAGES_ENV}={shlex.quote(str(messages_path))}")
            print(f"  hitl-compliance show {pension} {app}")
            approve = f"approve {pension} --reviewer you@bank --role {SMCR_APPROVER}"
            print(f"  hitl-compliance {approve} {app}")
    finally:
        messages.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the example; `--backend` and `--messages` default to a new temporary directory."""
    parser = argparse.ArgumentParser(prog="python -m examples.fca_support_agent")
    parser.add_argument("--backend", metavar="URL", help="default: a temporary SQLite file")
    parser.add_argument("--messages", metavar="PATH", type=Path, help="MessageService file")
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="fca-agent-"))
    backend = args.backend or f"sqlite:///{directory / 'agent.db'}"
    return asyncio.run(run(backend, args.messages or directory / "messages.db"))
