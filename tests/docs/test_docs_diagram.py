"""The committed Mermaid diagrams in the docs are the ones LangGraph draws today."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "docs" / "gen_diagram.py"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_docs_gen_diagram", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen_diagram = _load_generator()


@pytest.mark.parametrize(
    ("style", "path"),
    sorted(gen_diagram.DIAGRAMS.items()),
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_committed_diagram_matches_the_real_graph(style: str, path: Path) -> None:
    """A graph change must come with `python docs/gen_diagram.py`, or this fails."""
    assert path.exists(), f"{path} is missing; run `python docs/gen_diagram.py`"
    committed = path.read_text(encoding="utf-8")
    assert committed == gen_diagram.mermaid(style), (
        f"{path.relative_to(ROOT)} is stale: run `python docs/gen_diagram.py` and commit it"
    )


def test_the_static_diagram_shows_the_pause_before_human_approval() -> None:
    """The default style's diagram marks `human_approval` as interrupted before it runs."""
    text = gen_diagram.mermaid("interrupt_before")
    assert "human_approval<hr/><small><em>__interrupt = before</em></small>" in text
    assert "__interrupt" not in gen_diagram.mermaid("command_resume")


def test_every_diagram_is_included_by_the_pause_styles_page() -> None:
    """Each generated file is shown in the docs, so none is generated for nothing."""
    page = (ROOT / "docs" / "concepts" / "pause-styles.md").read_text(encoding="utf-8")
    for path in gen_diagram.DIAGRAMS.values():
        assert f'--8<-- "{path.relative_to(ROOT).as_posix()}"' in page
