import ast
from pathlib import Path

import eco

OTHER_APPS = {"catalog", "accounts", "keys", "billing", "routing", "docs_site", "lowrouter"}


def test_eco_imports_none_of_the_other_project_apps() -> None:
    root = Path(eco.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in OTHER_APPS]
    assert offenders == []
