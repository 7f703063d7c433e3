"""The labelling page below the browser: items, store, assignment, critiques' quotes, stats, export, and
the app through Starlette's test client (escaping, CSRF, origin, token, undo, skip, resume)."""

from __future__ import annotations

import json
import re
import time

import pytest
from fastapi.testclient import TestClient

from referee.errors import RefereeError
from referee.labels.app import create_app
from referee.labels.assignment import shown_order, with_critique
from referee.labels.critique import Critique, critique_items, critique_view, load_critiques, segments
from referee.labels.guard import Hosts, Throttle
from referee.labels.export import export_records
from referee.labels.items import LabelItem, load_items
from referee.labels.stats import assistance, between_annotators, gold_score, summary
from referee.labels.store import LabelStore
from referee.rewards.data import load_preferences, load_steps
from referee.tasks.quotes import locate_quote

XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss=2"><b>bold</b>'


def pair_items(n: int = 4) -> list[LabelItem]:
    return [LabelItem(f"p{k}", "pairs", [{"role": "user", "content": f"Question {k}?"}],
                      [f"Answer one of {k}.", f"Answer two of {k}."], "A" if k % 2 == 0 else "B") for k in range(n)]


def step_items() -> list[LabelItem]:
    return [LabelItem("s0", "steps", [{"role": "user", "content": "2 + 3 * 4?"}],
                      ["3 * 4 = 12", "2 + 12 = 15", "The answer is 15"], [1.0, 0.0, 0.0]),
            LabelItem("s1", "steps", [{"role": "user", "content": "1 + 1?"}], ["1 + 1 = 2", "The answer is 2"], None)]


def make_store(tmp_path, items, name="labels.sqlite") -> LabelStore:
    store = LabelStore(tmp_path / name)
    store.open_items(items, items[0].mode, "test")
    return store


# ---- items, quotes, assignment ------------------------------------------------------------------------
@pytest.mark.data("llmbar/natural.json")
def test_load_items_from_shared_files(tmp_path):
    items = load_items("data:llmbar/natural.json", "pairs", limit=3)
    assert len(items) == 3 and items[0].mode == "pairs" and items[0].gold in ("A", "B")
    path = tmp_path / "steps.jsonl"
    path.write_text(json.dumps({"id": "x", "prompt": "q", "completions": ["a", "b"], "labels": [None, None]}) + "\n"
                    + json.dumps({"id": "x", "prompt": "q2", "completions": ["c"], "labels": [True]}) + "\n")
    steps = load_items(path, "steps")
    assert [s.id for s in steps] == ["x", "x#2"]  # ids made unique
    assert steps[0].gold is None and steps[1].gold == [1.0]
    with pytest.raises(RefereeError, match="mode"):
        load_items(path, "other")


def test_locate_quote_finds_the_words_as_written_and_only_at_word_edges():
    text = "First, we compute 3*4 = 12.\nThen   2 + 12 = 15."
    span = locate_quote("2 + 12 = 15", text)
    assert text[span[0]:span[1]] == "2 + 12 = 15"
    assert locate_quote("then 2+12", text) is not None  # case and spacing do not matter
    assert locate_quote("hen 2", text) is None  # not inside a word
    assert locate_quote("13", text) is None and locate_quote("...", text) is None
    runs = segments("a bad step here", ["bad step"])
    assert runs == [("a ", False), ("bad step", True), (" here", False)]


def test_critique_view_marks_quotes_found_and_invented():
    c = Critique("p0", 0, "Wrong: <quote>Answer one</quote> and <quote>never said</quote>.", "m")
    view = critique_view(c, ["Answer one of 0."])
    assert view["quotes"] == 2 and view["missing"] == 1 and view["found"] == ["Answer one"]
    assert [r["quote"] for r in view["runs"]] == [None, "found", None, "missing", None]


def test_assignment_is_fixed_by_seed_and_balanced_per_annotator():
    ids = [f"i{k}" for k in range(40)]
    assert shown_order(0, "ann", "i1") == shown_order(0, "ann", "i1")
    orders = [shown_order(0, "ann", i) for i in ids]
    assert 10 < orders.count("AB") < 30  # a coin, not a constant
    helped = with_critique(0, "ann", ids, 0.5)
    assert len(helped) == 20 and helped == with_critique(0, "ann", ids, 0.5)
    assert helped != with_critique(0, "bob", ids, 0.5)  # annotators randomised independently
    assert with_critique(0, "ann", ids, 0.0) == set()


