"""Judging the judges: bias audits (position, verbosity, self-enhancement, assertiveness, injection),
and agreement with human labels.

- ``perturb``: answer transformations (padding, assertive voice, injected instruction);
- ``pairs``: audit pairs built from labelled pairs with those transformations;
- ``biases``: the bias metrics, from judge records, with bootstrap intervals;
- ``agreement``: S1 / S2 / accuracy / kappa with human labels, correlations for grades;
- ``runner``: ``run_audit``, the whole audit in one function; ``report``: text tables (the plots are
  drawn by ``referee.reports.audit``).

The baseline judges (always-longer, seeded coin) are pairwise verifiers in ``referee.judges.baselines``;
pairs decided by grading both answers are ``referee.judges.grades``.
"""

from referee.audit.agreement import graded_agreement, pairwise_agreement
from referee.audit.runner import CHECKS, run_audit

__all__ = ["CHECKS", "graded_agreement", "pairwise_agreement", "run_audit"]
