"""A pool of servers for one model (``openai:NAME@URL,URL`` or ``@file:PATH``), against real llama.cpp servers.

Two single-threaded llama.cpp servers on the embedded GGUF are started here; faults come from a port where
nothing listens, from the fault-injecting proxy (tests/fault_proxy.py) in front of a real server, and from
killing a server by its PID in the middle of a run. Each case checks that nothing is lost or answered
twice, what the per-server ledger table says, and what the user is told.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest
from fault_proxy import FaultProxy, error, rewrite, slow
from servers import LlamaServer, free_port, llama_server_missing, start_all

from referee import ledger
from referee.cache import Cache
from referee.errors import RefereeError, UnsupportedError
from referee.models import load_model
from referee.models.base import Sampling
from referee.models.openai import OpenAIModel

server = pytest.mark.server

SYSTEM = {"role": "system", "content": "Answer briefly."}
GREEDY = Sampling(temperature=0, max_new_tokens=4)


def chat(text: str) -> list[dict]:
    return [SYSTEM, {"role": "user", "content": text}]


def facts(n: int) -> list[list[dict]]:
    return [chat(f"Tell me a fact about the number {i}.") for i in range(n)]


QUESTIONS = [chat(f"Is {n} an even number? Answer Yes or No.") for n in (2, 3, 10, 17, 40, 51)]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two llama.cpp servers of the embedded model, one CPU thread each."""
    missing = llama_server_missing()
    if missing:
        pytest.fail(missing, pytrace=False)
    from referee.models.embedded import gguf_path

    folder = tmp_path_factory.mktemp("pool")
    servers = start_all([LlamaServer(gguf_path(), folder / f"server{i}.log", threads=1) for i in range(2)])
    yield servers
    for srv in servers:
        srv.stop()


def model_for(*urls, cache=None, **options) -> OpenAIModel:
    query = "&".join(f"{k}={v}" for k, v in {"timeout": 60, "retries": 4, "max_wait": 1, **options}.items())
    return load_model(f"openai:smol@{','.join(urls)}?{query}", cache=cache)


def upstream(srv: LlamaServer) -> str:
    return f"127.0.0.1:{srv.port}"


def texts(out) -> list[str]:
    return [samples[0].text for samples in out]


def server_rows(book: ledger.Ledger) -> dict[str, dict]:
    return {row["server"]: row for row in book.to_dict().get("servers", [])}


# ---- specs, fingerprints and keys (no server needed) ----------------------------------------------
def test_a_pool_is_named_by_commas_or_by_a_file(tmp_path, monkeypatch):
    one = load_model("openai:smol@http://127.0.0.1:9/v1")
    pool = load_model("openai:smol@http://127.0.0.1:9/v1/, http://127.0.0.1:10/v1?concurrency=3")
    assert pool.urls == ["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"] and pool.concurrency == 3
    assert pool.fingerprint == one.fingerprint == "openai:smol@http://127.0.0.1:9/v1"  # the model, not a server
    assert pool.describe()["servers"] == pool.urls and "servers" not in one.describe()
    (tmp_path / "servers.txt").write_text("# the replicas\nhttp://127.0.0.1:9/v1\n\n  http://127.0.0.1:10/v1  # b\n")
    monkeypatch.chdir(tmp_path)
    listed = load_model("openai:smol@file:servers.txt?tokenizer=embedded")
    assert listed.urls == pool.urls
    assert listed.fingerprint == "openai:smol@http://127.0.0.1:9/v1|tokenizer=embedded"


