"""``referee optimize prompt`` (ProTeGi on a labelled classification file) and ``referee optimize
judge-template`` (ProTeGi on a pairwise judge's template, for agreement with human labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from referee.cli import app
from referee.cli.options import output_folder
from referee.errors import RefereeError
from referee.io.tables import source_name

optimize_app = typer.Typer(no_args_is_help=True, help="Optimise prompts with textual gradients and beam search.")
app.add_typer(optimize_app, name="optimize")

# Each setting's option, so a bad value is reported as the user typed it.
OPTIONS = {name: "--" + name.replace("_", "-") for name in (
    "train", "test", "template", "label_field", "placeholder", "format_instruction", "task_model", "gradient_model",
    "editor", "answer", "calibration", "answer_prefix", "answer_tokens", "rounds", "beam", "minibatch",
    "errors_per_gradient", "error_groups", "gradients", "edits_per_gradient", "paraphrases", "expansion", "expand",
    "selection", "budget", "items_per_pull", "exploration", "test_limit", "f1", "seed", "pairs", "other",
    "held_out", "swap", "verdict", "shown_chars")}
OPTIONS.update({"classes": "--labels", "label_words": "--labels", "text_fields": "--text-field", "out": "--run",
                "sampling.temperature": "--temperature", "sampling.max_new_tokens": "--max-new-tokens"})

# The search's options, shared by both commands; each parameter is named after its setting.
SEARCH = ("gradient_model", "editor", "rounds", "beam", "minibatch", "errors_per_gradient", "error_groups", "gradients",
          "edits_per_gradient", "paraphrases", "expansion", "expand", "selection", "budget", "items_per_pull",
          "exploration", "seed")
GRADIENT_MODEL = typer.Option(None, help="Model spec that writes textual gradients (default: the task model).")
EDITOR = typer.Option(None, help="Model spec that edits and paraphrases (default: the task model).")
ROUNDS = typer.Option(None, help="Optimisation rounds (default 6).")
BEAM = typer.Option(None, help="Beam width (default 4).")
MINIBATCH = typer.Option(None, help="Training items per round to find mistakes on (default 64).")
ERRORS_PER_GRADIENT = typer.Option(None, help="Mistakes shown per gradient request (default 4).")
ERROR_GROUPS = typer.Option(None, help="Groups of mistakes per beam prompt (default 1).")
GRADIENTS = typer.Option(None, help="Gradients per group of mistakes (default 4).")
EDITS_PER_GRADIENT = typer.Option(None, help="Edits per gradient (default 1).")
PARAPHRASES = typer.Option(None, help="Monte-Carlo paraphrases per edit (default 2).")
EXPANSION = typer.Option(None, help="Successors kept per beam prompt (default 8).")
EXPAND = typer.Option(None, help="gradients (default: ProTeGi's expansion) or paraphrase_only (the ablation: "
                      "--expansion paraphrases of each beam prompt, no gradient or edit).")
SELECTION = typer.Option(None, help="brute_force, ucb (default), ucb_e, successive_rejects or successive_halving.")
BUDGET = typer.Option(None, help="Task-model queries per round for selection (default 2048).")
ITEMS_PER_PULL = typer.Option(None, help="Training items per bandit pull (default 32).")
EXPLORATION = typer.Option(None, help="c of ucb (default 2), a of ucb_e (default 10).")
TEMPERATURE = typer.Option(None, help="Sampling temperature of gradients, edits and paraphrases (default 1).")
MAX_NEW_TOKENS = typer.Option(None, help="Their length limit (default 400).")
SEED = typer.Option(None, help="Seed of every random draw (default 0).")
AS_JSON = typer.Option(False, "--json", help="Print all metrics as JSON instead of the table.")


def search_settings(options: dict) -> dict:
    """The search's settings from a command's options (``locals()``): those named alike, the run folder, and
    the sampling of --temperature and --max-new-tokens over the search's own defaults for the one not given."""
    from referee.optimize.search import SearchConfig

    given = {k: options[k] for k in ("temperature", "max_new_tokens") if options[k] is not None}
    sampling = {**SearchConfig.model_fields["sampling"].default.model_dump(), **given} if given else None
    run_dir = options["run_dir"]
    return {**{k: options[k] for k in SEARCH}, "sampling": sampling, "out": str(run_dir) if run_dir else None}


