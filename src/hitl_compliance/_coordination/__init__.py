"""The coordinator's concerns, one module each, read in the order a review lives.

[`HitlCoordinator`][hitl_compliance.HitlCoordinator] is the public facade;
each of its methods holds the documentation and delegates to one of these
private modules (which check their arguments). They share one frozen
`context.Context`, built once by the coordinator:

1. `context`: the coordinator's configuration, and how a run of the graph is
   read (where it stopped, the result it gives).
2. `turns`: `process` runs a turn and, if the graph paused, opens its review.
3. `reviews`: `pending` / `review` / `may_decide`: what waits, and who may decide it.
4. `decisions`: `approve` / `reject` claim the review, resume the graph to the
   decided outcome (crash-safely) and record it.
5. `recovery`: `recover` finishes claims and turns a crashed process left.
6. `sla`: `expire_overdue` resolves reviews past their deadline.
7. `hooks`: the outbox-leased hook calls after each durable event, and which
   hooks a store writes outbox rows for.
8. `evidence`: the audit log, its verification and export, the decided state.

Each module is a set of functions of the context (no state of its own), so a
unit test drives one concern with a real graph and store and nothing else.
"""