def test_a_bad_pool_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = {
        "openai:x@http://127.0.0.1:9/v1,http://127.0.0.1:9/v1/": "names http://127.0.0.1:9/v1 twice",
        "openai:x@http://127.0.0.1:9/v1,": "expected a URL like",
        "openai:x@http://127.0.0.1:9/v1,http://127.0.0.1:99999/v1": "from 1 to 65535",
        "openai:x@file:nowhere.txt": r"cannot read the server list nowhere.txt \(No such file",
        "openai:x@file:empty.txt": "the server list empty.txt names no server",
        "openai:x@ftp://127.0.0.1:9/v1": "expected a URL like",
    }
    (tmp_path / "empty.txt").write_text("# none yet\n\n")
    for spec, expected in cases.items():
        with pytest.raises(RefereeError, match=expected):
            load_model(spec)
    with pytest.raises(RefereeError, match="not shown: it may be a key") as pasted:  # a key pasted as an entry
        load_model("openai:x@http://127.0.0.1:9/v1,sk-pasted0key0abc")
    assert "sk-pasted0key0abc" not in str(pasted.value)
    (tmp_path / "secret.txt").write_text("http://127.0.0.1:9/v1\nhttp://user:hunter2-pw@127.0.0.1:10/v1\n")
    with pytest.raises(RefereeError, match="holds credentials") as e:
        load_model("openai:x@file:secret.txt")
    assert "hunter2" not in str(e.value)


def test_each_server_of_a_pool_gets_the_key_of_its_own_host(monkeypatch):
    for var in ("OPENAI_API_KEY", "REFEREE_API_KEY", "REFEREE_KEY_ENVS", "REFEREE_ALLOW_INSECURE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-test")
    pool = load_model("openai:gpt-x@https://api.openai.com/v1,https://llm.example.test/v1")
    assert pool._headers("https://api.openai.com/v1")["Authorization"] == "Bearer sk-openai-test"
    assert "Authorization" not in pool._headers("https://llm.example.test/v1")
    assert pool.describe()["api_key"] == {"https://api.openai.com/v1": "from $OPENAI_API_KEY",
                                          "https://llm.example.test/v1": "none"}
    monkeypatch.setenv("REFEREE_API_KEY", "sk-referee-test")
    with pytest.raises(RefereeError, match=r"will not send \$REFEREE_API_KEY over plain http to 10.1.2.3"):
        load_model("openai:x@http://127.0.0.1:9/v1,http://10.1.2.3:8000/v1")
    monkeypatch.setenv("REFEREE_ALLOW_INSECURE_KEY", "1")  # the user's environment, never a spec, allows it
    trusted = load_model("openai:x@http://127.0.0.1:9/v1,http://10.1.2.3:8000/v1")
    assert all(trusted._headers(url)["Authorization"] == "Bearer sk-referee-test" for url in trusted.urls)
    assert trusted.describe()["api_key"] == "from $REFEREE_API_KEY"


def test_the_ledger_keeps_servers_apart_from_stages():
    book = ledger.Ledger()
    assert "servers" not in book.to_dict()  # nothing served over HTTP: the ledger looks as it always did
    with book.activate(), ledger.stage("samples"):
        ledger.record("pool", calls=3)
        for seconds, errors in ((0.5, 0), (1.5, 1)):
            ledger.record_server("pool", "http://a/v1", requests=1, errors=errors, seconds=seconds)
        ledger.record_server("pool", "http://b/v1", requests=1, seconds=0.25)
    book_dict = book.to_dict()
    assert [e["stage"] for e in book_dict["entries"]] == ["samples"] and book_dict["totals"]["calls"] == 3
    assert book_dict["servers"] == [
        {"model": "pool", "server": "http://a/v1", "requests": 2, "errors": 1, "seconds": 2.0, "mean_seconds": 1.0},
        {"model": "pool", "server": "http://b/v1", "requests": 1, "errors": 0, "seconds": 0.25, "mean_seconds": 0.25}]


# ---- routing and back-off -----------------------------------------------------------------------
@server
def test_requests_go_to_the_server_with_the_fewest_in_flight(pair):
    a, b = pair
    with FaultProxy(upstream(a)) as even_a, FaultProxy(upstream(b)) as even_b:
        m = model_for(even_a.url, even_b.url, concurrency=2)
        assert all(texts(m.generate(facts(8), GREEDY)))
    assert len(even_a.seen) + len(even_b.seen) == 8 and min(len(even_a.seen), len(even_b.seen)) >= 2
    with FaultProxy(upstream(a)) as fast, FaultProxy(upstream(b), always=slow(1.5)) as slow_one:
        m = model_for(slow_one.url, fast.url, concurrency=2)
        assert all(texts(m.generate(facts(8), GREEDY)))
    assert len(fast.seen) + len(slow_one.seen) == 8 and len(fast.seen) > len(slow_one.seen) >= 1


