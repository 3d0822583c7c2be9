"""Text for a terminal: control characters shown as escapes, never obeyed.

Customer messages, drafts, requester and reviewer ids are chosen by other
people. Printed raw, an ESC or C1 sequence can erase or overwrite what a
compliance officer reads (`ESC [2K`, `CSI n D`), an OSC can swallow text into
the window title, backspaces and carriage returns can overprint it, and bidi
overrides can reorder it. Every line the command-line tools print goes
through [`visible`][hitl_compliance._terminal.visible] (or
[`json_visible`][hitl_compliance._terminal.json_visible] for `--json`), so
what is on the screen is what is in the store.
"""

from __future__ import annotations

import re

__all__ = ["json_visible", "visible"]

# Besides C0 controls: DEL, C1 controls (U+0080-U+009F: 8-bit CSI, OSC, NEL...), the
# Unicode bidi marks, embeddings, overrides and isolates ("Trojan Source") and the
# line/paragraph separators some terminals treat as line breaks.
_BEYOND_C0 = "\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_ANY_CONTROL = re.compile(f"[\x00-\x1f{_BEYOND_C0}]")
_CONTROL_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{_BEYOND_C0}]")
# What json.dumps(ensure_ascii=False) leaves raw: everything beyond C0 above.
_JSON_RAW = re.compile(f"[{_BEYOND_C0}]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every control character replaced by its backslash escape.

    ESC becomes the four characters `\\x1b`, a C1 CSI `\\x9b`, a carriage
    return `\\r`, a right-to-left override `\\u202e`; printable text,
    including backslashes, accents and emoji, is unchanged.

    Args:
        text: Text to print, from whoever supplied it.
        keep_newlines: Leave `\\n` as a line break (for multi-line blocks the
            tool lays out itself); otherwise it is escaped too.

    Example:
        >>> visible("ok\\x1b[2K\\rforged")
        'ok\\\\x1b[2K\\\\rforged'
    """
    pattern = _CONTROL_BUT_NEWLINE if keep_newlines else _ANY_CONTROL
    return pattern.sub(_escape, text)


def json_visible(dumped: str) -> str:
    """JSON text (from `json.dumps(..., ensure_ascii=False)`) with no raw terminal controls.

    `json.dumps` escapes C0 controls already but leaves DEL, C1 controls and
    bidi overrides raw; they become `\\uXXXX` escapes, so the output is still
    valid JSON that decodes to exactly the same strings.
    """
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", dumped)
