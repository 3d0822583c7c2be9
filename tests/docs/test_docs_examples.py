"""Every ```python block in the docs and the README runs, so no example can rot.

Each page's blocks run in order in one fresh module namespace, on one event
loop, in a temporary working directory. Top-level `await` / `async with` are
allowed (compiled with `ast.PyCF_ALLOW_TOP_LEVEL_AWAIT`). A block preceded by
`<!-- skip: reason -->` is not run; the reason is required.

Pages that talk to PostgreSQL read `DATABASE_URL`: this test points it at
`HITL_TEST_POSTGRES_DSN` (in a schema of its own, dropped afterwards) when
that is set, and removes it otherwise so the pages use their fallback.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import subprocess
import sys
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_SKIP = re.compile(r"^\s*<!--\s*skip:\s*(?P<reason>\S.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    page: Path
    line: int  # 1-based line of the first code line
    language: str
    code: str
    skip: str | None


def extract_blocks(path: Path) -> list[Block]:
    """All fenced blocks of `path`, also those indented inside tabs and admonitions."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        info = opening["info"].strip()
        language = info.split()[0].lower() if info else ""
        skip = None
        previous = i - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        if previous >= 0 and (marker := _SKIP.match(lines[previous])):
            skip = marker["reason"]
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = _FENCE.match(lines[j])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        blocks.append(Block(path, i + 2, language, "\n".join(body) + "\n", skip))
        i = j + 1
    return blocks


def python_blocks(path: Path) -> list[Block]:
    """The ```python blocks of one page, in order."""
    return [b for b in extract_blocks(path) if b.language in ("python", "py")]


def pages() -> list[Path]:
    """Every Markdown page of the docs, plus the README."""
    return [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]


PAGES_WITH_CODE = [p for p in pages() if python_blocks(p)]


def _page_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.fixture
def docs_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A temporary working directory and a `DATABASE_URL` of the test's own, if any."""
    monkeypatch.chdir(tmp_path)
    dsn = os.environ.get("HITL_TEST_POSTGRES_DSN")
    if not dsn:
        monkeypatch.delenv("DATABASE_URL", raising=False)
        yield
        return
    psycopg = pytest.importorskip("psycopg")
    schema = f"docs_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in dsn else "?"
    monkeypatch.setenv(
        "DATABASE_URL", f"{dsn}{separator}options={quote(f'-csearch_path={schema}', safe='')}"
    )
    try:
        yield
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def run_blocks(blocks: list[Block], module_name: str) -> None:
    """Run `blocks` in order in one module namespace on one event loop."""
    module = types.ModuleType(module_name)
    sys.modules[module_name] = module  # so pydantic and typing resolve names defined here
    loop = asyncio.new_event_loop()
    try:
        for block in blocks:
            if block.skip is not None:
                continue
            # Pad so tracebacks show the Markdown file's own line numbers.
            source = "\n" * (block.line - 1) + block.code
            code = compile(source, str(block.page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            outcome = eval(code, module.__dict__)
            if inspect.iscoroutine(outcome):
                loop.run_until_complete(outcome)
    finally:
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
            sys.modules.pop(module_name, None)


@pytest.mark.usefixtures("docs_env")
@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=_page_id)
def test_page_examples_run(page: Path) -> None:
    """The page's ```python blocks run top to bottom without an error or a warning."""
    run_blocks(python_blocks(page), f"docs_example_{uuid.uuid4().hex}")


class TestExtraction:
    """The block extractor finds what a reader sees, and skips only with a reason."""

    def test_every_page_is_found(self) -> None:
        """The docs have pages with Python examples, and the README is among the pages."""
        assert ROOT / "README.md" in pages()
        assert len(PAGES_WITH_CODE) >= 5

    def test_blocks_inside_tabs_are_dedented(self, tmp_path: Path) -> None:
        """A block indented in a tab or admonition runs as top-level code."""
        page = tmp_path / "page.md"
        page.write_text(
            '=== "Tab"\n\n    ```python\n    x = 1\n    if x:\n        y = 2\n    ```\n',
            encoding="utf-8",
        )
        [block] = python_blocks(page)
        assert block.code == "x = 1\nif x:\n    y = 2\n"
        assert block.line == 4

    def test_python_inside_another_fence_is_not_run(self, tmp_path: Path) -> None:
        """A ```python fence shown inside a ````markdown example is text, not code."""
        page = tmp_path / "page.md"
        page.write_text("````markdown\n```python\nraise SystemExit\n```\n````\n", encoding="utf-8")
        assert python_blocks(page) == []

    def test_skip_marker_needs_a_reason(self, tmp_path: Path) -> None:
        """`<!-- skip: why -->` skips the next block; a bare `<!-- skip -->` does not."""
        page = tmp_path / "page.md"
        page.write_text(
            "<!-- skip: needs a server -->\n```python\na = 1\n```\n"
            "<!-- skip -->\n```python\nb = 2\n```\n",
            encoding="utf-8",
        )
        first, second = python_blocks(page)
        assert first.skip == "needs a server"
        assert second.skip is None

    def test_skips_are_rare(self) -> None:
        """Most examples run: at most a handful of blocks across the docs are skipped."""
        skipped = [b for p in pages() for b in python_blocks(p) if b.skip is not None]
        # rules.md (a fragment), notebooks.md (pandas, IPython), langgraph-server.md (needs a
        # deployment; tests/server/test_remote_coordinator.py runs the same against one).
        assert len(skipped) <= 4, [(_page_id(b.page), b.line, b.skip) for b in skipped]


README = ROOT / "README.md"
CONTINUED_NOTE = "continue one another"
"""Said (in an admonition) by every page whose examples use top-level `await`."""


@pytest.mark.parametrize("block", python_blocks(README), ids=lambda b: f"README.md:{b.line}")
def test_readme_blocks_run_as_scripts(block: Block, tmp_path: Path) -> None:
    """Each README block, copied alone into a file, runs with plain `python` (no notebook)."""
    compile(block.code, f"README.md:{block.line}", "exec")  # a SyntaxError for top-level await
    script = tmp_path / "example.py"
    script.write_text(block.code, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=_page_id)
def test_pages_say_how_their_examples_run(page: Path) -> None:
    """A page whose blocks use top-level `await` says they run in a notebook or asyncio REPL."""
    needs_loop = []
    for block in python_blocks(page):
        try:
            compile(block.code, str(page), "exec")
        except SyntaxError:
            needs_loop.append(block.line)
    if page == README:
        assert needs_loop == [], "README blocks must run as plain scripts"
        return
    text = page.read_text(encoding="utf-8")
    if needs_loop:
        says_how = CONTINUED_NOTE in text and "python -m asyncio" in text
        assert says_how, (
            f"{_page_id(page)} uses top-level await at lines {needs_loop} but does not say "
            "how to run its examples (see docs/index.md, 'Running the examples')"
        )


def test_install_lines_name_real_extras() -> None:
    """Every `pip install` line of the docs and README names extras pyproject.toml defines."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the stdlib from 3.11")
    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    named: list[tuple[str, str]] = []
    for page in pages():
        for line in page.read_text(encoding="utf-8").splitlines():
            if "pip install" not in line:
                continue
            for group in re.findall(r"(?:hitl-compliance|\.)\[([a-z0-9_,\- ]+)\]", line):
                named.extend((_page_id(page), extra.strip()) for extra in group.split(","))
    assert named, "no install line found"
    unknown = [(page, extra) for page, extra in named if extra not in extras]
    assert unknown == []