@server
def test_a_dead_server_is_taken_out_and_nothing_is_lost_or_repeated(pair, tmp_path):
    a, _ = pair
    dead = f"http://127.0.0.1:{free_port()}/v1"
    alone = model_for(a.url).generate(facts(12), GREEDY)
    cache = Cache(tmp_path / "cache.sqlite")
    with ledger.Ledger().activate() as book:
        m = model_for(dead, a.url, concurrency=4, max_wait=30, cache=cache)
        out = m.generate(facts(12), GREEDY)
    rows = server_rows(book)
    assert texts(out) == texts(alone)
    assert m.stats["ok"] == 12 and cache.count(m.fingerprint) == 12 and m.stats["failed"] == 0
    assert rows[a.url]["requests"] == 12 and rows[a.url]["errors"] == 0 and rows[a.url]["mean_seconds"] > 0
    # Out from its first failure, for longer each time: a request per back-off, not half of them.
    assert 1 <= rows[dead]["requests"] == rows[dead]["errors"] <= 5
    assert m.stats["requests"] == 12 + rows[dead]["requests"]


@server
def test_a_server_answering_503_rests_while_the_other_works(pair):
    a, b = pair
    with FaultProxy(always=error(503, "overloaded", retry_after=60)) as busy:
        m = model_for(busy.url, b.url, concurrency=4, max_wait=10)
        out = m.generate(facts(6), GREEDY)
    assert all(texts(out)) and m.stats["ok"] == 6
    # The first two requests went out together, one to each; after its 503 the busy server rests for
    # the Retry-After it asked (capped at max_wait), and the rest went to b.
    assert 1 <= len(busy.seen) <= 2


@server
def test_a_pool_and_its_first_server_share_cache_rows(pair, tmp_path):
    a, b = pair
    cache = Cache(tmp_path / "cache.sqlite")
    first = model_for(a.url, cache=cache).generate(facts(3), GREEDY)
    pool = model_for(a.url, b.url, cache=cache)
    again = pool.generate(facts(3), GREEDY)
    assert pool.stats["requests"] == 0 and all(s[0].cached for s in again) and texts(again) == texts(first)
    other_first = model_for(b.url, a.url, cache=cache)  # another model, as far as the cache knows
    other_first.generate(facts(1), GREEDY)
    assert other_first.stats["requests"] == 1


# ---- features, checked per server ---------------------------------------------------------------
def drop_logprobs(answer: dict) -> None:
    answer["choices"][0].pop("logprobs", None)


@server
def test_a_server_without_top_logprobs_is_named_for_choice(pair):
    a, _ = pair
    with FaultProxy(upstream(a), always=rewrite(drop_logprobs, "no logprobs")) as bare:
        expected = rf"{bare.url} does not return top log-probabilities, which choice needs; llama.cpp's server"
        with pytest.raises(UnsupportedError, match=expected):
            model_for(bare.url).choice(QUESTIONS[:2], ["Yes", "No"])  # read on /chat/completions
        with pytest.raises(UnsupportedError, match=expected):
            model_for(bare.url, tokenizer="embedded").choice(QUESTIONS[:2], ["Yes", "No"])  # on /completions
        pool = model_for(a.url, bare.url)
        with pytest.raises(UnsupportedError, match=expected):
            pool.check_features("choice")
        model_for(a.url).check_features("choice", "logprobs", "seed")  # the real server has all three


