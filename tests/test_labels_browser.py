"""The labelling page as a person uses it: a real ``referee label serve`` process, real headless Chromium
(Debian's, driven by Playwright), the keyboard, undo, reload, a killed and restarted server, export, stats.

Skips, saying why, only where no Chromium can be started. Set REFEREE_SCREENSHOTS=FOLDER to keep a
screenshot of each mode (docs/label_pairs.png and docs/label_steps.png were made so).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from referee.labels.assignment import shown_order
from referee.labels.store import LabelStore
from referee.rewards.data import load_preferences, load_steps

XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (setup.sh test)")
    executable = os.environ.get("REFEREE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no chromium on this machine (setup.sh test installs Debian's)")
    with playwright_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        except Exception as e:  # the browser is there but cannot start (no display libraries, say)
            pytest.skip(f"chromium at {executable} does not start: {e}")
        yield b
        b.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``referee label serve`` in its own process; ``kill`` is SIGKILL (no clean shutdown)."""

    def __init__(self, args: list[str], log: Path):
        self.args, self.log, self.port = args, log, free_port()
        self.proc = None

    def start(self) -> "Server":
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "referee", "label", "serve", *self.args,
                                      "--port", str(self.port)], stdout=self.log.open("a"), stderr=subprocess.STDOUT,
                                     env=env, cwd=ROOT)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"server did not start: {self.log.read_text()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