def test_critiques_from_a_model_and_from_a_file(tmp_path, tiny_model):
    items = pair_items(2)
    made = critique_items(tiny_model, items, max_new_tokens=5)
    assert [(c.item, c.answer) for c in made] == [("p0", 0), ("p0", 1), ("p1", 0), ("p1", 1)]
    assert all(c.source == tiny_model.spec for c in made)
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": "p1", "answer": 1, "critique": "<quote>two</quote> is wrong"}) + "\n"
                    + json.dumps({"id": "elsewhere", "answer": 0, "critique": "x"}) + "\n")
    read = load_critiques(path, items)
    assert [(c.item, c.answer) for c in read] == [("p1", 1)]
    path.write_text(json.dumps({"id": "p1", "answer": 2, "critique": "x"}) + "\n")
    with pytest.raises(RefereeError, match=r"c.jsonl:1: field 'answer'"):
        load_critiques(path, items)


# ---- store ------------------------------------------------------------------------------------------
def test_store_keeps_every_act_undo_stamps_and_skips_come_last(tmp_path):
    store = make_store(tmp_path, pair_items(3))
    now = time.time()
    assert store.next_item("ann") == "p0"
    store.record("p0", "ann", "skip", False, now, "AB")
    assert store.next_item("ann") == "p1"
    store.record("p1", "ann", "label", True, now, "BA", label="B", confidence=3, reason="r")
    store.record("p2", "ann", "label", False, now, "AB", label="tie", confidence=1)
    assert store.next_item("ann") == "p0"  # the skipped item comes back when the rest are done
    assert store.undo("ann") == "p2"
    assert store.next_item("ann") == "p2"
    assert set(store.labels("ann")) == {"p1"}
    assert len(store.rows(live_only=False)) == 3  # the undone row is kept, stamped
    again = LabelStore(tmp_path / "labels.sqlite")  # a restart reads the same
    assert set(again.labels("ann")) == {"p1"} and again.secret() == store.secret()
    with pytest.raises(RefereeError, match="expected one of A, B, tie"):
        store.record("p1", "ann", "label", False, now, "AB", label="left")


def test_store_refuses_other_items_or_mode(tmp_path):
    make_store(tmp_path, pair_items(3))
    with pytest.raises(RefereeError, match="3 items"):
        LabelStore(tmp_path / "labels.sqlite").open_items(pair_items(4), "pairs", "other.json")
    edited = pair_items(3)
    edited[1].answers[0] = "an answer changed in the file since"
    with pytest.raises(RefereeError, match="other or changed items"):
        LabelStore(tmp_path / "labels.sqlite").open_items(edited, "pairs", "same.json")
    LabelStore(tmp_path / "labels.sqlite").open_items(pair_items(3), "pairs", "same.json")  # unchanged: fine
    with pytest.raises(RefereeError, match="holds pairs labels"):
        LabelStore(tmp_path / "labels.sqlite").open_items(step_items(), "steps", "s.jsonl")
    (tmp_path / "junk.sqlite").write_text("not a database at all" * 100)
    with pytest.raises(RefereeError, match="not a label store"):
        LabelStore(tmp_path / "junk.sqlite")


# ---- stats and export ---------------------------------------------------------------------------------
def _row(item, who, label, helped, secs, order="AB", rid=0):
    return {"id": rid, "item": item, "annotator": who, "kind": "label", "label": label, "critique_shown": int(helped),
            "shown_at": 100.0, "answered_at": 100.0 + secs, "shown_order": order, "confidence": 2, "reason": None}


def test_assistance_effect_shows_when_the_critique_helps_and_not_when_it_does_not():
    items = {f"p{k}": LabelItem(f"p{k}", "pairs", [], ["a", "b"], "A") for k in range(60)}
    rows = [_row(f"p{k}", "ann", "A" if k < 30 else ("A" if k % 3 == 0 else "B"), k < 30, 5 if k < 30 else 10)
            for k in range(60)]
    effect = assistance(rows, items)
    assert effect["with_critique"]["gold_agreement"]["value"] == 1.0
    assert effect["without_critique"]["gold_agreement"]["value"] == pytest.approx(10 / 30)
    diff = effect["difference"]["gold_agreement"]
    assert diff["value"] == pytest.approx(2 / 3) and diff["low"] > 0.4
    assert effect["difference"]["seconds"]["value"] == pytest.approx(-5.0)
    same = [_row(f"p{k}", "ann", "A" if k % 2 == 0 else "B", k % 4 < 2, 7) for k in range(60)]
    flat = assistance(same, items)["difference"]["gold_agreement"]
    assert flat["low"] < 0 < flat["high"]


