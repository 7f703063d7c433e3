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
    from referee.runs import load_config_file

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
