"""The documentation site's generated pages, written at `mkdocs build` time (a hook in mkdocs.yml), so they
cannot drift from the code:

    reference/cli.md       every command of the typer app, walked as click sees it (what --help shows)
    reference/configs.md   every protocol's config settings, from the pydantic models and their source comments
    reference/python.md    mkdocstrings directives for the names in referee.__all__ and the integrations
    changelog.md           CHANGELOG.md as it stands

    python scripts/docs_site.py reference/cli.md     # print one page (tests/test_docs_site.py checks them)

None of these pages may exist under docs/: the hook refuses a hand-written copy.
"""

from __future__ import annotations

import ast
import functools
import html
import inspect
import io
import json
import re
import sys
import tokenize
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _this_checkout() -> None:
    """Import referee from this checkout's src/ even where another copy is installed (mkdocs puts back
    sys.path after loading a hook, so this runs when a page is made)."""
    if str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))


GENERATED_NOTE = "Generated from {what} when the site is built (`scripts/docs_site.py`); do not edit by hand."


# ---- Markdown helpers -------------------------------------------------------------------------------
def text(value: str) -> str:
    """Plain text as Markdown inside a table cell or paragraph: code spans kept, everything else escaped."""
    parts = re.split(r"(`+[^`]*?`+)", value or "")
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # a code span
            out.append(part)
        else:
            part = html.escape(part, quote=False).replace("|", r"\|").replace("*", r"\*")
            out.append(re.sub(r"(?<![\w\\])_|_(?!\w)", r"\_", part))
    return "".join(out).replace("\n", " ")


