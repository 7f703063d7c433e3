"""Building blocks of AI-feedback loops (RLAIF, self-rewarding): writing new prompts, turning scores
into preference pairs, evaluation-format (EFT) data and self-judge checks, win rates against a base;
arithmetic problem sets an exact checker grades, and a loop's models, judges and pairs measured by it."""
