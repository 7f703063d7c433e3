"""A small HTML page builder: headings, tables, images, notes. No template engine, no external assets
(images are linked relative to the run folder, so the folder can be copied as a whole)."""

from __future__ import annotations

import html
from pathlib import Path

STYLE = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:0.5em 0}
.note{color:#555;font-size:0.9em}.lead{font-size:1.05em;background:#f6f8fa;padding:0.6em 1em;border-left:4px solid #888}
td.text{text-align:left;vertical-align:top;white-space:pre-wrap;min-width:11em;font-family:ui-monospace,monospace;font-size:0.85em}
.good{color:#17692f}.bad{color:#a3201b}"""


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


class Page:
    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def note(self, text: str) -> None:
        self.parts.append(f"<p class='note'>{html.escape(text)}</p>")

    def lead(self, lines: list[str]) -> None:
        """The first thing a reader sees: what happened, in words."""
        self.parts.append("<div class='lead'>" + "".join(f"<p>{html.escape(t)}</p>" for t in lines) + "</div>")

    def texts(self, header: list[str], rows: list[list[str]], marks: list[list[bool | None]] | None = None) -> None:
        """Cells of model-written text, escaped and kept as written (line breaks, spaces); a mark of True or
        False colours a cell as right or wrong."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = []
        for i, row in enumerate(rows):
            cells = []
            for j, c in enumerate(row):
                mark = marks[i][j] if marks else None
                cls = "text" + {True: " good", False: " bad", None: ""}[mark]
                cells.append(f"<td class='{cls}'>{html.escape(fmt(c))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        self.parts.append(f"<table><tr>{head}</tr>{''.join(body)}</table>")

    def table(self, header: list[str], rows: list[list]) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def image(self, path: Path, relative_to: Path, alt: str = "") -> None:
        if path.exists():
            self.parts.append(f"<img src='{html.escape(str(path.relative_to(relative_to)))}' alt='{html.escape(alt)}'>")

    def write(self, path: Path) -> Path:
        path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                        f"<style>{STYLE}</style></head><body>{''.join(self.parts)}</body></html>", encoding="utf-8")
        return path
