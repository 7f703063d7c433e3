"""A smaller model from the same weights: the first blocks of a local transformers model, the rest
dropped (the final norm and output head kept). Kirchner et al. pair a prover with a verifier much
smaller than it; cutting the prover's own backbone gives such a verifier without another download."""

from __future__ import annotations

from pathlib import Path

from referee.errors import RefereeError


def save_first_layers(folder: str, layers: int, out: str | Path) -> Path:
    """Write to ``out`` the model in ``folder`` keeping its first ``layers`` blocks, with its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder)
    total = model.config.num_hidden_layers
    if not 1 <= layers <= total:
        raise RefereeError(f"{folder}: cannot keep {layers} layers of {total} (choose 1 to {total})")
    blocks = getattr(getattr(model, "model", None), "layers", None)
    if blocks is None:
        raise RefereeError(f"{folder}: a {type(model).__name__} keeps its blocks elsewhere than model.layers; "
                           "give the verifier a smaller base model instead of a layer count")
    model.model.layers = blocks[:layers]
    model.config.num_hidden_layers = layers
    if isinstance(getattr(model.config, "layer_types", None), list):
        model.config.layer_types = model.config.layer_types[:layers]
    out = Path(out)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(folder).save_pretrained(out)
    return out
