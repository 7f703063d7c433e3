"""The openai backend against a real llama.cpp server on the embedded GGUF (started here, on 127.0.0.1).

No mocks of the wire: faults come from killing the real server, from a port where nothing listens and
from a real HTTP proxy (tests/servers.py) that answers errors before forwarding to the real server.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest
from servers import FaultyProxy, LlamaServer, free_port, llama_server_missing

from referee import ledger
from referee.cache import Cache
from referee.errors import RefereeError, ServerError, UnsupportedError
from referee.models import load_model
from referee.models.base import Sampling
from referee.models.openai import OpenAIModel

server = pytest.mark.server

# A short system message keeps prompts small: llama.cpp scores echoed prompts token by token in Python.
SYSTEM = {"role": "system", "content": "Answer briefly."}


def chat(text: str) -> list[dict]:
    return [SYSTEM, {"role": "user", "content": text}]


SKY = chat("Is the sky blue on a clear day? Answer Yes or No.")


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    missing = llama_server_missing()
    if missing:
        pytest.fail(missing, pytrace=False)
    from referee.models.embedded import gguf_path

    srv = LlamaServer(gguf_path(), tmp_path_factory.mktemp("llama") / "server.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def scores_cache(tmp_path_factory):
    """One cache for the scoring tests: llama.cpp scores echoed prompts slowly (a Python sort of the
    vocabulary per token), so a continuation scored once is read back by the tests that compare it."""
    return Cache(tmp_path_factory.mktemp("scores") / "cache.sqlite")


def model_for(url_or_server, name="smol", cache=None, **options) -> OpenAIModel:
    url = url_or_server.url if hasattr(url_or_server, "url") else url_or_server
    query = "&".join(f"{k}={v}" for k, v in {"timeout": 60, "retries": 3, "max_wait": 1, **options}.items())
    return load_model(f"openai:{name}@{url}?{query}", cache=cache)


# ---- generation ---------------------------------------------------------------------------------
@server
def test_generate_text_tokens_and_finish_reasons(llama):
    m = model_for(llama)
    out = m.generate([chat("Name a colour."), chat("Write a long story about a dragon and a knight.")],
                     Sampling(temperature=0.7, max_new_tokens=8), n=2)
    assert [len(o) for o in out] == [2, 2]
    for samples in out:
        for c in samples:
            assert c.text.strip() and not c.cached
            assert c.prompt_tokens > 10  # the rendered chat, system message included
            assert 1 <= c.completion_tokens <= 8
            assert c.finish_reason in ("stop", "length")
    story = out[1]
    assert all(c.finish_reason == "length" and c.completion_tokens == 8 for c in story)
    assert out[0][0].prompt_tokens == out[0][1].prompt_tokens != story[0].prompt_tokens


@server
def test_stop_strings_and_max_tokens(llama):
    m = model_for(llama)
    prompt = [chat("Write a long story about a dragon and a knight.")]
    full = m.generate(prompt, Sampling(temperature=0, max_new_tokens=20))[0][0]
    assert full.completion_tokens == 20 and full.finish_reason == "length"
    words = full.text.split()
    assert len(words) >= 5
    stop = words[3]
    cut = m.generate(prompt, Sampling(temperature=0, max_new_tokens=20, stop=(stop,)))[0][0]
    assert stop not in cut.text
    assert cut.finish_reason == "stop"
    assert full.text.startswith(cut.text) and len(cut.text) < len(full.text)
    assert cut.completion_tokens < 20


@server
def test_n_samples_differ_by_seed(llama):
    m = model_for(llama, concurrency=2)
    (samples,) = m.generate([chat("Invent a name for a cat.")], Sampling(temperature=1.0, max_new_tokens=10), n=4)
    assert len(samples) == 4
    assert len({s.text for s in samples}) >= 2


@server
def test_cache_answers_a_repeat_without_server_calls(llama, tmp_path):
    cache = Cache(tmp_path / "cache.sqlite")
    chats = [chat("Name a fruit."), chat("Name a river.")]
    sampling = Sampling(temperature=0.8, max_new_tokens=6, seed=3)
    before = llama.count_requests()
    with ledger.Ledger().activate() as led:
        m = model_for(llama, concurrency=2)
        m.cache = cache
        first = m.generate(chats, sampling, n=2)
        assert led.to_dict()["totals"]["calls"] == 4
        assert llama.count_requests() - before == 4 and m.stats["requests"] == 4
        again = model_for(llama, concurrency=2)
        again.cache = cache
        second = again.generate(chats, sampling, n=2)
        totals = led.to_dict()["totals"]
    assert totals["calls"] == 4 and totals["cached_calls"] == 4
    assert again.stats["requests"] == 0 and llama.count_requests() - before == 4
    assert [[c.text for c in s] for s in second] == [[c.text for c in s] for s in first]
    assert all(c.cached for s in second for c in s)
    assert totals["prompt_tokens"] > 0 and totals["completion_tokens"] > 0


@server
def test_works_inside_a_running_event_loop(llama):
    m = model_for(llama)

    async def inside():
        return m.generate([chat("Say hello.")], Sampling(temperature=0, max_new_tokens=4))

    (out,) = asyncio.run(inside())
    assert out[0].text and out[0].completion_tokens >= 1


# ---- choice and logprobs ------------------------------------------------------------------------
@server
def test_choice_through_chat_top_logprobs(llama):
    m = model_for(llama)
    res = m.choice([SKY, chat("Is fire cold? Answer Yes or No.")], ["Yes", "No", "qqzx"])
    for r in res:
        assert math.isclose(sum(r.probs.values()), 1.0, abs_tol=1e-9)
        assert 0.05 < r.mass <= 1.0 + 1e-6
        assert r.probs["qqzx"] == 0.0  # not among the 20 most likely tokens
        assert r.probs["Yes"] + r.probs["No"] > 0.99
        assert r.prompt_tokens > 5  # the server's count, for the ledger
    with pytest.raises(UnsupportedError, match="tokenizer="):
        m.choice([SKY], ["Yes", "No"], prefix="My answer:")


@server
def test_choice_with_tokenizer_prefix_and_long_options(llama):
    m = model_for(llama, tokenizer="embedded")
    plain = model_for(llama)
    (a,) = m.choice([SKY], ["Yes", "No"])
    (b,) = plain.choice([SKY], ["Yes", "No"])
    # Rendered here or by the server: the same prompt, so the same distribution.
    assert abs(a.mass - b.mass) < 0.02 and abs(a.probs["Yes"] - b.probs["Yes"]) < 0.02
    assert abs(a.prompt_tokens - b.prompt_tokens) <= 1 and a.prompt_tokens > 5
    short = chat("Sky blue?")  # a short prompt: the long option is scored by echoing it
    (c,) = m.choice([short], {"yes": ["Yes"], "no": ["No", "Absolutely not"]}, prefix="Answer:")
    assert math.isclose(sum(c.probs.values()), 1.0, abs_tol=1e-9) and 0 < c.mass <= 1
    (d,) = m.choice([short], {"yes": ["Yes"], "no": ["No"]}, prefix="Answer:")
    assert c.mass > d.mass  # the two-token alias was scored and added to "no"


@server
def test_logprobs_of_a_continuation(llama, scores_cache):
    m = model_for(llama, tokenizer="embedded", cache=scores_cache)
    text = "Blue is a colour."
    (lp,) = m.logprobs([chat("Name a colour.")], [text])
    assert "".join(lp.tokens) == text
    assert len(lp.tokens) == len(lp.logprobs) >= 4
    assert math.isclose(lp.total, sum(lp.logprobs), rel_tol=1e-9) and lp.total < 0
    assert all(v <= 0 for v in lp.logprobs)
    (empty,) = m.logprobs([chat("Name a colour.")], [""])
    assert empty.total == 0 and empty.tokens == []
    with pytest.raises(UnsupportedError, match="tokenizer="):
        model_for(llama).logprobs([chat("Name a colour.")], [text])


@server
@pytest.mark.slow
def test_server_agrees_with_the_hf_backend(llama, scores_cache):
    """The GGUF served by llama.cpp and its dequantised copy under transformers: close numbers."""
    served = model_for(llama, tokenizer="embedded", cache=scores_cache)
    hf = load_model("embedded")
    chats, text = [chat("Name a colour.")], "Blue is a colour."
    (a,), (b,) = served.logprobs(chats, [text]), hf.logprobs(chats, [text])
    assert a.tokens == b.tokens
    assert abs(a.total - b.total) < 0.1 * abs(b.total) + 0.3
    (ca,), (cb,) = served.choice([SKY], ["Yes", "No"]), hf.choice([SKY], ["Yes", "No"])
    assert abs(ca.probs["Yes"] - cb.probs["Yes"]) < 0.05 and abs(ca.mass - cb.mass) < 0.05


# ---- failures and retries -----------------------------------------------------------------------
@server
def test_survives_a_server_killed_and_restarted_mid_run(llama):
    m = model_for(llama, concurrency=1, retries=200, max_wait=0.5, timeout=30)
    events = {}

    def crash_and_restart():
        deadline = time.monotonic() + 60
        while m.stats["ok"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        events["killed_after"] = m.stats["ok"]
        llama.kill()
        time.sleep(0.5)
        llama.start()
        events["restarted"] = True

    t = threading.Thread(target=crash_and_restart)
    t.start()
    try:
        out = m.generate([chat(f"Tell me a fact about the number {i}.") for i in range(4)],
                         Sampling(temperature=0.7, max_new_tokens=6))
    finally:
        t.join(90)
    assert events.get("restarted") and events["killed_after"] < 4
    assert all(o[0].completion_tokens >= 1 for o in out)
    assert m.stats["retries"] >= 1 and m.stats["ok"] == 4


@server
def test_a_server_that_never_comes_up_fails_fast_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    m = model_for(url, retries=4, max_wait=0.1, timeout=5)
    t0 = time.monotonic()
    with pytest.raises(ServerError) as e:
        m.generate([chat("Hi")], Sampling(max_new_tokens=4))
    # Four waits of at most max_wait; uncapped, the backoff would sleep 1.9 s or more.
    assert time.monotonic() - t0 < 1.5
    assert f"{url}/chat/completions: cannot connect" in str(e.value) and "5 attempts" in str(e.value)
    assert m.stats["requests"] == 5 and m.stats["ok"] == 0


@server
def test_429_and_503_are_retried_then_forwarded(llama):
    with FaultyProxy(f"127.0.0.1:{llama.port}", fail_first=3, statuses=(429, 503)) as proxy:
        m = model_for(proxy, retries=4, max_wait=0.05)
        (out,) = m.generate([chat("Say hi.")], Sampling(temperature=0, max_new_tokens=4))
    assert out[0].text
    assert [s for _, _, s in proxy.seen] == [429, 503, 429, 200]
    assert m.stats["retries"] == 3


@server
def test_retries_run_out_with_the_last_status_named(llama):
    with FaultyProxy(f"127.0.0.1:{llama.port}", fail_first=10, statuses=(503,)) as proxy:
        m = model_for(proxy, retries=2, max_wait=0.05)
        with pytest.raises(ServerError, match=r"HTTP 503: proxy says 503.*3 attempts") as e:
            m.generate([chat("Say hi.")], Sampling(max_new_tokens=4))
    assert proxy.url in str(e.value) and len(proxy.seen) == 3


@server
def test_timeouts_are_retried_then_reported():
    with FaultyProxy(always=(200, {"choices": []}), delay=1.0) as proxy:
        m = model_for(proxy, retries=1, max_wait=0.05, timeout=0.2)
        with pytest.raises(ServerError, match="timed out.*2 attempts"):
            m.generate([chat("Say hi.")], Sampling(max_new_tokens=4))
    assert len(proxy.seen) == 2


@server
def test_other_4xx_fail_at_once_with_the_servers_message(llama):
    wrong = model_for(f"{llama.base}/no-such-api", retries=5)
    with pytest.raises(ServerError, match="HTTP 404: Not Found"):
        wrong.generate([chat("Hi")], Sampling(max_new_tokens=4))
    assert wrong.stats["requests"] == 1
    with FaultyProxy(always=(400, {"error": {"message": "top_p is out of range"}})) as proxy:
        m = model_for(proxy, retries=5)
        with pytest.raises(ServerError, match="HTTP 400: top_p is out of range"):
            m.choice([SKY], ["Yes", "No"])
    assert len(proxy.seen) == 1


@server
def test_api_key_is_sent_and_never_shown(llama, monkeypatch, tmp_path):
    secret = "sk-referee-test-0123456789"
    monkeypatch.setenv("MY_SERVER_KEY", secret)
    cache_path = tmp_path / "cache.sqlite"
    with FaultyProxy(f"127.0.0.1:{llama.port}") as proxy:
        m = model_for(proxy, api_key_env="MY_SERVER_KEY", cache=Cache(cache_path))
        (out,) = m.generate([chat("Say hi.")], Sampling(temperature=0, max_new_tokens=3))
    assert out[0].text and proxy.seen[0][1] == f"Bearer {secret}"
    assert secret.encode() not in b"".join(p.read_bytes() for p in tmp_path.glob("cache.sqlite*"))
    assert secret not in str(m.describe()) and m.describe()["api_key"] == "from $MY_SERVER_KEY"
    assert secret not in m.spec and secret not in m.fingerprint
    # A server that quotes the key back in its error: the message is redacted.
    with FaultyProxy(always=(401, {"error": {"message": "bad key {auth}"}})) as proxy:
        m = model_for(proxy, api_key_env="MY_SERVER_KEY")
        with pytest.raises(ServerError) as e:
            m.generate([chat("Hi")], Sampling(max_new_tokens=4))
    assert "HTTP 401: bad key Bearer ***" in str(e.value) and secret not in str(e.value)
    assert len(proxy.seen) == 1
    monkeypatch.delenv("MY_SERVER_KEY")
    with pytest.raises(RefereeError, match=r"\$MY_SERVER_KEY"):
        model_for(proxy, api_key_env="MY_SERVER_KEY")


# ---- settings (no server needed) ------------------------------------------------------------------
def test_spec_options_are_parsed_and_checked():
    m = load_model("openai:gpt-x@http://127.0.0.1:9/v1/?concurrency=3&retries=0&timeout=2.5&max_wait=4")
    assert (m.concurrency, m.retries, m.timeout, m.max_wait, m.batch_size) == (3, 0, 2.5, 4.0, 12)
    assert m.fingerprint == "openai:gpt-x@http://127.0.0.1:9/v1"
    rendered_here = load_model("openai:gpt-x@http://127.0.0.1:9/v1?tokenizer=embedded")
    assert rendered_here.fingerprint == "openai:gpt-x@http://127.0.0.1:9/v1|tokenizer=embedded"
    with pytest.raises(RefereeError, match="concurrency should be an integer"):
        load_model("openai:x@http://127.0.0.1:9/v1?concurrency=lots")
    with pytest.raises(RefereeError, match="concurrency should be >= 1"):
        load_model("openai:x@http://127.0.0.1:9/v1?concurrency=0")
    with pytest.raises(RefereeError, match="timeout should be a number"):
        load_model("openai:x@http://127.0.0.1:9/v1?timeout=soon")
