"""Weak-to-strong ladder: bag of words, frozen-backbone features, heads and LoRA on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from referee.w2s.losses import AuxConfidenceLoss, NaiveLoss
from referee.w2s.features import (Features, backbone_features, base_model, bow_features, hidden_at, params_up_to,
                                  resolve_layer)
from referee.w2s.models import ClassifierTrainSettings, FeatureRung, LoraRung, RungConfig
from referee.errors import RefereeError


@pytest.fixture(scope="module")
def hf(tiny_model_path):
    from referee.models import load_model

    return load_model(f"hf:{tiny_model_path}")


def test_bow_vocabulary_comes_from_the_fit_texts_only():
    texts = ["red apple red", "green apple", "red pear", "blue sky"]
    feats, vocab = bow_features(texts, fit_on=[0, 1, 2], max_features=100, ngrams=2, min_df=1)
    m = feats.matrix.toarray()
    assert m.shape == (4, vocab)
    assert np.allclose(np.linalg.norm(m[:3], axis=1), 1.0)
    assert not m[3].any()  # "blue sky" was never in the fit texts
    # min_df 2 keeps only n-grams in at least two fit texts: "red" and "apple"
    feats2, vocab2 = bow_features(texts, fit_on=[0, 1, 2], max_features=100, ngrams=2, min_df=2)
    assert vocab2 == 2
    assert feats2.rows([1]).shape == (1, 2)


def test_hidden_at_matches_the_models_own_hidden_states_and_stops_early(hf):
    model = base_model(hf.model)
    enc = hf.tokenizer(["the cat sat", "a dog"], return_tensors="pt", padding=True, padding_side="right")
    with torch.no_grad():
        full = model(**enc, output_hidden_states=True).hidden_states
        calls = []
        handle = model.layers[1].register_forward_hook(lambda *a: calls.append(1))
        got = hidden_at(model, enc["input_ids"], enc["attention_mask"], [0, 1])
        handle.remove()
    assert calls == []  # block 2 never ran: layer 1 was the deepest asked for
    assert torch.allclose(got[0], full[0], atol=1e-5)
    assert torch.allclose(got[1], full[1], atol=1e-5)


def test_features_do_not_depend_on_batch_mates_and_pool_real_tokens(hf, tmp_path):
    texts = ["short", "a much longer text with many more words in it than the other one"]
    together = backbone_features(hf, texts, [1, 2], "mean", 64, batch_size=2)
    alone = backbone_features(hf, texts[:1], [1, 2], "mean", 64, batch_size=1)
    assert np.allclose(together[2][0], alone[2][0], atol=1e-5)
    last = backbone_features(hf, texts, [2], "last", 64, batch_size=2)
    enc = hf.tokenizer(texts[:1], return_tensors="pt")
    with torch.no_grad():
        states = hidden_at(base_model(hf.model), enc["input_ids"], enc["attention_mask"], [2])[2]
    assert np.allclose(last[2][0], states[0, -1].numpy(), atol=1e-5)
    assert np.allclose(together[2][0], states[0].mean(0).numpy(), atol=1e-5)
    # cached: a second call with the same texts reads the files back
    first = backbone_features(hf, texts, [1], "mean", 64, 2, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    again = backbone_features(hf, texts, [1], "mean", 64, 2, cache_dir=tmp_path)
    assert np.array_equal(first[1], again[1])


def test_layers_and_sizes(hf):
    model = base_model(hf.model)
    assert resolve_layer(-1, 2, "x") == 2 and resolve_layer(0, 2, "x") == 0
    with pytest.raises(RefereeError, match="setting 'layer' is 5 but the model has 2 layers"):
        resolve_layer(5, 2, "rung 'big'")
    sizes = [params_up_to(model, k) for k in range(3)]
    assert sizes[0] < sizes[1] < sizes[2] == sum(p.numel() for p in model.parameters())


def _separable(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32) * 3 + 10  # off-centre and scaled: the head standardises
    y = (x[:, 0] - x[:, 1] > 0).astype(int)
    return x, y


def test_feature_head_learns_and_is_reproducible():
    x, y = _separable(300, 0)
    rung = FeatureRung(RungConfig(name="f", kind="backbone"), Features(x), size=8)
    settings = ClassifierTrainSettings(epochs=15, batch_size=32, lr=0.02)
    train, test = list(range(200)), list(range(200, 300))
    probs, history = rung.fit_predict(train, np.eye(2)[y[:200]], NaiveLoss(), settings, 0, test)
    assert probs.shape == (100, 2) and np.allclose(probs.sum(1), 1)
    assert (probs.argmax(1) == y[200:]).mean() > 0.9
    assert history[-1] < history[0]
    again, _ = rung.fit_predict(train, np.eye(2)[y[:200]], NaiveLoss(), settings, 0, test)
    assert np.allclose(probs, again)
    mlp = FeatureRung(RungConfig(name="m", kind="backbone", head="mlp", hidden=16), Features(x), size=8)
    probs, _ = mlp.fit_predict(train, np.eye(2)[y[:200]], AuxConfidenceLoss(0.5, 0.2), settings, 0, test)
    assert (probs.argmax(1) == y[200:]).mean() > 0.85


def test_aux_loss_student_overrides_noisy_labels_more_than_naive():
    """Labels flipped on 30% of items at random: the aux student keeps closer to the truth."""
    x, y = _separable(600, 1)
    rng = np.random.default_rng(2)
    noisy = np.where(rng.random(400) < 0.3, 1 - y[:400], y[:400])
    soft = np.eye(2)[noisy] * 0.8 + 0.1
    rung = FeatureRung(RungConfig(name="f", kind="backbone", head="mlp", hidden=64), Features(x), size=8)
    settings = ClassifierTrainSettings(epochs=40, batch_size=64, lr=0.01, weight_decay=0.0)
    train, test = list(range(400)), list(range(400, 600))
    naive, _ = rung.fit_predict(train, soft, NaiveLoss(), settings, 0, train)
    aux, _ = rung.fit_predict(train, soft, AuxConfidenceLoss(0.75, 0.2), settings, 0, train)
    wrong = noisy != y[:400]
    copied_naive = (naive.argmax(1)[wrong] == noisy[wrong]).mean()
    copied_aux = (aux.argmax(1)[wrong] == noisy[wrong]).mean()
    assert copied_aux <= copied_naive


def test_lora_rung_trains_and_leaves_the_backbone_as_it_was(hf):
    texts = [f"item {i} is {'good' if i % 2 else 'bad'}" for i in range(12)]
    before = {k: v.clone() for k, v in base_model(hf.model).state_dict().items()}
    rung = LoraRung(RungConfig(name="lora", kind="lora", layer=2, lora_r=2, feature_batch_size=4), hf, texts, 2)
    labels = np.eye(2)[[i % 2 for i in range(8)]]
    probs, history = rung.fit_predict(list(range(8)), labels, NaiveLoss(),
                                      ClassifierTrainSettings(epochs=2, batch_size=4, lr=1e-3),
                                      0, list(range(8, 12)))
    assert probs.shape == (4, 2) and np.allclose(probs.sum(1), 1) and len(history) == 2
    after = base_model(hf.model).state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any("lora" in n for n, _ in hf.model.named_modules())


@pytest.mark.slow
@pytest.mark.data("csqa2/dev.json")
def test_embedded_backbone_features_on_real_questions(tmp_path):
    """The embedded SmolLM2 as a frozen backbone: 576-wide features, stopping after block 2 of 30."""
    import json

    from conftest import DATA
    from referee.models import load_model

    hf = load_model("embedded")
    with open(DATA / "csqa2" / "dev.json") as f:
        texts = [json.loads(next(f))["question"] for _ in range(6)]
    feats = backbone_features(hf, texts, [1, 2], "mean", 64, batch_size=3, cache_dir=tmp_path)
    assert feats[2].shape == (6, 576) and np.isfinite(feats[2]).all()
    assert not np.allclose(feats[1], feats[2])
    assert params_up_to(base_model(hf.model), 2) < params_up_to(base_model(hf.model), 30) / 3