@server
def test_a_server_without_prompt_logprobs_is_named_for_logprobs(pair):
    a, _ = pair
    with FaultProxy(upstream(a), always=rewrite(drop_logprobs, "no logprobs")) as bare:
        m = model_for(bare.url, tokenizer="embedded")
        expected = rf"{bare.url} does not return prompt log-probabilities, which logprobs .*needs"
        with pytest.raises(UnsupportedError, match=expected):
            m.logprobs([chat("Name a colour.")], ["Blue."])
        with pytest.raises(UnsupportedError, match=expected):
            model_for(a.url, bare.url).check_features("logprobs")


def other_words(answer: dict) -> None:
    answer["choices"][0]["message"]["content"] = uuid.uuid4().hex  # a new sample whatever the seed


@server
def test_a_pool_checks_seeds_before_it_samples(pair):
    a, b = pair
    with FaultProxy(upstream(b), always=rewrite(other_words, "seedless")) as seedless:
        pool = model_for(a.url, seedless.url)
        assert all(texts(pool.generate(facts(2), GREEDY)))  # greedy: seeds do not matter, nothing checked
        assert len(seedless.seen) <= 2
        with pytest.raises(UnsupportedError, match=rf"{seedless.url} does not honour seeds .*sampling from a pool"):
            pool.generate(facts(2), Sampling(temperature=0.8, max_new_tokens=4))
    honest = model_for(a.url, b.url)
    sampled = honest.generate(facts(2), Sampling(temperature=0.8, max_new_tokens=4))
    assert all(texts(sampled)) and honest._seeds_honoured == {a.url, b.url}
    honest.generate(facts(2), Sampling(temperature=0.8, max_new_tokens=4, seed=1))
    assert honest.stats["requests"] == 4 + 2 + 2  # two probes of each server, once; then two samples a call


# ---- a real pool losing a server mid-run ---------------------------------------------------------
@server
def test_a_pool_that_loses_a_server_mid_run_matches_one_server(pair, tmp_path):
    """Sampling and choice on two servers, one killed by its PID while it works: the run finishes, every
    call is answered once, and the records at temperature 0 are those of a one-server run."""
    a, b = pair
    sampling = Sampling(temperature=0, max_new_tokens=12)
    alone_cache = Cache(tmp_path / "alone.sqlite")
    alone = model_for(a.url, cache=alone_cache)
    alone_samples = alone.generate(facts(12), sampling)
    alone_choices = alone.choice(QUESTIONS, ["Yes", "No"])

    pool_cache = Cache(tmp_path / "pool.sqlite")
    pool = model_for(a.url, b.url, concurrency=4, cache=pool_cache)
    book = ledger.Ledger()
    killed = threading.Event()

    def kill_b_once_it_answered_two():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = server_rows(book).get(b.url, {"requests": 0, "errors": 0})
            if row["requests"] - row["errors"] >= 2:
                break
            time.sleep(0.005)
        os.kill(b.pid, signal.SIGKILL)
        killed.set()

    killer = threading.Thread(target=kill_b_once_it_answered_two)
    killer.start()
    try:
        with book.activate():
            pool_samples = pool.generate(facts(12), sampling)
            pool_choices = pool.choice(QUESTIONS, ["Yes", "No"])
    finally:
        killer.join(60)
        b.stop()
        b.start()  # for any test that runs after this one
    assert killed.is_set()
    assert [s[0].to_dict() for s in pool_samples] == [s[0].to_dict() for s in alone_samples]
    assert [c.to_dict() for c in pool_choices] == [c.to_dict() for c in alone_choices]
    units = 12 + len(QUESTIONS)
    assert pool.stats["ok"] == units and pool.stats["failed"] == 0  # every call answered, none twice
    assert pool_cache.count(pool.fingerprint) == units
    rows = server_rows(book)
    assert rows[b.url]["requests"] - rows[b.url]["errors"] >= 2 and rows[b.url]["errors"] >= 1
    assert sum(row["requests"] - row["errors"] for row in rows.values()) == units
    # The pool's rows are the one-server run's rows: a pool run over that cache asks nothing.
    again = model_for(a.url, b.url, cache=alone_cache)
    assert again.generate(facts(12), sampling) and again.choice(QUESTIONS, ["Yes", "No"])
    assert again.stats["requests"] == 0