# ``optimize prompt``'s inputs (kept out of its signature so that it stays short to read).
TRAIN_ITEMS = typer.Option(..., "--train", help="Training items: JSONL (or a JSON array) with text and label fields.")
TEST_ITEMS = typer.Option(..., "--test", help="Held-out items in the same format, for F1 by round.")
TEMPLATE = typer.Option(..., "--template", help="The initial prompt, or a file holding it; it must contain the "
                        "placeholder (default {text}) where each input goes.")
CLASS_LABELS = typer.Option(..., "--labels", help="VALUE=WORD for each class, repeatable or comma-separated "
                            "(e.g. 0=No,1=Yes): the label as the files write it, and the word the model answers; "
                            "just WORD when the files' labels are the words.")


@optimize_app.command("prompt")
def prompt(
    train: Path = TRAIN_ITEMS,
    test: Path = TEST_ITEMS,
    template: str = TEMPLATE,
    labels: list[str] = CLASS_LABELS,
    text_field: Optional[list[str]] = typer.Option(None, "--text-field", help="Field(s) holding the input, "
                                                   "joined by newlines (default: text)."),
    label_field: Optional[str] = typer.Option(None, help="Field holding the label (default: label)."),
    placeholder: Optional[str] = typer.Option(None, help="Where the input goes in the prompt (default: {text})."),
    format_instruction: Optional[str] = typer.Option(None, help="A sentence of the template that every edit must "
                                                     "keep (e.g. 'Answer Yes or No.')."),
    task_model: Optional[str] = typer.Option(None, help="Model spec that answers with the prompt (default: embedded)."),
    gradient_model: Optional[str] = GRADIENT_MODEL,
    editor: Optional[str] = EDITOR,
    answer: Optional[str] = typer.Option(None, help="probability (label-word probabilities; default) or generative "
                                         "(parse the label word, for servers without log-probabilities)."),
    calibration: Optional[str] = typer.Option(None, help="none (default) or batch: divide each label word's "
                                              "probability by its mean over the items a prompt answered (removes "
                                              "a small model's lean towards one word)."),
    answer_prefix: Optional[str] = typer.Option(None, help="Text written for the task model before its answer."),
    answer_tokens: Optional[int] = typer.Option(None, help="Generative answers: tokens to write (default 8)."),
    rounds: Optional[int] = ROUNDS,
    beam: Optional[int] = BEAM,
    minibatch: Optional[int] = MINIBATCH,
    errors_per_gradient: Optional[int] = ERRORS_PER_GRADIENT,
    error_groups: Optional[int] = ERROR_GROUPS,
    gradients: Optional[int] = GRADIENTS,
    edits_per_gradient: Optional[int] = EDITS_PER_GRADIENT,
    paraphrases: Optional[int] = PARAPHRASES,
    expansion: Optional[int] = EXPANSION,
    expand: Optional[str] = EXPAND,
    selection: Optional[str] = SELECTION,
    budget: Optional[int] = BUDGET,
    items_per_pull: Optional[int] = ITEMS_PER_PULL,
    exploration: Optional[float] = EXPLORATION,
    temperature: Optional[float] = TEMPERATURE,
    max_new_tokens: Optional[int] = MAX_NEW_TOKENS,
    test_limit: Optional[int] = typer.Option(None, help="Score this many random test items (default: all)."),
    f1: Optional[str] = typer.Option(None, help="auto (default: binary for two classes, else macro), binary or macro."),
    seed: Optional[int] = SEED,
    run_dir: Optional[Path] = typer.Option(None, "--run", help="Run folder (default: runs/optimize-<train stem>).",
                                             callback=output_folder),
    as_json: bool = AS_JSON,
):
    """Improve a classification prompt with textual gradients, edits, paraphrases and bandit beam search
    (ProTeGi); prints held-out F1 by round. Run it again to resume."""
    options = dict(locals())
    from referee.cli.core import execute, print_result, validated
    from referee.protocols.prompt_optimization import PromptOptimizationConfig

    classes, words = parse_labels(labels)
    config = validated(PromptOptimizationConfig, {
        **search_settings(options), "train": str(train), "test": str(test), "template": template, "classes": classes,
        "label_words": words, "text_fields": text_field or None, "label_field": label_field,
        "placeholder": placeholder, "format_instruction": format_instruction, "task_model": task_model,
        "answer": answer, "calibration": calibration, "answer_prefix": answer_prefix, "answer_tokens": answer_tokens,
        "test_limit": test_limit, "f1": f1}, OPTIONS)
    print_result(*execute(config, Path("runs") / f"optimize-{source_name(train)}"), as_json=as_json)


