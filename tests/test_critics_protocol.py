"""The critics protocol end to end on a tiny model and a few real programs: the split keeps training
programs out of evaluation, every critic is scored on the same items, and the SFT targets quote the bug."""

from __future__ import annotations

import json

import pytest

from referee.config import validate
from referee.errors import RefereeError
from referee.protocols import critics as cr
from referee.runs import Run

HUMANEVAL = "data:humaneval/HumanEval.jsonl.gz"
QUIXBUGS = "data:quixbugs"


@pytest.mark.data("humaneval/HumanEval.jsonl.gz", "quixbugs/correct_python_programs", "quixbugs/json_testcases")
def test_critics_run_scores_baselines_and_models_on_eval_programs_only(tmp_path, tiny_model_path):
    cfg = validate(cr.CriticsConfig, {
        "protocol": "critics", "model": f"hf:{tiny_model_path}", "humaneval": HUMANEVAL, "quixbugs": QUIXBUGS,
        "limit": 6, "per_program": 2, "two_bugs": True, "critic": {"temperature": 0.0, "max_new_tokens": 8},
        "train_critic": True,
        "refine": True, "refine_sampling": {"temperature": 0.0, "max_new_tokens": 8},
        "fsbs": {"samples": 2, "lambdas": [0.0, 10.0], "sampling": {"temperature": 1.0, "max_new_tokens": 8},
                 "rm_epochs": 2, "dpo": True, "dpo_rejected": "own_critique", "dpo_correct": True,
                 "dpo_settings": {"epochs": 1, "batch_size": 2, "max_length": 512}},
        "sft": {"epochs": 1, "batch_size": 4, "max_length": 512, "learning_rate": 1e-3}}, "test")
    with Run(tmp_path / "run", cfg) as run:
        result = cr.run_critics(cfg, run)
    programs = {r["id"]: r for r in run.read_records("programs")}
    assert {p["split"] for p in programs.values() if p["origin"] == "quixbugs"} == {"eval"}
    train = {i for i, p in programs.items() if p["split"] == "train"}
    assert train and len(train) < 6  # some HumanEval programs train, the rest evaluate
    m = result.metrics
    assert set(m["critics"]) == {"random_line", "longest_line", "M0", "M-sft", "M-dpo"}
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["sandbox"]["missing"] == m["sandbox"]["missing"] and "pid" in manifest["sandbox"]
    items = run.read_records("critiques_m0")
    assert not {i["id"] for i in items} & train  # nothing a critic trained on is evaluated
    assert [i["id"] for i in items] == [i["id"] for i in run.read_records("critiques_random_line")]
    assert m["items"]["natural"] > 0 and m["items"]["correct"] == len(programs) - len(train)
    two = run.read_records("two_bugs")  # eval programs only, both bugs' spans scored
    assert two and m["items"]["two_bugs"] == len(two) and not {t["program_id"] for t in two} & train
    assert {t["id"] for t in two} <= {i["id"] for i in run.read_records("critiques_random_line")}
    assert all(len(t["spans"]) == 2 and len(t["parts"]) == 2 for t in two)
    assert m["critics"]["longest_line"]["two_bugs"]["comprehensiveness"]["n"] == len(two)
    random_line = m["critics"]["random_line"]
    assert random_line["tampered"]["unreadable"] == 0 and random_line["tampered"]["cbi"]["n"] > 0
    assert random_line["correct"]["false_alarm_rate"]["value"] == 1.0  # it always flags a line
    assert "bugs" in json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["critiqueability"]["M0"]["auc_bug_vs_correct"]["n"] == len(items)
    # per-item scores for `referee compare`: the same figures as the metrics, of answered and of all
    for name, stage in (("random_line", "random_line"), ("M0", "m0"), ("M-dpo", "m_dpo")):
        scores = run.read_records(f"scores_{stage}")
        assert [r["id"] for r in scores] == [i["id"] for i in items] and {r["split"] for r in scores} == {"eval"}
        tampered = [r for r in scores if r["set"] == "tampered"]
        answered = [r["caught"] for r in tampered if not r["unreadable"]]
        cbi = m["critics"][name]["tampered"]["cbi"]["value"]
        assert (sum(answered) / len(answered) if answered else None) == cbi
        assert sum(r["caught_of_all"] for r in tampered) / len(tampered) == \
            m["critics"][name]["tampered"]["cbi_of_all"]["value"]
        assert all(r["caught_of_all"] is False for r in tampered if r["unreadable"])
        assert all(r["false_alarm_of_all"] is None for r in tampered)
    from referee.reports.paired import compare as paired

    diff = paired(str(tmp_path / "run"), [str(tmp_path / "run")], "caught_of_all", stage="scores_random_line",
                  other_stage="scores_m0", where={"set": "tampered"})["rows"][0]
    assert diff["items"] == m["items"]["tampered"]
    assert [row["critic"] for row in result.headline] == ["random_line", "longest_line", "M0", "M-sft", "M-dpo"]
    fsbs = m["fsbs"]
    assert fsbs["critic"] == "M-sft" and m["fsbs_rm"]["pairs"]["pairs"] > 0 and m["dpo_critic"]["pairs"] > 0
    own = run.read_records("critiques_own_train")  # DPO's rejected side: the critic's own train-half critiques
    assert len(own) == m["dpo_critic"]["of_items"] and not {r["id"] for r in own} & {i["id"] for i in items}
    # and a false-alarm pair for each correct train program: "No problems found." over a forced quote
    assert [r["id"] for r in run.read_records("fsbs_train_correct_samples")] == sorted(train, key=list(programs).index)
    assert m["dpo_critic"]["false_alarm_pairs"] == len(train)
    assert m["dpo_critic"]["pairs"] == m["dpo_critic"]["bug_pairs"] + len(train)
    assert [p["lambda"] for p in fsbs["points"]] == [0.0, 10.0]
    kept = run.read_records("fsbs_eval_samples")
    assert len(kept) == len(items) and all(len(r["samples"]) == 2 for r in kept)
    assert all(s.startswith("<quote>") for r in kept for s in r["samples"])  # forced highlights
    # a large lambda keeps the sample with the most highlights: never fewer than lambda 0 keeps
    low, high = fsbs["points"]
    assert high["highlights_per_critique"]["value"] >= low["highlights_per_critique"]["value"]
    from referee.reports import draw_for

    drawn = draw_for("critics", run)
    assert [p.name for p in drawn] == ["critics.png", "fsbs.png"] and all(p.stat().st_size > 1000 for p in drawn)
    refine = m["refine"]
    assert set(refine) == {"none", "M0", "M-sft", "M-dpo", "gold"}
    buggy = m["items"]["tampered"] + m["items"]["natural"]
    assert refine["none"]["tampered"]["fixed"]["n"] + refine["none"]["natural"]["fixed"]["n"] == buggy
    # 8 tokens from a random tiny model hold no code block: counted as no program, never as a fix
    assert refine["gold"]["tampered"]["no_program"] == m["items"]["tampered"]
    assert refine["gold"]["change_vs_none"]["value"] == 0.0


