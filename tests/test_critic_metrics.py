"""Critique metrics against known bugs: each measure moves when the critique does."""

from __future__ import annotations

import pytest

from referee.critics.metrics import (highlighted_lines, longest_line_critique, random_line_critique, score_critique,
                                     summarise)

PROGRAM = '''def total(xs):
    """Sum of the list."""
    s = 0
    for i in range(len(xs) - 1):
        s += xs[i]
    return s
'''
BUG = [(4, 4)]  # the loop bound stops one early


def test_a_quote_on_the_changed_line_is_a_catch_and_elsewhere_a_miss():
    caught = score_critique("<quote>range(len(xs) - 1)</quote> skips the last item.", PROGRAM, BUG)
    assert caught["caught"] and caught["highlights"] == 1 and caught["hallucinated"] == 0
    missed = score_critique("<quote>s = 0</quote> should start at 1.", PROGRAM, BUG)
    assert missed["caught"] is False and missed["comprehensive"] == 0.0
    invented = score_critique("<quote>while True</quote> never ends.", PROGRAM, BUG)
    assert invented["caught"] is False and invented["hallucinated"] == 1 and invented["highlights"] == 0


def test_multi_line_quotes_and_several_bugs():
    spans, quotes, missing = highlighted_lines("<quote>s += xs[i]\n    return s</quote>", PROGRAM)
    assert spans == [(5, 6)] and quotes == 1 and missing == 0
    both = score_critique("<quote>s = 0</quote> and <quote>return s</quote>", PROGRAM, [(3, 3), (4, 4), (6, 6)])
    assert both["comprehensive"] == pytest.approx(2 / 3) and both["caught"]


def test_correct_programs_count_false_alarms_and_nitpicks_and_unreadable_is_neither():
    clean = score_critique("No problems found.", PROGRAM, [])
    assert clean["false_alarm"] is False and clean["nitpicks"] == 0
    nitpick = score_critique("<quote>s = 0</quote> could be named better. <quote>return s</quote>", PROGRAM, [])
    assert nitpick["false_alarm"] is True and nitpick["nitpicks"] == 2
    mention = score_critique('The message "No problems found." is printed wrongly.', PROGRAM, [])
    assert mention["unreadable"] and mention["false_alarm"] is None  # a mention is no verdict
    vague = score_critique("This code seems fine but maybe slow.", PROGRAM, BUG)
    assert vague["unreadable"] and vague["caught"] is None
    summary = summarise([vague, score_critique("<quote>range(len(xs) - 1)</quote>", PROGRAM, BUG), clean, nitpick])
    assert summary["unreadable"] == 1 and summary["cbi"]["value"] == 1.0 and summary["cbi"]["n"] == 1
    assert summary["false_alarm_rate"]["value"] == 0.5
    # both denominators, said apart: of the answered critiques of buggy programs 1 of 1, of all of them 1 of 2
    assert summary["cbi_of_all"]["value"] == 0.5 and summary["cbi_of_all"]["n"] == 2
    assert summary["unreadable_rate"]["value"] == 0.25 and summary["unreadable_rate"]["n"] == 4
    assert summary["comprehensiveness"]["value"] == 1.0 and summary["comprehensiveness_of_all"]["value"] == 0.5
    # the unreadable "mention" on a correct program did not clear it: of all, 2 false alarms of 3
    with_mention = summarise([clean, nitpick, mention])
    assert with_mention["false_alarm_rate"]["value"] == 0.5
    assert with_mention["false_alarm_of_all"]["value"] == pytest.approx(2 / 3)


def test_baselines_quote_code_lines_not_docstrings():
    assert longest_line_critique(PROGRAM).startswith("<quote>for i in range(len(xs) - 1):</quote>")
    drawn = {random_line_critique(PROGRAM, 0, f"k{i}") for i in range(30)}
    assert all('Sum of the list' not in d for d in drawn) and len(drawn) > 2
    assert random_line_critique(PROGRAM, 0, "k1") == random_line_critique(PROGRAM, 0, "k1")
    assert random_line_critique("", 0, "x") == "No problems found."