def test_kappa_between_annotators_and_step_scores():
    items = {i.id: i for i in pair_items(8)}
    a = [_row(f"p{k}", "a", "A" if k < 4 else "B", False, 1) for k in range(8)]
    b = [_row(f"p{k}", "b", "A" if k < 4 else "B", False, 1) for k in range(8)]
    c = [_row(f"p{k}", "c", "A" if k % 2 else "B", False, 1) for k in range(8)]
    result = {tuple(r["annotators"]): r for r in between_annotators(a + b + c, items)}
    assert result[("a", "b")]["kappa"]["value"] == 1.0 and result[("a", "b")]["units"] == 8
    assert result[("a", "c")]["kappa"]["value"] == pytest.approx(0.0)
    s0 = step_items()[0]  # gold: +, -, -
    assert gold_score({"label": json.dumps(["+", "-", "0"])}, s0) == 1.0  # the neutral step is left out
    assert gold_score({"label": json.dumps(["+", "+", "+"])}, s0) == pytest.approx(1 / 3)
    assert gold_score({"label": json.dumps(["+", "+"])}, step_items()[1]) is None  # no gold


def test_export_feeds_the_reward_model_loaders(tmp_path):
    from referee.io import write_jsonl

    items = pair_items(3)
    rows = [_row("p0", "a", "B", False, 1), _row("p0", "b", "B", False, 1), _row("p0", "c", "A", False, 1),
            _row("p1", "a", "tie", False, 1), _row("p2", "a", "A", False, 1), _row("p2", "b", "B", False, 1)]
    records, counts = export_records(rows, items)
    assert counts == {"pairs": 1, "dropped_tie": 1, "dropped_no_majority": 1}
    write_jsonl(tmp_path / "prefs.jsonl", records)
    [pair] = load_preferences(tmp_path / "prefs.jsonl")
    assert pair.chosen == "Answer two of 0." and pair.rejected == "Answer one of 0."
    steps = step_items()
    rows = [_row("s0", "a", json.dumps(["+", "0", "-"]), False, 1), _row("s1", "a", json.dumps(["+", "+"]), False, 1),
            _row("s1", "b", json.dumps(["-", "+"]), False, 1)]
    records, counts = export_records(rows, steps, neutral="positive")
    assert records[0]["labels"] == [True, True, False] and records[1]["labels"] == [None, True]
    assert counts == {"solutions": 2, "steps_without_majority": 1}
    write_jsonl(tmp_path / "steps.jsonl", records)
    solutions, st = load_steps(tmp_path / "steps.jsonl")
    assert solutions[0].labels == [1.0, 1.0, 0.0] and st.unlabelled == 1
    kept, _ = export_records(rows, steps, neutral="keep")
    write_jsonl(tmp_path / "kept.jsonl", kept)
    solutions, st = load_steps(tmp_path / "kept.jsonl", neutral="skip")
    assert solutions[0].labels == [1.0, None, 0.0] and st.neutral == 1


# ---- the app ------------------------------------------------------------------------------------------
def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


LOCAL = "http://127.0.0.1:8765"  # the page's own address: the Host header it answers


def local(app, **kw) -> TestClient:
    return TestClient(app, base_url=LOCAL, **kw)


def signed_in(store, name="ann", **kw) -> tuple[TestClient, str]:
    client = local(create_app(store, **kw))
    page = client.get("/")
    page = client.post("/login", data={"name": name, "csrf": _csrf(page.text)})
    assert page.status_code == 200, page.text
    return client, page


