"""The transformers backend: batched generation, log-probabilities and choice probabilities on CPU or GPU.

Sampling is done by a logits processor that draws each row's token from that row's own seeded random
stream, so a sample depends only on its own seed, not on its batch-mates. Which prompts share a head of
tokens, and how they are bundled, is planned in `prefix_sharing`; weight fingerprints are in `fingerprints`.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import torch

from referee.errors import RefereeError
from referee.models.base import ChoiceResult, Completion, GenRequest, Model, TokenLogprobs
from referee.models.devices import pick_device, pick_dtype
from referee.models.fingerprints import weights_fingerprint, with_precision
from referee.models.prefix_sharing import (MIN_SHARED_PREFIX, MIN_TOKENS_SAVED_CPU, PADDING_SLACK, head_splits,
                                           low_padding_bundles, walk_prefix_tree)

FALLBACK_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def ensure_chat_template(tokenizer) -> None:
    """Give a tokenizer without a chat template a plain "role: content" one, so base models take chats
    too; every local model (this backend, the reward heads) renders such chats the same way."""
    if not tokenizer.chat_template:
        tokenizer.chat_template = FALLBACK_TEMPLATE


class SeededSampler:
    """Turns greedy decoding into seeded sampling, one random stream per row.

    For row r at step t, one uniform number u comes from a generator seeded with (seed_r, t), and the
    token is the one where the cumulative distribution (tempered, top-p filtered) first passes u:
    inverse-CDF sampling, exact, and cheap (one random number per row and step). The processor then
    leaves only that token possible, so greedy decoding picks it.
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float, prompt_len: int):
        self.seeds = seeds
        self.temperature = temperature
        self.top_p = top_p
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.temperature == 0:
            return scores
        step = input_ids.shape[1] - self.prompt_len
        probs = torch.softmax(scores.double() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_probs, idx = torch.sort(probs, descending=True, dim=-1)
            # keep the smallest prefix whose mass reaches top_p (the first token always stays)
            drop_sorted = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= self.top_p
            drop = torch.zeros_like(drop_sorted).scatter(-1, idx, drop_sorted)
            probs = probs.masked_fill(drop, 0.0)
        cdf = probs.cumsum(dim=-1)
        u = torch.tensor([random.Random(seed * 1_000_003 + step).random() for seed in self.seeds],
                         dtype=cdf.dtype, device=cdf.device)
        picked = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1)).clamp_(max=cdf.shape[-1] - 1)
        # never land on a token the filter removed (possible only through rounding at the edges)
        picked = torch.where(probs.gather(-1, picked) > 0, picked, probs.argmax(dim=-1, keepdim=True))
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, picked, 0.0)


