"""The hand-written infrastructure modules are small libraries: they import none of the
project's packages, and each declares its whole interface in ``__all__``."""

import ast
import importlib
from pathlib import Path

import pytest

PROJECT = {"accounts", "billing", "catalog", "docs_site", "eco", "keys", "lowrouter", "routing"}


@pytest.mark.parametrize("module_name", ["routing.http_client", "lowrouter.asyncdb"])
def test_a_library_module_imports_nothing_of_the_project_and_declares_its_interface(
    module_name: str,
) -> None:
    module = importlib.import_module(module_name)
    tree = ast.parse(Path(module.__file__).read_text())
    imported = [
        name
        for node in ast.walk(tree)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    ]
    assert [name for name in imported if name.split(".")[0] in PROJECT] == []
    assert all(hasattr(module, name) for name in module.__all__)