def test_refine_reads_the_last_code_block_and_a_real_fix_passes():
    from referee.critics.refine import extract_program, refine_chat
    from referee.programs.datasets import run_tests

    reply = "Here:\n```python\ndef f(x):\n    return x\n```\nBetter:\n```python\ndef f(x):\n    return x + 1\n```"
    program = extract_program(reply)
    assert program == "def f(x):\n    return x + 1\n"
    assert extract_program("no code here") is None
    assert run_tests(program, "assert f(1) == 2\n")["passed"]
    assert not run_tests(extract_program(reply.split("Better")[0]), "assert f(1) == 2\n")["passed"]
    assert "A reviewer said:\nbad" in refine_chat("def f(): pass", "bad")[0]["content"]
    assert "reviewer" not in refine_chat("def f(): pass", None)[0]["content"]


def test_sft_targets_quote_the_tampered_code():
    record = {"description": "In line 3, `i < n` became `i <= n`: the loop bound is off by one.",
              "original_code": "    while i < n:", "tampered_code": "    while i <= n:", "line_start": 3,
              "line_end": 3}
    target = cr.sft_target(record, "")
    assert target == "<quote>while i <= n:</quote> is wrong: the loop bound is off by one. It should be `while i < n:`."
    removed = {**record, "tampered_code": "", "line_end": 2, "original_code": "    i += 1"}
    assert cr.sft_target(removed, "def f(n):\n    i = 0\n    return i\n") == \
        "A statement is missing after <quote>i = 0</quote>: `i += 1` is needed."
    assert cr.bug_span(removed) == (2, 3)


