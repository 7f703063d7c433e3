"""Judge prompt templates: editable text files, chosen by name (shipped) or by path (your own).

A template is split into sections by lines of the form ``=== name ===``; lines starting with ``#``
before the first section are comments. Sections:

- ``system`` (optional): the system message;
- ``user``: the request; ``user_multiturn`` (optional): the request for multi-turn items;
- ``format_direct`` / ``format_cot``: how to write the verdict, without / with reasoning first;
- ``reference``: the block shown when a reference answer is used (placeholder ``{reference}``);
- ``examples`` / ``example``: the few-shot block and how one worked example is shown;
- ``scale`` (grading templates): the lowest and highest score, e.g. ``1 10``.

Placeholders are ``{name}`` with a known name; any other braces are left alone, so a template can
contain JSON or code. Values are inserted as they are and never re-read as placeholders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from referee.errors import RefereeError
from referee.io import read_text

SECTION = re.compile(r"^===\s*([a-z_]+)\s*===\s*$")
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
KNOWN_SECTIONS = {"system", "user", "user_multiturn", "format_direct", "format_cot", "reference",
                  "examples", "example", "scale"}
PLACEHOLDERS = {"question", "answer", "answer_a", "answer_b", "conversation", "conversation_a",
                "conversation_b", "reference", "examples", "format", "verdict", "explanation"}
REQUIRED = ("user", "format_direct", "format_cot")


@dataclass
class Template:
    name: str
    source: str
    sections: dict[str, str] = field(default_factory=dict)

    def has(self, section: str) -> bool:
        return section in self.sections

    def fill(self, section: str, values: dict[str, str]) -> str:
        """The section with its placeholders replaced; an empty value removes its placeholder."""
        text = self.sections.get(section)
        if text is None:
            raise RefereeError(f"template {self.source}: no '=== {section} ===' section")

        def sub(m: re.Match) -> str:
            name = m.group(1)
            if name not in PLACEHOLDERS:
                return m.group(0)
            if name not in values:
                raise RefereeError(f"template {self.source}: section '{section}' uses {{{name}}}, "
                                   f"which is not available there")
            return values[name]

        return PLACEHOLDER.sub(sub, text)

    def require_reference(self) -> None:
        """A reference-guided judge needs somewhere to show the reference."""
        if "reference" not in self.sections or "{reference}" not in self.sections["user"]:
            raise RefereeError(f"template {self.source}: a reference-guided judge needs a '=== reference ===' "
                               f"section and {{reference}} in the 'user' section")

    @property
    def scale(self) -> tuple[int, int]:
        """(lowest, highest) score of a grading template."""
        text = self.sections.get("scale")
        if text is None:
            raise RefereeError(f"template {self.source}: a grading template needs a '=== scale ===' section "
                               f"with the lowest and highest score, e.g. '1 10'")
        parts = text.replace("-", " ").split()
        try:
            lo, hi = int(parts[0]), int(parts[1])
        except (IndexError, ValueError):
            raise RefereeError(f"template {self.source}: section 'scale' should be two whole numbers, "
                               f"got {text.strip()!r}") from None
        if not 0 <= lo < hi <= 99:
            raise RefereeError(f"template {self.source}: scale {lo}..{hi} should be within 0..99 with low < high")
        return lo, hi


def builtin_names() -> list[str]:
    folder = resources.files("referee") / "templates" / "judges"
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".txt"))


def load_template(name_or_path: str) -> Template:
    """A shipped template by name (``pairwise``, ``single_1to10``, ...) or a template file by path."""
    path = Path(name_or_path)
    if path.suffix == ".txt" or path.exists() or "/" in name_or_path:
        text, source, name = read_text(path, "template file"), str(path), path.stem
    else:
        res = resources.files("referee") / "templates" / "judges" / f"{name_or_path}.txt"
        if not res.is_file():
            raise RefereeError(f"unknown judge template {name_or_path!r}; shipped: {', '.join(builtin_names())} "
                               f"(or give the path of your own .txt file)")
        text, source, name = res.read_text(encoding="utf-8"), f"{name_or_path} (shipped)", name_or_path
    return parse_template(text, name, source)


def parse_template(text: str, name: str, source: str) -> Template:
    sections: dict[str, list[str]] = {}
    current = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        m = SECTION.match(line)
        if m:
            current = m.group(1)
            if current not in KNOWN_SECTIONS:
                raise RefereeError(f"{source}:{lineno}: unknown section '{current}'; "
                                   f"known: {', '.join(sorted(KNOWN_SECTIONS))}")
            if current in sections:
                raise RefereeError(f"{source}:{lineno}: section '{current}' appears twice")
            sections[current] = []
        elif current is None:
            if line.strip() and not line.startswith("#"):
                raise RefereeError(f"{source}:{lineno}: text before the first '=== section ===' line")
        else:
            sections[current].append(line)
    tpl = Template(name, source, {k: "\n".join(v).strip("\n") for k, v in sections.items()})
    for section in REQUIRED:
        if section not in tpl.sections:
            raise RefereeError(f"{source}: missing section '=== {section} ==='")
    if "{format}" not in tpl.sections["user"]:
        raise RefereeError(f"{source}: section 'user' must contain {{format}} (where the verdict format goes)")
    return tpl
