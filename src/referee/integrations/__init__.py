"""referee's supervisors inside the tools users already train and evaluate with (TRL, Inspect AI)."""
