"""A scalar head on any transformers causal LM, read out at chosen token positions.

The three trained verifiers (Bradley-Terry RM, outcome RM, process RM) are one network: a backbone's
last hidden state at some token positions, standardised and mapped to one logit by a linear head.
They differ only in which positions are read (the end of the whole answer, or the separator after
each step) and in the loss. The backbone is either frozen (only the head learns: hidden states can be
computed once, which is what makes CPU training fast) or adapted with LoRA (peft).

Saved verifier folder:

    DIR/referee-verifier.json   kind, base spec, backbone folder, max length, separator, training metrics
    DIR/head.safetensors        the head (weights and the feature standardisation)
    DIR/adapter/                the LoRA adapter, when trained with --lora
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from referee.distributed import (all_gather_objects, is_main_process, process_device, rank, wait_for_everyone,
                                 world_size)
from referee.errors import RefereeError
from referee.models.checkpoints import steady_adapter_config
from referee.models.devices import pick_device
from referee.models.hf import ensure_chat_template

CONFIG_NAME = "referee-verifier.json"
HEAD_NAME = "head.safetensors"
ADAPTER_DIR = "adapter"


def resolve_base(spec: str) -> tuple[str, str]:
    """The local folder of a base model spec (``embedded`` or ``hf:PATH``) and the spec to record."""
    from referee.models import parse_spec

    kind, target, options = parse_spec(spec)
    if kind == "openai":
        raise RefereeError(f"base model {spec!r}: a reward model needs local weights (embedded or hf:PATH), "
                           "not a server")
    if options:
        raise RefereeError(f"base model {spec!r}: give device and batch size as options of the command, "
                           "not in the spec")
    if kind == "embedded":
        from referee.models.embedded import ensure_converted

        folder, _ = ensure_converted()
        return str(folder), "embedded"
    path = Path(target)
    if path.is_dir():
        return str(path.resolve()), f"hf:{path.resolve()}"
    return target, spec  # a hub id: transformers resolves it (from its local cache here)


@dataclass
class Sequence:
    """Token ids of one input and the positions whose hidden states are read out."""

    ids: list[int]
    positions: list[int]
    cut: int = 0  # tokens dropped from the left to fit max_length (counted in training reports)


class ScalarHead(nn.Module):
    """Standardise a hidden state with fixed statistics, then one linear unit.

    Standardising with the training features' mean and spread makes a plain linear head train in a few
    epochs at one learning rate on any backbone, whatever the scale of its hidden states.
    """

    def __init__(self, hidden: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(hidden))
        self.register_buffer("scale", torch.ones(hidden))
        self.linear = nn.Linear(hidden, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def set_standardisation(self, features: torch.Tensor) -> None:
        self.mean.copy_(features.mean(dim=0))
        self.scale.copy_(features.std(dim=0).clamp_min(1e-4) if len(features) > 1 else torch.ones_like(self.scale))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.mean) / self.scale).squeeze(-1)


class RewardNet:
    """Backbone + head: encodes prompts and answers, and gives one logit per read-out position."""

    def __init__(self, base: str, *, device: str | None = None, max_length: int = 1024, separator: str = "\n",
                 batch_size: int = 8, folder: str | None = None, base_spec: str | None = None):
        from transformers import AutoModel, AutoTokenizer

        self.device = process_device(pick_device(device))
        if folder is None:
            folder, base_spec = resolve_base(base)
        self.folder, self.base_spec = folder, base_spec or base
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.backbone = AutoModel.from_pretrained(folder, dtype=torch.float32)
        except OSError as e:
            raise RefereeError(f"base model {base!r}: cannot load it ({str(e).splitlines()[0]})") from None
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        ensure_chat_template(self.tokenizer)
        self.backbone.to(self.device).eval()
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.hidden = int(self.backbone.config.hidden_size)
        self.head = ScalarHead(self.hidden).to(self.device)
        self.max_length = max_length
        self.separator = separator
        self.batch_size = batch_size
        self.lora = False
        self._sep_ids = self._encode(separator)
        if not self._sep_ids:
            raise RefereeError(f"step separator {separator!r} encodes to no tokens")

    def to(self, device: str) -> "RewardNet":
        """Move backbone and head (say, train on a GPU, then measure scoring on the CPU)."""
        self.device = device
        self.backbone.to(device)
        self.head.to(device)
        return self

    # ---- LoRA ------------------------------------------------------------------------------------
    def add_lora(self, r: int = 8, alpha: int = 16, dropout: float = 0.0) -> None:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules="all-linear")
        self.backbone = get_peft_model(self.backbone, config)
        self.lora = True

    def load_adapter(self, folder: str) -> None:
        from peft import PeftModel

        self.backbone = PeftModel.from_pretrained(self.backbone, folder).to(self.device).eval()
        self.lora = True

    # ---- encoding --------------------------------------------------------------------------------
    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def render_prompt(self, chat: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)

    def encode_answer(self, chat: list[dict], answer: str) -> Sequence:
        """The whole conversation with the answer as the last assistant turn, read at its last token."""
        text = self.tokenizer.apply_chat_template(chat + [{"role": "assistant", "content": answer}], tokenize=False)
        ids = self._encode(text)
        kept = ids[-self.max_length:]  # keep the end: the answer matters most
        return Sequence(kept, [len(kept) - 1], len(ids) - len(kept))

    def encode_steps(self, chat: list[dict], steps: list[str]) -> Sequence:
        """Prompt, then each step followed by the separator; read at each step's separator.

        With causal attention the read-out after step i sees only the prompt and steps 1..i, so one
        forward pass gives every step's independent prediction. Too-long inputs lose tokens from the
        left; a step whose separator falls off is read at the first kept token.
        """
        ids = self._encode(self.render_prompt(chat))
        positions = []
        for step in steps:
            ids = ids + self._encode(step) + self._sep_ids
            positions.append(len(ids) - 1)
        cut = max(0, len(ids) - self.max_length)
        return Sequence(ids[cut:], [max(0, p - cut) for p in positions], cut)

    # ---- forward ---------------------------------------------------------------------------------
    def _hidden(self, seqs: list[Sequence]) -> torch.Tensor:
        """Last-layer hidden states at every read-out position of a batch, concatenated in order."""
        width = max(len(s.ids) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([s.ids + [pad] * (width - len(s.ids)) for s in seqs], device=self.device)
        mask = torch.tensor([[1] * len(s.ids) + [0] * (width - len(s.ids)) for s in seqs], device=self.device)
        states = self.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        rows = torch.tensor([r for r, s in enumerate(seqs) for _ in s.positions], device=self.device)
        cols = torch.tensor([p for s in seqs for p in s.positions], device=self.device)
        return states[rows, cols].float()

    def _length_batches(self, seqs: list[Sequence]) -> list[list[int]]:
        """Indices of ``seqs`` in batches of neighbouring lengths (little padding)."""
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i].ids))
        return [order[start:start + self.batch_size] for start in range(0, len(order), self.batch_size)]

    def _per_sequence(self, seqs: list[Sequence], batches: list[list[int]], desc: str,
                      through_head: bool) -> dict[int, torch.Tensor]:
        """The hidden states (or head logits) at the read-out positions of each sequence in ``batches``,
        by index. no_grad, not inference_mode: a head is trained on these features afterwards."""
        from referee import progress

        out: dict[int, torch.Tensor] = {}
        with torch.no_grad(), progress.bar(sum(map(len, batches)), desc, unit="seq") as bar:
            for batch in batches:
                h = self._hidden([seqs[i] for i in batch])
                values = (self.head(h) if through_head else h).cpu()
                out.update(zip(batch, values.split([len(seqs[i].positions) for i in batch])))
                bar.update(len(batch))
        return out

    def features(self, seqs: list[Sequence], desc: str = "features") -> torch.Tensor:
        """Hidden states at all read-out positions, computed once (the frozen-backbone training data).

        Under a launcher every process calls it: each computes every N-th batch, and all get every row."""
        if not seqs:
            return torch.zeros(0, self.hidden)
        rows = self._per_sequence(seqs, self._length_batches(seqs)[rank()::world_size()], desc, through_head=False)
        if world_size() > 1:
            rows = _gathered(rows)
        return torch.cat([rows[i] for i in range(len(seqs))])

    def logits(self, seqs: list[Sequence], grad: bool = False) -> torch.Tensor:
        """Head logits at all read-out positions of one batch (with gradients for LoRA training)."""
        if grad:
            return self.head(self._hidden(seqs))
        with torch.inference_mode():
            return self.head(self._hidden(seqs))

    def score(self, seqs: list[Sequence], desc: str = "scoring") -> list[list[float]]:
        """Logits per sequence (one per read-out position)."""
        self.backbone.eval()
        values = self._per_sequence(seqs, self._length_batches(seqs), desc, through_head=True)
        return [values[i].tolist() for i in range(len(seqs))]

    # ---- saving ----------------------------------------------------------------------------------
    def save(self, out: str | os.PathLike, kind: str, extra: dict | None = None) -> Path:
        """Write the verifier folder. Under a launcher every process calls it (the processes hold the same
        weights): the main one writes, and all return once the folder is complete."""
        out = Path(out)
        if is_main_process():
            self._write(out, kind, extra)
        wait_for_everyone()
        return out

    def _write(self, out: Path, kind: str, extra: dict | None) -> None:
        from safetensors.torch import save_file

        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, str(out / HEAD_NAME))
        if self.lora:
            self.backbone.save_pretrained(str(out / ADAPTER_DIR))
            steady_adapter_config(out / ADAPTER_DIR)
        config = {**(extra or {}), "kind": kind, "base": self.base_spec, "base_folder": self.folder,
                  "hidden_size": self.hidden, "max_length": self.max_length, "separator": self.separator,
                  "lora": self.lora}
        (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | os.PathLike, *, device: str | None = None,
             batch_size: int = 8) -> tuple["RewardNet", dict]:
        from safetensors.torch import load_file

        folder = Path(folder)
        path = folder / CONFIG_NAME
        if not path.exists():
            raise RefereeError(f"{folder}: not a saved verifier (no {CONFIG_NAME})")
        try:
            config = json.loads(path.read_text())
        except ValueError as e:
            raise RefereeError(f"{path}: not valid JSON ({e})") from None
        for key in ("kind", "base", "hidden_size"):
            if key not in config:
                raise RefereeError(f"{path}: missing setting '{key}'")
        base_folder = config.get("base_folder")
        if config["base"] == "embedded" or not base_folder or not Path(base_folder).exists():
            base_folder = None  # re-resolve the spec on this machine
        net = cls(config["base"], device=device, max_length=int(config.get("max_length", 1024)),
                  separator=config.get("separator", "\n"), batch_size=batch_size, folder=base_folder,
                  base_spec=config["base"])
        if net.hidden != config["hidden_size"]:
            raise RefereeError(f"{path}: head was trained on hidden size {config['hidden_size']}, but "
                               f"{config['base']} has {net.hidden}")
        if config.get("lora"):
            if not (folder / ADAPTER_DIR / "adapter_config.json").exists():
                raise RefereeError(f"{folder}: trained with LoRA but {ADAPTER_DIR}/adapter_config.json is missing")
            net.load_adapter(str(folder / ADAPTER_DIR))
        net.head.load_state_dict(load_file(str(folder / HEAD_NAME)))
        net.head.to(net.device)
        return net, config


def _gathered(rows: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """Every process's rows. Each process sends its rows as one tensor: a row is a view into its batch,
    and pickling a view copies the whole batch."""
    indices = list(rows)
    block = torch.cat([rows[i] for i in indices]) if indices else torch.zeros(0)
    out: dict[int, torch.Tensor] = {}
    for their_indices, their_block, sizes in all_gather_objects((indices, block, [len(rows[i]) for i in indices])):
        if their_indices:
            out.update(zip(their_indices, their_block.split(sizes)))
    return out
