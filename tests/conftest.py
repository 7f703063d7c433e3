"""Shared fixtures: tiny random models with the embedded model's tokenizer, an isolated referee home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from referee.paths import data_root

REPO = Path(__file__).resolve().parents[1]
# The public data sets (referee.paths.data_root: $REFEREE_DATA, ../shared/data beside the checkout, or the
# folder `referee data get` fills). Tests that read them are marked @pytest.mark.data("SET/FILE", ...).
DATA = data_root()[0]
os.environ.setdefault("REFEREE_DATA", str(DATA))  # data:SET/FILE paths in the tests read the same folder

# The embedded model's safetensors copy is kept in the user's cache across test runs (it takes ~20 s to
# make); everything else referee writes goes to a fresh folder per test session.
_DEFAULT_EMBEDDED = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "referee" / "embedded" / "smollm2-135m-instruct"
os.environ.setdefault("REFEREE_EMBEDDED_DIR", str(_DEFAULT_EMBEDDED))
os.environ.setdefault("REFEREE_QUIET", "1")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A test marked ``data`` needs those files of the public sets: without them it is skipped with the
    command that gets them, except under CI, where a skip would hide a missing set, so it fails."""
    missing = [f for mark in item.iter_markers("data") for f in mark.args if not (DATA / f).exists()]
    if missing:
        sets = sorted({f.split("/")[0] for f in missing})
        reason = f"needs {', '.join(missing)} under {DATA}: referee data get {' '.join(sets)}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI runs every test, so a missing data set fails)", pytrace=False)
        pytest.skip(reason)


def assert_no_part_of(secret: str, text: str) -> None:
    """No six characters of ``secret`` in ``text``: a key must not leak even cut short."""
    assert not any(secret[i:i + 6] in text for i in range(len(secret) - 5)), text


@pytest.fixture
def no_keys_from_the_outside(monkeypatch):
    """What a test sees of keys and key settings is what it sets: none from the environment of the suite."""
    for var in ("OPENAI_API_KEY", "REFEREE_API_KEY", "REFEREE_KEY_ENVS", "REFEREE_ALLOW_INSECURE_KEY"):
        monkeypatch.delenv(var, raising=False)


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """The referee command line run in this process: (exit status, stdout, stderr)."""
    from referee.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True, scope="session")
def _referee_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("referee_home")
    os.environ["REFEREE_HOME"] = str(home)
    yield home


@pytest.fixture(scope="session")
def embedded_folder() -> Path:
    """The embedded model converted to safetensors (once per machine)."""
    from referee.models.embedded import ensure_converted

    folder, _ = ensure_converted()
    return folder


def make_tiny_model(folder: Path, tokenizer_folder: Path, seed: int = 0, layers: int = 2, hidden: int = 64) -> Path:
    """A random-initialised Llama-shaped causal LM with the embedded tokenizer, saved to ``folder``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_folder)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, tie_word_embeddings=True,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, embedded_folder) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", embedded_folder)


@pytest.fixture(scope="session")
def tiny_model_path_b(tmp_path_factory, embedded_folder) -> Path:
    """A second tiny model with other weights (for fingerprints and model-vs-model tests)."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny_b") / "model", embedded_folder, seed=1)


@pytest.fixture
def tiny_model(tiny_model_path):
    from referee.models import load_model

    return load_model(f"hf:{tiny_model_path}")
