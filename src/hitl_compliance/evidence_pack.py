"""Evidence packs: one review's whole record, for a supervisor, as a page and as data.

[`HitlCoordinator.evidence_pack`][hitl_compliance.HitlCoordinator.evidence_pack]
gathers one review from the library's own records (the review, its audit
rows with their hashes, the turn's `replied` row, the ledger verification and
the last signed head) into an [`EvidencePack`][hitl_compliance.EvidencePack]:
`data`, a JSON document, and `html`, one self-contained printable page in
plain English rendered from it. `write(directory)` puts `evidence.html`,
`evidence.json`, `manifest.json` (the SHA-256 of each file) and, with the
`pdf` extra, `evidence.pdf` there.

`manifest_sha256` is the SHA-256 of `evidence.json`'s bytes: the same records
give the same bytes, so anyone can recompute it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hitl_compliance.errors import ConfigurationError, InvalidInputError

__all__ = [
    "ERASED",
    "EVIDENCE_PACK_FORMAT",
    "EvidenceFiles",
    "EvidencePack",
    "pdf_available",
    "text_of",
]

EVIDENCE_PACK_FORMAT = "hitl-compliance/evidence-pack/1"
"""The `format` of an evidence pack's JSON document."""

ERASED = "erased"
"""How a pack shows a value personal-data erasure replaced (`{"$erased": true, ...}`)."""


def text_of(value: object) -> str:
    """`value` as the text a pack shows: an erased value is `"erased"`, None is `""`.

    Example:
        >>> text_of({"$erased": True, "sha256": "ab12"}), text_of(None), text_of("Hi")
        ('erased', '', 'Hi')
    """
    if value is None:
        return ""
    if isinstance(value, Mapping) and value.get("$erased") is True:
        return ERASED
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def pdf_available() -> bool:
    """Whether the `pdf` extra (WeasyPrint and its Pango libraries) is installed."""
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError):  # OSError: WeasyPrint without the Pango libraries
        return False
    return True


@dataclass(frozen=True, slots=True)
class EvidenceFiles:
    """The files [`EvidencePack.write`][hitl_compliance.EvidencePack.write] wrote."""

    html: Path
    json: Path
    manifest: Path
    pdf: Path | None
    """`evidence.pdf`, or None without the `pdf` extra."""


@dataclass(frozen=True, slots=True)
class EvidencePack:
    """One review's evidence: the JSON document, the page rendered from it, and its hash.

    Attributes:
        thread_id: The thread.
        review_id: The review the pack is of.
        html: One self-contained, printable HTML page (no external requests).
        json_text: The JSON document exactly as `evidence.json` holds it.
        manifest_sha256: SHA-256 of `json_text` as UTF-8.

    Example:
        ```python
        pack = await coord.evidence_pack("t1")
        files = pack.write("evidence/t1")
        print(pack.manifest_sha256, files.html)
        ```
    """

    thread_id: str
    review_id: str
    html: str
    json_text: str
    manifest_sha256: str

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> EvidencePack:
        """The pack of a document (as `data` returns it): its JSON, hash and page."""
        from hitl_compliance._evidence_html import render

        text = json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return cls(
            thread_id=str(data["thread_id"]),
            review_id=str(data["review_id"]),
            html=render(data, digest),
            json_text=text,
            manifest_sha256=digest,
        )

    @property
    def data(self) -> dict[str, Any]:
        """The JSON document (a fresh copy): message, draft, findings, decisions, ledger."""
        loaded: dict[str, Any] = json.loads(self.json_text)
        return loaded

    def pdf(self) -> bytes:
        """The page as a PDF (by WeasyPrint).

        Raises:
            ConfigurationError: the `pdf` extra is not installed.
        """
        try:
            from weasyprint import HTML
        except (ImportError, OSError) as exc:
            raise ConfigurationError(
                'A PDF evidence pack needs the pdf extra: pip install "hitl-compliance[pdf]" '
                f"(WeasyPrint, which needs the Pango libraries; {exc})."
            ) from None
        pdf: bytes = HTML(string=self.html).write_pdf()
        return pdf

    def write(self, directory: str | os.PathLike[str]) -> EvidenceFiles:
        """Write `evidence.html`, `evidence.json`, `manifest.json` (and `evidence.pdf`).

        The directory is created if missing; `manifest.json` holds the SHA-256
        of each other file and `manifest_sha256`. `evidence.pdf` is written when
        the `pdf` extra is installed.

        Raises:
            InvalidInputError: `directory` is not a path, or is an existing file.
        """
        if not isinstance(directory, (str, os.PathLike)):
            raise InvalidInputError(f"directory must be a path, got {type(directory).__name__}.")
        target = Path(directory)
        if target.exists() and not target.is_dir():
            raise InvalidInputError(f"{target} is a file; give a directory for the evidence pack.")
        # Rendered before anything is written: a failed PDF leaves no half-written pack.
        pdf = self.pdf() if pdf_available() else None
        target.mkdir(parents=True, exist_ok=True)
        contents: dict[str, bytes] = {
            "evidence.html": self.html.encode("utf-8"),
            "evidence.json": self.json_text.encode("utf-8"),
        }
        if pdf is not None:
            contents["evidence.pdf"] = pdf
        manifest = {
            "format": EVIDENCE_PACK_FORMAT,
            "thread_id": self.thread_id,
            "review_id": self.review_id,
            "manifest_sha256": self.manifest_sha256,
            "files": {name: hashlib.sha256(body).hexdigest() for name, body in contents.items()},
        }
        contents["manifest.json"] = (
            json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        ).encode("utf-8")
        for name, body in contents.items():
            (target / name).write_bytes(body)
        return EvidenceFiles(
            html=target / "evidence.html",
            json=target / "evidence.json",
            manifest=target / "manifest.json",
            pdf=None if pdf is None else target / "evidence.pdf",
        )
