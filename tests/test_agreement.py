"""Agreement with human labels: S1, S2, accuracy, kappa, per category, grades; ``referee agreement``."""

import json

import pytest
from scipy.stats import pearsonr, spearmanr

from conftest import DATA
from referee.audit.agreement import graded_agreement, margin_correlation, pairwise_agreement
from referee.judges.grades import grades_to_records
from referee.judges.baselines import LongerJudge, RandomJudge
from referee.errors import RefereeError
from referee.tasks.pairs import Pair, load_pairs


def _rec(winner, label, category=None):
    return {"id": "x", "winner": winner, "label": label, "category": category, "p_a": None, "orders": []}


def test_pairwise_agreement_by_hand():
    recs = [_rec("A", "A", "math"), _rec("B", "A", "math"), _rec("tie", "tie", "math"), _rec("invalid", "B", "code"),
            _rec("B", "B", "code"), _rec("tie", "A", "code"), _rec("A", None, "code")]
    m = pairwise_agreement(recs, n_boot=200)
    assert m["n"] == 6 and m["unlabelled"] == 1
    assert m["s1"].value == pytest.approx(3 / 6)           # rows 0, 2, 4 agree
    assert m["s2"].value == pytest.approx(2 / 4)           # rows 0, 1, 3 (invalid = miss), 4
    assert m["accuracy"].value == pytest.approx(2 / 5)     # non-tie human labels: 0, 1, 3, 4, 5
    assert m["accuracy_answered"].value == pytest.approx(2 / 4)  # the same without row 3's unreadable verdict
    assert m["invalid"].value == pytest.approx(1 / 6)
    assert m["judge_tie"].value == pytest.approx(2 / 6)
    # kappa over the 5 readable verdicts: judge A B tie B tie vs human A A tie B A
    # p_o = 3/5; judge marginals A 1, B 2, tie 2; human A 3, B 1, tie 1 -> p_e = (3 + 2 + 2) / 25
    assert m["kappa"].value == pytest.approx((3 / 5 - 7 / 25) / (1 - 7 / 25))
    assert set(m["per_category"]) == {"code", "math"}
    assert m["per_category"]["math"]["s1"].value == pytest.approx(2 / 3)
    assert m["per_category"]["code"]["n"] == 3


def test_no_labels_is_an_error():
    with pytest.raises(RefereeError, match="human label"):
        pairwise_agreement([_rec("A", None)])


def test_graded_agreement_matches_scipy():
    judge = [7, 3, None, 9, 5, 6, 2, 8]
    human = [8, 2, 5, 9, 4, 7, 3, 6]
    m = graded_agreement(judge, human, n_boot=300)
    keep = [(j, h) for j, h in zip(judge, human) if j is not None]
    x, y = zip(*keep)
    assert m["pearson"].value == pytest.approx(pearsonr(x, y).statistic)
    assert m["spearman"].value == pytest.approx(spearmanr(x, y).statistic)
    assert m["pearson"].n == 7 and m["invalid"].value == pytest.approx(1 / 8)


def test_grades_to_records():
    pairs = [Pair(str(i), [{"role": "user", "content": "q"}], "a", "b", lab) for i, lab in enumerate("ABAB")]
    ga = [{"score": 8, "valid": True}, {"score": 5, "valid": True}, {"score": None, "valid": False},
          {"score": 6.0, "valid": True}]
    gb = [{"score": 3, "valid": True}, {"score": 7, "valid": True}, {"score": 4, "valid": True},
          {"score": 6.4, "valid": True}]
    recs = grades_to_records(pairs, ga, gb, margin=0.5)
    assert [r["winner"] for r in recs] == ["A", "B", "invalid", "tie"]
    assert pairwise_agreement(recs, n_boot=100)["s2"].value == pytest.approx(2 / 3)
    with pytest.raises(RefereeError):
        grades_to_records(pairs, ga, gb[:2])


def test_margin_correlation_matches_scipy():
    pairs = [Pair(str(i), [{"role": "user", "content": "q"}], "a", "b", lab) for i, lab in enumerate("AABBtA")]
    pairs[4].label = "tie"
    ga = [{"score": s} for s in (9, 6, 2, 5, 7, None)]
    gb = [{"score": s} for s in (3, 5, 8, 5, 7, 1)]
    m = margin_correlation(grades_to_records(pairs, ga, gb), n_boot=200)
    margins, human = [6, 1, -6, 0, 0], [1, 1, -1, -1, 0]
    assert m["pearson"].n == 5
    assert m["pearson"].value == pytest.approx(pearsonr(margins, human).statistic)
    assert m["spearman"].value == pytest.approx(spearmanr(margins, human).statistic)