class HFModel(Model):
    """A causal LM from a local folder or a hub id, optionally with a LoRA adapter (peft)."""

    def __init__(self, path: str, *, spec: str | None = None, adapter: str | None = None,
                 device: str | None = None, dtype: str | None = None, batch_size: int | None = None,
                 fingerprint: str | None = None, cache=None):
        super().__init__(cache=cache)
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # referee shows its own progress; weight loading is instant
        hf_logging.set_verbosity_error()
        self.path = path
        self.adapter = adapter
        self.device = pick_device(device)
        self.spec = spec or f"hf:{path}" + (f"?adapter={adapter}" if adapter else "")
        if batch_size:
            self.batch_size = batch_size
        elif self.device.startswith("cuda"):
            self.batch_size = 64
        from referee.models.checkpoints import is_checkpoint, load_merged

        try:
            if is_checkpoint(path):  # a trained adapter on a base spec: rebuild the chain, merged
                self.model, self.tokenizer = load_merged(f"hf:{path}", dtype=pick_dtype(dtype, self.device))
            else:
                self.tokenizer = AutoTokenizer.from_pretrained(path)
                self.model = AutoModelForCausalLM.from_pretrained(path, dtype=pick_dtype(dtype, self.device))
        except OSError as e:
            raise RefereeError(f"hf:{path}: cannot load the model ({str(e).splitlines()[0]})") from None
        if adapter:
            from peft import PeftModel

            if not Path(adapter, "adapter_config.json").exists():
                raise RefereeError(f"adapter {adapter}: no adapter_config.json there")
            self.model = PeftModel.from_pretrained(self.model, adapter)
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        ensure_chat_template(self.tokenizer)
        self.fingerprint = with_precision(fingerprint or weights_fingerprint(path, adapter),
                                          next(self.model.parameters()).dtype)
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)

    def describe(self) -> dict:
        n = sum(p.numel() for p in self.model.parameters())
        return {**super().describe(), "path": self.path, "adapter": self.adapter, "device": self.device,
                "dtype": str(next(self.model.parameters()).dtype).replace("torch.", ""),
                "parameters": n, "context_length": self.context_length}

    # ---- prompts -------------------------------------------------------------------------------
    def render(self, chat: list[dict]) -> str:
        """The chat as the model sees it, ending where the assistant's reply begins; a chat that ends
        with an assistant turn ends inside that turn, so the model continues it (prefilled replies)."""
        if chat and chat[-1]["role"] == "assistant":
            return self.tokenizer.apply_chat_template(chat, tokenize=False, continue_final_message=True)
        return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=self.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=self.device)
        return ids, mask

    # ---- hooks ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def _generate(self, requests: list[GenRequest]) -> list[Completion]:
        from transformers import GenerationConfig, LogitsProcessorList

        sampling = requests[0].sampling
        prompts = [self._encode(self.render(r.chat)) for r in requests]
        ids, mask = self._left_pad(prompts)
        eos = self._eos_ids()
        config = GenerationConfig(max_new_tokens=sampling.max_new_tokens, do_sample=False,
                                  eos_token_id=eos, pad_token_id=self.tokenizer.pad_token_id)
        kwargs = {}
        if sampling.stop:
            config.stop_strings = list(sampling.stop)
            kwargs["tokenizer"] = self.tokenizer
        sampler = SeededSampler([r.seed for r in requests], sampling.temperature, sampling.top_p, ids.shape[1])
        out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                                  logits_processor=LogitsProcessorList([sampler]), **kwargs)
        results = []
        for row, prompt in zip(out[:, ids.shape[1]:].tolist(), prompts):
            results.append(self._finish(row, len(prompt), eos, sampling))
        return results

    def _eos_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        return sorted(i for i in ids if i is not None)

    def _finish(self, row: list[int], prompt_tokens: int, eos: list[int], sampling) -> Completion:
        """Cut a generated row at end of turn, padding or the first stop string, and say why it ended."""
        pad = self.tokenizer.pad_token_id
        tokens = []
        for t in row:
            if t == pad and t not in eos:  # the row ended earlier (a stop string); the rest is padding
                break
            tokens.append(t)
            if t in eos:
                break
        # A row that is neither at its token limit nor ended by padding was stopped by a stop string
        # (possibly one that straddles the prompt's end, which the stopping criterion also sees).
        reason = "length" if len(tokens) >= sampling.max_new_tokens and tokens[-1] not in eos else "stop"
        text = self.tokenizer.decode([t for t in tokens if t not in eos], skip_special_tokens=True)
        cut = [text.index(s) for s in sampling.stop if s in text]
        if cut:
            text, reason = text[:min(cut)], "stop"
        return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=len(tokens), finish_reason=reason)

    @torch.inference_mode()
    def _score_sequences(self, prompts: list[list[int]], continuations: list[list[int]]) -> list[list[float]]:
        """Per-token log-probabilities of each continuation after its prompt, in one padded forward."""
        seqs = [p + c for p, c in zip(prompts, continuations)]
        ids, mask = self._left_pad(seqs)
        # Left padding puts every continuation at the end: project only the last k positions onto the
        # vocabulary (the full [batch, length, vocab] logits would dwarf the rest of the forward pass).
        k = max(len(c) for c in continuations) + 1
        logits = self.model(input_ids=ids, attention_mask=mask, logits_to_keep=k).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)  # position j predicts token j + 1 of the kept tail
        targets = ids[:, -(k - 1):] if k > 1 else ids[:, :0]
        picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        out = []
        for r, cont in enumerate(continuations):
            n = len(cont)
            out.append(picked[r, picked.shape[1] - n:].tolist() if n else [])
        return out

    def _logprobs(self, chats, continuations) -> list[TokenLogprobs]:
        prompts = [self._encode(self.render(c)) for c in chats]
        conts = [self._encode(t) for t in continuations]
        scores = self._score_sequences(prompts, conts)
        return [TokenLogprobs(total=float(sum(s)), tokens=[self.tokenizer.decode([t]) for t in c], logprobs=s)
                for c, s in zip(conts, scores)]

    def _next_token_logits(self, prompts: list[list[int]]) -> torch.Tensor:
        """Next-token logits after each prompt, [batch, vocab].

        Prompts that begin with the same run of tokens (a judge template's instructions; the two shown
        orders of a judged pair; several answers to one question) run that shared head once and reuse
        its KV cache. On a CPU prompts then run one per forward pass (`_logits_one_by_one`): a prefill
        is already compute-bound without batching, and padding masks keep attention off its fast causal
        kernel (measured: batched judging was slower than one prompt at a time on this project's 2-core
        machine). On a GPU, groups are bundled into batches whose padding stays under PADDING_SLACK of
        the real tokens.
        """
        if str(self.device).startswith("cpu"):
            return self._logits_one_by_one(prompts)
        splits = head_splits(prompts, MIN_SHARED_PREFIX)
        out = [None] * len(prompts)
        for bundle in low_padding_bundles(splits, [len(p) for p in prompts], PADDING_SLACK):
            rows = [i for members, _ in bundle for i in members]
            if all(n == 0 for _, n in bundle):
                ids, mask = self._left_pad([prompts[i] for i in rows])
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1).logits[:, -1]
            else:
                logits = self._logits_after_heads(prompts, bundle)
            for r, i in enumerate(rows):
                out[i] = logits[r].float()
        return torch.stack(out)

    def _logits_one_by_one(self, prompts: list[list[int]]) -> torch.Tensor:
        """One prompt per forward pass, no padding; a head that several prompts share runs once into a
        KV cache, which each of them then continues, when that saves at least MIN_TOKENS_SAVED_CPU tokens
        (the walk over the prompts' prefix tree is `walk_prefix_tree`)."""
        from transformers import DynamicCache

        def last_logits(tokens, cache):
            return self.model(input_ids=torch.tensor([tokens], device=self.device), past_key_values=cache,
                              use_cache=cache is not None, logits_to_keep=1).logits[0, -1].float()

        def extend(tokens, cache):
            cache = cache if cache is not None else DynamicCache(config=self.model.config)
            self.model(input_ids=torch.tensor([tokens], device=self.device), past_key_values=cache,
                       use_cache=True, logits_to_keep=1)
            return cache

        return torch.stack(walk_prefix_tree(prompts, last_logits, extend, MIN_TOKENS_SAVED_CPU))

    def _logits_after_heads(self, prompts, bundle) -> torch.Tensor:
        """One bundle of (members, head length): run each head once, then every member's tail after it."""
        heads = [prompts[members[0]][:max(n, 1)] for members, n in bundle]  # a group of one keeps one token back
        head_ids, head_mask = self._left_pad(heads)
        head_pos = (head_mask.cumsum(-1) - 1).clamp(min=0)
        cache = self.model(input_ids=head_ids, attention_mask=head_mask, position_ids=head_pos, use_cache=True,
                           logits_to_keep=1).past_key_values
        owner = torch.tensor([g for g, (members, _) in enumerate(bundle) for _ in members], device=self.device)
        cache.reorder_cache(owner)  # each member gets its own copy of its group's head
        tails = [prompts[i][len(heads[g]):] for g, (members, _) in enumerate(bundle) for i in members]
        width = max(len(t) for t in tails)
        pad = self.tokenizer.pad_token_id
        tail_ids = torch.tensor([t + [pad] * (width - len(t)) for t in tails], device=self.device)
        tail_mask = torch.tensor([[1] * len(t) + [0] * (width - len(t)) for t in tails], device=self.device)
        mask = torch.cat([head_mask[owner], tail_mask], dim=1)
        tail_pos = head_mask.sum(-1)[owner].unsqueeze(1) + torch.arange(width, device=self.device)
        last = torch.tensor([len(t) - 1 for t in tails], device=self.device)  # right padding: each row's own end
        # Logits for every tail position, then each row's own last one. (A tensor of one position per row as
        # logits_to_keep is read per row only from transformers 5.2x on; older ones apply every row's position
        # to each row and return wrong logits without a word.)
        out = self.model(input_ids=tail_ids, attention_mask=mask, position_ids=tail_pos, past_key_values=cache,
                         logits_to_keep=width)
        return out.logits[torch.arange(len(tails), device=self.device), last]

    @torch.inference_mode()
    def _choice(self, chats, options, prefix) -> list[ChoiceResult]:
        prompts = [self._encode(self.render(c) + prefix) for c in chats]
        strings = sorted({s for ss in options.values() for s in ss})
        encoded = {s: self._encode(s) for s in strings}
        if all(len(t) == 1 for t in encoded.values()):
            # Every option is one token: one forward pass, read the next-token distribution.
            probs = torch.softmax(self._next_token_logits(prompts), dim=-1)
            per_string = [{s: float(probs[r, encoded[s][0]]) for s in strings} for r in range(len(chats))]
        else:
            per_string = [{} for _ in chats]
            for s in strings:
                scores = self._score_sequences(prompts, [encoded[s]] * len(prompts))
                for r, sc in enumerate(scores):
                    per_string[r][s] = math.exp(sum(sc))
        results = []
        for prompt, ps in zip(prompts, per_string):
            raw = {name: sum(ps[s] for s in set(ss)) for name, ss in options.items()}
            mass = sum(raw.values())
            probs = {k: (v / mass if mass > 0 else 1.0 / len(raw)) for k, v in raw.items()}
            results.append(ChoiceResult(probs=probs, mass=mass, prompt_tokens=len(prompt)))
        return results
