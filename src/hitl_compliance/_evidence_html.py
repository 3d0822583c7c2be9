"""An evidence pack's page: its JSON document as one self-contained, printable HTML file.

Standard library only (no template engine in the core dependencies). Every
value from the document goes through `_e` (`html.escape`), so a draft holding
`<script>` shows as text; the page has inline CSS and no scripts, images or
links that load anything.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from hitl_compliance.evidence_pack import ERASED, text_of

__all__ = ["render"]

_CSS = """
body { font: 15px/1.5 Georgia, 'Times New Roman', serif; color: #111; margin: 2rem auto;
  max-width: 60rem; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; border-bottom: 2px solid #333; margin-top: 2rem; }
.sub { color: #444; margin-top: 0; }
.box { border: 1px solid #999; padding: .6rem .8rem; background: #fafafa;
  white-space: pre-wrap; word-wrap: break-word; }
mark { background: #ffe066; padding: 0 .1em; }
del { background: #f8d0d0; } ins { background: #cdeccd; text-decoration: none; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
th, td { border: 1px solid #bbb; padding: .25rem .4rem; text-align: left; vertical-align: top; }
th { background: #eee; }
code, .hash { font-family: 'DejaVu Sans Mono', monospace; font-size: .75rem;
  word-break: break-all; }
.ok { color: #0a5d00; font-weight: bold; } .bad { color: #a00000; font-weight: bold; }
.small { font-size: .8rem; color: #444; }
section { page-break-inside: auto; }
@media print {
  body { margin: 0; max-width: none; font-size: 11pt; }
  h2 { page-break-after: avoid; }
  section.ledger { page-break-before: always; }
  tr, .box { page-break-inside: avoid; }
}
@page { size: A4; margin: 18mm 15mm; }
"""

_WHAT = {
    "paused": "Held for review by the rules",
    "voted": "Voted to approve",
    "denied": "Tried to decide, refused (not authorised)",
    "approved": "Approved",
    "rejected": "Rejected",
    "expired": "Expired: nobody decided within the time limit",
    "escalated": "Escalated: the time limit passed",
    "dated": "Deadline set",
    "recovered": "Finished after a process stopped",
    "replied": "Reply sent",
    "assigned": "Assigned by the routing",
    "reassigned": "Reassigned",
}

_OUTCOME = {
    "delivered": "The draft was sent as written.",
    "edited": "The reviewer's edited text was sent.",
    "blocked": "Nothing from the draft was sent: a rule blocked it.",
    "rejected": "The draft was not sent: a reviewer rejected it.",
    "expired": "The draft was not sent: nobody decided in time.",
}


def _e(value: object) -> str:
    """Escaped text of `value` (an erased value as `erased`, None as `-`)."""
    if value is None:
        return "-"
    if isinstance(value, Mapping) and value.get("$erased") is True:
        return f"<em>{ERASED}</em>"
    return html.escape(value if isinstance(value, str) else str(value), quote=True)


def _when(value: object) -> str:
    """An audit timestamp as people read it (`2026-12-03 09:15:02 UTC`), escaped."""
    if not isinstance(value, str):
        return _e(value)
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return _e(value)
    if at.tzinfo is not None:
        at = at.astimezone(timezone.utc)
    return _e(f"{at:%Y-%m-%d %H:%M:%S} UTC")


def _shown(value: object) -> object:
    """`value` with every erased value replaced by the word (for showing a payload)."""
    if isinstance(value, Mapping):
        if value.get("$erased") is True:
            return ERASED
        return {k: _shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(v) for v in value]
    return value


def render(data: Mapping[str, Any], manifest_sha256: str) -> str:
    """The page of an evidence pack's document."""
    thread, review = data["thread_id"], data["review_id"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Evidence pack: thread {_e(thread)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Evidence pack: one AI-drafted reply and its human review</h1>",
        f'<p class="sub">Thread <code>{_e(thread)}</code> &middot; review '
        f"<code>{_e(review)}</code> &middot; paused at checkpoint "
        f"<code>{_e(data['checkpoint_id'])}</code></p>",
        _summary(data),
        _section(
            "What the customer asked", f'<div class="box">{_e(data["customer_message"])}</div>'
        ),
        _section("What the AI drafted", _draft(data)),
        _section("Why it was held", _findings(data)),
        _section("Who decided, when", _decisions(data)),
        _section("What was sent", _sent(data)),
        _section("The ledger record", _ledger(data), css="ledger"),
        _section("Verification", _verification(data)),
        f'<p class="small">This page was generated from <code>evidence.json</code>, whose '
        f'SHA-256 is <span class="hash">{_e(manifest_sha256)}</span> '
        f"(format {_e(data['format'])}).</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _section(title: str, body: str, css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return f"<section{cls}><h2>{_e(title)}</h2>\n{body}\n</section>"


def _summary(data: Mapping[str, Any]) -> str:
    review = data["review"]
    delivered = data.get("delivered") or {}
    outcome = _OUTCOME.get(str(delivered.get("outcome")), "No reply has been recorded yet.")
    ok = data["verification"]["thread"]["ok"] and data["verification"]["store"]["ok"]
    check = (
        '<span class="ok">the ledger verifies</span>'
        if ok
        else '<span class="bad">the ledger does NOT verify</span>'
    )
    return (
        f"<p>The rules held this draft for review on {_when(review['requested_at'])}. "
        f"Review status: <strong>{_e(review['status'])}</strong>"
        f"{'' if review['reviewer'] is None else ' by ' + _e(review['reviewer'])}. "
        f"{_e(outcome)} Checked when this pack was made: {check}.</p>"
    )


def _draft(data: Mapping[str, Any]) -> str:
    draft = data["draft"]
    text: str = draft["text"]
    out, at = [], 0
    for span in draft["highlights"]:
        start, end = span["start"], span["end"]
        out.append(_e(text[at:start]))
        rules = ", ".join(span["rules"])
        out.append(f'<mark title="{_e(rules)}">{_e(text[start:end])}</mark>')
        at = end
    out.append(_e(text[at:]))
    note = (
        '<p class="small">Highlighted: the words each finding quotes as its evidence. '
        f'SHA-256 of the draft: <span class="hash">{_e(draft["sha256"])}</span>'
        f"{', as the ledger recorded it' if draft.get('matches_ledger') else ''}.</p>"
    )
    if not draft.get("matches_ledger"):
        note += (
            '<p class="bad">This text is not the one the ledger recorded for this review '
            "(the store no longer keeps it, or it was changed): only the SHA-256 in the "
            "ledger record below is evidence of what the reviewer saw.</p>"
        )
    return f'<div class="box">{"".join(out)}</div>{note}'


def _findings(data: Mapping[str, Any]) -> str:
    rows = [
        f"<tr><td>{_e(f['rule'])}</td><td>{_e(f['verdict'])}</td><td>{_e(f['severity'])}</td>"
        f"<td>{_e(f['reason'])}</td><td>{_e('; '.join(map(str, f['evidence'])))}</td></tr>"
        for f in data["findings"]
    ]
    table = _table(["Rule", "Verdict", "Severity", "Why", "Evidence quoted"], rows)
    versions = "".join(
        f"<li>{_e(r.get('name'))}, version <code>{_e(r.get('version'))}</code></li>"
        for r in data["rules"]
    )
    rules = (
        f"<p>The rules in force for this reply (rule set fingerprint "
        f'<span class="hash">{_e(data["ruleset"])}</span>):</p><ul>{versions}</ul>'
        if data["rules"]
        else "<p>No reply record names the rules yet (the review is still open).</p>"
    )
    return table + rules


def _decisions(data: Mapping[str, Any]) -> str:
    review = data["review"]
    rows = []
    for d in data["decisions"]:
        what = _WHAT.get(d["event"], d["event"])
        if d["event"] == "replied" and d.get("outcome"):
            what = f"{what} ({d['outcome']})"
        reason = d["reason_label"] or d["reason_code"]
        if d["reason_code"] and d["reason_label"]:
            reason = f"{d['reason_label']} ({d['reason_code']})"
        if d["reason"]:
            reason = f"{reason + ': ' if reason else ''}{text_of(d['reason'])}"
        rows.append(
            f"<tr><td>{_when(d['at'])}</td><td>{_e(what)}</td><td>{_e(d['actor'])}</td>"
            f"<td>{_e(', '.join(d['roles']) or None)}</td><td>{_e(reason)}</td>"
            f"<td>{d['seq']}</td></tr>"
        )
    table = _table(["When", "What happened", "Who", "Role(s)", "Reason", "Ledger seq"], rows)
    quorum = (
        f"<p>Approvals required: {_e(review['approvals_required'])}. Requested by: "
        f"{_e(review['requested_by'])}. Deadline: {_when(review['deadline'])}.</p>"
    )
    return quorum + table


def _sent(data: Mapping[str, Any]) -> str:
    out = []
    edit = data.get("edit")
    if edit is not None:
        runs = "".join(
            _e(text)
            if op == "="
            else f"<{'del' if op == '-' else 'ins'}>{_e(text)}</{'del' if op == '-' else 'ins'}>"
            for op, text in edit["diff"]
        )
        out.append(
            "<p>The reviewer edited the draft (removed text struck through, added text "
            f'underlined in green):</p><div class="box">{runs}</div>'
        )
    delivered = data.get("delivered")
    if delivered is None:
        out.append("<p>Nothing has been sent yet: the review is still open.</p>")
        return "".join(out)
    out.append(f"<p>{_e(_OUTCOME.get(str(delivered['outcome']), delivered['outcome']))} ")
    out.append(f"Decided by {_e(delivered['decided_by'])}.</p>")
    if delivered["text"] is not None:
        out.append(f'<div class="box">{_e(delivered["text"])}</div>')
    match = "matches" if delivered["text_matches_ledger"] else "is recorded as"
    out.append(
        f'<p class="small">The SHA-256 of the text sent {match} the reply record: '
        f'<span class="hash">{_e(delivered["sha256"])}</span></p>'
    )
    return "".join(out)


def _ledger(data: Mapping[str, Any]) -> str:
    rows = [
        f"<tr><td>{r['seq']}</td><td>{_when(r['at'])}</td><td>{_e(r['event'])}</td>"
        f'<td>{_e(r["actor"])}</td><td class="hash">{_e(r["prev_hash"])}</td>'
        f'<td class="hash">{_e(r["hash"])}</td></tr>'
        for r in data["ledger"]
    ]
    payloads = "".join(
        f"<tr><td>{r['seq']}</td><td><code>"
        f"{_e(json.dumps(_shown(r['payload']), sort_keys=True, ensure_ascii=False))}"
        "</code></td></tr>"
        for r in data["ledger"]
    )
    return (
        "<p>Each row of the tamper-evident audit ledger for this review. A row's hash "
        "is the SHA-256 of its content and of the previous row's hash, so changing, "
        "removing or reordering any row breaks every hash after it.</p>"
        + _table(["Seq", "When", "Event", "Who", "Previous hash", "Hash"], rows)
        + "<p>What each row recorded:</p>"
        + _table(["Seq", "Payload"], [payloads])
    )


def _verification(data: Mapping[str, Any]) -> str:
    check = data["verification"]
    thread, store, sealed = check["thread"], check["store"], check["sealed_head"]
    out = ["<ul>"]
    out.append(f"<li>{_verdict(thread, 'This thread')}</li>")
    out.append(f"<li>{_verdict(store, 'The whole ledger')}</li>")
    if sealed is None:
        out.append(
            "<li>No signed head: the ledger has not been sealed, so these rows are linked "
            "but not signed.</li>"
        )
    else:
        covered = (
            "This review's rows are covered by it."
            if sealed["covers_review"]
            else "This review's rows were written after it and are not covered yet."
        )
        out.append(
            f"<li>Last signed head: seq {sealed['seq']}, hash "
            f'<span class="hash">{_e(sealed["hash"])}</span>, signed '
            f"{_when(sealed['sealed_at'])} by key <code>{_e(sealed['key_id'])}</code>. "
            f"{covered}</li>"
        )
    for statement in store["proof"] or []:
        out.append(f"<li>{_e(statement[:1].upper() + statement[1:])}.</li>")
    out.append("</ul>")
    return "".join(out)


def _verdict(report: Mapping[str, Any], scope: str) -> str:
    if report["ok"]:
        return (
            f'<span class="ok">{_e(scope)}: {report["checked"]} rows verify.</span> Every '
            "hash matches its row and every row links to the one before it."
        )
    broken = report["first_broken"] or {}
    return (
        f'<span class="bad">{_e(scope)}: does NOT verify</span> at seq '
        f"{_e(broken.get('seq'))}: {_e(broken.get('reason'))}"
    )


def _table(headers: Sequence[str], rows: Sequence[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
