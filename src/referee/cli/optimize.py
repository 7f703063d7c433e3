"""``referee optimize prompt``: ProTeGi prompt optimisation on a labelled classification file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from referee.cli import app
from referee.errors import RefereeError

optimize_app = typer.Typer(no_args_is_help=True, help="Optimise prompts with textual gradients and beam search.")
app.add_typer(optimize_app, name="optimize")

# Each setting's option, so a bad value is reported as the user typed it.
OPTIONS = {name: "--" + name.replace("_", "-") for name in (
    "train", "test", "template", "label_field", "placeholder", "format_instruction", "task_model", "gradient_model",
    "editor", "answer", "answer_prefix", "answer_tokens", "rounds", "beam", "minibatch", "errors_per_gradient",
    "error_groups", "gradients", "edits_per_gradient", "paraphrases", "expansion", "selection", "budget",
    "items_per_pull", "exploration", "test_limit", "f1", "bootstrap", "seed")}
OPTIONS.update({"classes": "--labels", "label_words": "--labels", "text_fields": "--text-field", "out": "--run",
                "sampling.temperature": "--temperature", "sampling.max_new_tokens": "--max-new-tokens"})


@optimize_app.command("prompt")
def prompt(
    train: Path = typer.Option(..., "--train", help="Training items: JSONL (or a JSON array) with text and label "
                               "fields."),
    test: Path = typer.Option(..., "--test", help="Held-out items in the same format, for F1 by round."),
    template: str = typer.Option(..., "--template", help="The initial prompt, or a file holding it; it must "
                                 "contain the placeholder (default {text}) where each input goes."),
    labels: list[str] = typer.Option(..., "--labels", help="VALUE=WORD for each class, repeatable or comma-"
                                     "separated (e.g. 0=No,1=Yes): the label as the files write it, and the word the "
                                     "model answers; just WORD when the files' labels are the words."),
    text_field: Optional[list[str]] = typer.Option(None, "--text-field", help="Field(s) holding the input, "
                                                   "joined by newlines (default: text)."),
    label_field: Optional[str] = typer.Option(None, help="Field holding the label (default: label)."),
    placeholder: Optional[str] = typer.Option(None, help="Where the input goes in the prompt (default: {text})."),
    format_instruction: Optional[str] = typer.Option(None, help="A sentence of the template that every edit must "
                                                     "keep (e.g. 'Answer Yes or No.')."),
    task_model: Optional[str] = typer.Option(None, help="Model spec that answers with the prompt (default: embedded)."),
    gradient_model: Optional[str] = typer.Option(None, help="Model spec that writes textual gradients (default: "
                                                 "the task model)."),
    editor: Optional[str] = typer.Option(None, help="Model spec that edits and paraphrases (default: the task model)."),
    answer: Optional[str] = typer.Option(None, help="probability (label-word probabilities; default) or generative "
                                         "(parse the label word, for servers without log-probabilities)."),
    answer_prefix: Optional[str] = typer.Option(None, help="Text written for the task model before its answer."),
    answer_tokens: Optional[int] = typer.Option(None, help="Generative answers: tokens to write (default 8)."),
    rounds: Optional[int] = typer.Option(None, help="Optimisation rounds (default 6)."),
    beam: Optional[int] = typer.Option(None, help="Beam width (default 4)."),
    minibatch: Optional[int] = typer.Option(None, help="Training items per round to find mistakes on (default 64)."),
    errors_per_gradient: Optional[int] = typer.Option(None, help="Mistakes shown per gradient request (default 4)."),
    error_groups: Optional[int] = typer.Option(None, help="Groups of mistakes per beam prompt (default 1)."),
    gradients: Optional[int] = typer.Option(None, help="Gradients per group of mistakes (default 4)."),
    edits_per_gradient: Optional[int] = typer.Option(None, help="Edits per gradient (default 1)."),
    paraphrases: Optional[int] = typer.Option(None, help="Monte-Carlo paraphrases per edit (default 2)."),
    expansion: Optional[int] = typer.Option(None, help="Successors kept per beam prompt (default 8)."),
    selection: Optional[str] = typer.Option(None, help="brute_force, ucb (default), ucb_e, successive_rejects or "
                                            "successive_halving."),
    budget: Optional[int] = typer.Option(None, help="Task-model queries per round for selection (default 2048)."),
    items_per_pull: Optional[int] = typer.Option(None, help="Training items per bandit pull (default 32)."),
    exploration: Optional[float] = typer.Option(None, help="c of ucb (default 2), a of ucb_e (default 10)."),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature of gradients, edits and "
                                                "paraphrases (default 1)."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Their length limit (default 400)."),
    test_limit: Optional[int] = typer.Option(None, help="Score this many random test items (default: all)."),
    f1: Optional[str] = typer.Option(None, help="auto (default: binary for two classes, else macro), binary or macro."),
    seed: Optional[int] = typer.Option(None, help="Seed of every random draw (default 0)."),
    run_dir: Optional[Path] = typer.Option(None, "--run", help="Run folder (default: runs/optimize-<train stem>)."),
    as_json: bool = typer.Option(False, "--json", help="Print all metrics as JSON instead of the table."),
):
    """Improve a classification prompt with textual gradients, edits, paraphrases and bandit beam search
    (ProTeGi); prints held-out F1 by round. Run it again to resume."""
    from referee.cli.core import execute, print_result, validated
    from referee.protocols.prompt_optimization import PromptOptimizationConfig

    classes, words = parse_labels(labels)
    given = {k: v for k, v in (("temperature", temperature), ("max_new_tokens", max_new_tokens)) if v is not None}
    # the protocol's own sampling defaults for whichever of the two is not given
    sampling = {**PromptOptimizationConfig.model_fields["sampling"].default.model_dump(), **given} if given else None
    config = validated(PromptOptimizationConfig, {
        "train": str(train), "test": str(test), "template": template, "classes": classes, "label_words": words,
        "text_fields": text_field or None, "label_field": label_field, "placeholder": placeholder,
        "format_instruction": format_instruction, "task_model": task_model, "gradient_model": gradient_model,
        "editor": editor, "answer": answer, "answer_prefix": answer_prefix, "answer_tokens": answer_tokens,
        "rounds": rounds, "beam": beam, "minibatch": minibatch, "errors_per_gradient": errors_per_gradient,
        "error_groups": error_groups, "gradients": gradients, "edits_per_gradient": edits_per_gradient,
        "paraphrases": paraphrases, "expansion": expansion, "selection": selection, "budget": budget,
        "items_per_pull": items_per_pull, "exploration": exploration, "sampling": sampling,
        "test_limit": test_limit, "f1": f1, "seed": seed, "out": str(run_dir) if run_dir else None}, OPTIONS)
    print_result(*execute(config, Path("runs") / f"optimize-{train.stem}"), as_json=as_json)


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
