"""The inbox page on its own: the shipped HTML and the headers it is served with."""

from __future__ import annotations

import pytest

from hitl_compliance import ConfigurationError
from hitl_compliance.fastapi._inbox import inbox_headers, inbox_html


class TestInboxPage:
    """`inbox_html`: the page shipped inside the package."""

    def test_page_is_shipped(self) -> None:
        """The package carries a complete HTML page with its script inline."""
        page = inbox_html()
        assert page.lstrip().lower().startswith("<!doctype html>")
        assert "</html>" in page
        assert "<script" in page

    def test_page_calls_the_json_routes(self) -> None:
        """The page reads the review routes it is served beside."""
        assert "reviews" in inbox_html()


class TestInboxHeaders:
    """`inbox_headers`: never cached, framed only where allowed."""

    def test_default_forbids_framing(self) -> None:
        """By default no page may frame the inbox, and no cache keeps it."""
        assert inbox_headers(("'none'",)) == {
            "Cache-Control": "no-store",
            "Content-Security-Policy": "frame-ancestors 'none'",
            "X-Frame-Options": "DENY",
        }

    def test_listed_origin(self) -> None:
        """A listed portal may frame it; old browsers get no X-Frame-Options to misread."""
        headers = inbox_headers(("https://portal.bank.example",))
        assert headers["Content-Security-Policy"] == "frame-ancestors https://portal.bank.example"
        assert "X-Frame-Options" not in headers

    def test_bad_source(self) -> None:
        """An entry that is not one CSP source is a ConfigurationError."""
        with pytest.raises(ConfigurationError):
            inbox_headers(("'none' https://x",))
