"""Judging the judges: bias audits (position, verbosity, self-enhancement, assertiveness, injection),
agreement with human labels, and baseline judges to compare against.

- ``perturb``: answer transformations (padding, assertive voice, injected instruction);
- ``pairs``: audit pairs built from labelled pairs with those transformations;
- ``biases``: the bias metrics, from judge records, with bootstrap intervals;
- ``agreement``: S1 / S2 / accuracy / kappa with human labels, correlations for grades;
- ``baselines``: always-longer and seeded-random judges in the ``judge_pairs`` shape;
- ``runner``: ``run_audit``, the whole audit in one function; ``report``: tables and plots.
"""

from referee.audit.agreement import graded_agreement, grades_to_records, pairwise_agreement
from referee.audit.baselines import LongerJudge, RandomJudge
from referee.audit.runner import CHECKS, run_audit

__all__ = ["CHECKS", "LongerJudge", "RandomJudge", "graded_agreement", "grades_to_records", "pairwise_agreement",
           "run_audit"]
