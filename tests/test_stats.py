"""referee.stats against hand-computed values and scipy."""

import math

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from referee import stats
from referee.errors import RefereeError


def test_mean_ci_value_interval_and_seed():
    flags = [1] * 30 + [0] * 10
    est = stats.rate(flags, seed=3)
    assert est.value == pytest.approx(0.75)
    assert est.n == 40
    assert est.low < 0.75 < est.high
    # the normal-approximation half width is 1.96 * sqrt(.75 * .25 / 40) = 0.134: the bootstrap is close
    assert 0.09 < (est.high - est.low) / 2 < 0.18
    assert stats.rate(flags, seed=3) == est  # same seed, same interval
    values = list(np.random.default_rng(0).normal(size=50))
    assert stats.mean_ci(values, seed=1) == stats.mean_ci(values, seed=1)
    assert stats.mean_ci(values, seed=1).low != stats.mean_ci(values, seed=2).low


def test_interval_shrinks_with_more_data():
    small = stats.rate([1, 0, 1, 1] * 5)
    large = stats.rate([1, 0, 1, 1] * 500)
    assert small.value == large.value == 0.75
    assert (large.high - large.low) < (small.high - small.low) / 5


def test_none_items_are_left_out_of_value_and_resamples():
    est = stats.mean_ci([1.0, None, 0.0, None, 1.0, 1.0])
    assert est.n == 4 and est.value == pytest.approx(0.75)
    assert stats.mean_ci([None, None]) == stats.Estimate(None, None, None, 0)


def test_paired_diff_keeps_pairs_together():
    a = [0.9, 0.8, None, 0.7]
    b = [0.1, 0.2, 0.5, None]
    est = stats.paired_diff(a, b)
    assert est.n == 2 and est.value == pytest.approx(0.7)
    assert est.low == pytest.approx(0.6) and est.high == pytest.approx(0.8)
    with pytest.raises(RefereeError):
        stats.paired_diff([1.0], [1.0, 2.0])


def test_settings_are_checked():
    with pytest.raises(RefereeError, match="level"):
        stats.rate([1, 0], level=1.5)
    with pytest.raises(RefereeError, match="n_boot"):
        stats.rate([1, 0], n_boot=0)


def test_s1_s2_accuracy_by_hand():
    judge = ["A", "B", "tie", "A", "invalid", "B", "tie", "A"]
    human = ["A", "A", "tie", "tie", "B", "B", "A", None]
    # S1 over the 7 labelled: hits at 0 (A), 2 (tie), 5 (B) -> 3/7
    assert stats.agreement_s1(judge, human).value == pytest.approx(3 / 7)
    # S2 drops ties on either side (2, 3, 6) and the unlabelled 7: rows 0, 1, 4, 5 -> hits 0 and 5 -> 2/4;
    # the invalid verdict (row 4) stays in as a miss
    s2 = stats.agreement_s2(judge, human)
    assert s2.n == 4 and s2.value == pytest.approx(0.5)
    # accuracy: non-tie human labels (0, 1, 4, 5, 6); judge tie at 6 is a miss -> 2/5
    acc = stats.accuracy_no_tie(judge, human)
    assert acc.n == 5 and acc.value == pytest.approx(0.4)
    with pytest.raises(RefereeError, match="verdict"):
        stats.agreement_s1(["C"], ["A"])


def test_kappa_on_a_known_table():
    # 2x2 table: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o = .7, p_e = .5*.6 + .5*.4 = .5, kappa = .4
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    est = stats.cohen_kappa(a, b)
    assert est.value == pytest.approx(0.4)
    assert est.low < 0.4 < est.high


def test_kappa_three_classes_by_hand():
    # rows: rater 1, columns: rater 2 (A, B, tie)
    table = np.array([[10, 2, 3], [1, 12, 2], [2, 1, 7]])
    a, b = [], []
    names = ["A", "B", "tie"]
    for i in range(3):
        for j in range(3):
            a += [names[i]] * int(table[i, j])
            b += [names[j]] * int(table[i, j])
    n = table.sum()
    p_o = np.trace(table) / n
    p_e = (table.sum(1) / n) @ (table.sum(0) / n)
    assert stats.cohen_kappa(a, b).value == pytest.approx((p_o - p_e) / (1 - p_e))
    # by hand: p_o = 29/40 = .725, p_e = (15*13 + 15*15 + 10*12) / 1600 = .3375 -> (.725 - .3375) / .6625
    assert stats.cohen_kappa(a, b).value == pytest.approx(0.3875 / 0.6625)


