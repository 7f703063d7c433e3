"""Debate across backends: the debaters on a real OpenAI-compatible server (llama.cpp on the embedded GGUF,
started here on 127.0.0.1), the judge a local transformers model. The same config with other specs is the
large-model run; nothing in the protocol knows which backend speaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import DATA
from servers import LlamaServer, llama_server_missing

COSMOSQA = DATA / "cosmosqa" / "valid_half.jsonl"


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    missing = llama_server_missing()
    if missing:
        pytest.fail(missing, pytrace=False)
    from referee.models.embedded import gguf_path

    srv = LlamaServer(gguf_path(), tmp_path_factory.mktemp("llama") / "server.log", n_ctx=4096)
    srv.start()
    yield srv
    srv.stop()


@pytest.mark.server
@pytest.mark.data("cosmosqa/valid_half.jsonl")
def test_debaters_on_a_server_and_a_local_judge_run_and_resume_through_the_command(tmp_path, llama, tiny_model_path,
                                                                                   capsys):
    from referee.cli import main

    folder = tmp_path / "run"
    config = tmp_path / "debate.yaml"
    config.write_text(yaml.safe_dump({
        "protocol": "debate", "items": str(COSMOSQA), "limit": 2, "out": str(folder),
        "debater": f"openai:smol@{llama.url}?timeout=120&retries=2", "judge": f"hf:{tiny_model_path}",
        "style": "simultaneous", "rounds": 1, "word_limit": 30, "sampling": {"max_new_tokens": 40},
        "bootstrap": 50}))
    main(["run", str(config)])
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.strip().splitlines()[2:]] == ["blind", "expert", "debate"]
    transcripts = [json.loads(line) for line in (folder / "records" / "transcripts.jsonl").read_text().splitlines()]
    assert len(transcripts) == 2
    turns = [turn for t in transcripts for turn in t["turns"]]
    assert [turn["role"] for turn in turns] == ["debater_a", "debater_b"] * 2
    assert all(turn["text"].strip() and len(turn["text"].split()) <= 30 for turn in turns)  # the server spoke
    assert all(turn["finish_reason"] in ("stop", "length") for turn in turns)
    judged = [json.loads(line) for line in (folder / "records" / "judge-debate.jsonl").read_text().splitlines()]
    assert len(judged) == 2 and all(r["p_correct"] is not None for r in judged)  # the local judge's probabilities
    llama.stop()  # every debate turn is cached: the rerun needs no server
    main(["run", str(folder / "config.yaml")])
    assert capsys.readouterr().out == out
