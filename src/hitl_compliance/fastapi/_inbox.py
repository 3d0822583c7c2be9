"""The reviewer inbox: one static HTML page with vanilla JS, served at `GET /inbox`.

The page holds no data (its script calls the JSON routes with the browser's
cookies), so it is read once when the router is built and served as it is,
with headers that forbid caching and framing by other sites.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources

from hitl_compliance.fastapi._security import frame_headers

__all__ = ["inbox_headers", "inbox_html"]


def inbox_html() -> str:
    """The inbox page, as shipped next to this module."""
    return (
        resources.files("hitl_compliance.fastapi")
        .joinpath("_inbox.html")
        .read_text(encoding="utf-8")
    )


def inbox_headers(frame_ancestors: Sequence[str]) -> Mapping[str, str]:
    """The page's response headers: never cached, framed only by `frame_ancestors`.

    Raises:
        ConfigurationError: a `frame_ancestors` entry is not one CSP source.
    """
    return {"Cache-Control": "no-store", **frame_headers(frame_ancestors)}
