"""The self-rewarding loop end to end on a tiny model, its pieces, and its clean stops."""

from __future__ import annotations

import json

import pytest

from referee.config import validate
from referee.errors import RefereeError
from referee.feedback import seeds
from referee.feedback.new_prompts import clean, write_prompts
from referee.feedback.preference_pairs import best_vs_worst
from referee.protocols.self_rewarding import SelfRewardingConfig, run_self_rewarding
from referee.reports import draw_for
from referee.runs import Run

TINY_TRAIN = {"learning_rate": 1e-3, "max_steps": 2, "batch_size": 4, "max_length": 256,
              "lora": {"r": 4, "alpha": 8, "dropout": 0.0}}


def _config(model_path, out, **kw):
    data = {"model": f"hf:{model_path}", "out": str(out), "iterations": 1, "new_prompts": 3, "candidates": 2,
            "eval_limit": 3, "sampling": {"max_new_tokens": 8, "temperature": 1.0}, "sft": TINY_TRAIN, "dpo": TINY_TRAIN}
    data.update(kw)
    return validate(SelfRewardingConfig, data, "test")


def test_one_iteration_end_to_end_and_resume(tiny_model_path, tmp_path):
    cfg = _config(tiny_model_path, tmp_path / "run")
    with Run(cfg.out, cfg) as run:
        result = run_self_rewarding(cfg, run).metrics
    draw_for("self_rewarding", run)  # drawn from the finished folder, as the CLI does
    folder = tmp_path / "run"
    assert set(result["models"]) == {"M0", "M1", "M2"}
    assert (folder / "checkpoints" / "m1" / "referee-checkpoint.json").exists()
    marker = json.loads((folder / "checkpoints" / "m2" / "referee-checkpoint.json").read_text())
    assert marker["base"] == result["models"]["M1"] and marker["kind"] == "dpo"
    metrics = json.loads((folder / "metrics.json").read_text())
    for i in range(3):
        sj = metrics[f"M{i}"]["self_judge"]
        assert sj["answers"] == len(seeds.split_eft(seeds.load_eft())[1])
        assert 0 <= sj["invalid_rate"]["value"] <= 1
    for i in (1, 2):
        vs = metrics[f"M{i}"]["vs_m0"]
        assert vs["pairs"] == 3 and 0 <= vs["win_rate"]["value"] <= 1 and vs["position_consistency"] is not None
    data = metrics["it1_data"]
    assert 1 <= data["prompts"] <= 3 and data["candidates"] == 2 * data["prompts"] and data["pairs"] >= 1
    pairs = [json.loads(line) for line in (folder / "records" / "it1_pairs.jsonl").read_text().splitlines()]
    assert all(p["chosen_score"] > p["rejected_score"] for p in pairs)
    html = (folder / "report.html").read_text()
    assert "win rate" in html and "plots/win_rate_vs_m0.png" in html
    for png in ("win_rate_vs_m0.png", "self_judge_scores.png", "answer_lengths.png", "stage_seconds.png"):
        assert (folder / "plots" / png).stat().st_size > 1000

    # run again: checkpoints and stage records are read back, so no model is called at all (not even
    # through the cache)
    with Run(cfg.out, cfg) as run:
        again = run_self_rewarding(cfg, run).metrics
    assert again["models"] == result["models"]
    totals = json.loads((folder / "ledger.json").read_text())["totals"]
    assert totals["calls"] == 0 and totals["cached_calls"] == 0


def test_no_pairs_stops_cleanly_keeping_records(tiny_model_path, tmp_path, monkeypatch):
    import referee.protocols.self_rewarding as sr

    monkeypatch.setattr(sr, "write_prompts", lambda *a, **k: (["Name a colour.", "Name a city."], {"kept": 2}))
    monkeypatch.setattr(sr, "best_vs_worst", lambda *a, **k: None)  # every prompt's candidates tie
    cfg = _config(tiny_model_path, tmp_path / "run", sft=None)
    with pytest.raises(RefereeError, match="no preference pairs"):
        with Run(cfg.out, cfg) as run:
            run_self_rewarding(cfg, run)
    assert (tmp_path / "run" / "records" / "it1_candidates.jsonl").exists()
    assert (tmp_path / "run" / "records" / "it1_self_judge.jsonl").exists()
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["finished"] is False


def test_no_usable_prompts_stops_cleanly(tiny_model_path, tmp_path, monkeypatch):
    import referee.feedback.new_prompts as np_mod

    monkeypatch.setattr(np_mod, "clean", lambda text: None)
    cfg = _config(tiny_model_path, tmp_path / "run", sft=None)
    with pytest.raises(RefereeError, match="wrote no usable new prompts"):
        with Run(cfg.out, cfg) as run:
            run_self_rewarding(cfg, run)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["it1_prompts"]["unusable"] == 9


