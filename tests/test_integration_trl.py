"""referee's supervisors in a user's own TRL code: a GRPOTrainer the user builds, rewarded by a referee
checker and by a referee judge; preference records as a TRL DPO dataset and back."""

from __future__ import annotations

import json
import math

import pytest

from referee.errors import RefereeError
from referee.integrations.trl import from_dpo_dataset, reward_function, to_dpo_dataset
from referee.tasks.pairs import load_pairs
from referee.verifiers.base import PointwiseVerifier, Score

PROBLEMS = [("What is 2 + 3?", "5"), ("What is 4 + 4?", "8"), ("What is 7 - 2?", "5"), ("What is 3 * 3?", "9")]


def _user_grpo(tiny_model_path, tmp_path, reward, steps: int = 2):
    """What a TRL user writes, with a referee reward function in reward_funcs."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    data = Dataset.from_list([{"prompt": [{"role": "user", "content": q}], "answer": a} for q, a in PROBLEMS])
    args = GRPOConfig(output_dir=str(tmp_path / "grpo"), max_steps=steps, per_device_train_batch_size=4,
                      num_generations=4, max_completion_length=8, learning_rate=1e-4, logging_steps=1,
                      report_to=[], save_strategy="no", seed=0, disable_tqdm=True, bf16=False)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_path), reward_funcs=[reward],
                          args=args, train_dataset=data,
                          processing_class=AutoTokenizer.from_pretrained(tiny_model_path))
    trainer.train()
    return trainer.state.log_history


def test_a_user_grpo_trainer_is_rewarded_by_the_exact_checker_with_gold_answers_from_the_dataset(tiny_model_path,
                                                                                              tmp_path, monkeypatch):
    """The checker reads each prompt's gold answer from the 'answer' column TRL passes in; a random tiny model
    states no right answer, so every reward is a readable 0 (and a planted right answer scores 1)."""
    reward = reward_function("exact")
    history = _user_grpo(tiny_model_path, tmp_path, reward)
    assert reward.scored >= 8 and reward.scored % 4 == 0  # every completion of both steps, in groups of 4
    assert reward.invalid == 0
    logged = [h for h in history if "referee/invalid_rate" in h]
    assert logged and all(h["referee/invalid_rate"] == 0 for h in logged)
    chat = [{"role": "user", "content": "What is 2 + 3?"}]
    assert reward([chat, chat], ["The answer is 5.", "The answer is 6."], answer=["5", "5"]) == [1.0, 0.0]
    # the gold answer is each row's own, not looked up by prompt: one prompt with two golds scores apart
    assert reward([chat, chat], ["The answer is 5.", "The answer is 5."], answer=["5", 6]) == [1.0, 0.0]
    with pytest.raises(RefereeError, match="no column .answer.*name it with answer_column"):
        reward([chat], ["5"], solution=["5"])


def test_a_user_grpo_trainer_is_rewarded_by_a_referee_judge_through_its_cache(tiny_model_path, tmp_path):
    """A grading judge on the tiny model (probability verdicts: the expected grade on the 1-10 scale)."""
    cache = tmp_path / "judge.sqlite"
    reward = reward_function(f"judge:hf:{tiny_model_path}", cache=cache)
    _user_grpo(tiny_model_path, tmp_path, reward, steps=1)
    assert reward.scored >= 4 and reward.invalid == 0
    chat = [{"role": "user", "content": "What is 2 + 3?"}]
    first = reward([chat, chat], ["5", "six"])
    assert all(1.0 <= r <= 10.0 for r in first)
    assert cache.exists() and reward([chat, chat], ["5", "six"]) == first


class EveryOtherUnreadable(PointwiseVerifier):
    """A scorer whose every second output cannot be read (as a generative judge's can be)."""

    name = "flaky"

    def __init__(self):
        self.calls = 0

    def score_many(self, prompts, responses):
        self.calls += len(responses)
        return [Score(None, valid=False) if i % 2 else Score(float(len(r))) for i, r in enumerate(responses)]


def test_unreadable_scores_reach_trl_as_none_and_are_counted_never_as_numbers(tiny_model_path, tmp_path):
    reward = reward_function("python:test_integration_trl:EveryOtherUnreadable", name="flaky")
    assert reward.__name__ == "flaky"
    history = _user_grpo(tiny_model_path, tmp_path, reward, steps=2)
    assert reward.invalid == reward.scored // 2 and reward.scored >= 8
    rates = [h["referee/invalid_rate"] for h in history if "referee/invalid_rate" in h]
    assert rates and all(r == 0.5 for r in rates)
    assert reward(["q", "q"], ["abc", "abcd"]) == [3.0, None]


def test_a_pairwise_judge_is_refused_as_a_reward_function():
    import referee

    with pytest.raises(RefereeError, match="unknown verifier 'baseline:longer'; accepted forms: judge:"):
        reward_function("baseline:longer")
    with pytest.raises(RefereeError, match="does not score single answers"):
        reward_function(referee.supervisor("baseline:longer"))


def test_preference_records_become_a_trl_dataset_and_come_back_as_pairs(tmp_path):
    records = [{"id": "a", "prompt": "Name a prime.", "chosen": "7", "rejected": "8", "margin": 0.4},
               {"id": "b", "prompt": [{"role": "user", "content": "Say hi."}], "chosen": "Hi!", "rejected": "No."}]
    dataset = to_dpo_dataset(records, keep=("id",))
    assert dataset.column_names == ["prompt", "chosen", "rejected", "id"]
    assert dataset[0]["prompt"] == [{"role": "user", "content": "Name a prime."}]
    assert dataset[1]["chosen"] == [{"role": "assistant", "content": "Hi!"}]
    back = from_dpo_dataset(dataset)
    assert [(r["id"], r["chosen"], r["rejected"]) for r in back] == [("a", "7", "8"), ("b", "Hi!", "No.")]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in back))
    pairs = load_pairs(path)  # what `referee judge --pairs` reads: chosen is answer A
    assert [(p.id, p.answer_a, p.answer_b, p.label) for p in pairs] == [("a", "7", "8", "A"), ("b", "Hi!", "No.", "A")]
    with pytest.raises(RefereeError, match="preference record 1: missing field 'margin'"):
        to_dpo_dataset(records[1:], keep=("margin",))
    with pytest.raises(RefereeError, match="row 1: missing field 'rejected'"):
        from_dpo_dataset([{"prompt": "x", "chosen": "y"}])
