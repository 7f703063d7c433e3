"""The openai backend against a real llama.cpp server on the embedded GGUF (started here, on 127.0.0.1).

No mocks of the wire: faults come from killing the real server, from a port where nothing listens, from
prompts the real server rejects, and from a real fault-injecting HTTP proxy (tests/fault_proxy.py) in
front of it. Each failure case checks what is cached, what is counted and what the user is told.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest
from conftest import assert_no_part_of
from fault_proxy import BAD_GZIP, DROP, GARBLE, TRUNCATE, FaultProxy, error, reply, rewrite, slow
from servers import LlamaServer, free_port, llama_server_missing

from referee import ledger
from referee.cache import Cache
from referee.errors import RefereeError, ServerError, UnsupportedError
from referee.models import load_model
from referee.models.base import Sampling
from referee.models.openai import OpenAIModel, refuse_secrets

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
def upstream(llama) -> str:
    return f"127.0.0.1:{llama.port}"


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
    burst = [error(429, retry_after=0), error(503), error(429, retry_after=0)]
    with FaultProxy(upstream(llama), first=burst) as proxy:
        m = model_for(proxy, retries=4, max_wait=0.05)
        (out,) = m.generate([chat("Say hi.")], Sampling(temperature=0, max_new_tokens=4))
    assert out[0].text
    assert [x.status for x in proxy.seen] == [429, 503, 429, 200]
    assert m.stats["retries"] == 3


@server
def test_retries_run_out_with_the_last_status_named(llama):
    with FaultProxy(upstream(llama), first=[error(503)] * 10) as proxy:
        m = model_for(proxy, retries=2, max_wait=0.05)
        with pytest.raises(ServerError, match=r"HTTP 503: proxy says 503.*3 attempts") as e:
            m.generate([chat("Say hi.")], Sampling(max_new_tokens=4))
    assert proxy.url in str(e.value) and len(proxy.seen) == 3


@server
def test_timeouts_are_retried_then_reported():
    with FaultProxy(always=slow(1.0, reply(200, {"choices": []}))) as proxy:
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
    with FaultProxy(always=error(400, "top_p is out of range")) as proxy:
        m = model_for(proxy, retries=5)
        with pytest.raises(ServerError, match="HTTP 400: top_p is out of range"):
            m.choice([SKY], ["Yes", "No"])
    assert len(proxy.seen) == 1


@server
def test_a_redirect_fails_at_once_naming_where_it_points():
    with FaultProxy(always=reply(301, b"", {"Location": "https://elsewhere.test/v1/chat/completions"})) as proxy:
        m = model_for(proxy, retries=5)
        with pytest.raises(ServerError, match="HTTP 301: redirected to https://elsewhere.test/v1/chat/completions"):
            m.generate([chat("Hi")], Sampling(max_new_tokens=4))
    assert len(proxy.seen) == 1


# ---- one failed request does not throw away its batch -------------------------------------------
def fp_rows(cache: Cache, m: OpenAIModel) -> int:
    return cache.count(m.fingerprint)


@server
def test_a_prompt_over_the_context_length_keeps_its_batch_mates(llama, tmp_path):
    """The real server's 400 for one prompt: the other answers are cached, and a rerun asks only again
    for that one."""
    cache = Cache(tmp_path / "cache.sqlite")
    chats = [chat(f"Name animal number {i}.") for i in range(5)] + [chat("word " * 2500)]
    sampling = Sampling(temperature=0, max_new_tokens=3)
    with ledger.Ledger().activate() as led:
        m = model_for(llama, concurrency=2, cache=cache)  # one batch of 8 holds all six
        with pytest.raises(ServerError) as e:
            m.generate(chats, sampling)
        calls = led.to_dict()["totals"]["calls"]
    message = str(e.value)
    assert "1 of 6 calls failed (5 answered and cached: a rerun asks only for the others)" in message
    assert "HTTP 400" in message and "maximum context length is 2048 tokens" in message
    assert "\n" not in message and m.stats["failed"] == 1 and m.stats["ok"] == 5
    assert fp_rows(cache, m) == 5 and calls == 5
    again = model_for(llama, concurrency=2, cache=cache)
    with pytest.raises(ServerError, match="1 of 1 calls failed; .*maximum context length"):
        again.generate(chats, sampling)
    assert again.stats["requests"] == 1  # only the prompt that failed
    assert again.generate(chats[:5], sampling) and again.stats["requests"] == 1


@server
def test_a_5xx_that_outlasts_its_retries_keeps_the_rest(llama, tmp_path):
    cache = Cache(tmp_path / "cache.sqlite")
    chats = [chat("Name a fruit."), chat("Name a tree. [[flaky]]"), chat("Name a river."), chat("Name a bird.")]
    sampling = Sampling(temperature=0, max_new_tokens=3)
    with FaultProxy(upstream(llama), prompts={"[[flaky]]": [error(503)] * 3}) as proxy:
        m = model_for(proxy, retries=2, max_wait=0.01, cache=cache)
        with pytest.raises(ServerError, match=r"1 of 4 calls failed .*HTTP 503: proxy says 503; gave up after 3"):
            m.generate(chats, sampling)
        assert fp_rows(cache, m) == 3 and proxy.count("[[flaky]]") == 3
        again = model_for(proxy, retries=2, max_wait=0.01, cache=cache)
        out = again.generate(chats, sampling)
    assert again.stats["requests"] == 1 and fp_rows(cache, m) == 4
    assert [o[0].cached for o in out] == [True, False, True, True] and all(o[0].text for o in out)


@server
def test_each_answer_is_cached_as_it_arrives(llama, tmp_path):
    """A slow request does not hold back the caching of its batch-mates: a run killed while it waits
    keeps them."""
    cache = Cache(tmp_path / "cache.sqlite")
    chats = [chat("Name a fruit."), chat("Name a tree. [[slow]]"), chat("Name a river.")]
    with FaultProxy(upstream(llama), prompts={"[[slow]]": slow(3.0)}) as proxy:
        m = model_for(proxy, concurrency=4, cache=cache)
        rows_while_slow = []

        def watch():
            reader = Cache(cache.path)
            while not proxy.count("[[slow]]", answered=True) and len(rows_while_slow) < 500:
                rows_while_slow.append(reader.count(m.fingerprint))
                time.sleep(0.01)

        watcher = threading.Thread(target=watch)
        watcher.start()
        m.generate(chats, Sampling(temperature=0, max_new_tokens=3))
        watcher.join(10)
    assert 2 in rows_while_slow and fp_rows(cache, m) == 3


@server
def test_a_whole_batch_failing_stops_the_run():
    with FaultProxy(always=error(404, "no such model")) as proxy:
        m = model_for(proxy, concurrency=1)  # batches of 4
        with pytest.raises(ServerError) as e:
            m.generate([chat(f"Item {i}") for i in range(10)], Sampling(max_new_tokens=2))
    assert "4 of 10 calls failed; 6 not tried after a whole batch failed; the first: " in str(e.value)
    assert "HTTP 404: no such model" in str(e.value) and len(proxy.seen) == 4 and m.stats["failed"] == 4


@server
def test_dropped_truncated_and_garbled_answers_are_retried(llama, tmp_path):
    faults = {"[[drop]]": [DROP], "[[truncate]]": [TRUNCATE], "[[garble]]": [GARBLE], "[[gzip]]": [BAD_GZIP],
              "[[list]]": [reply(200, [1, 2])], "[[empty]]": [reply(200, b"")]}
    cache = Cache(tmp_path / "cache.sqlite")
    with FaultProxy(upstream(llama), prompts=faults) as proxy:
        m = model_for(proxy, concurrency=3, max_wait=0.01, cache=cache)
        out = m.generate([chat(f"Say a word. {marker}") for marker in faults], Sampling(temperature=0, max_new_tokens=3))
    assert all(o[0].text and o[0].completion_tokens >= 1 for o in out)
    assert m.stats["retries"] == len(faults) and m.stats["failed"] == 0
    assert all(proxy.count(marker) == 2 for marker in faults) and fp_rows(cache, m) == len(faults)


def null_content(answer: dict) -> None:
    answer["choices"][0]["message"].update(content=None, refusal="I can't help with that.")
    answer["choices"][0]["finish_reason"] = "stop"


def content_filter(answer: dict) -> None:
    answer["choices"][0]["message"]["content"] = ""
    answer["choices"][0]["finish_reason"] = "content_filter"


@server
def test_refusals_come_back_with_their_reason_and_are_not_cached(llama, tmp_path):
    cache = Cache(tmp_path / "cache.sqlite")
    chats = [chat("Name a fruit."), chat("Name a tree. [[filter]]"), chat("Name a river. [[null]]")]
    sampling = Sampling(temperature=0, max_new_tokens=3)
    faults = {"[[filter]]": [rewrite(content_filter)], "[[null]]": [rewrite(null_content)]}
    with FaultProxy(upstream(llama), prompts=faults) as proxy:
        with ledger.Ledger().activate() as led:
            m = model_for(proxy, cache=cache)
            out = m.generate(chats, sampling)
            calls = led.to_dict()["totals"]["calls"]
        assert [o[0].finish_reason for o in out][1:] == ["content_filter", "refused"]
        assert out[0][0].finish_reason in ("stop", "length") and out[0][0].text
        assert out[1][0].text == out[2][0].text == ""
        assert m.stats["refused"] == 2 and calls == 3 and fp_rows(cache, m) == 1
        again = model_for(proxy, cache=cache)  # the server answers now: asked again, and kept
        out = again.generate(chats, sampling)
    assert again.stats["requests"] == 2 and all(o[0].text for o in out) and fp_rows(cache, m) == 3


# ---- malformed answers: one clear line, never a traceback ---------------------------------------
def answer(message=None, usage=None, **choice) -> dict:
    message = {"role": "assistant", "content": "Yes"} if message is None else message
    return {"choices": [{"message": message, "finish_reason": "stop", **choice}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 1} if usage is None else usage}


TOP = {"content": [{"token": "Yes", "logprob": -0.1, "top_logprobs": [{"token": "Yes", "logprob": -0.1}]}]}
MALFORMED = {
    "usage is not a count": ("generate", answer(usage={"prompt_tokens": "many", "completion_tokens": 1}),
                             r"usage.prompt_tokens is 'many', not a count of tokens"),
    "usage is a list": ("generate", answer(usage=[9, 1]), r"usage is \[9, 1\], not an object"),
    "choices is an object": ("generate", {"choices": {"0": {}}}, "the answer has no choices"),
    "message is a list": ("generate", answer(message=["Yes"]), r"choices\[0\].message is \['Yes'\], not an object"),
    "finish_reason is a list": ("generate", answer(finish_reason=["stop"]), r"finish_reason is \['stop'\]"),
    "content part text is a number": ("generate", answer(message={"content": [{"type": "text", "text": 7}]}),
                                      "a content part's text is 7, not a string"),
    "logprob is a string": ("choice", answer(logprobs={"content": [{"token": "Yes", "logprob": "-0.1",
                                                                  "top_logprobs": [{"token": "Yes", "logprob": "-0.1"}]}]}),
                            "top_logprobs is '-0.1', not a log-probability"),
    "logprobs is a list": ("choice", answer(logprobs=[TOP]), r"choices\[0\].logprobs is \[.*not an object or absent"),
    "top_logprobs is an object": ("choice", answer(logprobs={"content": [{"token": "Yes", "top_logprobs": {"Yes": -1}}]}),
                                  "top_logprobs is {'Yes': -1}, not a list"),
    "a choice withheld by the filter": ("choice", answer(message={"content": None}, finish_reason="content_filter"),
                                        r"withheld the answer \(finish_reason content_filter\)"),
}


@server
@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_answers_are_one_clear_error(case, tmp_path):
    op, payload, expected = MALFORMED[case]
    cache = Cache(tmp_path / "cache.sqlite")
    with FaultProxy(always=reply(200, payload)) as proxy:
        m = model_for(proxy, retries=3, cache=cache)
        with pytest.raises(ServerError, match=expected) as e:
            if op == "generate":
                m.generate([chat("Hi")], Sampling(max_new_tokens=2))
            else:
                m.choice([SKY], ["Yes", "No"])
    assert "\n" not in str(e.value) and e.value.__cause__ is None
    assert len(proxy.seen) == 1 and cache.count() == 0  # not retried: the server would say it again


# ---- the API key --------------------------------------------------------------------------------
SECRET = "sk-referee-test-0123456789abcdefghij"


@pytest.fixture(autouse=True)
def _no_outside_keys(no_keys_from_the_outside):
    """Every test here sees only the keys it sets."""


@server
def test_api_key_is_sent_and_never_shown(llama, monkeypatch, tmp_path):
    secret = "sk-referee-test-0123456789"
    monkeypatch.setenv("MY_SERVER_KEY", secret)
    monkeypatch.setenv("REFEREE_KEY_ENVS", "MY_SERVER_KEY")  # the user allows specs to name it
    cache_path = tmp_path / "cache.sqlite"
    with FaultProxy(upstream(llama)) as proxy:
        m = model_for(proxy, api_key_env="MY_SERVER_KEY", cache=Cache(cache_path))
        (out,) = m.generate([chat("Say hi.")], Sampling(temperature=0, max_new_tokens=3))
    assert out[0].text and proxy.seen[0].auth == f"Bearer {secret}"
    assert secret.encode() not in b"".join(p.read_bytes() for p in tmp_path.glob("cache.sqlite*"))
    assert secret not in str(m.describe()) and m.describe()["api_key"] == "from $MY_SERVER_KEY"
    assert secret not in m.spec and secret not in m.fingerprint
    # A server that quotes the key back in its error: the message is redacted.
    with FaultProxy(always=error(401, "bad key {auth}")) as proxy:
        m = model_for(proxy, api_key_env="MY_SERVER_KEY")
        with pytest.raises(ServerError) as e:
            m.generate([chat("Hi")], Sampling(max_new_tokens=4))
    assert "HTTP 401: bad key Bearer ***" in str(e.value) and secret not in str(e.value)
    assert len(proxy.seen) == 1
    monkeypatch.delenv("MY_SERVER_KEY")
    with pytest.raises(RefereeError, match=r"\$MY_SERVER_KEY"):
        model_for(proxy, api_key_env="MY_SERVER_KEY")


@server
@pytest.mark.parametrize("body", ["json", "text"])
def test_a_key_quoted_across_the_cut_leaks_no_part_of_it(body, monkeypatch):
    """Redaction comes before the message is cut short, so a key straddling the cut leaves nothing."""
    monkeypatch.setenv("REFEREE_API_KEY", SECRET)
    for pad in (280, 290, 299):
        text = "x" * pad + " Bearer {auth} and more"
        fault = error(401, text) if body == "json" else reply(503, text.encode())
        with FaultProxy(always=fault) as proxy:
            m = model_for(proxy, retries=0)
            with pytest.raises(ServerError) as e:
                m.generate([chat("Hi")], Sampling(max_new_tokens=2))
            proxy.always = reply(200, {"choices": [{"message": "Bearer " + SECRET}]})  # malformed, quoting it
            with pytest.raises(ServerError, match="malformed answer") as quoted:
                m.generate([chat("Hi again")], Sampling(max_new_tokens=2))
        assert proxy.seen[0].auth == f"Bearer {SECRET}"
        assert_no_part_of(SECRET, str(e.value))
        assert_no_part_of(SECRET, str(quoted.value))


@server
def test_openai_api_key_goes_only_to_openai(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FaultProxy(always=error(401, "a key is needed")) as proxy:
        m = model_for(proxy, retries=0)
        with pytest.raises(ServerError, match=r"HTTP 401: a key is needed \(\$OPENAI_API_KEY is sent only to "
                                              r"https://api.openai.com; .* add OPENAI_API_KEY to "
                                              r"\$REFEREE_KEY_ENVS .* api_key_env=OPENAI_API_KEY"):
            m.generate([chat("Hi")], Sampling(max_new_tokens=2))
        assert proxy.seen[0].auth is None and m.describe()["api_key"] == "none"
        monkeypatch.setenv("REFEREE_KEY_ENVS", "OPENAI_API_KEY")
        named = model_for(proxy, retries=0, api_key_env="OPENAI_API_KEY")  # allowed, and named in the spec: sent
        with pytest.raises(ServerError):
            named.generate([chat("Hi")], Sampling(max_new_tokens=2))
        assert proxy.seen[1].auth == f"Bearer {SECRET}"
    assert load_model("openai:gpt-x@https://api.openai.com/v1").describe()["api_key"] == "from $OPENAI_API_KEY"
    assert load_model("openai:gpt-x@http://api.openai.com/v1").describe()["api_key"] == "none"
    assert load_model("openai:gpt-x@https://llm.example.test/v1").describe()["api_key"] == "none"


def test_keys_never_go_over_plain_http_to_another_host(monkeypatch):
    monkeypatch.setenv("REFEREE_API_KEY", SECRET)
    with pytest.raises(RefereeError, match=r"will not send \$REFEREE_API_KEY over plain http to 10.1.2.3") as e:
        load_model("openai:x@http://10.1.2.3:8000/v1")
    assert "REFEREE_ALLOW_INSECURE_KEY=1" in str(e.value) and "unset $REFEREE_API_KEY" in str(e.value)
    assert_no_part_of(SECRET, str(e.value))
    for url in ("https://llm.example.test/v1", "http://127.0.0.1:9/v1", "http://localhost:9/v1", "http://[::1]:9/v1"):
        assert load_model(f"openai:x@{url}").describe()["api_key"] == "from $REFEREE_API_KEY"
    allowed = OpenAIModel("x", "http://10.1.2.3:8000/v1", allow_insecure_key="1")
    assert allowed.describe()["api_key"] == "from $REFEREE_API_KEY"
    monkeypatch.setenv("MY_KEY", SECRET)
    monkeypatch.setenv("REFEREE_KEY_ENVS", "MY_KEY")
    with pytest.raises(RefereeError, match=r"will not send \$MY_KEY over plain http"):
        load_model("openai:x@http://llm.example.test/v1?api_key_env=MY_KEY")
    monkeypatch.setenv("MY_KEY", f" {SECRET}\n")  # pasted with a newline: the key is what lies between
    assert load_model("openai:x@https://llm.example.test/v1?api_key_env=MY_KEY")._headers()["Authorization"] \
        == f"Bearer {SECRET}"
    monkeypatch.setenv("MY_KEY", SECRET[:12] + "\n" + SECRET[12:])  # no server would take it: say so, quote none
    with pytest.raises(RefereeError, match=r"\$MY_KEY holds spaces or control characters") as e:
        load_model("openai:x@https://llm.example.test/v1?api_key_env=MY_KEY")
    assert_no_part_of(SECRET, str(e.value))


def test_credentials_in_the_url_are_refused_and_never_echoed():
    for spec in ("openai:x@http://user:hunter2-pw@127.0.0.1:9/v1", "openai:x@https://hunter2-pw@llm.example.test/v1"):
        with pytest.raises(RefereeError, match="holds credentials") as e:
            load_model(spec)
        assert "hunter2" not in str(e.value)
    with pytest.raises(RefereeError, match="looks like a key or credential") as e:
        refuse_secrets(f"openai:x@http://127.0.0.1:9/v1?api_key={SECRET}")
    assert_no_part_of(SECRET, str(e.value))
    refuse_secrets("openai:x@http://127.0.0.1:9/v1?api_key_env=MY_KEY&concurrency=2")  # names, not secrets
    # more ways to hide a key: tests/test_keys.py


def test_a_spec_holding_a_key_is_refused_without_echoing_it():
    with pytest.raises(RefereeError) as e:
        load_model(f"openai:x@http://127.0.0.1:9/v1?api_key={SECRET}")
    assert_no_part_of(SECRET, str(e.value))


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


def test_a_bad_port_is_one_clear_error():
    for url in ("http://127.0.0.1:99999/v1", "http://127.0.0.1:0/v1", "http://127.0.0.1:http/v1"):
        with pytest.raises(RefereeError, match="should be a number from 1 to 65535"):
            load_model(f"openai:x@{url}")
