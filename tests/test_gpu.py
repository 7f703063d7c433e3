"""referee's GPU path, on a CUDA GPU: default precision, per-sample seeds, CPU agreement, training.

Every test here is marked ``gpu`` and skipped where torch sees no CUDA device; scripts/gpu_check.py runs
them (``pytest -m gpu``) on a lent GPU. They use the tiny random models of conftest.py, so they take
seconds. What each compares, and within what tolerance, is in its docstring.
"""

from __future__ import annotations

import math

import pytest
import torch

from referee.models import load_model
from referee.models.base import Sampling

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)")]

CHATS = [
    [{"role": "user", "content": "Name a colour."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Count to three, please, slowly."}],
    [{"role": "user", "content": "x"}],
]
HEAD = "Which answer is better? Question: why is the sky blue? " * 3
JUDGE_CHATS = [[{"role": "user", "content": HEAD + f"A: {a}. B: {b}."}]
               for a, b in [("light scatters", "magic"), ("magic", "light scatters"),
                            ("x", "a much longer answer here"), ("a much longer answer here", "x")]] + CHATS


def _bf16() -> bool:
    return torch.cuda.is_bf16_supported()


def test_hf_backend_defaults_to_the_gpu_in_bfloat16(tiny_model_path):
    """With no options the hf backend goes to the GPU, in bfloat16 where the GPU supports it, batches 64,
    and caches its numbers apart from float32's; asked for float32 it keeps float32."""
    m = load_model(f"hf:{tiny_model_path}")
    p = next(m.model.parameters())
    assert m.device == "cuda" and p.device.type == "cuda"
    want = torch.bfloat16 if _bf16() else torch.float32
    assert p.dtype == want and m.describe()["dtype"] == str(want).replace("torch.", "")
    assert m.batch_size == 64
    full = load_model(f"hf:{tiny_model_path}?dtype=float32")
    assert next(full.model.parameters()).dtype == torch.float32
    assert (m.fingerprint != full.fingerprint) == _bf16()
    out = m.generate(CHATS, Sampling(max_new_tokens=6, seed=1), n=2)
    assert all(1 <= c.completion_tokens <= 6 for row in out for c in row)


def test_a_sample_does_not_depend_on_its_batch_on_the_gpu(tiny_model_path):
    """float32 on the GPU: the same (chat, seed, index) gives the same text alone and in a batch of six
    left-padded rows. Batched and single matmuls may differ in their last bits on a GPU; the seeded
    sampler draws in float64 from the float32 logits, so such differences would flip a token only when its
    uniform draw lands within about 1e-9 of a token boundary (some 1e-4 over this test). bfloat16 may
    legitimately differ across batch shapes, so in bfloat16 only repeatability is checked: the same batch
    twice gives the same samples, and other seeds give other samples."""
    s = Sampling(max_new_tokens=8, temperature=0.9, seed=7)
    together = load_model(f"hf:{tiny_model_path}?dtype=float32&batch_size=8").generate(CHATS, s, n=2)
    alone = load_model(f"hf:{tiny_model_path}?dtype=float32&batch_size=1").generate(CHATS[1:2], s, n=2)
    assert [c.text for c in together[1]] == [c.text for c in alone[0]]
    assert together[1][0].text != together[1][1].text  # two samples differ: the check can fail

    half = load_model(f"hf:{tiny_model_path}?dtype=bfloat16&batch_size=8")
    a = half.generate(CHATS, s, n=2)
    b = half.generate(CHATS, s, n=2)
    assert [[c.text for c in r] for r in a] == [[c.text for c in r] for r in b]
    other = half.generate(CHATS, Sampling(max_new_tokens=8, temperature=0.9, seed=8), n=2)
    assert [[c.text for c in r] for r in other] != [[c.text for c in r] for r in a]


@pytest.fixture
def no_tf32():
    """float32 matmuls in full float32 (torch's default), whatever the environment set."""
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = saved


def test_choice_and_logprobs_on_the_gpu_agree_with_the_cpu(tiny_model_path, no_tf32):
    """The GPU route of ``choice`` (prompts that share a head run it once, groups bundled into padded
    batches; on a CPU they run one by one) and of ``logprobs`` (one padded batch), against the CPU's float32
    numbers. float32 on the GPU: next-token logits within 1e-4 (the rows differ from one another by more
    than 1e-3, so a row given another's logits fails), option probabilities within 2e-5, each token's
    log-probability within 1e-4. bfloat16 on the GPU: probabilities within 0.01, log-probabilities within
    0.05 per token (bfloat16 on the CPU differs from float32 by about 5e-4 and 1e-3 on this model)."""
    cpu = load_model(f"hf:{tiny_model_path}?device=cpu&dtype=float32")
    gpu = load_model(f"hf:{tiny_model_path}?device=cuda&dtype=float32&batch_size=16")
    encoded = [cpu._encode(cpu.render(c) + "[[") for c in JUDGE_CHATS]
    with torch.inference_mode():
        ref_logits = cpu._next_token_logits(encoded)
        got_logits = gpu._next_token_logits(encoded).cpu()
    n = len(encoded)
    assert min((ref_logits[i] - ref_logits[j]).abs().max() for i in range(n) for j in range(i)) > 1e-3
    import transformers

    # (with a per-row logits_to_keep tensor, transformers 5.17 gave every row the last row's logits: a check
    # that failed before hf._logits_after_heads read all tail positions)
    assert (got_logits - ref_logits).abs().max() < 1e-4, f"transformers {transformers.__version__}"

    conts = ["one", "two three four", "five six"]
    options = {"A": ["A"], "B": ["B"], "tie": ["C"]}
    multi = {"yes": [" yes indeed"], "no": [" no"]}  # several tokens: choice goes through logprobs
    ref_choice, ref_multi = cpu.choice(JUDGE_CHATS, options, prefix="[["), cpu.choice(CHATS, multi)
    ref_lp = cpu.logprobs(CHATS, conts)
    half = load_model(f"hf:{tiny_model_path}?device=cuda&dtype=bfloat16&batch_size=16")
    for model, p_tol, lp_tol in [(gpu, 2e-5, 1e-4), (half, 0.01, 0.05)]:
        for ref, got in [(ref_choice, model.choice(JUDGE_CHATS, options, prefix="[[")),
                         (ref_multi, model.choice(CHATS, multi))]:
            for a, b in zip(ref, got):
                assert all(math.isclose(a.probs[k], b.probs[k], abs_tol=p_tol) for k in a.probs), (a.probs, b.probs)
        for a, b in zip(ref_lp, model.logprobs(CHATS, conts)):
            assert a.tokens == b.tokens
            assert all(abs(x - y) <= lp_tol for x, y in zip(a.logprobs, b.logprobs)), (a.logprobs, b.logprobs)


def test_sft_then_dpo_train_on_the_gpu(tiny_model_path, tmp_path):
    """TRL's SFT and DPO through referee's wrappers on the GPU (bf16 mixed precision where supported): the
    weights sit on the GPU while training, SFT's loss falls and raises the target's log-probability, and DPO
    moves the preference margin the right way, as tests/test_trainers.py checks on the CPU."""
    from referee.trainers import LoraSettings, TrainSettings, train_dpo, train_sft

    base = f"hf:{tiny_model_path}"
    prompts = ["Say the word.", "What is the word?", "Tell me the word now.", "The word, please."]
    chats = [[{"role": "user", "content": p}] for p in prompts]

    def settings(**kw):
        return TrainSettings(**{**dict(learning_rate=5e-3, max_steps=12, batch_size=4, max_length=128,
                                       lora=LoraSettings(r=8, alpha=16, dropout=0.0)), **kw})

    def mean_logprob(spec, text):
        m = load_model(f"{spec}?dtype=float32")
        return sum(r.total for r in m.logprobs(chats, [text] * len(chats))) / len(chats)

    target = " banana banana banana"
    demos = [{"messages": c + [{"role": "assistant", "content": target}]} for c in chats]
    before = mean_logprob(base, target)
    weights = sum(p.numel() * 4 for p in load_model(f"{base}?device=cpu&dtype=float32").model.parameters())
    torch.cuda.reset_peak_memory_stats()
    floor = torch.cuda.memory_allocated()
    sft, history = train_sft(base, demos * 2, tmp_path / "sft", settings())
    assert torch.cuda.max_memory_allocated() - floor >= weights, "the trainer should have put the model on the GPU"
    losses = [h["loss"] for h in history if "loss" in h]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    assert mean_logprob(sft, target) > before + 1.0

    pairs = [{"prompt": p, "chosen": " cherry cherry", "rejected": " banana banana"} for p in prompts]
    margin_before = mean_logprob(sft, " cherry cherry") - mean_logprob(sft, " banana banana")
    dpo, _ = train_dpo(sft, pairs * 2, tmp_path / "dpo", settings(max_steps=10), beta=0.1)
    margin_after = mean_logprob(dpo, " cherry cherry") - mean_logprob(dpo, " banana banana")
    assert margin_after > margin_before + 0.5, (margin_before, margin_after)
    assert load_model(dpo).generate(CHATS[:1])[0][0].completion_tokens >= 1


def test_reward_models_train_on_the_gpu(tiny_model_path, tmp_path):
    """A Bradley-Terry head on a frozen backbone and one with LoRA, trained on the GPU, learn the toy signal
    of tests/test_rewards.py; the frozen one's rewards on the GPU match the same weights on the CPU within
    1e-3, and the LoRA one survives a save and a load on the GPU within 1e-4."""
    from referee.rewards import TrainOptions, load_verifier, train_reward_model
    from referee.rewards.evaluate import eval_pairs
    from test_rewards import toy_pairs

    base = f"hf:{tiny_model_path}"
    pairs = toy_pairs(72)
    rm, metrics = train_reward_model(base, pairs[:48], TrainOptions(epochs=25, batch_size=16), device="cuda")
    assert str(rm.net.device).startswith("cuda") and next(rm.net.backbone.parameters()).is_cuda
    assert metrics["loss_last_epoch"] < 0.5 * metrics["loss_first_epoch"]
    assert eval_pairs(rm, pairs[48:])["accuracy"].value >= 0.85
    prompts, answers = [p.prompt for p in pairs[48:]], [p.chosen for p in pairs[48:]]
    on_gpu = rm.rewards(prompts, answers)
    rm.net.to("cpu")
    on_cpu = rm.rewards(prompts, answers)
    assert on_gpu == pytest.approx(on_cpu, abs=1e-3)
    assert max(on_gpu) - min(on_gpu) > 1e-2  # the rewards differ: the check can fail

    lora, m = train_reward_model(base, toy_pairs(32, seed=5), TrainOptions(lora=True, epochs=3, lr=3e-3, batch_size=8),
                                 device="cuda")
    assert m["lora"] and m["loss_last_epoch"] < m["loss_first_epoch"]
    lora.save(tmp_path / "lora")
    again = load_verifier("rm", tmp_path / "lora", device="cuda")
    assert again.rewards(prompts[:6], answers[:6]) == pytest.approx(lora.rewards(prompts[:6], answers[:6]), abs=1e-4)
