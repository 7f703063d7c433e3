"""Debate and consultancy over passages (Khan et al. 2024; Anthropic's debate work): an information gap
in which those who argue read the passage and the judge does not. The judge is the project's one pairwise
judge; this package decides what each reader (blind, expert, debate, consultancy) is shown."""