@pytest.mark.data("llmbar/natural.json")
def test_longer_baseline_on_real_llmbar_data():
    """On real human-labelled pairs the longer answer baseline agrees as often as its picks match."""
    pairs = load_pairs(DATA / "llmbar" / "natural.json")
    recs = LongerJudge().judge_pairs(pairs)
    m = pairwise_agreement(recs, n_boot=300)
    expected = sum((len(p.answer_a.strip()) > len(p.answer_b.strip()) and p.label == "A") or
                   (len(p.answer_b.strip()) > len(p.answer_a.strip()) and p.label == "B") for p in pairs)
    assert m["accuracy"].value == pytest.approx(expected / len(pairs))
    assert m["accuracy"].low < m["accuracy"].value < m["accuracy"].high
    # a coin agrees half the time: over ten seeds the mean S2 is close to 0.5
    coins = [pairwise_agreement(RandomJudge(seed=s).judge_pairs(pairs), n_boot=50)["s2"].value for s in range(10)]
    assert all(0.25 < c < 0.75 for c in coins)
    assert 0.44 < sum(coins) / len(coins) < 0.56


def test_cli_agreement_with_baseline(tmp_path, capsys):
    from referee.cli import main

    rows = [{"input": f"q{i}", "output_1": "long " * (i + 1), "output_2": "s", "label": 1 if i % 4 else 2,
             "category": "even" if i % 2 == 0 else "odd"} for i in range(12)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    main(["agreement", "--judge", "baseline:longer", "--pairs", str(path), "--out", str(tmp_path / "run"),
          "--n-boot", "200"])
    out = capsys.readouterr().out
    assert "s2" in out and "kappa" in out and "even" in out
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())["agreement"]
    assert saved["s2"]["value"] == pytest.approx(9 / 12)
    assert (tmp_path / "run" / "plots" / "agreement.png").exists()
    assert len((tmp_path / "run" / "records" / "judgments.jsonl").read_text().splitlines()) == 12
    # the same folder: another judge, then the same pair ids with other texts, are judged afresh
    main(["agreement", "--judge", "baseline:random", "--pairs", str(path), "--out", str(tmp_path / "run"),
          "--n-boot", "200"])
    judged = [json.loads(x) for x in (tmp_path / "run" / "records" / "judgments.jsonl").read_text().splitlines()]
    assert {r["template"] for r in judged} == {"baseline:random"}  # baselines name themselves there
    path.write_text("\n".join(json.dumps({**r, "output_1": "s", "output_2": r["output_1"]}) for r in rows))
    main(["agreement", "--judge", "baseline:longer", "--pairs", str(path), "--out", str(tmp_path / "run"),
          "--n-boot", "200"])
    judged = [json.loads(x) for x in (tmp_path / "run" / "records" / "judgments.jsonl").read_text().splitlines()]
    assert [r["winner"] for r in judged] == ["B"] * 12


def test_cli_agreement_needs_labels(tmp_path, capsys):
    from referee.cli import main

    path = tmp_path / "unlabelled.jsonl"
    path.write_text(json.dumps({"prompt": "q", "answer_a": "a", "answer_b": "b"}) + "\n")
    with pytest.raises(SystemExit) as e:
        main(["agreement", "--judge", "baseline:random", "--pairs", str(path), "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and "human label" in capsys.readouterr().err


def test_agreement_single_mode_with_tiny_model(tiny_model_path, tmp_path, capsys):
    """Grades from the real GradingJudge become pairwise verdicts; unreadable grades are invalid."""
    from referee.cli import main

    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps({"input": f"q{i}", "output_1": "yes", "output_2": "no", "label": 1})
                              for i in range(3)))
    main(["agreement", "--judge", f"hf:{tiny_model_path}", "--pairs", str(path), "--mode", "single",
          "--out", str(tmp_path / "run"), "--n-boot", "100"])
    recs = [json.loads(x) for x in (tmp_path / "run" / "records" / "judgments.jsonl").read_text().splitlines()]
    assert len(recs) == 3
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())["agreement"]
    assert set(saved["grades"]) == {"pearson", "spearman"}
    for r in recs:
        assert r["winner"] in ("A", "B", "tie", "invalid")
        if r["winner"] != "invalid":
            assert r["score_a"] is not None and r["score_b"] is not None
