"""Prompt optimisation: the pieces of ProTeGi (Pryzant et al., 2023) that the protocol
``referee.protocols.prompt_optimization`` puts together, one job per module.

    template      a prompt with a declared placeholder for the input (and an answer-format sentence it must keep)
    answers       the task model's answer as a label, read from ``choice`` probabilities or parsed from text
    instructions  what the gradient model and the editor are asked, in words
    expansion     textual gradients, edits and Monte-Carlo paraphrases: a beam prompt's successors
    selection     bandit selectors that pick the next beam under a query budget
    scoring       F1 (binary or macro) with bootstrap intervals
"""