def test_untrusted_text_is_escaped_in_answers_questions_and_critiques(tmp_path):
    items = pair_items(1)
    items[0].answers[0] = XSS
    items[0].question[0]["content"] = XSS
    store = make_store(tmp_path, items)
    store.add_critiques([Critique("p0", 0, f"{XSS} <quote>bold</quote>", "m"), Critique("p0", 1, XSS, "m")])
    client, page = signed_in(store, critique_share=1.0)
    assert "<script>window.__xss" not in page.text and "<img src=x" not in page.text
    assert page.text.count("&lt;script&gt;window.__xss = 1&lt;/script&gt;") == 4  # question, answer, 2 critiques
    assert '<mark class="quote">bold</mark>' in page.text  # the critic's quote highlighted, as text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_posts_need_the_form_token_and_this_origin(tmp_path):
    store = make_store(tmp_path, pair_items(2))
    client, page = signed_in(store)
    token = _csrf(page.text)
    assert client.post("/item/0", data={"choice": "1"}).status_code == 403
    assert client.post("/item/0", data={"choice": "1", "csrf": "forged"}).status_code == 403
    evil = client.post("/item/0", data={"choice": "1", "csrf": token}, headers={"origin": "http://evil.example"})
    assert evil.status_code == 403
    assert store.rows() == []
    assert client.post("/item/0", data={"choice": "1", "csrf": token}).status_code == 200
    assert len(store.rows()) == 1


def test_a_token_is_asked_before_anything_is_served(tmp_path):
    store = make_store(tmp_path, pair_items(2))
    client = local(create_app(store, token="s3cret"))
    page = client.get("/")
    assert 'name="token"' in page.text
    wrong = client.post("/login", data={"name": "ann", "token": "nope", "csrf": _csrf(page.text)})
    assert wrong.status_code == 403 and "Wrong token" in wrong.text
    assert client.get("/item/0", follow_redirects=False).status_code == 303  # back to sign-in
    ok = client.post("/login", data={"name": "ann", "token": "s3cret", "csrf": _csrf(page.text)})
    assert ok.status_code == 200 and "/item/" in str(ok.url)
    assert client.get("/item/0", follow_redirects=False).status_code == 200
    restarted = local(create_app(store, token="another"), cookies=client.cookies)  # a new token
    assert restarted.get("/item/0", follow_redirects=False).status_code == 303
    same = local(create_app(store, token="s3cret"), cookies=client.cookies)  # a restart, same token
    assert same.get("/item/0", follow_redirects=False).status_code == 200


def test_labelling_flow_records_what_was_shown_and_resumes(tmp_path):
    store = make_store(tmp_path, pair_items(3))
    store.add_critiques([Critique(f"p{k}", a, "<quote>Answer</quote> is thin", "m") for k in range(3) for a in (0, 1)])
    client, page = signed_in(store, critique_share=0.5)
    token = _csrf(page.text)
    order = shown_order(0, "ann", "p0")
    client.post("/item/0", data={"choice": "1", "confidence": "3", "reason": "clearer", "csrf": token})
    client.post("/item/1", data={"action": "skip", "csrf": token})
    row = store.labels("ann")["p0"]
    assert row["label"] == order[0] and row["confidence"] == 3 and row["reason"] == "clearer"
    assert row["shown_order"] == order and row["answered_at"] >= row["shown_at"]
    helped = with_critique(0, "ann", ["p0", "p1", "p2"], 0.5)
    assert bool(row["critique_shown"]) == ("p0" in helped)
    page = client.get("/next")
    assert str(page.url).endswith("/item/2")  # the skipped item waits
    assert ("Critique by a model" in page.text) == ("p2" in helped)
    bad = client.post("/item/2", data={"choice": "9", "csrf": token})
    assert bad.status_code == 400 and "choose 1" in bad.text
    undone = client.post("/undo", data={"csrf": token})
    assert str(undone.url).endswith("/item/1")  # the skip was the last act
    # a new client (a restarted browser) with the same name resumes
    other, _ = signed_in(LabelStore(tmp_path / "labels.sqlite"))
    assert str(other.get("/next").url).endswith("/item/1")
    assert "1 of 3 labelled" in other.get("/next").text


def test_steps_mode_needs_every_step_and_stats_read_it(tmp_path):
    store = make_store(tmp_path, step_items())
    client, page = signed_in(store)
    token = _csrf(page.text)
    missing = client.post("/item/0", data={"step-0": "+", "step-1": "-", "csrf": token})
    assert missing.status_code == 400 and "step 3" in missing.text
    client.post("/item/0", data={"step-0": "+", "step-1": "-", "step-2": "-", "csrf": token})
    result = summary(store.rows(), store.items())
    assert result["annotators"]["ann"]["gold_agreement"]["value"] == 1.0
    assert result["assistance"]["without_critique"]["first_wrong_step_agreement"]["value"] == 1.0


