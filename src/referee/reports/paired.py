"""Paired differences between runs (or stages of one run), item by item, written by one command
(``referee compare``) so that every difference a results page quotes comes from run folders.

A side is a record file, or a run folder and a stage (``RUN/records/STAGE.jsonl``). Records are matched by
their key (``id`` by default; ``id,sample`` where an item has several records); each side gives one number
per record (``metric``: a 0/1 flag or a score; a record without it, or with null, is left out of both
sides). The comparison refuses, in one line, sides that hold different items or that name different
splits for the same item, and a key that is not unique: a paired difference over mismatched items is not
one. ``where`` keeps one kind of record on every side (one role of a game, one kind of program), and
``missing="zero"`` counts an item without the metric (an unreadable output) as a 0, for figures "of all"
items; by default such an item leaves both sides ("of answered"), and the table says how many were paired. The interval resamples items, or whole groups of them (``cluster``: the field that says which
problem a sample belongs to), keeping each pair together.
"""

from __future__ import annotations

import os
from pathlib import Path

from referee.errors import RefereeError
from referee.io import read_jsonl
from referee.stats import interval_text, mean_ci, paired_diff


def records_of(side: str | os.PathLike, stage: str | None) -> tuple[Path, list[dict]]:
    """The records of one side: a JSONL file, or ``FOLDER/records/STAGE.jsonl``."""
    path = Path(side)
    if path.is_dir():
        if not stage:
            raise RefereeError(f"{path}: a run folder; say which stage's records to compare (--stage)")
        path = path / "records" / f"{stage}.jsonl"
    return path, [obj for _, obj in read_jsonl(path)]


def _keyed(path: Path, records: list[dict], key: tuple[str, ...]) -> dict[tuple, dict]:
    out = {}
    for i, r in enumerate(records, start=1):
        missing = [k for k in key if k not in r]
        if missing:
            raise RefereeError(f"{path}: record {i} has no field {missing[0]!r} to match items by (--key)")
        k = tuple(str(r[f]) for f in key)
        if k in out:
            raise RefereeError(f"{path}: two records share the key {dict(zip(key, k))}; match by more fields "
                               f"(--key {','.join(key)},sample)")
        out[k] = r
    return out


def _where(path: Path, records: list[dict], where: dict[str, str]) -> list[dict]:
    """The records whose fields equal every ``where`` value (compared as text: ``role=helpful``)."""
    kept = [r for r in records if all(str(r.get(f)) == v for f, v in where.items())]
    if where and not kept:
        raise RefereeError(f"{path}: no record has {', '.join(f'{f}={v}' for f, v in where.items())} (--where)")
    return kept


def _value(path: Path, record: dict, metric: str, missing: str = "drop") -> float | None:
    value = record.get(metric)
    if value is None:
        return 0.0 if missing == "zero" else None
    if isinstance(value, bool) or isinstance(value, (int, float)):
        return float(value)
    raise RefereeError(f"{path}: field {metric!r} should be a number or true/false, got {type(value).__name__}")


def _matched(a: tuple[Path, dict], b: tuple[Path, dict]) -> list[tuple]:
    """The shared keys, in A's order; different items or splits raise."""
    (pa, ra), (pb, rb) = a, b
    only_a, only_b = ra.keys() - rb.keys(), rb.keys() - ra.keys()
    if only_a or only_b:
        raise RefereeError(f"{pa} and {pb} hold different items ({len(only_a)} only in the first, {len(only_b)} "
                           f"only in the second, e.g. {next(iter(only_a or only_b))}): not a paired comparison")
    for k in ra:
        split_a, split_b = ra[k].get("split"), rb[k].get("split")
        if split_a != split_b:
            raise RefereeError(f"{pa} and {pb}: item {k} is in split {split_a!r} in one and {split_b!r} in the "
                               "other")
    return list(ra)


def compare(base: str, others: list[str], metric: str, stage: str | None = None, other_stage: str | None = None,
            key: tuple[str, ...] = ("id",), cluster: str | None = None, seed: int = 0,
            where: dict[str, str] | None = None, missing: str = "drop") -> dict:
    """Each of ``others`` against ``base`` on ``metric``, matched by ``key`` (module doc). ``where`` keeps the
    records whose fields have the given values on every side (one role of a game, one kind of item);
    ``missing="zero"`` counts a record without the metric (an unreadable output) as 0 instead of leaving the
    item out of both sides, so the figure is "of all" items rather than "of answered"."""
    if not others:
        raise RefereeError("compare: give a base and at least one side to compare with it")
    if missing not in ("drop", "zero"):
        raise RefereeError(f"compare: missing values are dropped or counted as zero, not {missing!r}")
    where = where or {}
    base_path, base_records = records_of(base, stage)
    base_keyed = _keyed(base_path, _where(base_path, base_records, where), key)
    rows = []
    for other in others:
        path, records = records_of(other, other_stage or stage)
        keyed = _keyed(path, _where(path, records, where), key)
        keys = _matched((base_path, base_keyed), (path, keyed))
        a = [_value(path, keyed[k], metric, missing) for k in keys]
        b = [_value(base_path, base_keyed[k], metric, missing) for k in keys]
        both = [x is not None and y is not None for x, y in zip(a, b)]
        clusters = [str(base_keyed[k].get(cluster)) for k in keys] if cluster else None
        splits = sorted({str(base_keyed[k].get("split")) for k in keys if "split" in base_keyed[k]})
        rows.append({
            "side": str(path), "base": str(base_path), "metric": metric, "items": len(keys), "paired": sum(both),
            "splits": splits,
            "value": mean_ci([x if ok else None for x, ok in zip(a, both)], seed=seed, clusters=clusters).to_dict(),
            "base_value": mean_ci([y if ok else None for y, ok in zip(b, both)], seed=seed,
                                  clusters=clusters).to_dict(),
            "difference": paired_diff(a, b, seed=seed, clusters=clusters).to_dict(),
            "resampled": f"groups of '{cluster}'" if cluster else "items"})
    return {"metric": metric, "key": list(key), "where": where, "missing": missing, "rows": rows}


def _fmt(e: dict, digits: int = 3, signed: bool = False) -> str:
    return interval_text(e["value"], e["low"], e["high"], digits=digits, signed=signed)


def markdown(result: dict, command: str) -> str:
    """The comparison as a markdown table, with the command that wrote it (a results page pastes both)."""
    lines = [f"| side | base | {result['metric']} (side) | {result['metric']} (base) | side minus base | paired "
             "items | resampled |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['side']} | {r['base']} | {_fmt(r['value'])} | {_fmt(r['base_value'])} | "
                     f"{_fmt(r['difference'], signed=True)} | {r['paired']} | {r['resampled']} |")
    return "\n".join(lines) + f"\n\nWritten by `{command}` (95% bootstrap intervals).\n"
