"""Passage items for debate: CosmosQA's right answer and a seeded distractor (never a catch-all), the seeded
order coin, the generic format, the seeded split and one-line errors for bad lines."""

from __future__ import annotations

import json
import random
import re

import pytest

from conftest import DATA
from referee.errors import RefereeError
from referee.tasks.passages import (PassageItem, PassageSet, is_catch_all, load_cosmosqa, load_passage_items,
                                    split_items)

COSMOSQA = DATA / "cosmosqa" / "valid_half.jsonl"
needs_cosmosqa = pytest.mark.data("cosmosqa/valid_half.jsonl")
SLICE = 60


def _nota(answer: str) -> bool:
    """CosmosQA's own catch-all, spotted independently of the loader's rule."""
    return answer.strip().lower().startswith("none of the above")


@pytest.fixture
def cosmos_slice(tmp_path):
    """The first lines of the real file, in a temp copy, and the same lines parsed here."""
    with open(COSMOSQA, encoding="utf-8") as f:
        lines = [next(f) for _ in range(SLICE)]
    path = tmp_path / "cosmos.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    return path, [json.loads(line) for line in lines]


def _write(path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return str(path)


# ---- CosmosQA ----------------------------------------------------------------------------------------
@needs_cosmosqa
def test_cosmosqa_right_answer_is_the_labelled_one_and_distractor_another(cosmos_slice):
    path, rows = cosmos_slice
    items = load_cosmosqa(path)
    by_id = {r["id"]: (lineno, r) for lineno, r in enumerate(rows, start=1)}
    right_is_nota = sum(_nota(r[f"answer{r['label']}"]) for r in rows)
    assert right_is_nota > 0  # the slice does exercise the drop rule
    assert isinstance(items, PassageSet) and isinstance(items, list)
    assert items.dropped == {"correct_is_catch_all": right_is_nota, "only_catch_all_distractors": 0}
    assert len(items) + right_is_nota == SLICE
    wrong_nota_seen = 0
    for item in items:
        lineno, row = by_id[item.id]
        answers = [row[f"answer{i}"] for i in range(4)]
        assert item.where == f"{path}:{lineno}"
        assert item.passage == row["context"].strip() and item.question == row["question"].strip()
        assert item.correct in (0, 1)
        assert item.answers[item.correct] == answers[row["label"]].strip()
        distractor = item.answers[1 - item.correct]
        others = [a.strip() for i, a in enumerate(answers) if i != row["label"]]
        assert distractor in others
        assert not _nota(distractor)  # every CosmosQA item has a wrong answer that is not a catch-all
        wrong_nota_seen += any(_nota(a) for a in others)
    assert wrong_nota_seen > 10  # many items did offer "None of the above" as a wrong answer
    assert items.items == list(items)


@needs_cosmosqa
def test_order_coin_is_balanced_and_seeded(cosmos_slice):
    path, _ = cosmos_slice
    items = load_cosmosqa(path, seed=0)
    first = sum(item.correct == 0 for item in items) / len(items)
    assert 0.3 <= first <= 0.7
    assert load_cosmosqa(path, seed=0) == items
    other = load_cosmosqa(path, seed=1)
    assert [i.id for i in other] == [i.id for i in items]
    assert any(a.correct != b.correct for a, b in zip(items, other))
    assert any(set(a.answers) != set(b.answers) for a, b in zip(items, other))  # distractors move with the seed
    for a, b in zip(items, other):  # the right answer never does
        assert a.answers[a.correct] == b.answers[b.correct]


@needs_cosmosqa
def test_order_coin_balanced_on_the_whole_file():
    items = load_cosmosqa(COSMOSQA)
    assert 0.45 <= sum(item.correct == 0 for item in items) / len(items) <= 0.55
    assert items.dropped["correct_is_catch_all"] > 0


@needs_cosmosqa
def test_items_do_not_depend_on_file_order(cosmos_slice, tmp_path):
    path, rows = cosmos_slice
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    other = load_cosmosqa(_write(tmp_path / "shuffled.jsonl", shuffled), seed=5)
    here = {i.id: (i.answers, i.correct) for i in load_cosmosqa(path, seed=5)}
    assert {i.id: (i.answers, i.correct) for i in other} == here


@needs_cosmosqa
def test_one_loader_reads_both_formats(cosmos_slice, tmp_path):
    path, rows = cosmos_slice
    assert load_passage_items(path, seed=2) == load_cosmosqa(path, seed=2)
    generic = {"id": "g1", "passage": "Ann keeps bees.", "question": "What does Ann keep?",
               "answers": ["Goats", "Bees"], "correct": 1}
    mixed = load_passage_items(_write(tmp_path / "mixed.jsonl", [rows[0], generic]))
    assert [i.id for i in mixed] == [rows[0]["id"], "g1"]
    assert mixed[1].answers[mixed[1].correct] == "Bees" and set(mixed[1].answers) == {"Goats", "Bees"}
    assert mixed[1].where.endswith("mixed.jsonl:2")


def test_catch_all_answers():
    assert is_catch_all("None of the above choices .")
    assert is_catch_all("All of the above") and is_catch_all("none of these!")
    assert not is_catch_all("None of them were really friends after high school .")
    assert not is_catch_all("Because all of the classrooms were closed .")


def _cosmos_row(item_id, right, wrongs, label=0):
    answers = list(wrongs)
    answers.insert(label, right)
    return {"id": item_id, "context": "A short passage.", "question": "Which?", "label": label,
            **{f"answer{i}": a for i, a in enumerate(answers)}}


def test_catch_all_distractor_only_when_nothing_else_and_then_dropped(tmp_path):
    rows = [_cosmos_row(f"q{i}", "The dog barked", ["None of the above choices .", "The cat sang", "The cat sang ."],
                        label=i % 4) for i in range(40)]
    rows.append(_cosmos_row("only", "Yes", ["None of the above choices .", "all of the above", "yes ."]))
    rows.append(_cosmos_row("nota", "None of the above choices .", ["A", "B", "C"], label=2))
    items = load_cosmosqa(_write(tmp_path / "c.jsonl", rows))
    assert items.dropped == {"correct_is_catch_all": 1, "only_catch_all_distractors": 1}
    assert len(items) == 40
    assert {i.answers[1 - i.correct] for i in items} <= {"The cat sang", "The cat sang ."}
    assert all(i.answers[i.correct] == "The dog barked" for i in items)


def test_generic_items_keep_the_right_answer_under_the_coin(tmp_path):
    rows = [{"id": f"g{i}", "passage": "P.", "question": "Q?", "answers": ["right", f"wrong {i}"], "correct": 0}
            for i in range(100)]
    items = load_passage_items(_write(tmp_path / "g.jsonl", rows), seed=7)
    assert all(i.answers[i.correct] == "right" for i in items)
    assert 30 <= sum(i.correct == 0 for i in items) <= 70  # the file's order is not kept
    assert items.dropped == {"correct_is_catch_all": 0, "only_catch_all_distractors": 0}
    assert isinstance(items[0], PassageItem) and items[0].answers == tuple(items[0].answers)


# ---- split -------------------------------------------------------------------------------------------
def _items(n):
    return [PassageItem(f"item-{i}", "p", "q", ("a", "b"), 0) for i in range(n)]


def test_split_shares_disjoint_and_seeded():
    items = _items(2000)
    parts = split_items(items, seed=0)
    assert list(parts) == ["train", "validation", "test"]
    ids = [{i.id for i in parts[name]} for name in parts]
    assert sum(len(s) for s in ids) == 2000 and set().union(*ids) == {i.id for i in items}
    for share, part in zip((0.6, 0.2, 0.2), ids):
        assert abs(len(part) / 2000 - share) < 0.04
    assert split_items(items, seed=0) == parts
    shuffled = items[:]
    random.Random(1).shuffle(shuffled)
    assert {k: {i.id for i in v} for k, v in split_items(shuffled, seed=0).items()} == {
        k: {i.id for i in v} for k, v in parts.items()}
    assert {i.id for i in split_items(items[:500], seed=0)["test"]} == {i.id for i in parts["test"]
                                                                        if int(i.id.split("-")[1]) < 500}
    assert split_items(items, seed=1)["test"] != parts["test"]
    uneven = split_items(items, shares=(0.8, 0.0, 0.2))
    assert uneven["validation"] == [] and abs(len(uneven["train"]) / 2000 - 0.8) < 0.04


@needs_cosmosqa
def test_split_real_items(cosmos_slice):
    items = load_cosmosqa(cosmos_slice[0])
    parts = split_items(items, seed=4)
    ids = [[i.id for i in part] for part in parts.values()]
    assert sorted(sum(ids, [])) == sorted(i.id for i in items)
    assert all(len(part) > 0 for part in ids)


@pytest.mark.parametrize("shares", [(0.5, 0.2, 0.2), (0.6, 0.6, -0.2), (0.5, 0.5), (float("nan"), 0.5, 0.5)])
def test_split_rejects_bad_shares(shares):
    with pytest.raises(RefereeError, match="shares"):
        split_items(_items(3), shares=shares)


# ---- bad input ---------------------------------------------------------------------------------------
GOOD = {"id": "ok", "passage": "A passage.", "question": "Q?", "answers": ["x", "y"], "correct": 0}
COSMOS = _cosmos_row("c", "right", ["wrong 1", "wrong 2", "wrong 3"])


@pytest.mark.parametrize("line, field", [
    ('{"id": "b", "passage": ', "not valid JSON"),
    ({k: v for k, v in GOOD.items() if k != "question"} | {"id": "b"}, "'question'"),
    (GOOD | {"id": "b", "answers": ["only one"]}, "'answers'"),
    (GOOD | {"id": "b", "answers": ["Same.", "same"]}, "'answers'"),
    (GOOD | {"id": "b", "answers": ["x", 3]}, "'answers'"),
    (GOOD | {"id": "b", "passage": "   "}, "'passage'"),
    (GOOD | {"id": "b", "correct": 2}, "'correct'"),
    (GOOD | {"id": "b", "correct": True}, "'correct'"),
    (GOOD, "'id'"),  # the same id as line 1
    (COSMOS | {"label": 7}, "'label'"),
    (COSMOS | {"label": "first"}, "'label'"),
    (COSMOS | {"context": ""}, "'context'"),
    ({k: v for k, v in COSMOS.items() if k != "answer1"}, "'answer1'"),
    (COSMOS | {"answer1": "Right .", "answer2": "right", "answer3": ""}, "answer0..answer3"),
    ({"id": "b", "text": "neither format"}, "expected fields"),
])
def test_bad_lines_give_one_line_naming_file_line_and_field(tmp_path, line, field):
    path = _write(tmp_path / "bad.jsonl", [GOOD, line])
    with pytest.raises(RefereeError) as e:
        load_passage_items(path)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:2: ")
    assert field in message


def test_cosmosqa_loader_wants_cosmosqa_lines(tmp_path):
    with pytest.raises(RefereeError, match=re.escape(":1: missing field 'context'")):
        load_cosmosqa(_write(tmp_path / "g.jsonl", [GOOD]))


def test_empty_or_all_dropped_file(tmp_path):
    with pytest.raises(RefereeError, match="no passage items"):
        load_passage_items(_write(tmp_path / "empty.jsonl", []))
    nota = _cosmos_row("n", "None of the above choices .", ["A", "B", "C"])
    with pytest.raises(RefereeError, match="1 dropped"):
        load_cosmosqa(_write(tmp_path / "nota.jsonl", [nota]))
