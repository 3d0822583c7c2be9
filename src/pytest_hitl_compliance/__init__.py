"""The pytest plugin: fixtures and markers for testing compliance graphs, active once installed.

Registered through the `pytest11` entry point, so any project that installs
`hitl-compliance[testing]` gets:

| fixture | gives |
|---|---|
| `hitl_backend` | an opened [`Backend`][hitl_compliance.Backend], once per backend (*) |
| `hitl_backend_url` | that backend's URL, for code that opens its own (a state machine) |
| `hitl_style` | the pause style: `interrupt_before`, or each under `hitl_both_styles` |
| `hitl_clock` | a [`FakeClock`][hitl_compliance.testing.FakeClock] |
| `scripted_drafter` | a [`ScriptedDrafter`][hitl_compliance.testing.ScriptedDrafter] |
| `hitl_faults` | a [`FaultInjector`][hitl_compliance.testing.FaultInjector] |

(*) memory, SQLite (a temporary file) and, when `HITL_TEST_POSTGRES_DSN` is
set, PostgreSQL.

Markers: `@pytest.mark.hitl_both_styles` runs a test once per pause style;
`@pytest.mark.hitl_backends("memory", "sqlite")` limits the backends.

On PostgreSQL every test session works in a schema of its own, created on
first use and dropped at the end; each test gets its own review tables and
empty checkpoint tables.

`hitl_backend` is an async fixture and needs pytest-asyncio (part of the
`testing` extra); without it the plugin still loads and the fixture says what
to install.

This module lives outside the `hitl_compliance` package and imports nothing
of it (nor LangGraph, nor Hypothesis) until a fixture runs: pytest loads it as
it starts, and LangGraph reads settings such as `LANGGRAPH_STRICT_MSGPACK`
once, when it is first imported, so a `conftest.py` that sets them still
comes first. `hitl_compliance.testing.plugin` re-exports it under the name
it was first published as.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

if TYPE_CHECKING:
    from hitl_compliance.backends import Backend
    from hitl_compliance.graph import PauseStyle
    from hitl_compliance.testing.fakes import FakeClock, ScriptedDrafter
    from hitl_compliance.testing.faults import FaultInjector

__all__ = [
    "BACKENDS",
    "STYLES",
    "hitl_backend",
    "hitl_backend_url",
    "hitl_clock",
    "hitl_faults",
    "hitl_postgres_dsn",
    "hitl_style",
    "scripted_drafter",
]

STYLES = ("interrupt_before", "command_resume")
"""The pause styles `@pytest.mark.hitl_both_styles` runs a test in."""

BACKENDS = ("memory", "sqlite", "postgres")
"""The backends `hitl_backend` knows; `postgres` only runs when `HITL_TEST_POSTGRES_DSN` is set."""

F = TypeVar("F", bound=Callable[..., Any])


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin's markers (so `--strict-markers` accepts them)."""
    config.addinivalue_line(
        "markers",
        "hitl_both_styles: run the test once per pause style (read it from the hitl_style fixture)",
    )
    config.addinivalue_line(
        "markers",
        "hitl_backends(*kinds): run hitl_backend / hitl_backend_url tests only on these "
        "backends (memory, sqlite, postgres)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise `hitl_style` (under `hitl_both_styles`) and the backend fixtures."""
    names = metafunc.fixturenames
    if metafunc.definition.get_closest_marker("hitl_both_styles") is not None:
        if "hitl_style" not in names:
            pytest.fail(
                f"{metafunc.definition.nodeid}: @pytest.mark.hitl_both_styles needs the test "
                "to use the hitl_style fixture (pass it to build_compliance_graph(style=...)).",
                pytrace=False,
            )
        metafunc.parametrize("hitl_style", STYLES, indirect=True)
    if "hitl_backend_url" in names:
        metafunc.parametrize("hitl_backend_url", _backend_kinds(metafunc), indirect=True)


def _backend_kinds(metafunc: pytest.Metafunc) -> list[str]:
    from hitl_compliance.testing.databases import postgres_dsn_from_env

    marker = metafunc.definition.get_closest_marker("hitl_backends")
    if marker is None:
        with_postgres = postgres_dsn_from_env() is not None
        return [k for k in BACKENDS if k != "postgres" or with_postgres]
    unknown = [k for k in marker.args if k not in BACKENDS]
    if unknown or not marker.args:
        pytest.fail(
            f"{metafunc.definition.nodeid}: hitl_backends takes backends among "
            f"{list(BACKENDS)}, got {list(marker.args)}.",
            pytrace=False,
        )
    return list(marker.args)


def _async_fixture(func: F) -> F:
    """`pytest_asyncio.fixture`, or a fixture explaining how to get pytest-asyncio."""
    try:
        import pytest_asyncio
    except ImportError:

        def missing() -> None:
            pytest.fail(
                f"The {func.__name__} fixture needs pytest-asyncio: "
                'pip install "hitl-compliance[testing]"',
                pytrace=False,
            )

        return pytest.fixture(name=func.__name__)(missing)  # type: ignore[return-value]
    return cast(F, pytest_asyncio.fixture(loop_scope="function")(func))


@pytest.fixture
def hitl_style(request: pytest.FixtureRequest) -> PauseStyle:
    """The pause style: `interrupt_before`, or each style in turn under `hitl_both_styles`."""
    style: PauseStyle = getattr(request, "param", "interrupt_before")
    return style


@pytest.fixture
def hitl_clock() -> FakeClock:
    """A [`FakeClock`][hitl_compliance.testing.FakeClock] that stands still until advanced."""
    from hitl_compliance.testing.fakes import FakeClock

    return FakeClock()


@pytest.fixture
def scripted_drafter() -> ScriptedDrafter:
    """A [`ScriptedDrafter`][hitl_compliance.testing.ScriptedDrafter]; fill `script` in the test."""
    from hitl_compliance.testing.fakes import ScriptedDrafter

    return ScriptedDrafter()


@pytest.fixture
def hitl_faults() -> FaultInjector:
    """A fresh [`FaultInjector`][hitl_compliance.testing.FaultInjector]."""
    from hitl_compliance.testing.faults import FaultInjector

    return FaultInjector()


@pytest.fixture(scope="session")
def hitl_postgres_dsn() -> Iterator[str]:
    """A DSN into a schema of this session's own, dropped at the end; skips without a server."""
    from hitl_compliance.testing.databases import (
        POSTGRES_DSN_ENV,
        postgres_dsn_from_env,
        postgres_schema,
    )

    dsn = postgres_dsn_from_env()
    if dsn is None:
        pytest.skip(f"{POSTGRES_DSN_ENV} is not set: no PostgreSQL server to test against")
    with postgres_schema(dsn, prefix="hitl_session_") as schema_dsn:
        yield schema_dsn


@pytest.fixture
def hitl_backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of the test's backend: `memory://`, a fresh SQLite file, or the session schema."""
    kind = getattr(request, "param", "memory")
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'hitl.db'}"
    if kind == "postgres":
        dsn: str = request.getfixturevalue("hitl_postgres_dsn")
        return dsn
    return "memory://"


@_async_fixture
async def hitl_backend(hitl_backend_url: str) -> AsyncIterator[Backend]:
    """An opened backend (checkpointer and review store) of each kind; closed afterwards."""
    from hitl_compliance.backends import open_backend

    if not hitl_backend_url.startswith("postgres"):
        async with open_backend(hitl_backend_url) as backend:
            yield backend
        return
    # The session's schema is shared: fresh review tables per test, and LangGraph's
    # checkpoint tables emptied, so thread ids like "t1" never meet an earlier test's.
    async with open_backend(hitl_backend_url, table_prefix=f"t{uuid.uuid4().hex[:8]}_") as backend:
        await _empty_checkpoint_tables(hitl_backend_url)
        yield backend


async def _empty_checkpoint_tables(dsn: str) -> None:
    import psycopg
    from psycopg import sql

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename LIKE 'checkpoint%' AND tablename <> 'checkpoint_migrations'"
        )
        tables = [row[0] for row in await cur.fetchall()]
        if tables:
            await conn.execute(
                sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(map(sql.Identifier, tables)))
            )
