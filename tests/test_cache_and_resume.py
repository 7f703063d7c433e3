"""The response cache: concurrent writers, and a run killed with SIGKILL that resumes without repeats."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from referee.cache import Cache, request_key


def test_request_key_ignores_dict_order_but_not_content():
    a = request_key("fp", {"op": "generate", "chat": [{"role": "user", "content": "x"}], "index": 0})
    b = request_key("fp", {"index": 0, "chat": [{"content": "x", "role": "user"}], "op": "generate"})
    assert a == b
    assert a != request_key("fp", {"op": "generate", "chat": [{"role": "user", "content": "x"}], "index": 1})
    assert a != request_key("fp2", {"op": "generate", "chat": [{"role": "user", "content": "x"}], "index": 0})


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = Cache(path)
    errors = []

    def writer(t):
        try:
            for i in range(50):
                cache.put_many([(f"k{t}-{i}", "fp", "generate", {"i": i}, {"text": f"{t}-{i}"})])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    # a second process writes at the same time
    proc = subprocess.Popen([sys.executable, "-c", (
        "from referee.cache import Cache; import sys; c = Cache(sys.argv[1])\n"
        "for i in range(100): c.put_many([(f'p-{i}', 'fp', 'generate', {}, {'text': i})])"), str(path)])
    for t in threads:
        t.join()
    assert proc.wait(timeout=60) == 0
    assert not errors
    assert cache.count() == 6 * 50 + 100
    assert cache.get_many(["k3-7"])["k3-7"] == {"text": "3-7"}
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _generate_cmd(model_path: Path, prompts: Path, run: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "referee", "--quiet", "generate", "--model", f"hf:{model_path}?batch_size=2",
            "--prompts", str(prompts), "-n", "3", "--max-new-tokens", "16", "--temperature", "1.0",
            "--run", str(run), "--out", str(out), "--show", "0"]


def test_sigkill_mid_run_then_rerun_reuses_every_finished_call(tiny_model_path, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Tell me fact number {i} about the number {i * 7}."}) + "\n"
                               for i in range(10)))
    total = 10 * 3
    env = {**os.environ, "REFEREE_QUIET": "1"}

    # the reference: one uninterrupted run
    ref_out = tmp_path / "ref.jsonl"
    subprocess.run(_generate_cmd(tiny_model_path, prompts, tmp_path / "ref_run", ref_out), check=True, env=env)

    run = tmp_path / "run"
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(_generate_cmd(tiny_model_path, prompts, run, out), env=env)
    cache_file = run / "cache.sqlite"
    deadline = time.time() + 120
    finished_before_kill = 0
    while time.time() < deadline:
        if cache_file.exists():
            try:
                finished_before_kill = sqlite3.connect(cache_file).execute("SELECT COUNT(*) FROM calls").fetchone()[0]
            except sqlite3.OperationalError:
                finished_before_kill = 0
            if finished_before_kill >= 4:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 4 <= finished_before_kill < total, f"kill came too late or too early ({finished_before_kill} rows)"
    assert not out.exists()

    subprocess.run(_generate_cmd(tiny_model_path, prompts, run, out), check=True, env=env)
    kept = sqlite3.connect(cache_file).execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    assert kept == total
    ledger = json.loads((run / "ledger.json").read_text())["totals"]
    # every call finished before the kill came back from the cache; only the rest were computed
    assert ledger["cached_calls"] >= finished_before_kill
    assert ledger["calls"] + ledger["cached_calls"] == total
    assert ledger["calls"] <= total - finished_before_kill
    ref = [json.loads(line) for line in ref_out.read_text().splitlines()]
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["sample"], r["completion"]) for r in got] == [(r["id"], r["sample"], r["completion"]) for r in ref]

    # a third run reads the finished stage back, calling no model (not even through the cache); the
    # ledger keeps what the second one computed (the killed first one wrote no ledger)
    computed_by_second = ledger["calls"]
    subprocess.run(_generate_cmd(tiny_model_path, prompts, run, out), check=True, env=env)
    book = json.loads((run / "ledger.json").read_text())
    assert book["totals"]["calls"] == 0 and book["totals"]["cached_calls"] == 0
    assert [json.loads(line) for line in out.read_text().splitlines()] == got
    assert len(book["earlier_invocations"]) == 1 and book["all_invocations"]["invocations"] == 2
    assert book["all_invocations"]["totals"]["calls"] == computed_by_second > 0


def test_sigterm_writes_the_ledger_and_manifest_like_a_normal_exit(tiny_model_path, tmp_path):
    """A timeout, container stop or preemption (SIGTERM) ends the run through the normal exit path: the
    invocation's ledger and manifest are written (finished: false) and the exit status is 143."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Tell me fact number {i}."}) + "\n" for i in range(40)))
    run = tmp_path / "run"
    proc = subprocess.Popen(_generate_cmd(tiny_model_path, prompts, run, tmp_path / "out.jsonl"),
                            env={**os.environ, "REFEREE_QUIET": "1"}, stderr=subprocess.PIPE, text=True)
    cache_file = run / "cache.sqlite"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if cache_file.exists() and sqlite3.connect(cache_file).execute("SELECT COUNT(*) FROM calls").fetchone()[0]:
                break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["finished"] is False
    assert "calls" in json.loads((run / "ledger.json").read_text())["totals"]


def test_closing_folds_every_threads_writes_into_the_file_itself(tmp_path):
    """A run closes its cache when it ends (a notebook or the Python API outlives it): every thread's
    connection, so the write-ahead log is folded in and cache.sqlite alone, copied, holds every call."""
    import shutil

    cache = Cache(tmp_path / "c.sqlite")

    def write(k: int) -> None:
        cache.put_many([(f"key{k}", "fp", "generate", {"k": k}, {"text": str(k)})])

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cache.close()
    assert not (tmp_path / "c.sqlite-wal").exists() or (tmp_path / "c.sqlite-wal").stat().st_size == 0
    shutil.copy(tmp_path / "c.sqlite", tmp_path / "copy.sqlite")  # the file alone, without its -wal
    assert Cache(tmp_path / "copy.sqlite").count() == 4
    write(4)  # a closed cache opens again on the next call
    assert cache.count() == 5
