"""The public surface of `hitl_compliance`: `__all__` is sorted, complete and importable."""

from __future__ import annotations

import importlib
import types

import hitl_compliance


def isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical."""
    if name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


class TestAll:
    def test_sorted(self) -> None:
        """__all__ is sorted (constants, classes, then functions) and has no duplicates."""
        names = list(hitl_compliance.__all__)
        assert names == sorted(names, key=isort_key)
        assert len(names) == len(set(names))

    def test_importable(self) -> None:
        """Every name in __all__ can be imported from the package."""
        module = importlib.import_module("hitl_compliance")
        for name in hitl_compliance.__all__:
            assert getattr(module, name) is not None, name
        namespace: dict[str, object] = {}
        exec(f"from hitl_compliance import {', '.join(hitl_compliance.__all__)}", namespace)
        assert set(hitl_compliance.__all__) <= set(namespace)

    def test_matches_public_names(self) -> None:
        """__all__ equals the public names in the package namespace, submodules excluded."""
        public = {
            name
            for name, value in vars(hitl_compliance).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType)
        }
        assert set(hitl_compliance.__all__) == public

    def test_star_import(self) -> None:
        """`from hitl_compliance import *` binds exactly __all__."""
        namespace: dict[str, object] = {}
        exec("from hitl_compliance import *", namespace)
        assert set(namespace) - {"__builtins__"} == set(hitl_compliance.__all__)


class TestErrors:
    def test_tree(self) -> None:
        """Every library error derives from HitlError; InvalidDecisionError is an input error."""
        errors = [
            getattr(hitl_compliance, n) for n in hitl_compliance.__all__ if n.endswith("Error")
        ]
        assert errors
        for error in errors:
            assert issubclass(error, hitl_compliance.HitlError), error
        assert issubclass(hitl_compliance.InvalidDecisionError, hitl_compliance.InvalidInputError)

    def test_context_keyword_only(self) -> None:
        """Errors carry their thread as a keyword-only attribute next to the message."""
        error = hitl_compliance.AlreadyDecidedError("done", thread_id="t", status="approved")
        assert (error.message, error.thread_id, error.status) == ("done", "t", "approved")
        assert str(error) == "done"
