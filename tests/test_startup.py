"""Start-up cost: a command imports the one protocol it runs, so `referee --help` and a baseline judge run
never load torch (a second or more of imports on a small machine) or the libraries built on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import referee
from referee.protocols import BUILTIN

HEAVY = ("torch", "transformers", "trl", "peft")


def modules_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; which heavy modules and which protocol modules it loaded."""
    probe = (f"{code}\nimport json, sys\n"
             f"print('LOADED=' + json.dumps({{'heavy': sorted(m for m in {HEAVY!r} if m in sys.modules), "
             f"'protocols': sorted(m for m in sys.modules if m.startswith('referee.protocols.'))}}))")
    src = str(Path(referee.__file__).resolve().parents[1])  # the referee under test, from any folder
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p))
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1].removeprefix("LOADED="))


def cli(*args: str) -> str:
    """Code that runs the referee command line as `referee ARGS` would, exit included."""
    return (f"from referee.cli import main\n"
            f"try:\n    main({list(args)!r})\nexcept SystemExit as e:\n    assert not e.code, e")


def test_help_imports_no_protocol_and_no_torch():
    loaded = modules_after(cli("--help"))
    assert loaded == {"heavy": [], "protocols": []}


def test_a_baseline_judge_run_imports_only_the_judge_protocol(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"q{i}", "answer_a": "short", "answer_b": "a longer answer",
                                         "label": 1}) + "\n" for i in range(3)))
    run = tmp_path / "run"
    loaded = modules_after(cli("--quiet", "judge", "--judge", "baseline:longer", "--pairs", str(pairs),
                               "--limit", "2", "--run", str(run)))
    assert loaded == {"heavy": [], "protocols": ["referee.protocols.judge"]}
    assert len((run / "records" / "judgments.jsonl").read_text().splitlines()) == 2  # it did run


def test_builtin_table_names_every_protocol_where_it_is_registered():
    """BUILTIN is written by hand: a protocol added, renamed or moved must be entered there too."""
    import importlib
    import pkgutil

    from referee import protocols

    for info in pkgutil.iter_modules(protocols.__path__):
        importlib.import_module(f"referee.protocols.{info.name}")
    registered = {name: proto.run.__module__ for name, proto in protocols._REGISTRY.items()}
    assert registered == protocols.BUILTIN


@pytest.mark.parametrize("name", ["sampling", "weak_to_strong"])
def test_getting_a_protocol_imports_its_module_and_no_other_protocol(name):
    loaded = modules_after(f"from referee import protocols\nassert protocols.get({name!r}).name == {name!r}")
    assert loaded["protocols"] == [BUILTIN[name]]
    if name == "weak_to_strong":  # it needs torch at import, so the probe can see torch when it is there
        assert "torch" in loaded["heavy"]


def test_an_unknown_protocol_names_them_all_without_importing_them():
    loaded = modules_after("from referee import protocols\nfrom referee.errors import RefereeError\n"
                           "try:\n    protocols.get('nope')\nexcept RefereeError as e:\n"
                           "    assert 'weak_to_strong' in str(e) and 'agreement' in str(e), e\n"
                           "else:\n    raise AssertionError('no error')")
    assert loaded == {"heavy": [], "protocols": []}
