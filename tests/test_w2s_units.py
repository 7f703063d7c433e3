"""Weak-to-strong: loss math, PGR and imitation, loaders, splits and bad input (no models needed)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import DATA
from referee.errors import RefereeError
from referee.w2s import data as d
from referee.w2s.losses import AuxConfidenceLoss, NaiveLoss, aux_weight, harden, soft_cross_entropy
from referee.w2s.metrics import imitation, pgr, pgr_report, summarise


# ---- losses ------------------------------------------------------------------------------------
def _ce(p, q):
    return -sum(qi * math.log(pi) for pi, qi in zip(p, q))


def test_soft_cross_entropy_matches_hand_computation():
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(4.0), 0.0]])  # probs [.25,.75], [.8,.2]
    targets = torch.tensor([[0.1, 0.9], [0.5, 0.5]])
    expected = (_ce([0.25, 0.75], [0.1, 0.9]) + _ce([0.8, 0.2], [0.5, 0.5])) / 2
    assert float(soft_cross_entropy(logits, targets)) == pytest.approx(expected, rel=1e-6)
    assert float(NaiveLoss()(logits, targets, 0.3)) == pytest.approx(expected, rel=1e-6)


def test_aux_weight_warms_up_linearly_then_stays():
    assert aux_weight(0.0, 0.75, 0.2) == 0.0
    assert aux_weight(0.1, 0.75, 0.2) == pytest.approx(0.375)
    assert aux_weight(0.2, 0.75, 0.2) == pytest.approx(0.75)
    assert aux_weight(0.9, 0.75, 0.2) == pytest.approx(0.75)
    assert aux_weight(0.5, 0.5, 0.0) == 0.5


def test_harden_thresholds_at_the_weak_prior_quantile():
    probs = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.4, 0.6], [0.6, 0.4]])
    # weak labels say half are positive: threshold = median of p1 (0.5) -> the two highest are positive
    weak_half = torch.tensor([[0.3, 0.7], [0.7, 0.3], [0.4, 0.6], [0.6, 0.4]])
    assert harden(probs, weak_half)[:, 1].tolist() == [1.0, 0.0, 1.0, 0.0]
    # prior 0.25: threshold = 0.75 quantile of [.2,.4,.6,.9] = 0.6 + 0.25 * 0.3 = 0.675 -> only the top one
    weak_quarter = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    assert harden(probs, weak_quarter)[:, 1].tolist() == [1.0, 0.0, 0.0, 0.0]
    # a student that is unsure about everything (all p1 < 0.5) still gets positives at the prior:
    unsure = torch.tensor([[0.55, 0.45], [0.7, 0.3], [0.6, 0.4], [0.9, 0.1]])
    assert harden(unsure, weak_half)[:, 1].tolist() == [1.0, 0.0, 1.0, 0.0]
    # three classes: the student's argmax
    three = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    assert harden(three, torch.full((2, 3), 1 / 3)).tolist() == [[0, 0, 1], [1, 0, 0]]


def test_aux_loss_is_the_weighted_sum_of_two_cross_entropies():
    p1 = [0.9, 0.2, 0.6, 0.4]
    logits = torch.tensor([[0.0, math.log(p / (1 - p))] for p in p1])
    weak = torch.tensor([[0.3, 0.7], [0.7, 0.3], [0.4, 0.6], [0.6, 0.4]])
    loss = AuxConfidenceLoss(a_max=0.5, warmup=0.2)
    hard = [[0, 1], [1, 0], [0, 1], [1, 0]]
    probs = [[1 - p, p] for p in p1]
    ce_weak = np.mean([_ce(p, q) for p, q in zip(probs, weak.tolist())])
    ce_hard = np.mean([_ce(p, q) for p, q in zip(probs, hard)])
    # halfway through the warm-up a = 0.25; after it a = 0.5; at the start the loss is the naive one
    assert float(loss(logits, weak, 0.1)) == pytest.approx(0.75 * ce_weak + 0.25 * ce_hard, rel=1e-5)
    assert float(loss(logits, weak, 0.8)) == pytest.approx(0.5 * ce_weak + 0.5 * ce_hard, rel=1e-5)
    assert float(loss(logits, weak, 0.0)) == pytest.approx(ce_weak, rel=1e-5)


def test_aux_loss_gradient_does_not_flow_through_the_hardened_targets():
    logits = torch.tensor([[0.3, -0.2], [0.1, 0.4], [-0.5, 0.2]], requires_grad=True)
    weak = torch.tensor([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    AuxConfidenceLoss(0.75, 0.0)(logits, weak, 1.0).backward()
    target = 0.25 * weak + 0.75 * harden(torch.softmax(logits.detach(), -1), weak)
    expected = (torch.softmax(logits.detach(), -1) - target) / 3  # d CE / d logits for a fixed target
    assert torch.allclose(logits.grad, expected, atol=1e-6)


# ---- metrics -----------------------------------------------------------------------------------
def test_pgr_values_and_undefined_gap():
    assert pgr(0.6, 0.7, 0.8) == pytest.approx(0.5)
    assert pgr(0.6, 0.55, 0.8) == pytest.approx(-0.25)
    assert pgr(0.7, 0.8, 0.7) is None
    assert pgr(0.75, 0.8, 0.7) is None


def test_pgr_report_point_estimate_interval_and_flag():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    def with_acc(acc):
        pred = labels.copy()
        flip = rng.permutation(400)[: int(round((1 - acc) * 400))]
        pred[flip] = 1 - pred[flip]
        return pred
    weak, w2s, ceiling = with_acc(0.6), with_acc(0.7), with_acc(0.8)
    r = pgr_report(labels, weak, w2s, ceiling, n_boot=300, seed=1)
    assert (r["acc_weak"], r["acc_w2s"], r["acc_ceiling"]) == pytest.approx((0.6, 0.7, 0.8))
    assert r["pgr"] == pytest.approx(0.5)
    lo, hi = r["pgr_ci"]
    assert lo < 0.5 < hi and hi - lo < 1.0
    assert r["flag"] is None
    flagged = pgr_report(labels, ceiling, w2s, weak, n_boot=50)
    assert flagged["pgr"] is None and "not worse" in flagged["flag"]


def test_summary_leaves_flagged_runs_out():
    rows = [{"pgr": 0.2, "flag": None}, {"pgr": 0.6, "flag": None}, {"pgr": None, "flag": "weak model not worse"}]
    s = summarise(rows)
    assert s == {"runs": 3, "flagged": 1, "mean_pgr": pytest.approx(0.4), "median_pgr": pytest.approx(0.4)}
    assert summarise(rows[2:])["mean_pgr"] is None


def test_imitation_counts_copied_mistakes_only():
    labels = np.array([0, 1, 1, 0, 1, 0])
    weak = np.array([1, 1, 0, 0, 0, 1])  # wrong on items 0, 2, 4, 5
    student = np.array([1, 0, 1, 0, 0, 0])  # copies the mistake on 0 and 4
    r = imitation(labels, weak, student)
    assert r["weak_wrong"] == 4 and r["copied"] == 2
    assert r["imitation_rate"] == pytest.approx(0.5)
    assert r["student_acc_where_weak_wrong"] == pytest.approx(0.5)
    assert r["agreement"] == pytest.approx(3 / 6)
    assert imitation(labels, labels, student)["imitation_rate"] is None


# ---- loaders -----------------------------------------------------------------------------------
def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _head(src, dst, n):
    with open(src) as f:
        dst.write_text("".join(next(f) for _ in range(n)))
    return dst


@pytest.mark.data("csqa2/train.json", "liar/train.jsonl")
def test_csqa2_and_liar_loaders_on_real_slices(tmp_path):
    cs = d.load_csqa2(_head(DATA / "csqa2" / "train.json", tmp_path / "cs.json", 40))
    assert cs.classes == ["no", "yes"] and len(cs.examples) == 40
    raw = [json.loads(line) for line in (tmp_path / "cs.json").read_text().splitlines()]
    assert [e.label for e in cs.examples] == [int(r["answer"] == "yes") for r in raw]
    assert cs.examples[0].text == raw[0]["question"].strip()
    liar = d.load_liar(_head(DATA / "liar" / "train.jsonl", tmp_path / "liar.jsonl", 30))
    raw = [json.loads(line) for line in (tmp_path / "liar.jsonl").read_text().splitlines()]
    assert [e.label for e in liar.examples] == [r["label"] for r in raw]


def test_generic_loader_joins_fields_and_maps_classes(tmp_path):
    p = _write(tmp_path / "x.jsonl", [{"q": "Is it?", "ctx": "maybe", "y": "B"}, {"q": "No?", "ctx": "", "y": "A"}])
    t = d.load_classification(p, ["q", "ctx"], "y", ["A", "B"])
    assert [e.text for e in t.examples] == ["Is it?\nmaybe", "No?"]
    assert [e.label for e in t.examples] == [1, 0]


def test_label_outside_classes_names_file_line_and_field(tmp_path):
    p = _write(tmp_path / "bad.jsonl", [{"text": "fine", "label": 1}, {"text": "odd", "label": 7}])
    with pytest.raises(RefereeError, match=r"bad\.jsonl:2: field 'label' is 7, not one of the declared classes"):
        d.load_classification(p, "text", "label", [0, 1])


def test_empty_text_and_missing_fields_are_errors(tmp_path):
    p = _write(tmp_path / "e.jsonl", [{"text": "ok", "label": 0}, {"text": "   ", "label": 1}])
    with pytest.raises(RefereeError, match=r"e\.jsonl:2: field 'text' is empty"):
        d.load_classification(p, "text", "label", [0, 1])
    p = _write(tmp_path / "m.jsonl", [{"text": "ok"}])
    with pytest.raises(RefereeError, match=r"m\.jsonl:1: missing field 'label'"):
        d.load_classification(p, "text", "label", [0, 1])
    with pytest.raises(RefereeError, match="at least two distinct classes"):
        d.load_classification(p, "text", "label", ["x"])


@pytest.mark.data("llmbar/natural.json")
def test_pairs_become_balanced_is_a_better_classification(tmp_path):
    task = d.load_pair_task(DATA / "llmbar" / "natural.json")
    assert task.classes == ["B", "A"] and len(task.examples) == 100
    share = np.mean([e.label for e in task.examples])
    assert 0.3 < share < 0.7  # the side swap balances the classes
    # TRL format: the chosen answer is always first in the file, yet about half become label B
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(40)]
    trl = d.load_pair_task(_write(tmp_path / "p.jsonl", rows))
    for e in trl.examples:
        a_part = e.text.split("Response A:\n")[1].split("\n\n")[0]
        assert (e.label == 1) == a_part.startswith("good")
    assert 0 < sum(e.label for e in trl.examples) < 40
    ties = [{"input": "q", "output_1": "x", "output_2": "y", "label": 0}, {"input": "q2", "output_1": "x", "output_2": "y", "label": 1},
            {"input": "q3", "output_1": "x", "output_2": "y", "label": 2}]
    t = d.load_pair_task(_write(tmp_path / "t.jsonl", ties))
    assert len(t.examples) == 2 and t.dropped["ties"] == 1


# ---- splits ------------------------------------------------------------------------------------
def _task(n, name="t"):
    return d.Task(name, ["0", "1"], [d.Example(f"{name}{i}", f"text {i}", i % 2) for i in range(n)], f"{name}.jsonl")


def test_split_parts_are_disjoint_sized_and_seeded():
    s = d.make_split(_task(100), None, 30, 40, 20, seed=3)
    assert s.sizes() == {"weak": 30, "w2s": 40, "test": 20}
    ids = [e.id for part in (s.weak, s.w2s, s.test) for e in part]
    assert len(set(ids)) == 90
    again = d.make_split(_task(100), None, 30, 40, 20, seed=3)
    assert [e.id for e in again.w2s] == [e.id for e in s.w2s]
    other = d.make_split(_task(100), None, 30, 40, 20, seed=4)
    assert [e.id for e in other.w2s] != [e.id for e in s.w2s]
    with_file = d.make_split(_task(100), _task(50, "u"), 30, 40, 0, seed=3)
    assert len(with_file.test) == 50 and all(e.id.startswith("u") for e in with_file.test)
    assert len(d.make_split(_task(100), _task(50, "u"), 30, 40, 10, seed=3).test) == 10


def test_split_too_small_names_the_settings():
    with pytest.raises(RefereeError, match=r"n_weak \+ n_w2s \+ n_test ask for 110 examples but t\.jsonl has only 100"):
        d.make_split(_task(100), None, 50, 50, 10, seed=0)
    with pytest.raises(RefereeError, match=r"'n_test' asks for 60 examples but u\.jsonl has only 50"):
        d.make_split(_task(100), _task(50, "u"), 30, 40, 60, seed=0)
    with pytest.raises(RefereeError, match=r"'n_weak' must be at least 2"):
        d.make_split(_task(100), None, 1, 40, 10, seed=0)
    one_class = d.Task("o", ["0", "1"], [d.Example(str(i), "t", 0) for i in range(20)], "o.jsonl")
    with pytest.raises(RefereeError, match="only one class"):
        d.make_split(one_class, None, 5, 5, 5, seed=0)