def code(value: str) -> str:
    """``value`` as one code span, however many backticks it holds."""
    value = str(value).replace("\n", " ")
    fence = "`" * (max((len(m) for m in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def slug(heading: str) -> str:
    """The anchor Python-Markdown's toc extension gives a heading (as the site renders it)."""
    from markdown.extensions.toc import slugify

    return slugify(heading, "-")


# ---- reference/cli.md -------------------------------------------------------------------------------
def cli_command():
    """The click command behind ``referee`` with every command registered (as ``referee.cli.main`` does)."""
    import typer.main

    from referee.cli import _register_commands, app

    _register_commands()
    return typer.main.get_command(app)


def walk_commands(command, name: str = "referee", parent=None):
    """(path, command, context) of ``command`` and every command under it, depth first, in help order."""
    ctx = command.context_class(command, info_name=name, parent=parent)
    yield ctx.command_path, command, ctx
    if hasattr(command, "list_commands"):
        for sub in command.list_commands(ctx):
            child = command.get_command(ctx, sub)
            if child is not None and not getattr(child, "hidden", False):
                yield from walk_commands(child, sub, ctx)


def _default_and_help(param, ctx) -> tuple[str, str, str]:
    """(what to type, its default, its help) of one parameter, from the record ``--help`` prints."""
    record = param.get_help_record(ctx)
    names, help_ = record if record else (param.human_readable_name, "")
    extras = re.search(r"\s*\[([^\[\]]*)\]$", help_)
    default, required = "", False
    if extras:
        help_ = help_[:extras.start()]
        for extra in extras.group(1).split("; "):
            if extra.startswith("default: "):
                default = code(extra.removeprefix("default: "))
            elif extra == "required":
                required = True
            else:
                help_ += f" ({extra})"
    if required:
        default = "required"
    elif not default and getattr(param, "is_flag", False) and not getattr(param, "secondary_opts", None):
        default = "off" if not param.default else "on"
    return names, default, help_.strip()


def _paragraphs(doc: str | None) -> list[str]:
    """A command's help as Markdown paragraphs (click's \\b no-rewrap markers dropped)."""
    doc = inspect.cleandoc(doc or "").replace("\b\n", "").replace("\b", "")
    return [text(p) for p in re.split(r"\n\s*\n", doc) if p.strip()]


def cli_page() -> str:
    root = cli_command()
    lines = ["# Command line", "", GENERATED_NOTE.format(what="the typer app `referee.cli:app`"),
             "Each command also prints its own with `--help`.", ""]
    commands = list(walk_commands(root))
    lines += ["| command | what it does |", "|---|---|"]
    for path, command, ctx in commands[1:]:
        summary = command.get_short_help_str(limit=10_000)
        lines.append(f"| [{code(path)}](#{slug(path)}) | {text(summary)} |")
    lines.append("")
    for path, command, ctx in commands:
        depth = min(path.count(" ") + 1, 4)
        lines += ["#" * (depth + 1) + f" {path}", ""]
        lines += [p + "\n" for p in _paragraphs(command.help)]
        lines += ["```text", command.get_usage(ctx).strip(), "```", ""]
        params = [p for p in command.get_params(ctx) if p.name != "help" and p.get_help_record(ctx) is not None]
        if params:
            lines += ["| option or argument | default | what it does |", "|---|---|---|"]
            for param in params:
                names, default, help_ = _default_and_help(param, ctx)
                lines.append(f"| {code(names)} | {default} | {text(help_)} |")
            lines.append("")
        if hasattr(command, "list_commands"):
            subs = command.list_commands(ctx)
            if subs and path != "referee":  # the root's are in the table above
                links = ", ".join(f"[{code(path + ' ' + s)}](#{slug(path + ' ' + s)})" for s in subs)
                lines += [f"Commands: {links}.", ""]
    return "\n".join(lines)


# ---- reference/configs.md ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _module_source(filename: str) -> tuple[ast.Module, dict[int, str], list[str]]:
    """A source file parsed once: its tree, its comments by line number and its lines."""
    source = Path(filename).read_text(encoding="utf-8")
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    return ast.parse(source), comments, source.splitlines()


def _class_node(tree: ast.Module, qualname: str) -> ast.ClassDef | None:
    nodes: list = tree.body
    found = None
    for part in qualname.split("."):
        found = next((n for n in nodes if isinstance(n, ast.ClassDef) and n.name == part), None)
        if found is None:
            return None
        nodes = found.body
    return found


def field_comments(cls) -> dict[str, str]:
    """Each field's comment in the source of ``cls`` and its bases: the comment on the field's own lines
    (with the aligned comment lines under them that carry it on), else the comment lines right above it. A
    field redefined without a comment keeps its base class's."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("referee"):  # pydantic's and Python's own classes
            continue
        tree, comments, lines = _module_source(inspect.getfile(klass))
        node = _class_node(tree, klass.__qualname__)
        for field in node.body if node else []:
            if not isinstance(field, ast.AnnAssign) or not isinstance(field.target, ast.Name):
                continue
            own = [comments[n] for n in range(field.lineno, field.end_lineno + 1) if n in comments]
            n = field.end_lineno + 1  # an aligned comment line below carries on the field's own comment
            while own and n in comments and re.match(r"\s*#\s{2,}", lines[n - 1]):
                own.append(comments[n])
                n += 1
            above, n = [], field.lineno - 1
            while n in comments and re.match(r"\s*#(\s?\S|$)", lines[n - 1]):
                above.insert(0, comments[n])
                n -= 1
            found = " ".join(own or above)
            if found or field.target.id not in out:
                out[field.target.id] = found
    return out


def _is_model(tp) -> bool:
    from pydantic import BaseModel

    return isinstance(tp, type) and issubclass(tp, BaseModel)


def models_in(annotation) -> list[type]:
    """The pydantic models an annotation holds (through unions, lists, dicts, Annotated)."""
    if _is_model(annotation):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in models_in(arg)]


def type_name(annotation) -> str:
    """An annotation as a reader of a config file thinks of it; nested models by their name."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if _is_model(annotation):
        return annotation.__name__
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return f"tuple[{type_name(args[0])}, ...]"
        return f"{name}[{', '.join(type_name(a) for a in args)}]" if args else name
    if isinstance(annotation, type):
        return annotation.__name__
    return re.sub(r"\b(typing|referee)\.(\w+\.)*", "", str(annotation))


def constraints(field) -> str:
    """The bounds pydantic checks (ge, le, lengths ...), as a short phrase."""
    signs = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "length ≥", "max_length": "length ≤",
             "multiple_of": "multiple of"}
    out = []
    for meta in field.metadata:
        for attr, sign in signs.items():
            value = getattr(meta, attr, None)
            if value is not None:
                out.append(f"{sign} {value}")
    return ", ".join(out)


def _jsonable(value):
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def default_text(field) -> str:
    """A field's default as it would be written in a config file (JSON, which YAML reads)."""
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):  # only what differs from the nested model's own defaults
        changed = {name: getattr(value, name) for name, f in type(value).model_fields.items()
                   if f.is_required() or _jsonable(getattr(value, name)) != _jsonable(
                       f.default_factory() if f.default_factory is not None else f.default)}
        if not changed:
            return "its defaults"
        return code(json.dumps(_jsonable(changed)))
    try:
        return code(json.dumps(_jsonable(value)))
    except TypeError:
        return code(repr(value))


def settings_table(cls, anchors: dict[type, str]) -> list[str]:
    comments = field_comments(cls)
    lines = ["| setting | type | default | what it is |", "|---|---|---|---|"]
    for name, field in cls.model_fields.items():
        shown = name if field.alias is None else field.alias
        kind, models = type_name(field.annotation), list(dict.fromkeys(models_in(field.annotation)))
        links = [f"[{code(m.__name__)}](#{anchors[m]})" for m in models]
        if len(models) == 1 and kind == models[0].__name__:
            cell = links[0]
        else:
            cell = code(kind) + (f", see {', '.join(links)}" if links else "")
        bounds = constraints(field)
        cell += f" ({bounds})" if bounds else ""
        about = field.description or comments.get(name, "")
        lines.append(f"| {code(shown)} | {cell} | {default_text(field)} | {text(about)} |")
    return lines + [""]


def _own_doc(cls) -> str:
    doc = cls.__dict__.get("__doc__")
    return " ".join(_paragraphs(doc)) if doc else ""


def configs_page() -> str:
    from referee import protocols

    registered = protocols.all_protocols()
    nested: list[type] = []  # every model reachable from a protocol's config, in order of first use
    todo = [p.config for p in registered]
    while todo:
        for field in todo.pop(0).model_fields.values():
            for model in models_in(field.annotation):
                if model not in nested:
                    nested.append(model)
                    todo.append(model)
    names = [m.__name__ for m in nested]
    anchors = {}
    for model in nested:  # a name used by two models gets its module in the heading
        title = model.__name__ if names.count(model.__name__) == 1 else f"{model.__module__}.{model.__name__}"
        anchors[model] = slug(title)
    lines = ["# Config settings of every protocol", "",
             GENERATED_NOTE.format(what="the protocols' pydantic models"),
             "A config file names its protocol (`protocol: debate`) and any settings below; `referee run "
             "CONFIG.yaml` runs it, and every run folder keeps its own as `config.yaml`. A setting left out takes "
             "its default; an unknown setting is an error. Defaults are written as JSON, which YAML reads.", "",
             "| protocol | what it runs |", "|---|---|"]
    lines += [f"| [{code(p.name)}](#{slug(p.name)}) | {text(p.summary)} |" for p in registered]
    lines.append("")
    for p in registered:
        cls = p.config
        lines += [f"## {p.name}", "", text(p.summary) + ".", "",
                  f"Config class {code(cls.__module__ + '.' + cls.__qualname__)}." + (
                      f" {_own_doc(cls)}" if _own_doc(cls) else ""), ""]
        lines += settings_table(cls, anchors)
    if nested:
        lines += ["## Nested settings", "", "Settings that are themselves groups of settings, written as a mapping "
                  "(`sampling: {temperature: 0.7}`); a group given in part takes the rest from its defaults.", ""]
        for model in nested:
            title = model.__name__ if names.count(model.__name__) == 1 else f"{model.__module__}.{model.__name__}"
            where = "" if "." in title else f"{code(model.__module__ + '.' + model.__qualname__)}. "
            lines += [f"### {title}", "", (where + _own_doc(model)).strip(), ""]
            lines += settings_table(model, anchors)
    return "\n".join(lines)


# ---- reference/python.md ----------------------------------------------------------------------------
INTEGRATIONS = ("referee.integrations.trl", "referee.integrations.inspect")


def public_names() -> list[tuple[str, str]]:
    """(public name, where mkdocstrings finds it) for every name in ``referee.__all__`` that has a docstring."""
    import importlib

    import referee

    out = []
    for name in referee.__all__:
        obj = getattr(referee, name)
        if isinstance(obj, str):  # __version__
            continue
        module = importlib.import_module(obj.__module__)
        assert getattr(module, obj.__qualname__) is obj, name
        out.append((f"referee.{name}", f"{obj.__module__}.{obj.__qualname__}"))
    return out


def python_page() -> str:
    lines = ["# Python API (docstrings)", "",
             GENERATED_NOTE.format(what="`referee.__all__` and the docstrings"),
             "The [Python API](../api.md) page shows them at work. Everything not listed here is internal.", "",
             "## The names in `referee.__all__`", ""]
    for public, where in public_names():
        lines += [f"::: {where}", "    options:", "      show_root_full_path: false", "      heading_level: 3", ""]
    lines += ["## Integrations", ""]
    for module in INTEGRATIONS:
        lines += [f"::: {module}", "    options:", "      heading_level: 3", ""]
    lines += ["## Run folders", "", "::: referee.runs", "    options:", "      members: false", "      heading_level: 3",
              ""]
    return "\n".join(lines)


# ---- changelog.md -----------------------------------------------------------------------------------
def relink_changelog(source: str, repo_url: str) -> str:
    """Links of CHANGELOG.md made to work on the site: ``docs/X`` to the page X, other paths of the
    repository to the repository; web addresses and anchors as they are."""
    def relink(match: re.Match) -> str:
        target = match.group(2)
        if re.match(r"[a-z]+:|#|/", target):
            return match.group(0)
        if target.startswith("docs/"):
            return f"{match.group(1)}({target.removeprefix('docs/')})"
        return f"{match.group(1)}({repo_url.rstrip('/')}/blob/HEAD/{target})"

    return re.sub(r"(\]\s?)\(([^)\s]+)\)", relink, source)


def changelog_page(repo_url: str = "https://github.com/referee-ai/referee") -> str:
    return relink_changelog((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), repo_url)


# ---- the mkdocs hook --------------------------------------------------------------------------------
PAGES = {
    "reference/cli.md": cli_page,
    "reference/configs.md": configs_page,
    "reference/python.md": python_page,
    "changelog.md": changelog_page,
}


def on_files(files, config):
    """mkdocs hook: add the generated pages to the site."""
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    _this_checkout()
    # `mkdocs serve` calls this again on each change: read the code afresh, not what an earlier build imported
    for name in [m for m in sys.modules if m == "referee" or m.startswith("referee.")]:
        del sys.modules[name]
    _module_source.cache_clear()
    for path, make in PAGES.items():
        if files.get_file_from_path(path) is not None:
            raise PluginError(f"docs/{path} is generated by scripts/docs_site.py; remove the file")
        content = make(config["repo_url"]) if make is changelog_page and config.get("repo_url") else make()
        files.append(File.generated(config, path, content=content))
    return files


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in PAGES:
        raise SystemExit(f"usage: python scripts/docs_site.py {{{','.join(PAGES)}}}")
    _this_checkout()
    print(PAGES[sys.argv[1]]())
