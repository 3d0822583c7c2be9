"""What the review router checks before a request reaches a route: origin and media type.

A browser lets any page send a *simple* cross-origin request with the user's
cookies: a form post (`text/plain`, form-encoded or multipart) or a `fetch`
whose body has no declared type at all. Only a `Content-Type` outside that
list (such as `application/json`) makes the browser ask the server first (a
CORS preflight), and only the `Origin` / `Sec-Fetch-Site` headers tell the
server which page sent the request. So a decision is refused when a browser
says another origin sent it (403), and when its body is not declared JSON
(415), whatever the installed FastAPI does with such bodies (0.115 parses a
body without a `Content-Type` as JSON; later versions refuse it with a 422).

The checks live here, not in FastAPI dependencies, so they run before the body
is parsed and before `authenticate`, on every FastAPI version the `api` extra
allows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from hitl_compliance.errors import (
    ConfigurationError,
    CrossOriginRequestError,
    HitlError,
    InputTooLargeError,
    UnsupportedMediaTypeError,
)
from hitl_compliance.limits import too_large

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import Message

__all__ = [
    "CrossOriginRequestError",
    "RequestGuard",
    "UnsupportedMediaTypeError",
    "bounded",
    "frame_headers",
]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
"""Methods that change nothing, so any origin may send them (CORS guards what it reads)."""

MAX_BODY_BYTES = 1 << 20
"""The largest request body read (1 MiB): the largest valid decision body (a 20,000
character edit, 16 KiB of metadata and of tool arguments) is well under it."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(value: str) -> str | None:
    """`scheme://host[:port]` in lower case without a default port, or None if not an origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:  # a port out of range or not a number
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def is_json(content_type: str) -> bool:
    """Whether a `Content-Type` names JSON: `application/json` or `application/*+json`."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


@dataclass(frozen=True)
class RequestGuard:
    """The origin and media-type checks of the review router's state-changing routes.

    Attributes:
        trusted_origins: Normalised origins besides the service's own whose pages
            may send decisions, as `normalize_origin` gives them.
    """

    trusted_origins: frozenset[str] = frozenset()

    @classmethod
    def build(cls, trusted_origins: Sequence[str]) -> RequestGuard:
        """The guard for `create_review_router(trusted_origins=...)`, validated."""
        if isinstance(trusted_origins, str):
            raise ConfigurationError(
                "trusted_origins must be a list of origins, not one string: "
                f'trusted_origins=["{trusted_origins}"].'
            )
        normalized = set()
        for origin in trusted_origins:
            found = normalize_origin(origin) if isinstance(origin, str) else None
            if found is None:
                raise ConfigurationError(
                    f"trusted_origins entry {origin!r} is not an origin: give "
                    "scheme://host[:port] with http or https and no path, such as "
                    "'https://portal.bank.example'."
                )
            normalized.add(found)
        return cls(frozenset(normalized))

    async def refusal(self, request: Request) -> HitlError | None:
        """Why `request` must not reach its route, or None when it may."""
        if request.method.upper() in SAFE_METHODS:
            return None
        thread_id = request.path_params.get("thread_id")
        thread = thread_id if isinstance(thread_id, str) else None
        origin = request.headers.get("origin")
        if not self._same_origin(request, origin):
            return CrossOriginRequestError(
                f"Refused a {request.method} from {origin or 'another site'}: a browser sent "
                "it from a page of another origin, which could carry a reviewer's cookies. "
                "Decide from the service's own pages, or list that origin in "
                "create_review_router(trusted_origins=[...]).",
                thread_id=thread,
                origin=origin,
            )
        content_type = request.headers.get("content-type")
        if content_type is None:
            # No declared type: a body is what a type-less `fetch` Blob sends; no
            # body at all is left to request validation (a 422 naming the body).
            if not await request.body():
                return None
        elif is_json(content_type):
            return None
        return UnsupportedMediaTypeError(
            f"The body is {content_type or 'of no declared type'}, not JSON: send "
            "Content-Type: application/json with a JSON body ({} for no fields).",
            thread_id=thread,
            content_type=content_type,
        )

    def _same_origin(self, request: Request, origin: str | None) -> bool:
        fetch_site = request.headers.get("sec-fetch-site", "").strip().lower()
        if fetch_site in ("same-origin", "none"):  # "none": the user typed or bookmarked it
            return True
        if origin is not None:
            found = normalize_origin(origin)  # "null" (a sandboxed or file page) is None
            if found is None:
                return False
            own = normalize_origin(f"{request.url.scheme}://{request.url.netloc}")
            return found == own or found in self.trusted_origins
        # No Origin: a browser says cross-site / same-site only for another page's
        # request; a client that is not a browser (curl, a backend) sends neither.
        return fetch_site == ""


