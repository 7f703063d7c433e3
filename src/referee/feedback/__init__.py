"""Building blocks of AI-feedback loops (RLAIF, self-rewarding): writing new prompts, turning scores
into preference pairs, evaluation-format (EFT) data and self-judge checks, win rates against a base."""
