"""Every code block marked runnable in README.md and docs/ runs (issue 34: the docs cannot rot).

A block is marked by an HTML comment line directly above its fence (invisible on the site):
``<!-- runnable -->``, or ``<!-- runnable: KEY=VALUE ... -->`` with these settings:

- ``embedded=tiny``: every ``embedded`` model spec (``embedded``, ``judge:embedded``, ...) in the block, and in
  the copies of ``configs/`` and ``examples/`` it reads, is replaced by ``hf:`` + the tests' tiny random model
  (``tiny_model_path`` in conftest.py): the real embedded model takes tens of seconds per call on a shared CPU
  core. What is checked then is that the example is right, not what the model says.
- ``args="..."``: words appended to every ``referee`` command of a shell block (``{tiny}`` in them is the tiny
  model's spec), e.g. ``--set limit=2`` to run a shipped config at a size for the suite.

Each block runs in a fresh temporary folder holding links to (or, with ``embedded=tiny``, copies of) the
repository's ``examples/`` and ``configs/``, so nothing is written into the repository; ``data:`` paths read
the public data sets, and a block that names a missing set (itself or in a config it names) is skipped as the
``data`` tests are. A ``bash`` block runs line by line (``\\`` continues a line): ``referee ...`` (or
``.venv/bin/referee``) in this process through ``referee.cli.main`` (``test_cli_core.referee``), ``python -c
CODE`` and ``python - <<'EOF'`` by ``exec``, with ``> FILE`` as the only redirection; any other program fails
the test. In a ``console`` block only lines starting with ``$ `` are commands, and every other line is output
the command before it must print (spaces aside). A ``python`` block is ``exec``-ed in a fresh namespace, its
line numbers those of the page. A marked ``python`` block whose first line is ``# NAME.py`` is also that file:
it is written into the folder of each later marked block of the same page, which may import it.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from test_cli_core import referee

ROOT = Path(__file__).resolve().parents[1]
MARK = re.compile(r"^<!--\s*runnable(?::(.*?))?\s*-->\s*$")
FENCE = re.compile(r"^```(\w+)\s*$")
SPEC = re.compile(r"(?<![\w./-])embedded(?![\w./-])")  # a spec (`embedded`, `judge:embedded`), not a module name
DATA = re.compile(r"data:([\w.-]+/[\w./-]+)")
LINKED = ("examples", "configs")


@dataclass
class Block:
    page: Path
    line: int  # the fence's line, counted from 1
    lang: str
    code: str
    settings: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)  # NAME.py -> code, from earlier blocks of the page

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        lines = page.read_text(encoding="utf-8").splitlines()
        files: dict[str, str] = {}
        for i, text in enumerate(lines):
            mark = MARK.match(text)
            if not mark:
                continue
            fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
            if not fence or fence.group(1) not in ("bash", "console", "python"):
                raise AssertionError(f"{page.relative_to(ROOT)}:{i + 1}: a runnable mark must stand right above "
                                     "a ```bash, ```console or ```python fence")
            end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
            settings = dict(word.split("=", 1) for word in shlex.split(mark.group(1) or ""))
            unknown = set(settings) - {"embedded", "args"}
            assert not unknown and settings.get("embedded", "tiny") == "tiny", \
                f"{page.relative_to(ROOT)}:{i + 1}: unknown setting {settings}"
            block = Block(page, i + 2, fence.group(1), "\n".join(lines[i + 2:end]) + "\n", settings, dict(files))
            named = re.match(r"#\s*([\w]+\.py)\s*$", lines[i + 2]) if block.lang == "python" else None
            if named:
                files[named.group(1)] = block.code
            found.append(block)
    return found


BLOCKS = blocks()


def params():
    found = []
    for block in BLOCKS:
        configs = [ROOT / c for c in re.findall(r"configs/[\w/.-]+\.yaml", block.code) if (ROOT / c).exists()]
        texts = [block.code, *(c.read_text(encoding="utf-8") for c in configs)]
        sets = sorted({f for text in texts for f in DATA.findall(text)})
        found.append(pytest.param(block, id=block.where, marks=[pytest.mark.data(*sets)] if sets else []))
    return found


def test_blocks_are_marked():
    """The convention is in use, so a typo in it cannot silently turn every example off."""
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("block", params())
def test_the_example_runs(block: Block, tmp_path, monkeypatch, request):
    """Runs one marked block (see the module docstring); ``embedded=tiny`` blocks run on the tiny model."""
    wants_tiny = "embedded" in block.settings or "{tiny}" in block.settings.get("args", "")
    tiny = f"hf:{request.getfixturevalue('tiny_model_path')}" if wants_tiny else None
    for name in LINKED:
        if tiny and "embedded" in block.settings:  # the shipped configs too, on the tiny model
            for source in (ROOT / name).rglob("*"):
                if source.is_file():
                    copy = tmp_path / name / source.relative_to(ROOT / name)
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    copy.write_text(SPEC.sub(tiny, source.read_text(encoding="utf-8")), encoding="utf-8")
        else:
            (tmp_path / name).symlink_to(ROOT / name)
    for name, code in block.files.items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    code = SPEC.sub(tiny, block.code) if tiny and "embedded" in block.settings else block.code
    extra = shlex.split(block.settings.get("args", "").replace("{tiny}", tiny or "{tiny}"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    from referee import protocols

    registered = set(protocols._REGISTRY)
    try:
        if block.lang == "python":
            run_python(code, block)
        else:
            run_shell(code, block, tmp_path, extra)
    finally:
        for name in block.files:  # the page's modules are imported afresh by its next block
            sys.modules.pop(name.removesuffix(".py"), None)
        for name in set(protocols._REGISTRY) - registered - set(protocols.BUILTIN):  # nor its protocols
            del protocols._REGISTRY[name]


def run_python(code: str, block: Block, where: str | None = None, line: int | None = None) -> str:
    """``exec`` of ``code`` in a fresh namespace; what it printed. Tracebacks name the page and its line."""
    out = io.StringIO()
    line = block.line if line is None else line
    source = "\n" * line + code  # the block's first line is the page's line after the fence
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(source, str(block.page), "exec"), {"__name__": "__main__"})
    except Exception as e:  # noqa: BLE001 - the test names the block, the traceback the line
        raise AssertionError(f"{where or block.where}: {type(e).__name__}: {e}") from e
    return out.getvalue()


def commands(code: str, block: Block) -> list[tuple[int, str, str, list[str]]]:
    """(page line, command line, heredoc body, expected output lines) of a shell block."""
    lines = code.splitlines()
    console = any(x.startswith("$ ") for x in lines)
    found: list[tuple[int, str, str, list[str]]] = []
    i = 0
    while i < len(lines):
        start, text = i, lines[i]
        if console and not text.startswith("$ "):
            if found and text.strip():
                found[-1][3].append(text)
            i += 1
            continue
        text = text[2:] if console else text
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text[:-1] + " " + lines[i].strip()
        body = ""
        heredoc = re.search(r"<<-?\s*'?(\w+)'?\s*$", text)
        if heredoc:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == heredoc.group(1))
            body = "\n".join(lines[i + 1:end]) + "\n"
            text = text[:heredoc.start()]
            i = end
        i += 1
        if text.strip() and not text.lstrip().startswith("#"):
            found.append((block.line + 1 + start, text, body, []))
    return found


def run_shell(code: str, block: Block, folder: Path, extra: list[str]) -> None:
    for line, text, body, expected in commands(code, block):
        where = f"{block.page.relative_to(ROOT)}:{line}"
        words = shlex.split(text, comments=True)
        target = None
        if ">" in words:
            k = words.index(">")
            words, target = words[:k], words[k + 1]
        program, args = words[0], words[1:]
        if program == "referee" or program.endswith("/referee"):
            done = referee(*args, *extra, cwd=folder)
            assert done.returncode == 0, f"{where}: `{text.strip()}` exited {done.returncode}:\n{done.stderr}"
            out = done.stdout
        elif program in ("python", "python3") and args[:1] == ["-c"]:
            out = run_python(args[1], block, where, line - 1)
        elif program in ("python", "python3") and args == ["-"] and body:
            out = run_python(body, block, where, line)
        else:
            raise AssertionError(f"{where}: `{program}` cannot run here; mark only blocks of referee and python "
                                 "commands")
        if target:
            (folder / target).write_text(out, encoding="utf-8")
        said = " ".join(out.split())
        for want in expected:
            assert " ".join(want.split()) in said, f"{where}: the page shows {want!r}; the command printed:\n{out}"
