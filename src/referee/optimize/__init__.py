"""Prompt optimisation: the pieces of ProTeGi (Pryzant et al., 2023), one job per module, put together by
``referee.protocols.prompt_optimization`` (classification prompts) and
``referee.protocols.judge_template_optimization`` (pairwise judge templates).

    search        the loop's rounds: Expand and Select over any task, each step a stage of the run
    template      a prompt with a declared placeholder for the input (and an answer-format sentence it must keep)
    judge_prompt  a pairwise judge's request as such a prompt: the placeholders and verdict format it must keep
    answers       the task model's answer as a label, read from ``choice`` probabilities or parsed from text
    instructions  what the gradient model and the editor are asked, in words, for labelling or judging
    expansion     textual gradients, edits and Monte-Carlo paraphrases: a beam prompt's successors
    selection     bandit selectors that pick the next beam under a query budget
    scoring       F1 (binary or macro) with bootstrap intervals
"""
