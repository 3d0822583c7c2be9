"""`examples/notebook_quickstart.ipynb` is what its generator writes, and it executes cleanly.

The notebook runs with nbclient on the `python3` kernel of *this* environment:
the kernel spec is taken from ipykernel itself (which launches
`sys.executable`), never from a kernel installed per user, so a fresh CI
virtualenv needs no `ipykernel install`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from examples import _make_notebook

NOTEBOOK = Path(_make_notebook.__file__).with_name("notebook_quickstart.ipynb")


def outputs(cell: Any) -> str:
    """Everything a cell showed: streams, plain text, HTML and Markdown."""
    parts: list[str] = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        for mime in ("text/plain", "text/html", "text/markdown"):
            parts.append(output.get("data", {}).get(mime, ""))
    return "\n".join(parts)


def execute(notebook: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    """Run every cell on a kernel of the current interpreter; raise on the first error."""
    # kernel_dirs=[]: ignore kernel specs installed for the user or the system, so
    # "python3" resolves to ipykernel's own spec, which starts sys.executable.
    specs = KernelSpecManager(kernel_dirs=[])
    manager = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=specs)
    client = NotebookClient(
        notebook,
        km=manager,
        kernel_name="python3",
        timeout=120,
        startup_timeout=120,
        resources={"metadata": {"path": str(cwd)}},
    )
    return client.execute()


class TestNotebook:
    """The quick-start notebook: process -> pending -> approve -> audit log."""

    def test_matches_its_generator(self) -> None:
        """The committed notebook is exactly what `examples/_make_notebook.py` writes."""
        committed = nbformat.read(NOTEBOOK, as_version=4)
        nbformat.validate(committed)
        assert nbformat.writes(committed) == nbformat.writes(_make_notebook.build())
        assert all(not c.get("outputs") for c in committed.cells if c.cell_type == "code")

    def test_executes(self, tmp_path: Path) -> None:
        """Every cell runs; results, reviews and the graph render for a reader."""
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        probe = new_code_cell("import sys\nprint(sys.executable)")
        notebook.cells.insert(0, probe)
        ran = execute(notebook, tmp_path).cells
        assert outputs(ran[0]).strip() == sys.executable  # this environment's kernel

        shown = [outputs(c) for c in ran if c.cell_type == "code"]
        everything = "\n".join(shown)
        mermaid = next(s for s in shown if "```mermaid" in s)
        assert "human_approval" in mermaid
        assert "deliver" in mermaid
        assert "<table>" in everything  # ProcessResult / PendingReview _repr_html_
        assert "<td>paused</td>" in everything
        assert "advice:review, guarantee:review" in everything
        assert "refused: intern@bank may not decide" in everything
        assert "<td>An adviser will call you to discuss your options.</td>" in everything
        audit = shown[-1]  # one Markdown table of the log
        for event, actor in (
            ("paused", "system"),
            ("denied", "intern@bank"),
            ("approved", "officer@bank"),
        ):
            assert f"| {event} | {actor} |" in audit
