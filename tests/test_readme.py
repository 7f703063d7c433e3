"""The README stays one page (issue 34: at most 250 lines, the rest lives on the documentation site), and
every relative link in it and in the site's pages points at a file that exists, so moving a page cannot
leave a dead link behind."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# [text](target) and ![alt](target); the target stops at whitespace or the closing parenthesis
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def nav_pages() -> set[str]:
    """The pages mkdocs.yml's navigation names. Some are generated when the site is built (the CLI, config
    and API references, the changelog), so they need not exist in the tree; `mkdocs build --strict` fails
    when one is missing then."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    # mkdocs.yml may hold !!python/name tags for Material's extensions: read the nav with a loader that
    # takes any tag as plain data
    loader = type("AnyTag", (yaml.SafeLoader,), {})
    loader.add_multi_constructor("", lambda loader_, suffix, node: None)
    pages: set[str] = set()

    def walk(item):
        if isinstance(item, str):
            pages.add(item)
        elif isinstance(item, list):
            for x in item:
                walk(x)
        elif isinstance(item, dict):
            for x in item.values():
                walk(x)

    walk(yaml.load(text, Loader=loader).get("nav", []))
    return pages


def links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    return [m.group(1) for m in LINK.finditer(text)]


def pages() -> list[Path]:
    return [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted(DOCS.rglob("*.md"))]


def test_the_readme_is_one_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 250, f"README.md has {lines} lines; move the detail to a page under docs/"


def test_the_readme_keeps_the_commands_ci_runs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "\nbash scripts/setup.sh && .venv/bin/referee quickstart\n" in text
    assert "\nbash scripts/setup.sh test && .venv/bin/python -m pytest\n" in text
    assert "bash scripts/setup.sh test && .venv/bin/python -m pytest" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_every_relative_link_points_at_a_file():
    generated = nav_pages()
    dead = []
    for page in pages():
        for target in links(page):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # http:, mailto:, an anchor on the same page
            path = target.split("#")[0]
            resolved = (page.parent / path).resolve()
            if resolved.exists():
                continue
            if resolved.is_relative_to(DOCS) and resolved.relative_to(DOCS).as_posix() in generated:
                continue  # a page the site generates at build time
            dead.append(f"{page.relative_to(ROOT)}: {target}")
    assert dead == []


def test_the_pattern_reads_links_and_skips_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("see [a](x.md), ![b](img/p.png \"title\") and `[c](not.md)`\n```\n[d](nor.md)\n```\n",
                    encoding="utf-8")
    assert links(page) == ["x.md", "img/p.png"]


def test_every_page_in_the_navigation_exists_or_is_generated():
    missing = sorted(p for p in nav_pages() if not (DOCS / p).exists())
    assert set(missing) <= {"reference/cli.md", "reference/configs.md", "reference/python.md", "changelog.md"}, missing
