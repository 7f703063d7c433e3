"""``referee label serve|export|stats``: people label pairs and solution steps in a local web page."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Optional

import typer

from referee import progress
from referee.cli import app
from referee.errors import RefereeError
from referee.net import is_loopback

label_app = typer.Typer(no_args_is_help=True, help="Label pairs and solution steps in a web page; export and "
                                                   "measure the labels.")
app.add_typer(label_app, name="label")

TOKEN_ENV = "REFEREE_LABEL_TOKEN"


@label_app.command("serve")
def serve(
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Pairs to label: LLMBar, MT-Bench human, TRL "
                                                              "preference (JSON or JSONL)."),
    steps: Optional[Path] = typer.Option(None, "--steps", help="Solutions to label step by step: TRL stepwise "
                                                              "(best-of-N's records/convincing_wrong.jsonl)."),
    critic: Optional[str] = typer.Option(None, "--critic", help="A model spec that critiques each answer "
                                                               "(computed once at start, kept in the store)."),
    critiques: Optional[Path] = typer.Option(None, "--critiques", help="Or critiques from a file: JSONL with "
                                                                      "id, answer (0/1), critique."),
    store_path: Path = typer.Option(Path("labels.sqlite"), "--store", help="The SQLite file the labels go to."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; any but loopback needs a token "
                                               f"(${TOKEN_ENV}, or one is made and printed)."),
    port: int = typer.Option(8765, help="Port to listen on (1 to 65535)."),
    allowed_host: list[str] = typer.Option([], "--allowed-host", help="Another name people reach the page under "
                                           "(a proxy's, this machine's; repeatable). The page refuses requests "
                                           "under names it was not started with, which stops DNS rebinding."),
    limit: Optional[int] = typer.Option(None, help="Only the first N items."),
    seed: int = typer.Option(0, help="Seed of the answer order and of who sees which critique."),
    critique_share: float = typer.Option(0.5, help="Share of items each annotator sees with the critique (the "
                                                   "rest without: the assistance experiment)."),
    critic_tokens: int = typer.Option(200, help="Tokens the critic may write per answer."),
):
    """Start the labelling page on this machine and print its address."""
    import uvicorn

    from referee.labels.app import create_app
    from referee.labels.guard import Hosts

    if not 1 <= port <= 65535:
        raise RefereeError("--port should be from 1 to 65535")
    if (pairs is None) == (steps is None):
        raise RefereeError("give one of --pairs FILE or --steps FILE")
    if critic and critiques:
        raise RefereeError("give --critic or --critiques, not both")
    if not 0 <= critique_share <= 1:
        raise RefereeError("--critique-share should be between 0 and 1")
    if limit is not None and limit < 1:
        raise RefereeError("--limit should be at least 1")
    store = prepare_store(store_path, pairs or steps, "pairs" if pairs else "steps", limit, critic, critiques,
                          critic_tokens, seed)
    keep_design(store, seed, critique_share)
    token = os.environ.get(TOKEN_ENV) or None
    if not is_loopback(host) and token is None:
        token = secrets.token_urlsafe(16)
        progress.say(f"listening beyond this machine: people sign in with this token (or set ${TOKEN_ENV}): {token}")
    web = create_app(store, seed=seed, critique_share=critique_share, token=token,
                     hosts=Hosts.bound(host, allowed_host))
    progress.say(f"labelling page: http://{host}:{port}/  (labels go to {store.path}; Ctrl-C stops, nothing "
                 f"submitted is lost)")
    uvicorn.run(web, host=host, port=port, log_level="warning")


def keep_design(store, seed: int, critique_share: float) -> None:
    """The seed and critique share decide what each annotator is shown: once labels exist, changing them
    would mix two designs in one experiment, so it is refused."""
    meta = store.meta()
    before = (meta.get("seed"), meta.get("critique_share"))
    if before != (None, None) and before != (str(seed), str(critique_share)) and store.rows(live_only=False):
        raise RefereeError(f"{store.path} was served with --seed {before[0]} --critique-share {before[1]} and holds "
                           f"labels; serve it with the same, or give another --store")
    store.set_meta(seed=seed, critique_share=critique_share)


def prepare_store(store_path: Path, source: Path, mode: str, limit: Optional[int], critic: Optional[str],
                  critiques_file: Optional[Path], critic_tokens: int, seed: int):
    """The store with its items, and a critique of every answer when a critic or a file gives them."""
    from referee.cache import Cache
    from referee.labels.critique import critique_items, load_critiques, targets
    from referee.labels.items import load_items
    from referee.labels.store import LabelStore
    from referee.models import load_model

    items = load_items(source, mode, limit)
    store = LabelStore(store_path)
    store.open_items(items, mode, str(source))
    if critiques_file:
        store.add_critiques(load_critiques(critiques_file, items))
    elif critic:
        have = store.critiques()
        todo = [i for i in items if any((i.id, a) not in have for a in targets(i))]
        if todo:
            cache = Cache(store.path.with_name(store.path.name + ".calls"))  # a killed start resumes
            store.add_critiques(critique_items(load_model(critic, cache), todo, critic_tokens, seed))
        store.set_meta(critic=critic)
    return store


@label_app.command("export")
def export(
    store_path: Path = typer.Option(Path("labels.sqlite"), "--store"),
    out: Path = typer.Option(..., "--out", "-o", help="JSONL: TRL preference pairs (pairs) or TRL stepwise "
                                                      "records (steps), for 'referee rm train'."),
    annotator: Optional[str] = typer.Option(None, help="Only this annotator's labels (default: the majority "
                                                       "of everyone's)."),
    neutral: str = typer.Option("positive", help="steps: a neutral step becomes positive, negative, or stays "
                                                 "'neutral' (keep)."),
):
    """Write the labels as training data."""
    from referee.io import write_jsonl
    from referee.labels.export import export_records

    store = _existing(store_path)
    rows = _rows(store, annotator)
    records, counts = export_records(rows, store.items(), neutral)
    if not records:
        raise RefereeError(f"{store_path}: no labels to export ({json.dumps(counts)})")
    write_jsonl(out, records)
    progress.say(f"{len(records)} records to {out}: " + ", ".join(f"{k.replace('_', ' ')} {v}"
                                                                for k, v in counts.items()))


@label_app.command("stats")
def stats(
    store_path: Path = typer.Option(Path("labels.sqlite"), "--store"),
    judge_records: Optional[Path] = typer.Option(None, "--judge-records", help="Records of 'referee judge "
                                                 "--out' on the same pairs file: agreement of people with it."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON."),
    seed: int = typer.Option(0, help="Seed of the bootstrap."),
):
    """Agreement between annotators, with gold and a judge, and what the critique buys."""
    from referee.labels.stats import summary

    store = _existing(store_path)
    items = store.items()
    verdicts = read_judge_verdicts(judge_records) if judge_records else None
    result = summary(store.rows(), items, verdicts, seed)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo("\n".join(describe(result, store_path, judge_records)))


def _existing(path: Path):
    from referee.labels.store import LabelStore

    if not path.is_file():
        raise RefereeError(f"{path}: no label store there (made by 'referee label serve --store')")
    return LabelStore(path)


def _rows(store, annotator: Optional[str]) -> list[dict]:
    rows = store.rows()
    if annotator is None:
        return rows
    mine = [r for r in rows if r["annotator"] == annotator]
    if not mine:
        raise RefereeError(f"no labels by {annotator!r}; annotators: {', '.join(store.annotators()) or 'none'}")
    return mine


def read_judge_verdicts(path: Path) -> dict[str, str]:
    """{item id: A, B, tie or invalid} from a judge's records, ids made unique as the store makes them."""
    from referee.io import read_records
    from referee.labels.items import unique_ids

    records = [obj for _, obj in read_records(path)]
    for pos, r in enumerate(records):
        if "id" not in r or r.get("winner") not in ("A", "B", "tie", "invalid"):
            raise RefereeError(f"{path}:{pos + 1}: not a pairwise judge record (fields 'id' and 'winner')")
    return dict(zip(unique_ids([str(r["id"]) for r in records]), (r["winner"] for r in records)))


