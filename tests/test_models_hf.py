"""The hf backend and the shared Model machinery (seeds, cache, batching), on tiny random models."""

from __future__ import annotations

import math
import shutil

import pytest

from referee.cache import Cache
from referee.errors import RefereeError
from referee.ledger import Ledger
from referee.models import load_model, parse_spec
from referee.models.base import Sampling, sample_seed

CHATS = [
    [{"role": "user", "content": "Name a colour."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Count to three, please, slowly."}],
    [{"role": "user", "content": "x"}],
]


def test_generate_shapes_counts_and_reasons(tiny_model):
    out = tiny_model.generate(CHATS, Sampling(max_new_tokens=6, seed=1), n=3)
    assert [len(o) for o in out] == [3, 3, 3]
    for row in out:
        for c in row:
            assert 1 <= c.completion_tokens <= 6
            assert c.prompt_tokens > 0
            assert c.finish_reason in ("stop", "length")
            if c.finish_reason == "length":
                assert c.completion_tokens == 6
    # the third chat's one-letter prompt is the shortest
    assert out[2][0].prompt_tokens < out[0][0].prompt_tokens


def test_samples_differ_within_a_prompt_and_repeat_with_the_seed(tiny_model_path):
    m = load_model(f"hf:{tiny_model_path}")
    a = m.generate(CHATS[:1], Sampling(max_new_tokens=8, temperature=1.0, seed=3), n=4)[0]
    assert len({c.text for c in a}) > 1, "four samples at temperature 1 should not all be equal"
    b = m.generate(CHATS[:1], Sampling(max_new_tokens=8, temperature=1.0, seed=3), n=4)[0]
    assert [c.text for c in a] == [c.text for c in b]
    c = m.generate(CHATS[:1], Sampling(max_new_tokens=8, temperature=1.0, seed=4), n=4)[0]
    assert [x.text for x in c] != [x.text for x in a]


def test_a_sample_does_not_depend_on_its_batch(tiny_model_path):
    """Per-sample seeds: the same (chat, seed, index) gives the same text alone or in any batch."""
    m = load_model(f"hf:{tiny_model_path}?batch_size=8")
    s = Sampling(max_new_tokens=8, temperature=0.9, seed=7)
    together = m.generate(CHATS, s, n=2)
    alone = load_model(f"hf:{tiny_model_path}?batch_size=1").generate(CHATS[1:2], s, n=2)
    assert [c.text for c in together[1]] == [c.text for c in alone[0]]


def test_greedy_is_deterministic_and_ignores_seed(tiny_model):
    a = tiny_model.generate(CHATS[:2], Sampling(max_new_tokens=6, temperature=0, seed=1))
    b = tiny_model.generate(CHATS[:2], Sampling(max_new_tokens=6, temperature=0, seed=2))
    assert [x[0].text for x in a] == [x[0].text for x in b]


def test_top_p_tiny_keeps_only_the_top_token(tiny_model):
    greedy = tiny_model.generate(CHATS[:1], Sampling(max_new_tokens=6, temperature=0))[0][0].text
    nucleus = tiny_model.generate(CHATS[:1], Sampling(max_new_tokens=6, temperature=1.5, top_p=1e-6), n=3)[0]
    assert all(c.text == greedy for c in nucleus)


def test_stop_strings_cut_the_text(tiny_model):
    s = Sampling(max_new_tokens=16, temperature=1.0, seed=5)
    base = tiny_model.generate(CHATS[:1], s)[0][0]
    assert base.finish_reason == "length" and len(base.text) > 12
    middle = len(base.text) // 2
    stop = base.text[middle:middle + 3]
    cut = tiny_model.generate(CHATS[:1], Sampling(max_new_tokens=16, temperature=1.0, seed=5, stop=(stop,)))[0][0]
    assert cut.finish_reason == "stop"
    assert stop not in cut.text
    assert base.text.startswith(cut.text) and len(cut.text) < len(base.text)
    assert cut.completion_tokens < base.completion_tokens


def test_logprobs_are_consistent_with_choice(tiny_model):
    chat = CHATS[0]
    lp = tiny_model.logprobs([chat, chat], [" red", " blue and green"])
    for r in lp:
        assert r.total < 0
        assert math.isclose(r.total, sum(r.logprobs), rel_tol=1e-6)
        assert len(r.tokens) == len(r.logprobs) >= 1
    assert len(lp[1].logprobs) > len(lp[0].logprobs)
    # choice over the same strings gives probabilities proportional to exp(total)
    ch = tiny_model.choice([chat], [" red", " blue and green"])[0]
    expected = math.exp(lp[0].total) / (math.exp(lp[0].total) + math.exp(lp[1].total))
    assert math.isclose(ch.probs[" red"], expected, rel_tol=1e-3)
    assert math.isclose(ch.mass, math.exp(lp[0].total) + math.exp(lp[1].total), rel_tol=1e-3)


def test_choice_single_token_options_and_aliases(tiny_model):
    plain = tiny_model.choice(CHATS, ["A", "B"], prefix="[[")
    for r in plain:
        assert math.isclose(sum(r.probs.values()), 1.0, rel_tol=1e-6)
        assert 0 < r.mass <= 1 and r.prompt_tokens > 3  # counted for the ledger
    aliased = tiny_model.choice(CHATS, {"A": ["A", " A"], "B": ["B", " B"]}, prefix="[[")
    for p, a in zip(plain, aliased):
        assert a.mass > p.mass  # the aliases add probability mass
    with pytest.raises(RefereeError):
        tiny_model.choice(CHATS, ["A"])


def test_shared_prefix_groups_cut_where_the_most_tokens_are_saved():
    from referee.models.prefix_sharing import shared_prefix_groups

    system = list(range(100, 120))  # 20 tokens every prompt shares
    pair1, pair2 = system + [1] * 40, system + [2] * 40  # each pair's two orders share 60 tokens
    seqs = [pair2 + [7], pair1 + [5], [9, 9, 9], pair1 + [6, 6], pair2 + [8]]
    groups = sorted(sorted(g) for g in shared_prefix_groups(seqs, min_shared=16))
    assert groups == [[0, 4], [1, 3], [2]]  # two groups of 60 shared beat one group of 20
    assert sorted(sorted(g) for g in shared_prefix_groups(seqs, min_shared=61)) == [[0], [1], [2], [3], [4]]
    # sharing 20 tokens is not worth padding a 25-token tail to 220
    assert shared_prefix_groups([system + [1] * 5, system + [2] * 200], min_shared=16) == [[0], [1]]


def test_bundles_keep_padding_small():
    from referee.models.prefix_sharing import low_padding_bundles

    lengths = [100, 98, 30, 29, 31, 300]
    singles = [([i], 0) for i in range(len(lengths))]
    bundles = [sorted(i for members, _ in b for i in members) for b in low_padding_bundles(singles, lengths, 0.1)]
    assert sorted(bundles) == [[0, 1], [2, 3, 4], [5]]  # never 300 beside 30: that would be 90% padding
    assert len(low_padding_bundles(singles, lengths, 10.0)) == 1  # a loose limit bundles everything


def test_prefix_tree_walk_runs_each_shared_head_once_and_cuts_the_cache_back():
    """The CPU walk's plan on token lists alone: a list stands in for the KV cache."""
    from referee.models.prefix_sharing import walk_prefix_tree

    class ListCache(list):
        def get_seq_length(self):
            return len(self)

        def crop(self, negative):
            del self[negative:]

    passes = []

    def last_logits(tokens, cache):
        passes.append(list(tokens))
        seen = (list(cache) if cache is not None else []) + list(tokens)
        if cache is not None:
            cache.extend(tokens)  # a forward pass appends to the cache it continues
        return tuple(seen)  # "logits" that tell which tokens the prompt was run on

    def extend(tokens, cache):
        passes.append(list(tokens))
        cache = cache if cache is not None else ListCache()
        cache.extend(tokens)
        return cache

    head = list(range(100, 130))  # 30 tokens: worth one extra pass for three prompts (2 * 30 >= 48)
    prompts = [head + [1, 2], head + [3], head + [1, 2], head + [1], [7, 8]]
    assert walk_prefix_tree(prompts, last_logits, extend, min_tokens_saved=48) == [tuple(p) for p in prompts]
    assert passes.count(head) == 1 and [7, 8] in passes  # the head once; the lone prompt whole
    assert sum(map(len, passes)) == len(head) + 4 + 2  # then each distinct tail once (the duplicate ran once)
    passes.clear()  # not worth it: every prompt runs whole
    assert walk_prefix_tree(prompts, last_logits, extend, min_tokens_saved=61) == [tuple(p) for p in prompts]
    assert sorted(passes) == sorted([head + [1], head + [1, 2], head + [3], [7, 8]])


def test_shared_heads_give_the_same_logits_as_separate_forwards(tiny_model_path):
    """Shared heads run once through the KV cache and give the same next-token logits, on the CPU walk
    (one prompt per pass) and on the GPU path (groups bundled with padding), which runs here on CPU."""
    import torch

    from referee.models.prefix_sharing import MIN_SHARED_PREFIX, MIN_TOKENS_SAVED_CPU, head_splits

    model = load_model(f"hf:{tiny_model_path}?batch_size=8")
    head = "Which answer is better? Question: why is the sky blue? " * 3
    chats = [[{"role": "user", "content": head + f"A: {a}. B: {b}."}]
             for a, b in [("light scatters", "magic"), ("magic", "light scatters"), ("x", "a much longer answer here"),
                          ("a much longer answer here", "x")]] + CHATS
    encoded = [model._encode(model.render(c) + "[[") for c in chats]
    # branches that share a few tokens, then more within each branch; a prompt that is a prefix of
    # another; the same prompt twice
    other = model._encode(model.render([{"role": "user", "content": "Tell me. " + "Why is grass green? " * 4}]))
    encoded += [other + [11, 12], other + [11, 13], other[:-3], encoded[0]]
    computed = []
    hook = model.model.register_forward_pre_hook(lambda m, a, kw: computed.append(kw["input_ids"].numel()),
                                                 with_kwargs=True)
    with torch.inference_mode():
        shared = model._next_token_logits(encoded)
        hook.remove()
        separate = torch.cat([model.model(input_ids=torch.tensor([e]), logits_to_keep=1).logits[:, -1]
                              for e in encoded])
    assert (shared - separate).abs().max() < 1e-5
    assert (separate[0] - separate[1]).abs().max() > 1e-4  # the rows do differ: the check can fail
    distinct = {tuple(e) for e in encoded}
    assert sum(computed) < sum(len(e) for e in distinct) - 2 * MIN_TOKENS_SAVED_CPU  # heads really ran once
    # the GPU path: every group in one bundle (heads of different lengths left-padded, tails right-padded)
    bundle = head_splits(encoded, MIN_SHARED_PREFIX)
    assert len(bundle) < len(encoded)
    with torch.inference_mode():
        bundled = model._logits_after_heads(encoded, bundle)
    rows = [i for members, _ in bundle for i in members]
    assert (bundled - separate[rows]).abs().max() < 1e-5
    for a, b in zip(model.choice(chats, ["A", "B", "C"], prefix="[["),
                    load_model(f"hf:{tiny_model_path}?batch_size=1").choice(chats, ["A", "B", "C"], prefix="[[")):
        assert all(math.isclose(a.probs[k], b.probs[k], abs_tol=1e-6) for k in a.probs)


def test_logprobs_batched_equal_one_at_a_time(tiny_model_path):
    conts = ["one", "two three four", "five six"]
    batched = load_model(f"hf:{tiny_model_path}?batch_size=8").logprobs(CHATS, conts)
    single = load_model(f"hf:{tiny_model_path}?batch_size=1").logprobs(CHATS, conts)
    for a, b in zip(batched, single):
        assert math.isclose(a.total, b.total, rel_tol=1e-4, abs_tol=1e-4)


def test_cache_answers_repeat_calls(tiny_model_path, tmp_path):
    cache = Cache(tmp_path / "c.sqlite")
    m = load_model(f"hf:{tiny_model_path}", cache=cache)
    s = Sampling(max_new_tokens=5, seed=11)
    ledger = Ledger()
    with ledger.activate():
        first = m.generate(CHATS, s, n=2)
        assert cache.count() == 6
        # n=3 reuses the first two samples of each chat and draws only the third
        second = m.generate(CHATS, s, n=3)
    totals = ledger.to_dict()["totals"]
    assert totals["calls"] == 6 + 3
    assert totals["cached_calls"] == 6
    assert [[c.text for c in r[:2]] for r in second] == [[c.text for c in r] for r in first]
    assert all(c.cached for r in second for c in r[:2]) and not any(r[2].cached for r in second)
    # a fresh model object on the same cache answers everything from it
    again = load_model(f"hf:{tiny_model_path}", cache=cache).generate(CHATS, s, n=3)
    assert all(c.cached for r in again for c in r)


def test_fingerprints_tell_weights_apart(tiny_model_path, tiny_model_path_b):
    a = load_model(f"hf:{tiny_model_path}")
    a2 = load_model(f"hf:{tiny_model_path}?batch_size=3")
    b = load_model(f"hf:{tiny_model_path_b}")
    assert a.fingerprint == a2.fingerprint != b.fingerprint
    half = load_model(f"hf:{tiny_model_path}?dtype=bfloat16")  # other numbers: cached apart
    assert half.fingerprint != a.fingerprint and half.describe()["dtype"] == "bfloat16"


@pytest.mark.parametrize("name, text", [
    ("chat_template.jinja", "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}<assistant>"),
    ("generation_config.json", '{"do_sample": false}'),
    ("merges.txt", "#version: 0.2\n"),
])
def test_editing_a_file_that_changes_outputs_changes_the_fingerprint(tiny_model_path, tmp_path, name, text):
    """The cache key holds the messages, not the prompt the template renders from them: an edited chat
    template (or generation config, or tokenizer file) must change the fingerprint, or a rerun would read
    back the old template's answers."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_path, folder)
    cache = Cache(tmp_path / "cache.sqlite")
    greedy = Sampling(temperature=0.0, max_new_tokens=3)
    before = load_model(f"hf:{folder}", cache=cache)
    assert not before.generate(CHATS[:1], greedy)[0][0].cached
    assert before.generate(CHATS[:1], greedy)[0][0].cached
    (folder / name).write_text(text)
    after = load_model(f"hf:{folder}", cache=cache)
    assert after.fingerprint != before.fingerprint
    assert not after.generate(CHATS[:1], greedy)[0][0].cached  # recomputed, not read back


def test_lora_adapter_loads_and_changes_the_model(tiny_model_path, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    peft_model.save_pretrained(tmp_path / "adapter")
    plain = load_model(f"hf:{tiny_model_path}")
    adapted = load_model(f"hf:{tiny_model_path}?adapter={tmp_path / 'adapter'}")
    assert adapted.fingerprint != plain.fingerprint
    lp_plain = plain.logprobs(CHATS[:1], ["hello there"])[0].total
    lp_adapted = adapted.logprobs(CHATS[:1], ["hello there"])[0].total
    assert not math.isclose(lp_plain, lp_adapted, rel_tol=1e-4)
    with pytest.raises(RefereeError, match="adapter_config.json"):
        load_model(f"hf:{tiny_model_path}?adapter={tmp_path}")


def test_spec_errors_list_the_accepted_forms():
    with pytest.raises(RefereeError, match="accepted forms: embedded, hf:PATH_OR_HUB_ID, openai:MODEL@BASE_URL"):
        parse_spec("gpt4")
    with pytest.raises(RefereeError, match="unknown option"):
        parse_spec("hf:foo?adaptr=x")
    with pytest.raises(RefereeError, match="http"):
        parse_spec("openai:m@localhost:8000")
    assert parse_spec("openai:m@http://127.0.0.1:8000/v1?concurrency=4") == (
        "openai", "m@http://127.0.0.1:8000/v1", {"concurrency": "4"})


def test_missing_local_model_is_a_clear_error(tmp_path):
    with pytest.raises(RefereeError, match="cannot load the model"):
        load_model(f"hf:{tmp_path / 'nothing-here'}")


def test_bad_sampling_settings():
    with pytest.raises(RefereeError, match="temperature"):
        Sampling(temperature=-1)
    with pytest.raises(RefereeError, match="top_p"):
        Sampling(top_p=0)


def test_sample_seed_is_stable():
    chat = [{"role": "user", "content": "hi"}]
    assert sample_seed(0, chat, 1) == sample_seed(0, [{"content": "hi", "role": "user"}], 1)
    assert len({sample_seed(0, chat, i) for i in range(50)}) == 50


def test_seeded_sampler_draws_from_the_tempered_nucleus():
    """Frequencies over many seeds match softmax(logits / T), restricted and renormalised by top_p."""
    import torch

    from referee.models.hf import SeededSampler

    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -3.0]])
    ids = torch.zeros((1, 3), dtype=torch.long)
    counts = torch.zeros(5)
    for seed in range(4000):
        out = SeededSampler([seed], temperature=0.8, top_p=1.0, prompt_len=2)(ids, logits.clone())
        counts[out.argmax()] += 1
    expected = torch.softmax(logits[0] / 0.8, dim=-1)
    assert torch.allclose(counts / counts.sum(), expected, atol=0.025)

    counts = torch.zeros(5)
    for seed in range(2000):
        out = SeededSampler([seed], temperature=1.0, top_p=0.7, prompt_len=2)(ids, logits.clone())
        counts[out.argmax()] += 1
    p = torch.softmax(logits[0], dim=-1)  # 0.64, 0.24, ...: the nucleus for 0.7 is the first two tokens
    assert counts[2:].sum() == 0
    assert abs(counts[0] / counts.sum() - p[0] / (p[0] + p[1])) < 0.03
