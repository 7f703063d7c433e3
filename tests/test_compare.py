"""``referee compare``: paired differences between run folders, matched by item, refusing mismatches."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from referee.errors import RefereeError
from referee.io import write_jsonl
from referee.reports.paired import compare


def _run(folder, stage, rows):
    (folder / "records").mkdir(parents=True)
    write_jsonl(folder / "records" / f"{stage}.jsonl", rows)
    return folder



def test_the_difference_is_paired_by_id_whatever_the_order(tmp_path):
    base = _run(tmp_path / "a", "eval", [{"id": f"p{i}", "correct": i % 2 == 0, "split": "test"} for i in range(40)])
    # the other run answers the same items in another order, right on 10 more of them
    other = _run(tmp_path / "b", "eval", [{"id": f"p{i}", "correct": i % 2 == 0 or i < 20, "split": "test"}
                                          for i in reversed(range(40))])
    row = compare(str(base), [str(other)], "correct", stage="eval")["rows"][0]
    assert row["value"]["value"] == 0.75 and row["base_value"]["value"] == 0.5
    assert row["difference"]["value"] == pytest.approx(0.25) and row["paired"] == 40 and row["splits"] == ["test"]
    assert 0 < row["difference"]["low"] < 0.25 < row["difference"]["high"]


def test_different_items_splits_or_keys_are_refused_in_one_line(tmp_path):
    base = _run(tmp_path / "a", "eval", [{"id": "p1", "correct": True, "split": "test"},
                                         {"id": "p2", "correct": False, "split": "test"}])
    fewer = _run(tmp_path / "b", "eval", [{"id": "p1", "correct": True, "split": "test"}])
    with pytest.raises(RefereeError, match="different items .1 only in the first, 0 only in the second"):
        compare(str(base), [str(fewer)], "correct", stage="eval")
    dev = _run(tmp_path / "c", "eval", [{"id": "p1", "correct": True, "split": "dev"},
                                        {"id": "p2", "correct": True, "split": "test"}])
    with pytest.raises(RefereeError, match="split 'test' in one and 'dev'"):
        compare(str(base), [str(dev)], "correct", stage="eval")
    twice = _run(tmp_path / "d", "eval", [{"id": "p1", "correct": True}, {"id": "p1", "correct": False}])
    with pytest.raises(RefereeError, match=r"share the key .* \(--key id,sample\)"):
        compare(str(twice), [str(twice)], "correct", stage="eval")
    text = _run(tmp_path / "e", "eval", [{"id": "p1", "correct": "yes"}, {"id": "p2", "correct": "no"}])
    with pytest.raises(RefereeError, match="should be a number or true/false"):
        compare(str(text), [str(text)], "correct", stage="eval")


def test_two_stages_of_one_run_and_groups_of_samples(tmp_path):
    rows = lambda caught: [{"id": f"b{p}-{s}", "program": f"prog{p}", "caught": caught(p)}  # noqa: E731
                           for p in range(20) for s in range(4)]
    run = tmp_path / "run"
    _run(run, "critiques_dpo", rows(lambda p: p < 12))
    write_jsonl(run / "records" / "critiques_longest_line.jsonl", rows(lambda p: p < 4))
    by_item = compare(str(run), [str(run)], "caught", stage="critiques_longest_line",
                      other_stage="critiques_dpo")["rows"][0]
    by_program = compare(str(run), [str(run)], "caught", stage="critiques_longest_line",
                         other_stage="critiques_dpo", cluster="program")["rows"][0]
    assert by_item["difference"]["value"] == by_program["difference"]["value"] == pytest.approx(0.4)
    # four samples of a program that agree carry one program's evidence: a wider interval
    assert (by_program["difference"]["high"] - by_program["difference"]["low"]) > \
        1.5 * (by_item["difference"]["high"] - by_item["difference"]["low"])


def test_the_command_prints_and_writes_the_table_with_the_command_that_wrote_it(tmp_path, capsys):
    base = _run(tmp_path / "a", "eval", [{"id": f"p{i}", "correct": i < 5} for i in range(10)])
    other = _run(tmp_path / "b", "eval", [{"id": f"p{i}", "correct": i < 8} for i in range(10)])
    code, out, err = run_cli(["compare", str(base), str(other), "--metric", "correct", "--stage", "eval",
                           "--json", str(tmp_path / "c.json"), "--markdown", str(tmp_path / "c.md")], capsys)
    assert code == 0, err
    assert "| +0.300 [" in out and f"Written by `referee compare {base} {other} --metric correct --stage eval`" in out
    assert (tmp_path / "c.md").read_text() == out
    assert json.loads((tmp_path / "c.json").read_text())["rows"][0]["difference"]["value"] == pytest.approx(0.3)
    code, _, err = run_cli(["compare", str(base), str(other), "--metric", "correct"], capsys)
    assert code == 2 and "a run folder; say which stage" in err


def test_where_keeps_one_role_and_missing_zero_counts_unreadable_outputs_of_all(tmp_path, capsys):
    # a game's records: both roles per problem; the helpful role improves, the sneaky one is worse
    base = _run(tmp_path / "a", "eval", [{"id": f"p{i}", "role": r, "correct": i < 10} for i in range(20)
                                         for r in ("helpful", "sneaky")])
    other = _run(tmp_path / "b", "eval", [{"id": f"p{i}", "role": r, "correct": i < (15 if r == "helpful" else 5)}
                                          for i in range(20) for r in ("helpful", "sneaky")])
    with pytest.raises(RefereeError, match="share the key"):  # two roles per id: not one item each
        compare(str(base), [str(other)], "correct", stage="eval")
    helpful = compare(str(base), [str(other)], "correct", stage="eval", where={"role": "helpful"})["rows"][0]
    assert helpful["difference"]["value"] == pytest.approx(0.25) and helpful["items"] == 20
    with pytest.raises(RefereeError, match="no record has role=judge"):
        compare(str(base), [str(other)], "correct", stage="eval", where={"role": "judge"})
    # an unreadable critique (no 'caught'): left out of both sides, or a miss of all
    a = _run(tmp_path / "c", "s", [{"id": f"q{i}", "caught": True} for i in range(10)])
    b = _run(tmp_path / "d", "s", [{"id": f"q{i}", "caught": None if i < 5 else True} for i in range(10)])
    dropped = compare(str(a), [str(b)], "caught", stage="s")["rows"][0]
    of_all = compare(str(a), [str(b)], "caught", stage="s", missing="zero")["rows"][0]
    assert dropped["paired"] == 5 and dropped["difference"]["value"] == 0
    assert of_all["paired"] == 10 and of_all["difference"]["value"] == pytest.approx(-0.5)
    code, out, _ = run_cli(["compare", str(base), str(other), "--metric", "correct", "--stage", "eval",
                            "--where", "role=helpful"], capsys)
    assert code == 0 and "--where role=helpful" in out
    code, _, err = run_cli(["compare", str(base), str(other), "--metric", "correct", "--stage", "eval",
                            "--where", "role"], capsys)
    assert code == 2 and "FIELD=VALUE" in err


def test_judge_records_compare_by_correct_with_unlabelled_and_unreadable_pairs_kept_apart(tmp_path):
    """Judge records say ``labelled`` and ``correct`` (None when unreadable or unlabelled): two judges on the
    same pairs compare item by item, of answered by default and of all with --missing zero."""
    from referee.judges.baselines import LongerJudge
    from referee.judges.records import with_correct
    from referee.tasks.pairs import Pair

    pairs = [Pair(f"q{i}", [{"role": "user", "content": "Which is better?"}], "a" * (1 + i % 3), "b" * 2,
                  label=[None, "A", "B", "tie"][i % 4])
             for i in range(40)]
    longer = LongerJudge().judge_pairs(pairs)
    assert [r["labelled"] for r in longer[:4]] == [False, True, True, True]
    assert all((r["correct"] is None) == (not r["labelled"]) for r in longer)
    assert all(r["correct"] == (r["winner"] == r["label"]) for r in longer if r["labelled"])
    # another judge: the same verdicts, but unreadable on every fifth pair
    other = [with_correct({**r, "winner": "invalid" if i % 5 == 0 else r["winner"]}) for i, r in enumerate(longer)]
    assert all(r["correct"] is None for i, r in enumerate(other) if i % 5 == 0)
    a, b = _run(tmp_path / "a", "judge", longer), _run(tmp_path / "b", "judge", other)
    answered = compare(str(a), [str(b)], "correct", stage="judge", where={"labelled": "True"})["rows"][0]
    labelled_and_read = sum(r["labelled"] and i % 5 != 0 for i, r in enumerate(longer))
    assert answered["paired"] == labelled_and_read and answered["difference"]["value"] == 0.0
    of_all = compare(str(a), [str(b)], "correct", stage="judge", where={"labelled": "True"}, missing="zero")["rows"][0]
    lost = sum(r["labelled"] and r["correct"] for i, r in enumerate(longer) if i % 5 == 0)
    assert of_all["paired"] == 30 and of_all["difference"]["value"] == pytest.approx(-lost / 30) and lost > 0