@optimize_app.command("judge-template")
def judge_template(
    pairs: Path = typer.Option(..., "--pairs", help="Pairs labelled by people (LLMBar, MT-Bench human, TRL "
                               "preference or prompt/answer_a/answer_b; JSON or JSONL), split into training and "
                               "held-out pairs."),
    other: Optional[list[Path]] = typer.Option(None, "--other", help="More labelled pair files to report agreement "
                                               "on (repeatable)."),
    held_out: Optional[float] = typer.Option(None, help="Share of --pairs held out (default 0.5), drawn by a seeded "
                                             "hash of each pair's text."),
    template: Optional[str] = typer.Option(None, help="The hand-written judge template to start from: a shipped name "
                                           "or a .txt path (default: pairwise)."),
    task_model: Optional[str] = typer.Option(None, help="Model spec of the judge whose template is optimised "
                                             "(default: embedded)."),
    gradient_model: Optional[str] = GRADIENT_MODEL,
    editor: Optional[str] = EDITOR,
    swap: Optional[str] = typer.Option(None, help="average (default: the two orders' probabilities averaged) or "
                                       "conservative (a win only when both orders agree)."),
    verdict: Optional[str] = typer.Option(None, help="probability (P([[A]]), P([[B]]), P([[C]]); default) or "
                                          "generative (parse the verdict, for servers without log-probabilities)."),
    shown_chars: Optional[int] = typer.Option(None, help="Characters of each question and answer shown to the "
                                              "gradient model and the editor (default 1500)."),
    rounds: Optional[int] = ROUNDS,
    beam: Optional[int] = BEAM,
    minibatch: Optional[int] = MINIBATCH,
    errors_per_gradient: Optional[int] = ERRORS_PER_GRADIENT,
    error_groups: Optional[int] = ERROR_GROUPS,
    gradients: Optional[int] = GRADIENTS,
    edits_per_gradient: Optional[int] = EDITS_PER_GRADIENT,
    paraphrases: Optional[int] = PARAPHRASES,
    expansion: Optional[int] = EXPANSION,
    expand: Optional[str] = EXPAND,
    selection: Optional[str] = SELECTION,
    budget: Optional[int] = BUDGET,
    items_per_pull: Optional[int] = ITEMS_PER_PULL,
    exploration: Optional[float] = EXPLORATION,
    temperature: Optional[float] = TEMPERATURE,
    max_new_tokens: Optional[int] = MAX_NEW_TOKENS,
    seed: Optional[int] = SEED,
    run_dir: Optional[Path] = typer.Option(None, "--run", help="Run folder (default: runs/optimize-judge-<pairs "
                                           "stem>).", callback=output_folder),
    as_json: bool = AS_JSON,
):
    """Improve a pairwise judge's template for agreement with human labels (ProTeGi on its request); prints
    accuracy on held-out pairs and other files for always-longer, the hand-written and the optimised
    template, and writes RUN/best_template.txt for `referee judge --template`. Run it again to resume."""
    options = dict(locals())
    from referee.cli.core import execute, print_result, validated
    from referee.protocols.judge_template_optimization import JudgeTemplateOptimizationConfig

    config = validated(JudgeTemplateOptimizationConfig, {
        **search_settings(options), "pairs": str(pairs), "other": [str(p) for p in other] if other else None,
        "held_out": held_out, "template": template, "task_model": task_model, "swap": swap, "verdict": verdict,
        "shown_chars": shown_chars}, OPTIONS)
    print_result(*execute(config, Path("runs") / f"optimize-judge-{source_name(pairs)}"), as_json=as_json)


def parse_labels(labels: list[str]) -> tuple[list[str], list[str]]:
    """(the classes as the files write them, the word the model answers for each) from VALUE=WORD items."""
    classes, words = [], []
    for item in (part.strip() for text in labels for part in text.split(",")):
        if not item:
            continue
        value, has_word, word = item.partition("=")
        value, word = value.strip(), (word if has_word else value).strip()
        if not value or not word:
            raise RefereeError(f"--labels {item!r}: write VALUE=WORD (e.g. 0=No) or just WORD")
        classes.append(value)
        words.append(word)
    return classes, words
