"""API keys and the openai spec, from a hostile config's side: a key written into a spec is refused
unquoted before any run file exists, a shared config cannot pick which of your variables to send, nor
let a key travel over plain http, and one loopback rule holds for keys and the labelling page."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import assert_no_part_of
from fault_proxy import FaultProxy, error, reply

from referee import net
from referee.cache import Cache
from referee.errors import RefereeError, ServerError
from referee.models import load_model
from referee.models.base import Sampling
from referee.models.openai import refuse_secrets

SECRET = "sk-hostile-test-0123456789abcdefghij"
LOCAL = "openai:m@http://127.0.0.1:9/v1"


pytestmark = pytest.mark.usefixtures("no_keys_from_the_outside")


# ---- a key written into the spec ------------------------------------------------------------------
HIDDEN = {
    "dashed name": f"{LOCAL}?api-key={SECRET}",
    "header name": f"{LOCAL}?x-api-key={SECRET}",
    "after a second ?": f"{LOCAL}?concurrency=2?api_key={SECRET}",
    "after a semicolon": f"{LOCAL}?concurrency=2;api_key={SECRET}",
    "in the options' fragment": f"{LOCAL}?concurrency=2#api_key={SECRET}",
    "in the URL's fragment": f"{LOCAL}#api_key={SECRET}",
    "percent-encoded name": f"{LOCAL}?api%5Fkey={SECRET}",
    "upper case": f"{LOCAL}?API_KEY={SECRET}",
    "bearer": f"{LOCAL}?Authorization=Bearer%20{SECRET}",
    "auth token": f"{LOCAL}?X-Auth-Token={SECRET}",
    "client secret": f"{LOCAL}?client_secret={SECRET}",
    "password": f"{LOCAL}?PassWord={SECRET}",
    "credentials": f"{LOCAL}?credentials={SECRET}",
    "a key as a known option's value": f"{LOCAL}?concurrency={SECRET}",
    "a key as api_key_env's value": f"{LOCAL}?api_key_env={SECRET}",
    "a key as an unknown option's value": f"{LOCAL}?colour={SECRET}",
    "a bare key": f"{LOCAL}?{SECRET}",
    "a key without its sk- prefix": f"{LOCAL}?org=A1b2C3d4E5f6G7h8J9k0L1m2N3p4Q5r6S7",
}


@pytest.mark.parametrize("case", HIDDEN)
def test_a_key_anywhere_in_the_options_is_refused_unquoted(case):
    spec = HIDDEN[case]
    secret = SECRET if SECRET in spec else spec.rsplit("=", 1)[1]
    for check in (refuse_secrets, load_model):
        with pytest.raises(RefereeError) as e:
            check(spec)
        assert_no_part_of(secret, str(e.value))


def test_unknown_options_are_named_and_their_values_never_quoted():
    for check in (refuse_secrets, load_model):
        with pytest.raises(RefereeError, match=r"unknown option\(s\) colour") as e:
            check(f"{LOCAL}?colour=very-private-words&concurrency=2")
        assert "very-private" not in str(e.value)
    with pytest.raises(RefereeError, match=r"unknown option\(s\) colour") as e:
        load_model("hf:some/model?colour=very-private-words")
    assert "very-private" not in str(e.value)
    for spec in (f"{LOCAL}?concurrency=2", f"{LOCAL}?api_key_env=REFEREE_MY_KEY&tokenizer=embedded",
                 f"{LOCAL}?tokenizer=hf:/home/me/models/Qwen2.5-7B-Instruct&timeout=30"):
        refuse_secrets(spec)  # names and paths, not secrets


def test_the_cli_refuses_a_key_in_a_spec_before_writing_any_run_file(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "Hi"}) + "\n")
    for spec in (f"{LOCAL}?api-key={SECRET}", f"{LOCAL}?concurrency=2?api_key={SECRET}",
                 f"hf:{tmp_path}/model?token={SECRET}"):
        run = tmp_path / "run"
        done = subprocess.run([sys.executable, "-m", "referee", "generate", "--prompts", str(prompts),
                               "--model", spec, "--run", str(run)],
                              capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert_no_part_of(SECRET, done.stderr + done.stdout)
        assert not (run / "config.yaml").exists() and not (run / "manifest.json").exists()


# ---- which variable a spec may read --------------------------------------------------------------
def test_api_key_env_reads_only_variables_the_user_allowed(monkeypatch):
    monkeypatch.setenv("MY_SERVER_KEY", SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("REFEREE_HOME", "/home/someone")
    for var in ("MY_SERVER_KEY", "AWS_SECRET_ACCESS_KEY", "REFEREE_LABEL_TOKEN", "REFEREE_HOME",
                "REFEREE_ALLOW_INSECURE_KEY"):
        with pytest.raises(RefereeError, match=r"REFEREE_KEY_ENVS") as e:
            load_model(f"openai:m@https://llm.example.test/v1?api_key_env={var}")
        assert_no_part_of(SECRET, str(e.value))
    monkeypatch.setenv("REFEREE_KEY_ENVS", "OTHER_KEY, MY_SERVER_KEY")  # the user allows one by name
    named = load_model("openai:m@https://llm.example.test/v1?api_key_env=MY_SERVER_KEY")
    assert named._headers()["Authorization"] == f"Bearer {SECRET}"
    monkeypatch.setenv("REFEREE_VLLM_KEY", SECRET)  # REFEREE_..._KEY: a key the user keeps for referee's servers
    own = load_model("openai:m@https://llm.example.test/v1?api_key_env=REFEREE_VLLM_KEY")
    assert own.describe()["api_key"] == "from $REFEREE_VLLM_KEY"


def test_openai_api_key_goes_elsewhere_only_when_the_user_allows_it(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with pytest.raises(RefereeError, match=r"OPENAI_API_KEY.*api.openai.com.*REFEREE_KEY_ENVS") as e:
        load_model("openai:m@https://llm.example.test/v1?api_key_env=OPENAI_API_KEY")
    assert_no_part_of(SECRET, str(e.value))
    home = load_model("openai:m@https://api.openai.com/v1?api_key_env=OPENAI_API_KEY")
    assert home.describe()["api_key"] == "from $OPENAI_API_KEY"
    monkeypatch.setenv("REFEREE_KEY_ENVS", "OPENAI_API_KEY")
    away = load_model("openai:m@https://llm.example.test/v1?api_key_env=OPENAI_API_KEY")
    assert away._headers()["Authorization"] == f"Bearer {SECRET}"


def test_only_the_users_environment_lets_a_key_over_plain_http(monkeypatch):
    monkeypatch.setenv("REFEREE_API_KEY", SECRET)
    far = "openai:m@http://10.1.2.3:8000/v1"
    with pytest.raises(RefereeError, match=r"allow_insecure_key.*REFEREE_ALLOW_INSECURE_KEY=1") as e:
        load_model(f"{far}?allow_insecure_key=1")  # a config cannot say so
    assert_no_part_of(SECRET, str(e.value))
    with pytest.raises(RefereeError, match=r"will not send \$REFEREE_API_KEY over plain http.*"
                                           r"REFEREE_ALLOW_INSECURE_KEY=1"):
        load_model(far)
    monkeypatch.setenv("REFEREE_ALLOW_INSECURE_KEY", "1")  # the user's own command line can
    assert load_model(far)._headers()["Authorization"] == f"Bearer {SECRET}"


# ---- one loopback rule ------------------------------------------------------------------------------
def test_loopback_is_literal_addresses_and_localhost_only():
    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert net.is_loopback(host), host
    for host in ("app.localhost", "localhost.evil.example", "0.0.0.0", "::", "10.0.0.1", "evil.example", "",
                 "127.0.0.1.nip.io", "localhost."):
        assert not net.is_loopback(host), host


def test_keys_and_the_labelling_page_share_the_loopback_rule(monkeypatch):
    from referee.cli import label
    from referee.models import openai

    assert openai.is_loopback is net.is_loopback and label.is_loopback is net.is_loopback
    monkeypatch.setenv("REFEREE_API_KEY", SECRET)
    with pytest.raises(RefereeError, match=r"will not send \$REFEREE_API_KEY over plain http to app.localhost"):
        load_model("openai:m@http://app.localhost:9/v1")
    assert load_model("openai:m@http://127.0.0.2:9/v1").describe()["api_key"] == "from $REFEREE_API_KEY"


# ---- what the failure line promises -----------------------------------------------------------------
def ok_answer(text: str = "Fine.", reason: str = "stop") -> dict:
    return {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": reason}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1}}


@pytest.mark.server
def test_the_failure_line_counts_withheld_answers_apart_from_cached_ones(tmp_path):
    cache = Cache(tmp_path / "cache.sqlite")
    faults = {"[[bad]]": error(400, "no such thing"), "[[filter]]": reply(200, ok_answer("", "content_filter"))}
    chats = [[{"role": "user", "content": f"Say something. {m}"}] for m in ("", "[[filter]]", "[[bad]]")]
    with FaultProxy(always=reply(200, ok_answer()), prompts=faults) as proxy:
        m = load_model(f"openai:m@{proxy.url}?retries=0", cache=cache)
        with pytest.raises(ServerError) as e:
            m.generate(chats, Sampling(max_new_tokens=2))
    message = str(e.value)
    assert cache.count() == 1
    assert "1 of 3 calls failed (1 answered and cached: a rerun asks only for the others" in message, message
    assert "1 withheld by the server" in message, message
