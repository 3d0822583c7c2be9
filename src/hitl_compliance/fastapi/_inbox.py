"""The reviewer inbox: one static HTML page with vanilla JS, served at `GET /inbox`.

The page holds no data (its script calls the JSON routes with the browser's
cookies), so it is read once when the router is built and served as it is,
with headers that forbid caching and framing by other sites. Its decision
buttons come from the registry of decision kinds (`_decision_kinds.py`),
filled into the page's script as it is read.

A review of a gated tool call (a `compliance_gate` pause: checkpoint id
`"<checkpoint>:<review id>"`, draft `name({json args})`) shows the call's name
and arguments; a kind that edits tool arguments offers them as JSON in a
textarea, parsed in the page and validated again by the route.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib import resources

from hitl_compliance import _decision_kinds
from hitl_compliance.fastapi._security import frame_headers

__all__ = ["inbox_headers", "inbox_html", "inbox_kinds"]


def inbox_html() -> str:
    """The inbox page, as shipped next to this module, with the decision kinds filled in."""
    page = (
        resources.files("hitl_compliance.fastapi")
        .joinpath("_inbox.html")
        .read_text(encoding="utf-8")
    )
    return page.replace("__DECISION_KINDS__", kinds_script())


def inbox_kinds() -> list[dict[str, object]]:
    """What the page's script knows of each decision kind: one button (and field) each."""
    return [
        {
            "verb": kind.verb,
            "label": kind.label,
            "confirm": kind.confirm,
            "done": kind.done,
            "votes": kind.votes,
            "delivers": kind.delivers,
            "tool_args": kind.edits_tool_args,
            "text": {
                "name": kind.text.name,
                "label": kind.text.label,
                "edits_draft": kind.text.edits_draft,
                "placeholder": kind.text.placeholder,
            },
        }
        for kind in _decision_kinds.KINDS
    ]


def kinds_script() -> str:
    """`inbox_kinds()` as a JavaScript literal safe inside a `<script>` element."""
    text = json.dumps(inbox_kinds(), ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def inbox_headers(frame_ancestors: Sequence[str]) -> Mapping[str, str]:
    """The page's response headers: never cached, framed only by `frame_ancestors`.

    Raises:
        ConfigurationError: a `frame_ancestors` entry is not one CSP source.
    """
    return {"Cache-Control": "no-store", **frame_headers(frame_ancestors)}
