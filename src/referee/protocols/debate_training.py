"""The training steps of ``protocol: debate`` and ``protocol: consultancy`` (``protocols.debate``): judges
trained on the train split's arguments (and blind, and as experts), arguers trained by DPO on their own
best-of-N turns, and the quoter's demonstrations (an evidence debater's turns), all from transcripts written
over the train split, which the protocol hands in; and the reward model ``evidence:expert`` quotes by, on the
items of ``evidence_expert.split`` (validation by default). Nothing here argues or reads the evaluated items.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from referee.config import MAX_PROMPTS, StrictModel
from referee.debate.debaters import speakers_for
from referee.debate.evidence import unknown_kind
from referee.debate.judging import ARGUING_ROLES, judge_pair
from referee.dialogue import Transcript
from referee.errors import RefereeError
from referee.protocols import stages
from referee.protocols.judge_training import (JudgeTrainSettings, RewardModelSettings, pair_reward_model,
                                              reward_model_judge, train_judge)
from referee.runs import Run, fingerprint
from referee.supervisors import build_judge, build_verifier, judge_identity
from referee.tasks.passages import PassageItem
from referee.trainers import TrainSettings


class TrainedJudges(StrictModel):
    """Judges trained on the train split's items (never the evaluated split): one reading the arguments,
    one blind (Khan et al.'s comparison once both judges have learnt the task), and with ``expert`` one
    reading the passage: the ceiling, which shows whether the judge can learn the task at all. Two routes:
    ``sft`` fine-tunes the judge's chat model to write the right verdict (``train``); ``reward_model`` puts a
    Bradley-Terry head on it, scoring what the reader sees followed by each answer (``reward_model``)."""

    route: Literal["sft", "reward_model"] = "sft"
    base: str | None = None  # the model they are trained from; default the judge (required when it is rm:FOLDER)
    train: JudgeTrainSettings = JudgeTrainSettings(template="debate")
    reward_model: RewardModelSettings = RewardModelSettings()
    expert: bool = False


class TrainedArguers(StrictModel):
    """The arguers trained by DPO on their own best-of-N turns over the train split's items: the candidate
    the judge found most persuasive over the least, per turn (``debate.export.preference_rows``)."""

    dpo: TrainSettings = TrainSettings(learning_rate=5e-5, epochs=1, batch_size=4, max_length=768)
    beta: float = Field(0.1, gt=0)


class QuoterTraining(StrictModel):
    """The arguer spec ``quoter``: ``base`` fine-tuned (SFT) on the turns an evidence debater (``teacher``)
    writes over the train split's first ``train_items`` items, in debate and in consultancy, each after the
    prompt a language-model arguer is shown at that point: a model that learns to quote the passage sentence
    that best supports its side, and can then be drawn best-of-N (issue 36's trained debater)."""

    base: str = "embedded"
    teacher: str = "evidence:overlap"
    sft: TrainSettings = TrainSettings(learning_rate=2e-4, epochs=2, batch_size=8, max_length=1024)

    @field_validator("teacher")
    @classmethod
    def _an_evidence_debater(cls, value: str) -> str:
        if problem := unknown_kind(value):
            raise ValueError(f"the teacher is an evidence debater; {problem}")
        return value


class EvidenceExpert(StrictModel):
    """What the arguer spec ``evidence:expert`` quotes by: a reward model on ``base`` trained as the expert
    reader (the passage and question, the right answer over the wrong; the reward-model judge route) on the
    first ``items`` items of ``split``, then shown one sentence at a time (``referee.debate.evidence``). The
    split is one nobody is judged on, and by default not the judges' training split either, so the debater's
    evidence is as good on the judges' training items as on the evaluated ones."""

    base: str = "embedded"
    split: Literal["train", "validation", "test"] = "validation"
    items: int = Field(250, ge=1, le=MAX_PROMPTS)
    reward_model: RewardModelSettings = RewardModelSettings()


if TYPE_CHECKING:
    from referee.protocols.debate import PassageProtocolConfig


def train_judges(protocol: str, cfg: PassageProtocolConfig, run: Run, items: list[PassageItem],
                 transcripts: list[dict], tag: str = "") -> dict[str, tuple]:
    """{reader: (trained judge, its identity for the stage key)}: the judge trained on the train split's
    ``items`` (argued in ``transcripts``) as the arguments' reader and as the blind reader (and the expert
    one), the right answer as the target: route sft, each pair in both orders as a chat ending in the
    verdict; route reward_model, each pair as the right answer over the wrong one (``train_judge``).
    ``tag`` names the arguments' reader's stage apart (a tournament trains one per player); blind and
    expert read no arguments, so theirs are shared. How many training chats were cut to fit the prompt
    goes to metrics.json (``judge_training_READER``)."""
    by_id = {r["id"]: Transcript.from_record(r, f"transcripts-train: item {r['id']}") for r in transcripts}
    settings, base = cfg.train_judge.train, cfg.train_judge.base or cfg.judge
    judges = {}
    for reader in (protocol, "blind", *(["expert"] if cfg.train_judge.expert else [])):
        pairs = [judge_pair(it, reader, by_id[str(it.id)] if reader == protocol else None, cfg.judge_layout)
                 for it in items]
        named = f"{reader}{tag}" if reader == protocol else reader
        if cfg.train_judge.route == "reward_model":
            judge, key = reward_model_judge(run, base, pairs, f"rm-training-{named}",
                                            cfg.train_judge.reward_model, cfg.seed)
            judges[reader] = (judge, {"reward_model": key})
            continue

        def train(out, pairs=pairs, named=named) -> None:
            _, report = train_judge(base, pairs, out, settings, run.model)
            run.save_metrics({f"judge_training_{named}": {k: report[k] for k in ("examples", "max_prompt_tokens")}})

        folder = stages.checkpoint(run, f"judge-training-{named}", name=f"judge_{named}", base=base,
                                   inputs={"pairs": pairs, "settings": settings}, train=train,
                                   resumable=True)
        spec = f"hf:{folder}"
        judges[reader] = (build_judge(spec, cfg.judge_config, run.model),
                          judge_identity(spec, cfg.judge_config, run.model))
    return judges


def train_arguers(protocol: str, cfg: PassageProtocolConfig, run: Run, transcripts: list[dict], base: str) -> str:
    """The arguers' model ``base`` after DPO on the best-of-N turns of the train split's ``transcripts``
    (self-play: one model argues every side, so one model learns from every side's turns; the config
    refuses anything else). Returns its checkpoint spec."""
    rows, skipped = exported_turns(protocol, cfg, transcripts, "preference", "transcripts-train")
    if not rows:
        raise RefereeError(f"{protocol}: train_arguers found no turn whose candidates the judge scored apart "
                           f"({skipped['tied']} tied, {skipped['unscored']} unscored)")
    pairs = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows]
    return stages.dpo(run, "arguer-training", name="arguer_dpo", base=base, pairs=pairs,
                      settings=cfg.train_arguers.dpo, beta=cfg.train_arguers.beta, report={"skipped": skipped},
                      report_as="arguer_training")


def quoter_rows(protocol: str, cfg: PassageProtocolConfig, records: list[dict]) -> list[dict]:
    """Every non-empty turn of a teacher's train-split transcripts as one SFT demonstration: the chat a
    language-model arguer is shown at that point in the transcript, then the teacher's turn as its reply."""
    from referee.debate.export import as_transcripts, turn_prompts

    speakers, simultaneous = _prompting_speakers(protocol, cfg)
    rows = []
    for t in as_transcripts(records, f"transcripts-quoter-{protocol}"):
        for turn, prompt in zip(t.turns, turn_prompts(t, speakers, cfg.rounds, simultaneous)):
            if prompt is not None and turn.text.strip():
                rows.append({"messages": prompt + [{"role": "assistant", "content": turn.text.strip()}]})
    return rows


def _prompting_speakers(protocol: str, cfg: PassageProtocolConfig) -> tuple[dict, bool]:
    """The language-model arguers of ``protocol`` by name, for their prompts only (no model is loaded), and
    whether a round's turns are simultaneous."""
    speakers = {s.name: s for s in speakers_for(protocol, [None] * len(ARGUING_ROLES[protocol]),
                                                cfg.sampling.to_sampling(cfg.seed), cfg.word_limit)}
    return speakers, protocol == "debate" and getattr(cfg, "style", "") == "simultaneous"


def exported_turns(protocol: str, cfg: PassageProtocolConfig, records: list[dict], kind: str, where: str
                   ) -> tuple[list[dict], dict]:
    """A run's best-of-N turns as TRL rows (``debate.export``, ``kind`` preference or reward), with the counts
    of turns left out. The arguers are rebuilt from the config for their prompts only: no model is loaded."""
    from referee.debate.export import as_transcripts, preference_rows, reward_rows

    transcripts = as_transcripts(records, where)
    speakers, simultaneous = _prompting_speakers(protocol, cfg)
    if kind == "reward":
        return reward_rows(transcripts, speakers, cfg.rounds, simultaneous), {}
    return preference_rows(transcripts, speakers, cfg.rounds, simultaneous)


def train_evidence_expert(cfg: PassageProtocolConfig, run: Run, items: list[PassageItem]) -> tuple:
    """(the reward model ``evidence:expert`` quotes by, the fingerprint of its files): the expert
    reader's pairs of ``items`` (``cfg.evidence_expert``'s split), trained as stage ``evidence-expert-training``."""
    settings = cfg.evidence_expert
    folder, _ = pair_reward_model(run, settings.base, [judge_pair(it, "expert") for it in items],
                                  "evidence-expert-training", settings.reward_model, cfg.seed)
    spec = f"rm:{folder}"  # keyed by its files: a model trained again from the same inputs is another expert
    return build_verifier(spec), fingerprint(judge_identity(spec, cfg.judge_config, run.model))