def test_best_vs_worst_skips_ties_and_invalid():
    assert best_vs_worst("q", ["a", "b"], [3.0, 3.0]) is None
    assert best_vs_worst("q", ["a", "b", "c"], [None, 2.0, None]) is None
    p = best_vs_worst("q", ["a", "b", "c", "d"], [1.0, None, 4.5, 0.5])
    assert (p["chosen"], p["rejected"], p["margin"]) == ("c", "d", 4.0)


def test_prompt_cleaning_and_dedup(tiny_model):
    assert clean('Task: "Name three rivers in Africa."\nmore') == "Name three rivers in Africa."
    assert clean("ok") is None
    from referee.models.base import Sampling

    prompts, counts = write_prompts(tiny_model, ["Name a fruit that is red.", "Give a synonym for happy."], 4,
                                    seen={"Name a fruit that is red."}, seed=0,
                                    sampling=Sampling(temperature=1.0, max_new_tokens=12))
    assert counts["written"] == 12 and counts["kept"] == len(prompts) <= 4
    assert len({p.lower() for p in prompts}) == len(prompts)


def test_seed_files_and_bad_seed_input(tmp_path):
    ift, eft = seeds.load_ift(), seeds.load_eft()
    assert len(ift) >= 30 and len(eft) >= 30
    train, held = seeds.split_eft(eft)
    assert len(held) == len(eft) // 3 and not set(e["line"] for e in train) & set(e["line"] for e in held)
    bad = tmp_path / "eft.jsonl"
    bad.write_text('{"prompt": "q", "response": "r", "score": 3}\n{"prompt": "q", "response": "r", "score": 9}\n')
    with pytest.raises(RefereeError, match=r"eft.jsonl:2: field 'score' should be within 0..5"):
        seeds.load_eft(str(bad))
    bad.write_text('{"prompt": "q", "score": 3}\n')
    with pytest.raises(RefereeError, match=r"eft.jsonl:1: missing field 'response'"):
        seeds.load_eft(str(bad))


def _stages_said(err: str) -> dict[str, set[str]]:
    """Which stages the stage runner said it read back and which it recomputed."""
    out = {"read back": set(), "recomputed": set()}
    for line in err.splitlines():
        name, _, rest = line.partition(": ")
        if rest.endswith("read back"):
            out["read back"].add(name)
        elif rest.endswith("recomputing"):
            out["recomputed"].add(name)
    return out


def test_a_changed_setting_or_input_text_recomputes_only_what_depends_on_it(tiny_model_path, tmp_path, monkeypatch,
                                                                            capsys):
    """Nothing stale comes back: a new DPO learning rate trains M2 again (M0's stages are read back), and
    a changed evaluation prompt is answered and judged again."""
    import referee.protocols.self_rewarding as sr
    from referee import progress

    monkeypatch.setattr(progress, "_quiet", False)
    monkeypatch.setattr(sr, "write_prompts", lambda *a, **k: (["Name a colour.", "Name a city."], {"kept": 2}))
    evals = tmp_path / "evals.jsonl"
    evals.write_text("".join(json.dumps({"id": f"e{i}", "prompt": f"Name a colour number {i}."}) + "\n"
                             for i in range(3)))
    cfg = _config(tiny_model_path, tmp_path / "run", sft=None, eval_prompts=str(evals))
    with Run(cfg.out, cfg) as run:
        run_self_rewarding(cfg, run)
    m2 = tmp_path / "run" / "checkpoints" / "m2" / "referee-checkpoint.json"
    assert json.loads(m2.read_text())["settings"]["learning_rate"] == 1e-3

    faster = _config(tiny_model_path, tmp_path / "run", sft=None, eval_prompts=str(evals),
                     dpo={**TINY_TRAIN, "learning_rate": 2e-3})
    capsys.readouterr()
    with Run(faster.out, faster) as run:
        run_self_rewarding(faster, run)
    said = _stages_said(capsys.readouterr().err)
    assert json.loads(m2.read_text())["settings"]["learning_rate"] == 2e-3
    assert "eval_m0_answers" in said["read back"] and "it1_candidates" in said["read back"]
    assert "it1_dpo" in said["recomputed"] and "eval_m2_answers" in said["recomputed"]

    evals.write_text(evals.read_text().replace("colour number 2", "city number 2"))
    with Run(faster.out, faster) as run:
        run_self_rewarding(faster, run)
    said = _stages_said(capsys.readouterr().err)
    answers = [json.loads(x) for x in (tmp_path / "run" / "records" / "eval_m0_answers.jsonl").read_text().splitlines()]
    assert answers[2]["prompt"] == "Name a city number 2."
    assert {"eval_m0_answers", "eval_m1_vs_m0", "eval_m2_vs_m0"} <= said["recomputed"]
    assert {"it1_candidates", "it1_self_judge", "it1_dpo"} <= said["read back"]
