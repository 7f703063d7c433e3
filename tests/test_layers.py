"""The layers hold: each part of referee imports only the layers under it (import-linter's contracts in
pyproject.toml's [tool.importlinter]; imports inside functions count too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_imports_follow_the_layers():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    assert lint_imports.exists(), "lint-imports is missing: pip install -e '.[test]' (it brings import-linter)"
    out = subprocess.run([str(lint_imports), "--no-cache", "--no-logo"], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, (
        "a module imports a layer above its own (or a new module has no layer yet). Move the code down, or "
        "pass the object in from above; the layers are in pyproject.toml [tool.importlinter].\n"
        + out.stdout + out.stderr)
