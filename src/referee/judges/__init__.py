"""LLM-as-a-judge: pairwise and grading judges, reference-guided, chain-of-thought, few-shot and
multi-turn, with generative or probability verdicts, position swapping, panels and truncation that
never cuts the instructions. Prompt templates are text files under ``referee/templates/judges``."""

from referee.judges.grading import GradingJudge
from referee.judges.metrics import summarize, summarize_grades
from referee.judges.pairwise import PairwiseJudge
from referee.judges.panel import Panel
from referee.judges.parse import parse_pairwise, parse_score
from referee.judges.templates import builtin_names, load_template

__all__ = ["GradingJudge", "PairwiseJudge", "Panel", "builtin_names", "load_template", "parse_pairwise",
           "parse_score", "summarize", "summarize_grades"]