async def bounded(request: Request) -> Request | InputTooLargeError:
    """`request` with its body read, or a 413 refusal past `MAX_BODY_BYTES`.

    A declared `Content-Length` over the limit is refused unread; a body without
    one (chunked) is read only until it passes the limit, so no client can make
    the service hold more. Requests that change nothing pass as they are.
    """
    if request.method.upper() in SAFE_METHODS:
        return request
    thread_id = request.path_params.get("thread_id")
    thread = thread_id if isinstance(thread_id, str) else None

    def refused(size: int) -> InputTooLargeError:
        return too_large(
            "the request body", size, MAX_BODY_BYTES, "bytes", thread, fix="send a smaller one"
        )

    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return refused(int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return refused(size)
        chunks.append(chunk)
    body = b"".join(chunks)
    replayed = False
    upstream = request.receive

    async def receive() -> Message:
        # The body once, as read; then whatever the server says (a disconnect).
        nonlocal replayed
        if replayed:
            return await upstream()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return type(request)(request.scope, receive)


_KEYWORDS = ("'self'", "'none'")
_SOURCE = re.compile(
    r"(?:[a-z][a-z0-9+.-]*:"  # a scheme source, such as https:
    r"|(?:[a-z][a-z0-9+.-]*://)?(?:\*|(?:\*\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*)"  # [scheme://]host
    r"(?::(?:[0-9]{1,5}|\*))?"  # :port
    r"(?:/[^\s;,']*)?)",  # /path
    re.IGNORECASE,
)


def frame_headers(frame_ancestors: Sequence[str]) -> dict[str, str]:
    """The headers telling browsers which pages may frame the inbox.

    `Content-Security-Policy: frame-ancestors ...` for current browsers, and
    `X-Frame-Options` for old ones where it can say the same (`DENY` for
    `'none'`, `SAMEORIGIN` for `'self'`); browsers that know `frame-ancestors`
    ignore `X-Frame-Options`.

    Raises:
        ConfigurationError: an entry is not one CSP source expression.
    """
    if isinstance(frame_ancestors, str) or not frame_ancestors:
        raise ConfigurationError(
            "frame_ancestors must be a non-empty list of CSP sources, such as "
            '["\'none\'"] (the default), ["\'self\'"] or ["https://portal.bank.example"].'
        )
    sources = tuple(frame_ancestors)
    for source in sources:
        if not isinstance(source, str) or not (source in _KEYWORDS or _SOURCE.fullmatch(source)):
            raise ConfigurationError(
                f"frame_ancestors entry {source!r} is not one CSP source: use 'self', "
                "'none', a scheme such as https: or an origin such as "
                "https://portal.bank.example."
            )
    if "'none'" in sources and len(sources) > 1:
        raise ConfigurationError("frame_ancestors: 'none' must be the only entry.")
    headers = {"Content-Security-Policy": "frame-ancestors " + " ".join(sources)}
    legacy_values: dict[tuple[str, ...], str] = {("'none'",): "DENY", ("'self'",): "SAMEORIGIN"}
    legacy = legacy_values.get(sources)
    if legacy is not None:
        headers["X-Frame-Options"] = legacy
    return headers