def referee(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "referee", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def shot(page, name: str) -> None:
    folder = os.environ.get("REFEREE_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def sign_in(page, url: str, name: str) -> None:
    page.goto(url + "/")
    page.fill("#name", name)
    page.keyboard.press("Enter")
    page.wait_for_selector("#label-form")
    page.wait_for_load_state("load")  # label.js is deferred: keys pressed before it runs are lost


def press(page, *keys: str) -> None:
    for key in keys:
        page.keyboard.press(key)


def submit(page, key: str = "Enter") -> None:
    with page.expect_navigation():
        page.keyboard.press(key)


def progress_count(page) -> int:
    return int(page.inner_text("#progress").split()[0])


def test_pairs_by_keyboard_with_undo_reload_restart_export_and_stats(browser, tmp_path, tiny_model_path):
    pairs = [{"id": str(k), "input": f"Question {k}: which answer is right?",
              "output_1": f"First answer {k}, quite good.", "output_2": f"Second answer {k}, with a mistake.",
              "label": 1} for k in range(4)]
    pairs[2]["output_2"] = XSS
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    critiques = [{"id": str(k), "answer": a, "critique": f"<quote>{'with a mistake' if a else 'quite good'}</quote> "
                  f"is the key part. {XSS}"} for k in range(4) for a in (0, 1)]
    (tmp_path / "critiques.jsonl").write_text("\n".join(json.dumps(c) for c in critiques))
    store = tmp_path / "labels.sqlite"
    server = Server(["--pairs", str(tmp_path / "pairs.json"), "--critiques", str(tmp_path / "critiques.jsonl"),
                     "--store", str(store), "--critique-share", "0.5"], tmp_path / "server.log").start()
    try:
        page = browser.new_context().new_page()
        sign_in(page, server.url, "ann")
        assert page.url.endswith("/item/0") and progress_count(page) == 0
        press(page, "2", "ArrowUp")  # the right-hand answer, confidence up to "sure"
        assert page.is_checked("input[name=choice][value='2']") and page.is_checked("input[name=confidence][value='3']")
        page.keyboard.press("r")
        page.keyboard.type("the 1 and 2 typed here are text, not keys")
        page.keyboard.press("Escape")
        assert page.is_checked("input[name=choice][value='2']")
        submit(page)
        assert page.url.endswith("/item/1") and progress_count(page) == 1
        press(page, "ArrowLeft")
        submit(page)
        assert page.url.endswith("/item/2")
        # the page with the hostile answer: shown as text, never run
        assert page.evaluate("window.__xss === undefined")
        assert "<script>window.__xss = 1</script>" in page.inner_text("#label-form")
        submit(page, "s")  # skip it for now
        assert page.url.endswith("/item/3")
        submit(page, "u")  # undo the skip
        assert page.url.endswith("/item/2")
        page.reload()  # a reload shows the same item and count
        assert page.url.endswith("/item/2") and progress_count(page) == 2
        press(page, "3")
        submit(page)
        server.kill()  # mid-session, no clean shutdown
        server.start()
        page.reload()  # still signed in (the session key lives in the store), on the next item
        assert page.url.endswith("/item/3") and progress_count(page) == 3
        shot(page, "label_pairs.png")
        press(page, "1")
        submit(page)
        assert page.url.endswith("/done")
        assert page.evaluate("window.__xss === undefined")
        other = browser.new_context().new_page()  # a second annotator, in their own browser
        sign_in(other, server.url, "bob")
        assert other.url.endswith("/item/0") and progress_count(other) == 0
        for _ in range(2):
            press(other, "1")
            submit(other)
        assert progress_count(other) == 2
        page.reload()
        assert progress_count(page) == 4  # each annotator counts their own labels
    finally:
        server.kill()

    rows = {r["item"]: r for r in LabelStore(store).rows() if r["annotator"] == "ann"}
    assert len(rows) == 4
    order = {k: shown_order(0, "ann", str(k)) for k in range(4)}
    assert rows["0"]["label"] == order[0][1] and rows["0"]["confidence"] == 3  # "2" = right-hand answer
    assert rows["1"]["label"] == order[1][0] and rows["2"]["label"] == "tie" and rows["3"]["label"] == order[3][0]
    assert rows["0"]["reason"] == "the 1 and 2 typed here are text, not keys"
    assert sum(r["critique_shown"] for r in rows.values()) == 2  # half the items, for this annotator
    assert all(r["answered_at"] >= r["shown_at"] for r in rows.values())

    referee("label", "export", "--store", str(store), "--out", str(tmp_path / "prefs.jsonl"), "--annotator", "ann")
    exported = load_preferences(tmp_path / "prefs.jsonl")
    assert len(exported) == 3  # the tie gives no pair
    chosen = {p.id: p.chosen for p in exported}
    assert chosen["0"] == pairs[0]["output_1" if order[0][1] == "A" else "output_2"]
    referee("rm", "train", "--kind", "rm", "--data", str(tmp_path / "prefs.jsonl"), "--out", str(tmp_path / "rm"),
            "--base", f"hf:{tiny_model_path}", "--epochs", "1", "--val-frac", "0")
    assert (tmp_path / "rm" / "config.yaml").exists()
    stats = json.loads(referee("label", "stats", "--store", str(store), "--json").stdout)
    assert stats["judgements"] == 6 and stats["annotators"]["bob"]["labelled"] == 2
    assert stats["between_annotators"][0]["annotators"] == ["ann", "bob"]
    assert stats["between_annotators"][0]["units"] == 2
    expected = sum(r["label"] == "A" for r in rows.values()) / 4  # gold is answer 1 everywhere
    assert stats["annotators"]["ann"]["gold_agreement"]["value"] == pytest.approx(expected)


def test_steps_by_keyboard_with_first_wrong_step_and_export(browser, tmp_path, tiny_model_path):
    solutions = [{"id": "a", "prompt": "What is 2 + 3 * 4?", "completions": ["3 * 4 = 12", "2 + 12 = 15",
                                                                            "The answer is 15."],
                  "labels": [True, False, False]},
                 {"id": "b", "prompt": "What is 1 + 1?", "completions": ["1 + 1 = 2", "The answer is 2."],
                  "labels": [None, None]}]
    (tmp_path / "steps.jsonl").write_text("\n".join(json.dumps(s) for s in solutions))
    critiques = [{"id": "a", "critique": "<quote>2 + 12 = 15</quote> is wrong: 2 + 12 = 14."},
                 {"id": "b", "critique": "No problems found."}]
    (tmp_path / "critiques.jsonl").write_text("\n".join(json.dumps(c) for c in critiques))
    store = tmp_path / "steps.sqlite"
    server = Server(["--steps", str(tmp_path / "steps.jsonl"), "--critiques", str(tmp_path / "critiques.jsonl"),
                     "--store", str(store), "--critique-share", "1"], tmp_path / "server.log").start()
    try:
        page = browser.new_context().new_page()
        sign_in(page, server.url, "ann")
        assert page.inner_text("mark.quote") == "2 + 12 = 15"  # the critic's quote, highlighted in step 2
        press(page, "ArrowDown", "f")  # step 2 is the first wrong one: step 1 becomes +
        assert page.is_checked("input[name=step-0][value='+']") and page.is_checked("input[name=step-1][value='-']")
        page.keyboard.press("Enter")  # step 3 has no label yet: the browser refuses, nothing is sent
        page.wait_for_timeout(500)
        assert page.url.endswith("/item/0") and LabelStore(store).rows() == []
        press(page, "3")  # the current step (3, after f moved on) is wrong too
        shot(page, "label_steps.png")
        submit(page)
        assert page.url.endswith("/item/1")
        press(page, "1", "2")
        submit(page)
        assert page.url.endswith("/done")
        submit(page, "u")
        assert page.url.endswith("/item/1") and page.is_checked("input[name=step-1][value='0']") is False
        press(page, "1", "1")
        submit(page)
    finally:
        server.kill()
    referee("label", "export", "--store", str(store), "--out", str(tmp_path / "prm.jsonl"))
    exported, counts = load_steps(tmp_path / "prm.jsonl")
    assert [s.labels for s in exported] == [[1.0, 0.0, 0.0], [1.0, 1.0]]
    referee("rm", "train", "--kind", "prm", "--data", str(tmp_path / "prm.jsonl"), "--out", str(tmp_path / "prm"),
            "--base", f"hf:{tiny_model_path}", "--epochs", "1", "--val-frac", "0")
    stats = json.loads(referee("label", "stats", "--store", str(store), "--json").stdout)
    assert stats["annotators"]["ann"]["gold_agreement"]["value"] == 1.0