def test_serve_prepares_the_store_once_and_refuses_bad_options(tmp_path, tiny_model_path):
    import subprocess
    import sys

    from referee.cli.label import prepare_store

    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps([{"input": f"Q{k}", "output_1": "yes", "output_2": "no", "label": 1}
                                 for k in range(3)]))
    store = prepare_store(tmp_path / "s.sqlite", pairs, "pairs", 2, f"hf:{tiny_model_path}", None, 4, 0)
    made = store.critiques()
    assert sorted(made) == [("1", 0), ("1", 1), ("2", 0), ("2", 1)]  # the first 2 items, both answers
    again = prepare_store(tmp_path / "s.sqlite", pairs, "pairs", 2, f"hf:{tiny_model_path}", None, 4, 0)
    assert again.critiques() == made and again.meta()["critic"] == f"hf:{tiny_model_path}"
    done = subprocess.run([sys.executable, "-m", "referee", "label", "serve"], capture_output=True, text=True)
    assert done.returncode == 2 and "give one of --pairs FILE or --steps FILE" in done.stderr
    done = subprocess.run([sys.executable, "-m", "referee", "label", "stats", "--store", str(tmp_path / "none")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "no label store there" in done.stderr


def test_a_page_reached_under_another_name_is_refused(tmp_path):
    """DNS rebinding: a foreign page whose name now resolves to 127.0.0.1 sends its own name as Host."""
    store = make_store(tmp_path, pair_items(2))
    app = create_app(store)
    evil = TestClient(app, base_url="http://evil.example:8765")
    page = evil.get("/")
    assert page.status_code == 421 and "--allowed-host" in page.text
    assert evil.post("/login", data={"name": "ann", "csrf": "x"}).status_code == 421
    assert evil.get("/item/0").status_code == 421 and evil.get("/static/label.css").status_code == 421
    assert store.rows() == []
    for url in (LOCAL, "http://localhost:9000", "http://[::1]:8765", "http://LOCALHOST:8765"):  # 9000: a tunnel
        assert TestClient(app, base_url=url).get("/").status_code == 200, url
    for name in ("app.localhost", "127.0.0.1.nip.io", "localhost.evil.example", "192.168.1.4"):
        assert TestClient(app, base_url=f"http://{name}:8765").get("/").status_code == 421, name
    named = create_app(store, hosts=Hosts.bound("127.0.0.1", ["labels.example.org", "Other.Example:443"]))
    assert TestClient(named, base_url="https://other.example").get("/").status_code == 200
    assert TestClient(named, base_url="https://labels.example.org").get("/").status_code == 200
    assert TestClient(named, base_url="http://evil.example").get("/").status_code == 421
    everywhere = create_app(store, token="t", hosts=Hosts.bound("0.0.0.0"))  # reached by this machine's addresses
    assert TestClient(everywhere, base_url="http://192.168.1.4:8765").get("/").status_code == 200
    assert TestClient(everywhere, base_url="http://[fe80::1]:8765").get("/").status_code == 200
    assert TestClient(everywhere, base_url="http://evil.example:8765").get("/").status_code == 421
    assert Hosts.bound("10.0.0.7").allows("10.0.0.7:8765") and not Hosts.bound("10.0.0.7").allows("10.0.0.8")
    assert not Hosts.bound("127.0.0.1").allows(None) and not Hosts.bound("127.0.0.1").allows("")


def test_a_huge_body_is_refused_before_it_is_parsed(tmp_path):
    store = make_store(tmp_path, pair_items(2))
    client = local(create_app(store))
    csrf = _csrf(client.get("/").text)
    big = client.post("/login", data={"name": "ann", "csrf": csrf}, files={"pad": ("pad.bin", b"x" * 2_000_000)})
    assert big.status_code == 413 and "/item/" not in str(big.url)

    def chunks():  # no Content-Length: the cap counts what arrives
        yield f"name=ann&csrf={csrf}&pad=".encode()
        for _ in range(40):
            yield b"x" * 50_000

    streamed = client.post("/login", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"})
    assert streamed.status_code == 413
    small = local(create_app(store, max_body=100))
    csrf = _csrf(small.get("/").text)
    assert small.post("/login", data={"name": "ann", "csrf": csrf, "pad": "x" * 200}).status_code == 413
    ok = client.post("/login", data={"name": "ann", "csrf": _csrf(client.get("/").text)})
    assert ok.status_code == 200 and "/item/" in str(ok.url)


def test_wrong_tokens_lock_the_address_out_for_longer_each_time(tmp_path):
    now = [1000.0]
    throttle = Throttle(clock=lambda: now[0])
    client = local(create_app(make_store(tmp_path, pair_items(2)), token="s3cret", throttle=throttle))
    csrf = _csrf(client.get("/").text)

    def attempt(token: str):
        return client.post("/login", data={"name": "ann", "token": token, "csrf": csrf})

    assert [attempt("nope").status_code for _ in range(5)] == [403] * 5
    locked = attempt("s3cret")  # even the right token waits: else the lock-out would tell nothing apart
    assert locked.status_code == 429 and locked.headers["retry-after"] == "1" and "Too many wrong tokens" in locked.text
    now[0] += 1.5
    assert attempt("nope").status_code == 403  # the sixth: locked out twice as long
    now[0] += 1.5
    assert attempt("s3cret").status_code == 429
    now[0] += 1
    ok = attempt("s3cret")
    assert ok.status_code == 200 and "/item/" in str(ok.url)
    assert throttle.wait("testclient") == 0 and throttle.failures == {}  # a right token forgets the wrong ones
    for _ in range(5):
        throttle.failed("10.0.0.1")
    assert throttle.wait("10.0.0.1") == 1 and throttle.wait("10.0.0.2") == 0  # per address
    for _ in range(40):
        throttle.failed("10.0.0.1")
    assert throttle.wait("10.0.0.1") == throttle.longest


def test_serve_refuses_a_port_out_of_range_in_one_line(tmp_path):
    import subprocess
    import sys

    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps([{"input": "Q", "output_1": "yes", "output_2": "no", "label": 1}]))
    for port in ("70000", "0", "-1"):
        done = subprocess.run([sys.executable, "-m", "referee", "label", "serve", "--pairs", str(pairs),
                               "--store", str(tmp_path / "s.sqlite"), "--port", port], capture_output=True, text=True)
        assert done.returncode == 2 and "--port should be from 1 to 65535" in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_agreement_with_a_judges_records(tmp_path):
    from referee.cli.label import read_judge_verdicts
    from referee.labels.stats import with_judge

    path = tmp_path / "judge.jsonl"
    path.write_text("".join(json.dumps({"id": i, "winner": w}) + "\n"
                            for i, w in (("q", "A"), ("q", "B"), ("r", "invalid"))))
    verdicts = read_judge_verdicts(path)
    assert verdicts == {"q": "A", "q#2": "B", "r": "invalid"}  # ids made unique as the store makes them
    rows = [_row("q", "ann", "A", False, 1), _row("q#2", "ann", "A", False, 1), _row("r", "ann", "B", False, 1),
            _row("s", "ann", "B", False, 1)]
    result = with_judge(rows, verdicts)
    assert result["agreement"]["value"] == 0.5 and result["judgements"] == 2
    assert result["judge_invalid"] == 1 and result["missing"] == 1
    path.write_text(json.dumps({"id": "q", "verdict": "A"}) + "\n")
    with pytest.raises(RefereeError, match="judge.jsonl:1: not a pairwise judge record"):
        read_judge_verdicts(path)


def test_the_assignment_design_cannot_change_under_existing_labels(tmp_path):
    from referee.cli.label import keep_design

    store = make_store(tmp_path, pair_items(2))
    keep_design(store, 0, 0.5)
    keep_design(store, 1, 0.3)  # no labels yet: a new design is fine
    store.record("p0", "ann", "label", False, time.time(), "AB", label="A", confidence=2)
    keep_design(store, 1, 0.3)
    with pytest.raises(RefereeError, match="served with --seed 1 --critique-share 0.3"):
        keep_design(store, 0, 0.5)


def test_stats_text_names_every_part(tmp_path):
    from pathlib import Path

    from referee.cli.label import describe

    items = pair_items(4)
    rows = [_row(f"p{k}", who, "A", k < 2, 3 + k, rid=k) for k in range(4) for who in ("ann", "bob")]
    text = "\n".join(describe(summary(rows, items, {"p0": "A", "p1": "invalid"}), Path("s.sqlite"), Path("j.jsonl")))
    for part in ("s.sqlite: 4 items, 2 annotators, 8 labels", "ann: 4 of 4 labelled", "between ann and bob",
                 "with   : 4 labels (4 with gold)", "(median 4", "(median 6", "difference (with - without)",
                 "judge (j.jsonl)", "judge unreadable on 2"):
        assert part in text, (part, text)
