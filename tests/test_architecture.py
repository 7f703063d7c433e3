"""docs/architecture.md is generated from pyproject.toml (scripts/architecture.py): the page must be current,
and every protocol, report and command module must belong to a method in [tool.referee.methods], so a
newcomer finds each method's protocol, report and command in one place."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "referee"


def methods() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["referee"]["methods"]


def unplaced(groups: dict) -> list[str]:
    """Modules of the top three layers that no method lists (itself or a package above it)."""
    listed = [m for spec in groups.values() for m in spec["modules"]]
    out = []
    for layer in ("cli", "reports", "protocols"):
        for path in sorted((PACKAGE / layer).glob("*.py")):
            if path.stem == "__init__":
                continue
            dotted = f"{layer}.{path.stem}"
            if not any(dotted == m or dotted.startswith(m + ".") for m in listed if m != layer):
                out.append(dotted)
    return out


def test_the_architecture_page_is_generated_from_the_contracts():
    got = subprocess.run([sys.executable, str(ROOT / "scripts" / "architecture.py"), "--check"],
                         capture_output=True, text=True)
    assert got.returncode == 0, got.stderr


def test_every_protocol_report_and_command_belongs_to_a_method():
    assert unplaced(methods()) == []
    # the check can fail: take debate's protocol out of its group and it is reported
    groups = methods()
    groups["debate"] = {**groups["debate"], "modules": [m for m in groups["debate"]["modules"]
                                                        if m != "protocols.debate"]}
    assert unplaced(groups) == ["protocols.debate"]


def test_every_listed_module_exists():
    missing = [m for spec in methods().values() for m in spec["modules"]
               if not (PACKAGE.joinpath(*m.split(".")).with_suffix(".py").is_file()
                       or (PACKAGE.joinpath(*m.split(".")) / "__init__.py").is_file())]
    assert missing == []
