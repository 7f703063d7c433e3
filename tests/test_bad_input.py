"""Bad input of every kind is one line, ``error: ...``, naming the file, line and field (or the option or
setting), with exit status 2: never a traceback, and nothing already computed is lost."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys

import pytest
from test_cli_core import assert_user_error, referee

PAIR = {"prompt": "2+2?", "answer_a": "4", "answer_b": "four, I think", "label": 1}


def _jsonl(path, *records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def _judge(pairs, run) -> list[str]:
    return ["judge", "--pairs", str(pairs), "--judge", "baseline:longer", "--run", str(run)]


# ---- command-line options --------------------------------------------------------------------------
@pytest.mark.parametrize("option, value, bound", [
    ("--max-new-tokens", "0", "greater than or equal to 1"),
    ("--top-p", "2", "less than or equal to 1"),
    ("-n", "0", "greater than or equal to 1"),
    ("-n", "5000000", "less than or equal to 10000"),
    ("--temperature", "-1", "greater than or equal to 0"),
])
def test_sampling_options_out_of_range_name_the_option(tmp_path, option, value, bound):
    prompts = _jsonl(tmp_path / "p.jsonl", {"prompt": "hi"})
    result = referee("generate", "--prompts", prompts, "--run", str(tmp_path / "run"), option, value)
    assert_user_error(result, f"option {option}:", bound)
    assert not (tmp_path / "run").exists()  # refused before anything is made


@pytest.mark.parametrize("protocol, setting, value, limit", [
    ("best_of_n", "n_max", 100_000_000, "10000"),
    ("self_rewarding", "new_prompts", 10**9, "100000"),
    ("self_rewarding", "candidates", 10**6, "10000"),
    ("rlaif", "k", 10**6, "10000"),
    ("mc_label", "k", 10**6, "10000"),
])
def test_absurd_sizes_are_refused_naming_the_limit(tmp_path, protocol, setting, value, limit):
    cfg = tmp_path / "c.yaml"
    inputs = {"rlaif": "prompts: p.jsonl\n", "mc_label": "solutions: s.jsonl\n"}.get(protocol, "")
    cfg.write_text(f"protocol: {protocol}\n{inputs}{setting}: {value}\nout: {tmp_path / 'run'}\n")
    assert_user_error(referee("run", str(cfg)), str(cfg), f"setting '{setting}'", limit)
    assert not (tmp_path / "run").exists()


def test_absurd_rollouts_on_the_command_line(tmp_path):
    solutions = _jsonl(tmp_path / "s.jsonl", {"prompt": "1+1?", "completion": "2", "answer": "2"})
    result = referee("tasks", "mc-label", "--file", solutions, "--out", str(tmp_path / "o.jsonl"), "--k", "1000000",
                     "--run", str(tmp_path / "run"))
    assert_user_error(result, "'k'", "10000")


# ---- files that are not UTF-8, not a file, or not gzip ---------------------------------------------
def test_latin1_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"prompt": "hi"}\n{"prompt": "caf\xe9"}\n')
    result = referee("generate", "--prompts", str(path), "--model", "embedded", "--run", str(tmp_path / "run"))
    assert_user_error(result, f"{path}:2:", "not UTF-8", "0xe9")
    assert_user_error(referee(*_judge(path, tmp_path / "run2")), f"{path}:2:", "not UTF-8")


def test_utf16_config_is_refused_naming_the_file(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("protocol: sampling\nprompts: p.jsonl\n", encoding="utf-16")
    assert_user_error(referee("run", str(cfg)), f"{cfg}:1:", "not UTF-8", "UTF-16")


def test_a_gz_file_that_is_not_gzip(tmp_path):
    path = tmp_path / "pairs.jsonl.gz"
    path.write_text(json.dumps(PAIR) + "\n")
    assert_user_error(referee(*_judge(path, tmp_path / "run")), str(path), "not a readable gzip file")


def test_a_folder_where_a_file_belongs(tmp_path):
    folder = tmp_path / "some_folder"
    folder.mkdir()
    assert_user_error(referee(*_judge(f"{folder}/", tmp_path / "run")), "some_folder", "is a folder")
    assert_user_error(referee("run", str(folder)), "some_folder", "is a folder; expected a config file")


# ---- fields of the wrong shape in pair and reward-data files ---------------------------------------
@pytest.mark.parametrize("record, fragments", [
    ({**PAIR, "label": [1]}, ["field 'label'", "[1]"]),
    ({"input": "q", "output_1": "a", "output_2": "b", "label": [1]}, ["field 'label'"]),
    ({"prompt": "q", "chosen": [], "rejected": "b"}, ["field 'chosen'"]),
    ({"prompt": "q", "chosen": [{"role": "assistant"}], "rejected": "b"}, ["field 'chosen'"]),
])
def test_bad_pair_fields_name_file_line_and_field(tmp_path, record, fragments):
    pairs = _jsonl(tmp_path / "pairs.jsonl", PAIR, record)
    assert_user_error(referee(*_judge(pairs, tmp_path / "run")), f"{pairs}:2:", *fragments)


@pytest.mark.parametrize("kind, record, fragments", [
    ("rm", {"prompt": "q", "chosen": [], "rejected": "b"}, ["field 'chosen'"]),
    ("rm", {"chosen": [], "rejected": []}, ["field 'chosen'"]),
    ("orm", {"prompt": "q", "completion": "a", "label": [1]}, ["field 'label'"]),
    ("prm", {"prompt": "q", "completions": ["a"], "labels": [[1]]}, ["field 'labels' item 0"]),
])
def test_bad_reward_data_fields_name_file_line_and_field(tmp_path, kind, record, fragments):
    data = _jsonl(tmp_path / "data.jsonl", record)
    result = referee("rm", "train", "--kind", kind, "--data", data, "--out", str(tmp_path / "rm"))
    assert_user_error(result, f"{data}:1:", *fragments)


# ---- damaged run folders ---------------------------------------------------------------------------
def test_a_file_that_is_not_a_database_as_the_cache(tmp_path):
    pairs = _jsonl(tmp_path / "pairs.jsonl", PAIR)
    run = tmp_path / "run"
    run.mkdir()
    (run / "cache.sqlite").write_text("not a database at all\n" * 200)
    assert_user_error(referee(*_judge(pairs, run)), str(run / "cache.sqlite"), "not a database", "delete this file")


@pytest.fixture(scope="module")
def sampled(tmp_path_factory, tiny_model_path) -> tuple[list[str], object]:
    """The generate command of a small sampling run, and the run folder it made."""
    folder = tmp_path_factory.mktemp("sampled")
    prompts = _jsonl(folder / "p.jsonl", {"prompt": "hi"}, {"prompt": "bye"})
    args = ["generate", "--prompts", prompts, "--model", f"hf:{tiny_model_path}", "-n", "2", "--max-new-tokens", "3"]
    assert referee(*args, "--run", str(folder / "run")).returncode == 0
    return args, folder / "run"


def _bad_row(path):
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE calls SET response = '{\"text\": ' WHERE rowid = (SELECT MIN(rowid) FROM calls)")


def _bad_page(path):
    with open(path, "r+b") as f:  # page 1 is the schema; the calls table and its key index follow
        f.seek(4096)
        f.write(b"\x0dgarbage!" * 900)


@pytest.mark.parametrize("damage, fragments", [(_bad_row, ["is not JSON"]), (_bad_page, ["malformed"])])
def test_a_damaged_cache_says_which_file_to_delete_and_loses_nothing_else(tmp_path, sampled, damage, fragments):
    args, first = sampled
    second = tmp_path / "second"  # a new run folder holding a damaged copy of the first one's cache
    second.mkdir()
    cache = second / "cache.sqlite"
    shutil.copy(first / "cache.sqlite", cache)
    damage(cache)
    assert_user_error(referee(*args, "--run", str(second)), str(cache), *fragments, "delete this file")
    cache.unlink()
    assert referee(*args, "--run", str(second)).returncode == 0
    assert (second / "records" / "samples.jsonl").read_text() == (first / "records" / "samples.jsonl").read_text()


def test_a_corrupt_metrics_file_says_which_file_to_delete(tmp_path):
    pairs = _jsonl(tmp_path / "pairs.jsonl", PAIR)
    run = tmp_path / "run"
    assert referee(*_judge(pairs, run)).returncode == 0
    records = (run / "records" / "judgments.jsonl").read_text()
    (run / "metrics.json").write_text('{"judge": {"accuracy": 1.0')
    assert_user_error(referee(*_judge(pairs, run)), str(run / "metrics.json"), "delete it")
    assert (run / "records" / "judgments.jsonl").read_text() == records
    (run / "metrics.json").unlink()
    assert referee(*_judge(pairs, run)).returncode == 0


# ---- configs ---------------------------------------------------------------------------------------
def test_duplicate_yaml_keys_are_refused_naming_key_and_lines(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("protocol: sampling\nprompts: p.jsonl\nsampling:\n  temperature: 0.5\n  top_p: 0.9\n"
                   "  temperature: 0.7\n")
    assert_user_error(referee("run", str(cfg)), f"{cfg}:6:", "key 'temperature' given twice", "first on line 4")
    cfg.write_text("protocol: sampling\nn: 2\nprompts: p.jsonl\nn: 3\n")
    assert_user_error(referee("run", str(cfg)), f"{cfg}:4:", "key 'n' given twice", "first on line 2")


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    from referee.config import load_config_file

    cfg = tmp_path / "c.yaml"
    cfg.write_text("base: &b\n  temperature: 0.5\n  top_p: 0.9\nsampling:\n  <<: *b\n  temperature: 0.7\n")
    assert load_config_file(cfg)["sampling"] == {"temperature": 0.7, "top_p": 0.9}


# ---- model output the answer checker cannot parse --------------------------------------------------
def test_a_huge_sum_in_model_output_is_unreadable_not_a_crash(tmp_path):
    huge = "+".join(["1"] * 100_000)
    samples = _jsonl(tmp_path / "s.jsonl",
                     {"id": "a", "answer": "5", "values": [2, 5], "completion": f"2 + 3 = 5\n{huge} = 100000\n"
                                                                               f"The answer is 5."},
                     {"id": "b", "answer": "5", "values": [2, 5], "completion": f"The answer is {huge}"})
    result = referee("tasks", "check", "--task", "arithmetic", "--file", samples)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["steps"] == {"correct": 2, "wrong": 1, "neutral": 1}  # the unreadable sum checks nothing
    assert report["correct"] == 1 and report["wrong"] == 1


def test_answers_too_long_for_python_to_read_are_not_a_crash():
    from referee.tasks.math import answers_match, extract_answer, safe_eval

    with pytest.raises(ValueError, match="longer than"):
        safe_eval("-" * 100_000 + "1")
    digits = extract_answer("The answer is " + "1" * 5000)
    assert digits.found and digits.value is None and not answers_match(digits, "5")
    assert extract_answer("The answer is " + "1" * 400 + ".5").key().endswith("/2")


def test_a_spec_with_credentials_writes_no_run_folder(tmp_path):
    """Refused before the run folder exists: the password reaches no config.yaml, manifest or log."""
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "hi"}) + "\n")
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "referee", "--quiet", "generate", "--model",
                        "openai:x@http://user:hunter2@127.0.0.1:9/v1", "--prompts", str(prompts), "--run", str(run)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "hunter2" not in r.stderr and "credentials" in r.stderr
    assert not run.exists()


# ---- an existing run folder is untouched by an invocation refused for its inputs ------------------
def _generate(prompts, run, model) -> list[str]:
    return ["generate", "--prompts", str(prompts), "--model", model, "--max-new-tokens", "2", "--run", str(run)]


@pytest.mark.parametrize("command", ["judge", "generate"])
def test_a_refused_invocation_leaves_an_existing_run_folder_as_it_was(tmp_path, tiny_model_path, command):
    """A bad input file named into a good run folder: the folder's config.yaml and manifest stay byte for
    byte what they were, so ``referee run GOOD/config.yaml`` still repeats the good run."""
    good, bad = tmp_path / "good.jsonl", tmp_path / "truncated.jsonl"
    if command == "judge":
        _jsonl(good, PAIR)
        args = lambda path: _judge(path, tmp_path / "GOOD")  # noqa: E731
    else:
        _jsonl(good, {"prompt": "hi"})
        args = lambda path: _generate(path, tmp_path / "GOOD", f"hf:{tiny_model_path}")  # noqa: E731
    bad.write_text(json.dumps(PAIR)[:20] + "\n")
    run = tmp_path / "GOOD"
    assert referee(*args(good)).returncode == 0
    kept = {name: (run / name).read_bytes() for name in ("config.yaml", "manifest.json", "ledger.json", "state.json")}
    assert_user_error(referee(*args(bad)), f"{bad}:1:", "not valid JSON")
    assert {name: (run / name).read_bytes() for name in kept} == kept
    again = referee("run", str(run / "config.yaml"))
    assert again.returncode == 0, again.stderr
    assert str(good) in (run / "config.yaml").read_text()


def test_a_refused_invocation_leaves_no_new_run_folder_behind(tmp_path):
    bad = tmp_path / "truncated.jsonl"
    bad.write_text(json.dumps(PAIR)[:20] + "\n")
    assert_user_error(referee(*_judge(bad, tmp_path / "runs" / "new")), f"{bad}:1:")
    assert not (tmp_path / "runs" / "new").exists()


# ---- JSON that Python's parser cannot hold -----------------------------------------------------------
@pytest.mark.parametrize("text, fragments", [
    ("[" * 100_000, ["nested too deeply"]),
    ('{"prompt": "hi \\ud800"}', ["lone surrogate"]),
    ('{"prompt": "hi", "id": ' + "1" * 5000 + "}", ["unreadable JSON value"]),
], ids=["deep", "surrogate", "huge_int"])
def test_json_python_cannot_hold_names_file_and_line(tmp_path, text, fragments):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "fine"}) + "\n" + text + "\n")
    result = referee("generate", "--prompts", str(prompts), "--model", "embedded", "--run", str(tmp_path / "run"))
    assert_user_error(result, f"{prompts}:2:", *fragments)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps(PAIR) + "\n" + text.replace('"prompt": "hi', '"prompt": "hi", "answer_a": "a", '
                                                                             '"answer_b": "b", "x": "') + "\n")
    assert_user_error(referee(*_judge(pairs, tmp_path / "run2")), f"{pairs}:2:", *fragments)


def test_a_deeply_nested_json_array_file(tmp_path):
    pairs = tmp_path / "pairs.json"
    pairs.write_text("[" * 100_000)
    assert_user_error(referee(*_judge(pairs, tmp_path / "run")), str(pairs), "nested too deeply")


def test_a_paired_surrogate_escape_is_text(tmp_path):
    pairs = _jsonl(tmp_path / "pairs.jsonl", {**PAIR, "answer_a": "\U0001F600 4"})  # written as \ud83d\ude00
    assert "\\ud83d\\ude00" in (tmp_path / "pairs.jsonl").read_text()
    assert referee(*_judge(pairs, tmp_path / "run")).returncode == 0


# ---- fields of the wrong type ----------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [("reference", 42), ("reference", ["4"]), ("category", {"a": 1})])
def test_a_pair_field_of_the_wrong_type_names_file_line_and_field(tmp_path, field, value):
    pairs = _jsonl(tmp_path / "pairs.jsonl", PAIR, {**PAIR, field: value})
    result = referee(*_judge(pairs, tmp_path / "run"), "--mode", "reference", "--reference", "given")
    assert_user_error(result, f"{pairs}:2:", f"field '{field}'")


def test_a_numeric_category_groups_like_its_text(tmp_path):
    pairs = _jsonl(tmp_path / "pairs.jsonl", {**PAIR, "category": 1}, {**PAIR, "category": "writing"})
    result = referee(*_judge(pairs, tmp_path / "run"))
    assert result.returncode == 0, result.stderr


# ---- configs holding what JSON cannot ----------------------------------------------------------------
@pytest.mark.parametrize("line, setting, kind", [
    ("seed: 2024-01-01", "seed", "date"),
    ("out: 2024-01-01 10:00:00", "out", "datetime"),
    ("sampling:\n  stop: [2024-01-01]", "sampling.stop[0]", "date"),
    ("prompts: !!binary aGVsbG8=", "prompts", "bytes"),
    ("prompts: !!set {a, b}", "prompts", "set"),
], ids=["date", "datetime", "nested_date", "binary", "set"])
def test_yaml_values_json_cannot_hold_are_refused_naming_file_and_setting(tmp_path, line, setting, kind):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"protocol: sampling\nprompts: p.jsonl\n{line}\n".replace("prompts: p.jsonl\nprompts", "prompts"))
    assert_user_error(referee("run", str(cfg)), str(cfg), f"setting '{setting}'", kind, "quote it")


def test_yaml_keys_that_are_not_text_are_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("protocol: sampling\nprompts: p.jsonl\nsampling:\n  2024-01-01: 1\n")
    assert_user_error(referee("run", str(cfg)), str(cfg), "2024", "under 'sampling'", "quote it")


def test_a_yaml_alias_bomb_is_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    cfg.write_text("protocol: sampling\nprompts: p.jsonl\n" + "\n".join(lines) + "\n")
    assert_user_error(referee("run", str(cfg)), str(cfg), "values")


@pytest.mark.parametrize("override, fragments", [
    ("seed=[1", ["--set 'seed=[1'", "not YAML", "column"]),
    ("seed=2024-01-01", ["--set 'seed=2024-01-01'", "setting 'seed'", "date", "quote it"]),
    ("sampling.stop=[!!binary aGVsbG8=]", ["setting 'sampling.stop[0]'", "bytes"]),
], ids=["unclosed", "date", "binary"])
def test_bad_set_values_are_one_line(tmp_path, override, fragments):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("protocol: sampling\nprompts: p.jsonl\n")
    assert_user_error(referee("run", str(cfg), "--set", override), *fragments)


# ---- outputs that cannot be written: refused before the work ----------------------------------------
@pytest.mark.parametrize("where, fragments", [
    ("folder", ["is a folder", "--out"]),
    ("under_a_file", ["cannot write", "is a file"]),
    ("read_only", ["cannot write"]),
])
def test_an_out_path_that_cannot_be_written_is_refused_before_the_work(tmp_path, where, fragments):
    pairs = _jsonl(tmp_path / "pairs.jsonl", PAIR)
    (tmp_path / "a_file").write_text("x")
    out = {"folder": tmp_path, "under_a_file": tmp_path / "a_file" / "out.jsonl",
           "read_only": "/proc/referee_out.jsonl"}[where]
    result = referee(*_judge(pairs, tmp_path / "run"), "--out", str(out))
    assert_user_error(result, *fragments)
    assert not (tmp_path / "run").exists()  # no work was done
    result = referee("tasks", "arithmetic", "--out", str(out), "--n", "2")
    assert_user_error(result, *fragments)


def test_a_run_folder_that_cannot_be_made_is_refused_before_the_work(tmp_path):
    pairs = _jsonl(tmp_path / "pairs.jsonl", PAIR)
    (tmp_path / "a_file").write_text("x")
    assert_user_error(referee(*_judge(pairs, tmp_path / "a_file" / "run")), "cannot write", "is a file")
    assert_user_error(referee(*_judge(pairs, tmp_path / "pairs.jsonl")), "is a file")
    out = tmp_path / "a_file" / "ckpt"
    assert_user_error(referee("train", "sft", "--data", pairs, "--out", str(out)), "cannot write")


# ---- counts and sampling settings ---------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["train", "judge", "--data", "{pairs}", "--out", "{tmp}/ckpt"],
    ["judge", "--pairs", "{pairs}", "--judge", "baseline:longer", "--run", "{tmp}/run"],
    ["tasks", "gsm8k", "--file", "{pairs}", "--out", "{tmp}/o.jsonl"],
    ["rm", "train", "--kind", "rm", "--data", "{pairs}", "--out", "{tmp}/rm"],
    ["audit", "--judge", "baseline:longer", "--pairs", "{pairs}", "--out", "{tmp}/run"],
], ids=["train_judge", "judge", "tasks_gsm8k", "rm_train", "audit"])
@pytest.mark.parametrize("limit", ["-1", "0"])
def test_a_limit_below_one_is_refused(tmp_path, args, limit):
    pairs = _jsonl(tmp_path / "pairs.jsonl", PAIR, PAIR)
    args = [a.format(pairs=pairs, tmp=tmp_path) for a in args]
    assert_user_error(referee(*args, "--limit", limit), "--limit", "at least 1", limit)
    assert not any(p.name in ("ckpt", "run", "rm", "o.jsonl") for p in tmp_path.iterdir())


@pytest.mark.parametrize("value", ["inf", "nan", "-0.5"])
def test_a_temperature_that_is_not_a_finite_number_from_zero_up_is_refused(tmp_path, value):
    prompts = _jsonl(tmp_path / "p.jsonl", {"prompt": "hi"})
    result = referee("generate", "--prompts", prompts, "--run", str(tmp_path / "run"), "--temperature", value)
    assert_user_error(result, "option --temperature")
    assert not (tmp_path / "run").exists()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"protocol: sampling\nprompts: {prompts}\nsampling:\n  temperature: {'.' + value if value != '-0.5' else value}\n")
    assert_user_error(referee("run", str(cfg)), "setting 'sampling.temperature'")


def test_sampling_settings_refuse_non_finite_temperatures():
    from referee.errors import RefereeError
    from referee.models.base import Sampling

    for t in (float("inf"), float("nan"), -1.0):
        with pytest.raises(RefereeError, match="temperature"):
            Sampling(temperature=t)
    assert Sampling(temperature=0.0).temperature == 0.0


# ---- more bad input found by trying: each was a traceback, a hang or a silent surprise ----------------
@pytest.mark.parametrize("command, record, fragments", [
    ("sft", {"prompt": "q", "completion": 5}, ["sft example 1: field 'completion'", "got int"]),
    ("sft", {"messages": 3}, ["sft example 1: field 'messages'"]),
    ("dpo", {"prompt": "q", "chosen": 1, "rejected": "b"}, ["dpo pair 1: field 'chosen'"]),
    ("dpo", {"prompt": {"a": 1}, "chosen": "a", "rejected": "b"}, ["dpo pair 1: field 'prompt'", "got dict"]),
], ids=["sft_completion_int", "sft_messages_int", "dpo_chosen_int", "dpo_prompt_object"])
def test_training_fields_of_the_wrong_type_are_refused_before_training(tmp_path, tiny_model_path, command, record,
                                                                        fragments):
    data = _jsonl(tmp_path / "d.jsonl", record)
    result = referee("train", command, "--data", data, "--out", str(tmp_path / "ckpt"), "--base", f"hf:{tiny_model_path}")
    assert_user_error(result, *fragments)


def test_deeply_nested_trl_options(tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", {"prompt": "q", "completion": "a"})
    result = referee("train", "sft", "--data", data, "--out", str(tmp_path / "ckpt"), "--trl", "[" * 100_000)
    assert_user_error(result, "--trl", "nested too deeply")


@pytest.mark.parametrize("args, fragments", [
    (["generate", "--prompts", "{prompts}", "--max-new-tokens", str(2**70), "--run", "{tmp}/run"],
     ["option --max-new-tokens", "1000000"]),
    (["tasks", "arithmetic", "--out", "{tmp}/a.jsonl", "--n", str(10**12)], ["n should be from 1 to 10,000,000"]),
    (["generate", "--prompts", "{prompts}", "--model", "hf:{tiny}?batch_size=-1", "--run", "{tmp}/run"],
     ["option batch_size", "from 1"]),
], ids=["max_new_tokens", "arithmetic_n", "batch_size"])
def test_absurd_counts_that_hung_or_crashed_are_refused(tmp_path, tiny_model_path, args, fragments):
    prompts = _jsonl(tmp_path / "p.jsonl", {"prompt": "hi"})
    args = [a.format(prompts=prompts, tmp=tmp_path, tiny=tiny_model_path) for a in args]
    assert_user_error(referee(*args), *fragments)


def test_an_empty_few_shot_file_is_refused_not_run_zero_shot(tmp_path, tiny_model_path):
    pairs = _jsonl(tmp_path / "pairs.jsonl", PAIR)
    (tmp_path / "shots.jsonl").write_text("")
    result = referee("judge", "--pairs", pairs, "--judge", f"hf:{tiny_model_path}", "--few-shot",
                     str(tmp_path / "shots.jsonl"), "--run", str(tmp_path / "run"))
    assert_user_error(result, "shots.jsonl", "no few-shot examples")


def test_a_gold_answer_of_the_wrong_type_is_not_called_missing(tmp_path):
    samples = _jsonl(tmp_path / "s.jsonl", {"completion": "5", "answer": [5]})
    assert_user_error(referee("tasks", "check", "--file", samples), "s.jsonl:1:", "field 'answer'", "got list")


def test_an_empty_run_folder_setting_is_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("protocol: sampling\nprompts: p.jsonl\nout: ''\n")
    assert_user_error(referee("run", str(cfg), cwd=tmp_path), "setting 'out'")
    assert not (tmp_path / "config.yaml").exists()


def test_yaml_nested_too_deeply(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("protocol: sampling\nx: " + "[" * 100_000 + "\n")
    assert_user_error(referee("run", str(cfg)), str(cfg), "nested too deeply")


def test_a_control_character_in_json_reads_as_one_phrase(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_bytes(b'{"prompt": "a\x01b"}\n')
    assert_user_error(referee(*_judge(pairs, tmp_path / "run")), "Invalid control character at column")
