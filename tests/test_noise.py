"""Third-party noise stays off the terminal (in RUN/third_party.log) unless --verbose; referee's own
progress and warnings still show. The command line runs in a fresh process, so stderr is the real one."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import warnings

from referee import noise

# A command added to the CLI for the test: inside a run, a third-party module warns and logs, and referee
# says a progress line and warns. "fakelib" stands for transformers, TRL, ...: its __name__ is not referee.*.
SCRIPT = textwrap.dedent('''
    import sys
    import typer
    from referee import progress
    from referee.cli import app, main
    from referee.runs import Run

    def module(name, source):
        namespace = {"__name__": name}
        exec(compile(source, name + ".py", "exec"), namespace)
        return namespace

    fakelib = module("fakelib", """
    import logging, warnings
    def make_noise():
        warnings.warn("past_key_values is deprecated", FutureWarning)
        logging.getLogger("transformers.fake").warning("Setting pad_token_id to eos_token_id")
    """)
    own = module("referee.fake", """
    import warnings
    def warn():
        warnings.warn("referee warns you", UserWarning)
    """)

    @app.command("noisy")
    def noisy(folder: str):
        with Run(folder):
            fakelib["make_noise"]()
            progress.say("step 1/1 done")
            own["warn"]()
        typer.echo("result")

    main(sys.argv[1:])
''')


def _referee(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "REFEREE_QUIET"}
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def test_third_party_noise_goes_to_the_run_log_and_referee_output_to_the_terminal(tmp_path):
    run = tmp_path / "run"
    out = _referee("noisy", str(run), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "result\n"
    assert "step 1/1 done" in out.stderr and "referee warns you" in out.stderr
    assert "past_key_values" not in out.stderr and "pad_token_id" not in out.stderr, out.stderr
    assert (run / noise.LOG_NAME).exists(), "Run.__enter__ should call noise.route_to(self.folder)"
    log = (run / noise.LOG_NAME).read_text()
    assert "FutureWarning: past_key_values is deprecated" in log
    assert "transformers.fake: Setting pad_token_id to eos_token_id" in log
    assert "referee warns you" not in log


def test_verbose_leaves_third_party_noise_on_the_terminal(tmp_path):
    run = tmp_path / "run"
    out = _referee("--verbose", "noisy", str(run), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "past_key_values is deprecated" in out.stderr and "Setting pad_token_id" in out.stderr
    assert "step 1/1 done" in out.stderr and "referee warns you" in out.stderr
    assert not (run / noise.LOG_NAME).exists()


def test_quieting_is_undone_when_it_ends(tmp_path):
    import datasets.utils
    import transformers.utils.logging as hf_logging

    names = ("transformers", "datasets", "trl", "py.warnings")

    def state():
        loggers = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers), logging.getLogger(n).propagate)
                   for n in names}
        return (warnings.showwarning, loggers, datasets.utils.is_progress_bar_enabled(),
                hf_logging.is_progress_bar_enabled())

    before = state()
    with noise.quiet_third_party(tmp_path / "third_party.log"):
        assert noise.active()
        assert not datasets.utils.is_progress_bar_enabled() and not hf_logging.is_progress_bar_enabled()
        assert all(logging.getLogger(n).handlers[-1].baseFilename == str(tmp_path / "third_party.log")
                   for n in names)
        logging.getLogger("datasets.builder").warning("written to the log")
    assert state() == before and not noise.active()
    assert "datasets.builder: written to the log" in (tmp_path / "third_party.log").read_text()


def test_route_to_does_nothing_without_quieting(tmp_path):
    noise.route_to(tmp_path)
    logging.getLogger("peft.fake").warning("not for the log")
    assert not (tmp_path / noise.LOG_NAME).exists()


def test_training_leaves_the_terminal_to_referee(tiny_model_path, tmp_path):
    """A real SFT step from the command line (~20 s): no FutureWarnings, no "Tokenizing"/"Map" bars, no
    per-step dicts on stdout; the step bar and referee's own summary stay."""
    demos = tmp_path / "demos.jsonl"
    demos.write_text("".join(json.dumps({"messages": [{"role": "user", "content": p},
                                                      {"role": "assistant", "content": " banana"}]}) + "\n"
                             for p in ("Say the word.", "What is the word?")))
    env = {k: v for k, v in os.environ.items() if k != "REFEREE_QUIET"}
    out = subprocess.run([sys.executable, "-m", "referee", "train", "sft", "--data", str(demos),
                          "--base", f"hf:{tiny_model_path}", "--out", str(tmp_path / "sft"), "--max-steps", "1",
                          "--max-length", "64", "--batch-size", "2"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"hf:{tmp_path / 'sft'}\n"
    for noisy in ("Warning", "Tokenizing", "Map", "Loading weights", "examples/s"):
        assert noisy not in out.stderr, out.stderr
    assert "1/1" in out.stderr and "loss " in out.stderr
