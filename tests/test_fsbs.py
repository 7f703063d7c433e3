"""Force Sampling Beam Search: forced highlights, the pick rule, the lambda trade-off, comparison pairs."""

from __future__ import annotations

from referee.critics.fsbs import comparison_pairs, pick, sample_critiques, sweep
from referee.models.base import Sampling

PROGRAM = "def total(xs):\n    s = 0\n    for i in range(len(xs) - 1):\n        s += xs[i]\n    return s\n"
BUGGY = {"id": "b", "source": PROGRAM, "bugs": [[3, 3]], "set": "tampered"}
CORRECT = {"id": "c", "source": PROGRAM.replace(" - 1", ""), "bugs": [], "set": "correct"}
CATCH = "<quote>range(len(xs) - 1)</quote> stops early."
MISS = "<quote>s = 0</quote> fine."
INVENTED = "<quote>while True</quote> loops."
CLEAN = "No problems found."


def test_pick_adds_lambda_per_highlight():
    assert pick([1.0, 0.5], [0, 2], 0.0) == 0
    assert pick([1.0, 0.5], [0, 2], 0.5) == 1  # 0.5 + 2 * 0.5 > 1.0
    assert pick([1.0, 1.0], [1, 1], 3.0) == 0  # ties keep the first


def test_sweep_trades_catches_for_false_alarms():
    items = [BUGGY, CORRECT]
    samples = [[MISS, f"{MISS} {CATCH}"], [CLEAN, "<quote>s = 0</quote> <quote>return s</quote>"]]
    rm = [[1.0, 0.2], [1.0, 0.0]]
    low, high = sweep(items, samples, rm, [0.0, 1.0])
    assert low["cbi"]["value"] == 0.0 and low["false_alarm_rate"]["value"] == 0.0
    assert high["cbi"]["value"] == 1.0 and high["false_alarm_rate"]["value"] == 1.0
    assert high["highlights_per_critique"]["value"] == 2.0


def test_comparison_pairs_prefer_the_catch_and_fall_back_to_gold():
    pairs, report = comparison_pairs([BUGGY, BUGGY, BUGGY], [[MISS, CATCH, INVENTED], [MISS, MISS], [CATCH]],
                                     ["GOLD"] * 3)
    first = [p for p in pairs if p["id"].startswith("b/")]
    assert [(p["chosen"], p["rejected"]) for p in first[:2]] == [(CATCH, MISS), (CATCH, INVENTED)]
    assert any(p["chosen"] == "GOLD" and p["rejected"] == MISS for p in pairs)
    assert report == {"pairs": 3, "chosen_from_gold": 1, "items_without_a_bad_sample": 1}


def test_samples_are_forced_to_open_with_a_highlight(tiny_model):
    samples, forced = sample_critiques(tiny_model, [PROGRAM], 2, Sampling(temperature=1.0, max_new_tokens=4))
    assert forced and len(samples[0]) == 2 and all(s.startswith("<quote>") for s in samples[0])
    plain, forced = sample_critiques(tiny_model, [PROGRAM], 1, Sampling(temperature=0.0, max_new_tokens=4),
                                     force=False)
    assert not forced