@pytest.mark.data("humaneval/HumanEval.jsonl.gz")
def test_critics_config_errors(tmp_path):
    cfg = validate(cr.CriticsConfig, {"protocol": "critics"}, "test")
    with Run(tmp_path / "r", cfg) as run, pytest.raises(RefereeError, match="give 'humaneval'"):
        cr.run_critics(cfg, run)
    cfg = validate(cr.CriticsConfig, {"protocol": "critics", "humaneval": HUMANEVAL, "baselines": ["oracle"]}, "t")
    with Run(tmp_path / "s", cfg) as run, pytest.raises(RefereeError, match="unknown \\['oracle'\\]"):
        cr.run_critics(cfg, run)


def test_choose_lambda_weighs_catches_against_false_alarms_and_prefers_the_smaller_on_a_tie():
    def point(lam, cbi, false_alarms, split="dev"):
        return {"lambda": lam, "split": split, "cbi_of_all": {"value": cbi},
                "false_alarm_of_all": {"value": false_alarms}}

    points = [point(0.0, 0.2, 0.0), point(1.0, 0.5, 0.1), point(4.0, 0.9, 0.8)]
    assert cr.choose_lambda(points)["lambda"] == 1.0  # 0.4 beats 0.2 and 0.1: flagging everything does not pay
    assert cr.choose_lambda([point(0.0, 0.5, 0.1), point(2.0, 0.5, 0.1)])["lambda"] == 0.0
    assert cr.choose_lambda([point(0.0, None, None), point(2.0, 0.1, 0.0)])["lambda"] == 2.0
    # the selection step handed eval (test) points, or points that name no split, refuses in one line
    for bad in ([point(0.0, 0.2, 0.0), point(1.0, 0.5, 0.1, "eval")], [{**point(0.0, 0.2, 0.0), "split": None}]):
        with pytest.raises(RefereeError, match="FSBS lambda: choosing on the (eval|None) split refused"):
            cr.choose_lambda(bad)


@pytest.mark.data("humaneval/HumanEval.jsonl.gz")
def test_fsbs_lambda_is_chosen_on_dev_programs_no_critic_trains_on_and_eval_is_read_at_it(tmp_path, tiny_model_path):
    cfg = validate(cr.CriticsConfig, {
        "protocol": "critics", "model": f"hf:{tiny_model_path}", "humaneval": HUMANEVAL, "limit": 12,
        "per_program": 1, "dev_share": 0.5, "critic": {"temperature": 0.0, "max_new_tokens": 8},
        "fsbs": {"samples": 2, "lambdas": [0.0, 10.0], "sampling": {"temperature": 1.0, "max_new_tokens": 8},
                 "rm_epochs": 2}}, "test")
    with Run(tmp_path / "run", cfg) as run:
        m = cr.run_critics(cfg, run).metrics
    programs = {r["id"]: r["split"] for r in run.read_records("programs")}
    dev = {i for i, s in programs.items() if s == "dev"}
    assert dev and {s for s in programs.values()} == {"train", "dev", "eval"}
    trained_on = {r["id"] for r in run.read_records("fsbs_train_samples")}
    bug_program = {r["id"]: r["program_id"] for r in run.read_records("bugs")}
    assert not {bug_program[i] for i in trained_on} & dev  # the critique RM never saw a dev program
    chosen_from = {bug_program.get(r["id"], r["id"]) for r in run.read_records("fsbs_dev_samples")}
    assert chosen_from == dev  # chosen on dev items only ...
    chosen = m["fsbs"]["chosen"]
    assert chosen["lambda"] in (0.0, 10.0) and chosen["dev"] == cr.choose_lambda(chosen["dev_points"])
    assert [p["lambda"] for p in chosen["dev_points"]] == [0.0, 10.0]
    assert {p["split"] for p in chosen["dev_points"]} == {"dev"} and chosen["eval"]["split"] == "eval"
    assert chosen["eval"] in m["fsbs"]["points"] and chosen["eval"]["lambda"] == chosen["lambda"]  # ... read on eval
    assert not {bug_program.get(r["id"], r["id"]) for r in run.read_records("fsbs_eval_samples")} & dev
    # every critic's greedy critiques are scored on dev as well (recipes are compared there), apart from eval
    assert set(m["critics_dev"]) == set(m["critics"]) == {"random_line", "longest_line", "M0"}
    dev_scores = run.read_records("scores_dev_m0")
    assert {bug_program.get(r["id"], r["id"]) for r in dev_scores} == dev and {r["split"] for r in dev_scores} == {"dev"}
    assert not {bug_program.get(r["id"], r["id"]) for r in run.read_records("scores_m0")} & dev
    assert m["critics_dev"]["M0"]["tampered"]["critiques"] == sum(r["set"] == "tampered" for r in dev_scores)