def describe(result: dict, store_path: Path, judge_records: Optional[Path]) -> list[str]:
    """The summary in lines a person reads."""
    from referee.labels.stats import estimate

    fmt = lambda d: estimate(d).fmt()  # noqa: E731
    lines = [f"{store_path}: {result['items']} items, {len(result['annotators'])} annotators, "
             f"{result['judgements']} labels"]
    for name, a in result["annotators"].items():
        lines.append(f"  {name}: {a['labelled']} of {a['of']} labelled; agreement with gold "
                     f"{fmt(a['gold_agreement'])}")
    for b in result["between_annotators"]:
        lines.append(f"between {b['annotators'][0]} and {b['annotators'][1]}: Cohen's kappa {fmt(b['kappa'])}, "
                     f"agreement {fmt(b['agreement'])} over {b['units']} shared labels")
    help_ = result["assistance"]
    lines.append("with and without the critique:")
    for key, text in (("with_critique", "with   "), ("without_critique", "without")):
        g = help_[key]
        lines.append(f"  {text}: {g['judgements']} labels ({g['with_gold']} with gold); agreement with gold "
                     f"{fmt(g['gold_agreement'])}; seconds per label {fmt(g['seconds'])} (median "
                     f"{'n/a' if g['median_seconds'] is None else round(g['median_seconds'], 1)})")
    diff = help_["difference"]
    lines.append(f"  difference (with - without): agreement with gold {fmt(diff['gold_agreement'])}; "
                 f"seconds {fmt(diff['seconds'])}")
    if "picked_side" in result:
        lines.append(f"labels: {result['labels']}; the chosen answer stood on the left {result['picked_side']['left']} "
                     f"times, on the right {result['picked_side']['right']}")
    if "judge" in result:
        j = result["judge"]
        lines.append(f"judge ({judge_records}): agreement {fmt(j['agreement'])}, kappa {fmt(j['kappa'])} over "
                     f"{j['judgements']} labels; judge unreadable on {j['judge_invalid']}, "
                     f"no record for {j['missing']}")
    return lines