def test_kappa_extremes():
    assert stats.cohen_kappa(["A", "B", "A", "B"], ["A", "B", "A", "B"]).value == pytest.approx(1.0)
    assert stats.cohen_kappa(["A", "B", "A", "B"], ["B", "A", "B", "A"]).value == pytest.approx(-1.0)
    # both raters put everything in one class: undefined, not a made-up number
    assert stats.cohen_kappa(["A"] * 5, ["A"] * 5).value is None
    assert stats.cohen_kappa(["A", None, "B"], ["A", "B", None]).n == 1


def test_correlations_match_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    y = 0.6 * x + rng.normal(size=60)
    p = stats.pearson(list(x), list(y))
    s = stats.spearman(list(x), list(y))
    assert p.value == pytest.approx(pearsonr(x, y).statistic)
    assert s.value == pytest.approx(spearmanr(x, y).statistic)
    assert p.low < p.value < p.high and s.low < s.value < s.high
    assert p.n == 60


def test_correlation_undefined_and_missing():
    assert stats.pearson([1, 1, 1], [1, 2, 3]).value is None
    est = stats.spearman([1, 2, None, 4, 5], [2, 1, 3, None, 6])
    assert est.n == 3
    assert est.value == pytest.approx(spearmanr([1, 2, 5], [2, 1, 6]).statistic)


def test_bootstrap_generic_statistic():
    est = stats.bootstrap(lambda v: float(np.median(v)), [1, 2, 3, 4, 100], seed=1)
    assert est.value == 3 and est.low <= 3 <= est.high
    assert math.isfinite(est.high)


def test_estimate_format_and_json():
    est = stats.Estimate(0.625, 0.5, 0.75, 40)
    assert est.fmt() == "0.62 [0.50, 0.75]" or est.fmt() == "0.63 [0.50, 0.75]"
    assert est.fmt(percent=True) == "62% [50, 75]" or est.fmt(percent=True) == "63% [50, 75]"
    assert stats.Estimate(None, None, None, 0).fmt() == "n/a"
    assert stats.jsonable({"x": [est]}) == {"x": [{"value": 0.625, "low": 0.5, "high": 0.75, "n": 40}]}


# ---- resampling groups of rows ------------------------------------------------------------------------
def test_clusters_of_one_row_give_the_row_bootstrap_and_correlated_clusters_a_wider_interval():
    rng = np.random.default_rng(1)
    per_problem = rng.random(40) < 0.5  # 40 problems, each answered the same way by all its 8 samples
    flags = [bool(f) for f in per_problem for _ in range(8)]
    problems = [i for i in range(40) for _ in range(8)]
    rows = stats.rate(flags)
    assert stats.rate(flags, clusters=list(range(len(flags)))) == rows  # singleton groups: the same resamples
    grouped = stats.rate(flags, clusters=problems)
    assert grouped.value == rows.value and grouped.n == rows.n
    # 8 identical samples a problem carry the evidence of 1: the interval is about sqrt(8) times wider
    ratio = (grouped.high - grouped.low) / (rows.high - rows.low)
    assert 2.0 < ratio < 4.0
    noise = rng.normal(0, 1, 40)  # a verifier's score, shared by a problem's samples
    scores, labels = [float(f) + noise[p] for f, p in zip(flags, problems)], [float(f) for f in flags]
    auc_rows = stats.bootstrap(stats.auc, scores, labels)
    auc_grouped = stats.bootstrap(stats.auc, scores, labels, clusters=problems)
    assert auc_grouped.value == auc_rows.value and auc_grouped.high - auc_grouped.low > auc_rows.high - auc_rows.low


def test_clusters_skip_the_rows_left_out_and_must_cover_every_row():
    values = [1.0, None, 0.0, 1.0]
    assert stats.mean_ci(values, clusters=["a", "a", "b", "b"]).n == 3
    with pytest.raises(RefereeError, match="every row"):
        stats.mean_ci(values, clusters=["a", "b"])


def test_one_interval_format_for_every_report():
    from referee.stats import interval_text

    assert interval_text(0.625, 0.55, 0.7) == "0.62 [0.55, 0.70]"
    assert interval_text(0.625, 0.55, 0.704, digits=0, percent=True) == "62% [55, 70]"
    assert interval_text(0.086, 0.008, 0.164, digits=1, percent=True, signed=True, unit=" points") \
        == "+8.6 points [+0.8, +16.4]"
    assert interval_text(0.12, None, None, signed=True, unknown=None) == "+0.12"
    assert interval_text(0.5, None, 0.6, digits=3) == "0.500 [?, 0.600]"
    assert interval_text(None, 0.1, 0.2) == "n/a"
