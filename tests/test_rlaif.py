"""RLAIF preference data on a tiny model: pairs in TRL format with margins, both judge modes, agreement."""

from __future__ import annotations

import json

import pytest

from referee.config import validate
from referee.errors import RefereeError
from referee.protocols.rlaif import RlaifConfig, run_rlaif
from referee.runs import Run
from referee.trainers.dpo import to_preference


@pytest.fixture
def prompt_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": q}) + "\n" for i, q in
                            enumerate(["Name a fruit.", "Describe rain.", "What is 2+2?"])))
    return path


def test_pairwise_round_robin_writes_dpo_pairs_and_human_agreement(tiny_model_path, prompt_file, tmp_path):
    human = tmp_path / "human.json"
    human.write_text(json.dumps([{"input": "Say hi.", "output_1": "Hi!", "output_2": "", "label": 1},
                                 {"input": "Say no.", "output_1": "yes", "output_2": "No.", "label": 2}]))
    cfg = validate(RlaifConfig, {"policy": f"hf:{tiny_model_path}", "prompts": str(prompt_file), "k": 3,
                                 "min_margin": 0.0, "human_pairs": str(human), "out": str(tmp_path / "run"),
                                 "calibration": "content-free",
                                 "sampling": {"max_new_tokens": 6, "temperature": 1.0}}, "test")
    with Run(cfg.out, cfg) as run:
        metrics = run_rlaif(cfg, run).metrics
    pairs = [json.loads(line) for line in (tmp_path / "run" / "records" / "preferences.jsonl").read_text().splitlines()]
    assert metrics["rlaif"]["pairs"] == len(pairs) >= 1
    for p in pairs:
        assert len(p["verdicts"]) == 3  # 3 answers -> 3 comparisons
        assert p["chosen_score"] - p["rejected_score"] == pytest.approx(p["margin"]) and p["margin"] >= 0
        assert p["chosen"] != p["rejected"] or p["margin"] == 0
        assert set(to_preference(p, "x")) == {"prompt", "chosen", "rejected"}  # trains as it is
        # strengths are mean P(better) over each answer's two comparisons
        assert all(s is None or 0 <= s <= 1 for s in p["strengths"])
    ha = metrics["human_agreement"]
    assert ha["pairs"] == 2 and ha["agreement_s1"]["n"] == 2
    judged = (tmp_path / "run" / "records" / "human_pairs_judged.jsonl").read_text().splitlines()
    assert all(json.loads(line)["calibration"] == "content-free" for line in judged)


def test_grading_mode_and_no_pairs_stop(tiny_model_path, prompt_file, tmp_path):
    cfg = validate(RlaifConfig, {"policy": f"hf:{tiny_model_path}", "prompts": str(prompt_file), "k": 2,
                                 "mode": "grading", "min_margin": 0.0, "out": str(tmp_path / "run"),
                                 "sampling": {"max_new_tokens": 6}}, "test")
    with Run(cfg.out, cfg) as run:
        metrics = run_rlaif(cfg, run).metrics
    assert metrics["rlaif"]["answers"] == 6
    cfg = validate(RlaifConfig, {**cfg.model_dump(), "min_margin": 100.0, "out": str(tmp_path / "run2")}, "test")
    with pytest.raises(RefereeError, match="no preference pairs"):
        with Run(cfg.out, cfg) as run:
            run_rlaif(cfg, run)
    assert (tmp_path / "run2" / "metrics.json").exists()


def test_rerun_reads_back_and_changes_recompute(tiny_model_path, prompt_file, tmp_path):
    """Same config: nothing is sampled or judged again. A new margin only re-pairs; a changed prompt text
    samples and judges again (no stale answers come back for it)."""
    data = {"policy": f"hf:{tiny_model_path}", "prompts": str(prompt_file), "k": 2, "mode": "grading",
            "min_margin": 0.0, "out": str(tmp_path / "run"), "sampling": {"max_new_tokens": 6}}
    state = tmp_path / "run" / "state.json"

    def run_with(**kw) -> dict:
        cfg = validate(RlaifConfig, {**data, **kw}, "test")
        with Run(cfg.out, cfg) as run:
            run_rlaif(cfg, run)
        return json.loads(state.read_text())["stages"]

    first = run_with()
    ledger = tmp_path / "run" / "ledger.json"
    assert run_with() == first and json.loads(ledger.read_text())["totals"]["cached_calls"] == 0
    margin = run_with(min_margin=0.001)
    assert margin["samples"] == first["samples"] and margin["verdicts"] == first["verdicts"]
    assert margin["preferences"] != first["preferences"]
    prompt_file.write_text(prompt_file.read_text().replace("Describe rain.", "Describe snow."))
    changed = run_with(min_margin=0.001)
    assert changed["samples"] != margin["samples"] and changed["verdicts"] != margin["verdicts"]
    samples = [json.loads(x) for x in (tmp_path / "run" / "records" / "samples.jsonl").read_text().splitlines()]
    # only the changed prompt's two answers are new: sampled, then graded in two passes each (the first
    # digit, then 1 against 10); the other prompts' answers and grades come from the cache
    totals = json.loads(ledger.read_text())["totals"]
    assert totals["calls"] == 2 + 2 * 2 and totals["cached_calls"] > 0
    assert len(samples) == 6
