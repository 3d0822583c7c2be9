"""Landed migration steps keep their exact SQL while the stores share their DDL (`stores._sql`).

A database made by an earlier version has run these statements; a step that
changed text could leave it with another schema than a new database gets. The
fingerprints below were taken from the released steps; append one when a new
step lands, never change one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import pytest

LANDED = {
    "sqlite": [
        "3eb2b1ee2db67540",
        "01915aaf87b5972f",
        "34a5fee9df477da1",
        "0c28eed6b6328eb7",
        "75e7ed2acf99f08e",
        "2952a0f7abc4bfd0",
        "c83ecf09468f7c0c",
        "bcf2a73223fe5ebd",
        "4ed733c501feb554",
        "fe1336388de66553",  # personal values beside the chain (erasure)
        "0f0de34c48a76f7d",  # second-line QA reviews
        "6e90aa8e5d4dc044",  # the stop switch
        "fe15da7d7a0426d6",  # assignment and delegation
        "9152132443c4242b",  # oversight report ranges
        "600de14e0fec2872",  # pending reviews by finding kinds
    ],
    "postgres": [
        "54ffe09aed38596d",
        "c85408dc3541582a",
        "51259fa2b6435c48",
        "fa8fc35a449067be",
        "c388e1c1bd322afd",
        "20bff9cdf9a14140",
        "c43747b19c11d00a",
        "2952a0f7abc4bfd0",
        "17b6ab381fb55890",
        "0b2ee51ff2162fe6",
        "8241a468a4fc30e7",
        "d94fe29f51683b8a",  # personal values beside the chain (erasure)
        "1f12936beefb9ba2",  # ledger lanes
        "5420fdfff18b119e",  # second-line QA reviews
        "67969d6a0610f476",  # the stop switch
        "66800bec4507b49c",  # assignment and delegation
        "9152132443c4242b",  # oversight report ranges
        "1613e26fce820197",  # pending reviews by finding kinds
    ],
}


def fingerprints(migrations: Sequence[Callable[[str], list[Any]]]) -> list[str]:
    """Each step's statements (a Python step by its name) under the default prefix, hashed."""
    return [
        hashlib.sha256(
            "\x00".join(
                s if isinstance(s, str) else f"<py {s.__name__}>" for s in step("hitl_")
            ).encode()
        ).hexdigest()[:16]
        for step in migrations
    ]


@pytest.mark.parametrize("backend", sorted(LANDED))
def test_landed_steps_are_unchanged(backend: str) -> None:
    """Every released migration step of the backend still runs exactly its released SQL."""
    if backend == "postgres":
        pytest.importorskip("psycopg")
        from hitl_compliance.stores import postgres as module
    else:
        from hitl_compliance.stores import sqlite as module  # type: ignore[no-redef]
    got = fingerprints(module._MIGRATIONS)
    assert got[: len(LANDED[backend])] == LANDED[backend]
