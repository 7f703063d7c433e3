"""``protocol: debate`` and ``protocol: consultancy``: oversight across an information gap (Khan et al. 2024;
Anthropic's debate experiments). Those who argue read a passage; the judge does not, and must pick which of
two answers to a question about it is correct.

    items  = the split's first `limit` items in a seeded draw (the loader's seeded coin decides which answer
             is shown first; its dropped lines are counted)
    sides  = debate: debater_a defends answer A, debater_b answer B;
             (best_of N: each turn is the most persuasive of N drawn, by the judge's P(own answer))
             consultancy: the consultant defends the right answer on half the items (seeded hash of the id)
    transcripts = the arguers speak for `rounds` rounds                              (stage "transcripts")
             debate: simultaneous (a round's turns unseen by each other) or sequential (each turn sees all
             earlier ones); every quote checked against the passage, quote statistics per turn
    for reader in baselines + [debate | consultancy]:                                 (stage "judge-READER")
        verdicts[reader] = the judge picks A or B from the question and
             blind: nothing more | expert: the passage | debate, consultancy: the arguments, quotes marked
             (judge_layout per_answer: a judge scoring each answer alone reads it with its own side's turns)
    (refine: each draft is reviewed by a critic against the passage and written again)
    if train_judge:                                                        (stages "transcripts-train",
        the arguers argue `train_items` items of the train split too            "judge-trained-READER")
        trained[debate | consultancy] = SFT of the judge on (what that reader sees -> the right answer)
        trained[blind] = SFT of the judge on (the question and answers alone -> the right answer)
        (route reward_model: a Bradley-Terry head instead, the right answer over the wrong one)
        (train_judge.expert: trained[expert] = SFT of the judge on (the passage too -> the right answer))
        verdicts["READER (trained judge)"] = the trained judge of each reads the test items
    (an arguer spec `quoter`: the model fine-tuned to argue as an evidence debater does, stage
     "quoter-training" on the teacher's train-split turns, stages "transcripts-quoter-PROTOCOL")
    if train_arguers:                                                      (stages "arguer-training",
        DPO of the arguers' model on their train-split best-of-N turns          "transcripts-trained-arguers")
        verdicts["PROTOCOL (trained arguers)"] = the judge reads the trained arguers on the test items
    metrics = accuracy with a 95% interval per reader and per shown order; debate: how often the debater
             of the right and of the wrong answer wins; consultancy: accuracy with a right and with a wrong
             consultant apart; quote statistics per arguer and per side; ties and invalid verdicts; with
             trained judges, the trained debate (consultancy) judge's accuracy minus the trained blind one's
             on the same items (paired bootstrap): does reading the arguments beat guessing once both learn?

Every reader is the same judge on the same items in the same run, so blind and expert bound the protocol's
number. Both protocols share this file: they differ only in who argues (``referee.debate.debaters``).
The training steps are in ``protocols.debate_training``, the arithmetic of the metrics in
``referee.debate.metrics``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import Field, field_validator, model_validator

from referee.config import MAX_PROMPTS, MAX_RESAMPLES, MAX_ROUNDS, ProtocolConfig, SamplingConfig, StrictModel
from referee.debate.evidence import EvidenceWriter, is_evidence, unknown_kind
from referee.debate.debaters import opening_transcripts, reviser, schedule_for, speakers_for, transcript_record
from referee.debate.judging import ARGUING_ROLES, accuracy_summary, judge_items, preference
# p_of_answer and exported_turns are not used here: debate_tournament.py and cli/debate.py import them from here
from referee.debate.metrics import (best_of_summary, consultant_halves, headline, p_of_answer, persuasiveness,
                                    quote_summary, refine_summary, win_rates)
from referee.dialogue import Transcript, run_dialogue
from referee.draws import seeded_unit
from referee.errors import RefereeError
from referee.judges.build import JudgeConfig
from referee.protocols import Result, register, stages
from referee.protocols.debate_training import (EvidenceExpert, QuoterTraining, TrainedArguers, TrainedJudges,
                                               exported_turns, quoter_rows, train_arguers, train_evidence_expert,
                                               train_judges)
from referee.runs import Run
from referee.stats import paired_diff
from referee.supervisors import build_judge, judge_identity
from referee.tasks.passages import PassageItem, load_passage_items, split_items

BASELINES = ("blind", "expert")
TRAINED = "(trained judge)"
TRAINED_ARGUERS = "(trained arguers)"
ARGUER_FIELDS = {"debate": ("debater",), "consultancy": ("consultant",)}
QUOTER = "quoter"  # the arguer spec of the run's trained quoter (``QuoterTraining``)
EXPERT_EVIDENCE = "evidence:expert"  # quotes by the run's trained evidence expert (``EvidenceExpert``)
# what debate, consultancy and the tournament share (a tournament's games and a quoter's teacher are built from it)
SHARED = ("items", "split", "shares", "limit", "judge", "judge_config", "rounds", "word_limit", "sampling",
          "bootstrap", "seed", "out", "train_items", "quoter", "evidence_expert", "judge_layout")


# ---- config ----------------------------------------------------------------------------------------
class Refine(StrictModel):
    critic: str | None = None  # the critic's model spec; default: the (first) arguer's own model


class PassageProtocolConfig(ProtocolConfig):
    """What debate and consultancy share: the items, the judge, the rounds and the baselines."""

    items: str  # CosmosQA or generic passage items (JSONL; referee.tasks.passages)
    split: Literal["train", "validation", "test"] = "test"
    shares: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train, validation, test (a seeded hash of the id)
    limit: int | None = Field(None, ge=1, le=MAX_PROMPTS)  # the first N of the split in a seeded draw
    judge: str = "embedded"
    judge_config: JudgeConfig = JudgeConfig(template="debate")  # no template given: "debate"
    judge_layout: Literal["together", "per_answer"] = "together"  # per_answer: for scoring judges (debate.judging)
    rounds: int = Field(1, ge=1, le=MAX_ROUNDS)
    word_limit: int = Field(120, ge=1)  # per turn; a longer turn is cut there
    sampling: SamplingConfig = SamplingConfig(temperature=0.7, max_new_tokens=256)  # the arguers'
    baselines: list[Literal["blind", "expert"]] = list(BASELINES)  # the same judge without the arguments
    bootstrap: int = Field(1000, ge=1, le=MAX_RESAMPLES)
    train_items: int = Field(200, ge=1, le=MAX_PROMPTS)  # train-split items argued over for any training below
    train_judge: TrainedJudges | None = None  # also train the judge (arguments, and blind) on the train split
    train_arguers: TrainedArguers | None = None  # also DPO the arguers on their train-split best-of-N turns
    best_of: int = Field(1, ge=1, le=64)  # each turn: draw N, keep the one the judge finds most persuasive
    refine: Refine | None = None  # each draft is critiqued, then written again
    quoter: QuoterTraining = QuoterTraining()  # what the arguer spec "quoter" is trained as (only when named)
    evidence_expert: EvidenceExpert = EvidenceExpert()  # what "evidence:expert" quotes by (only when named)

    @field_validator("judge_config")
    @classmethod
    def _pairwise_debate_judge(cls, value: JudgeConfig) -> JudgeConfig:
        if value.mode != "pairwise":
            raise ValueError(f"the judge picks one of two answers: mode should be pairwise, got {value.mode!r}")
        if value.reference != "none":
            raise ValueError(f"the judge has no reference answer: reference should be none, got {value.reference!r}")
        return value if value.template else value.model_copy(update={"template": "debate"})

    @field_validator("baselines")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        if len(set(value)) < len(value):
            raise ValueError(f"each baseline at most once, got {value}")
        return value

    @model_validator(mode="after")
    def _evidence_debaters_quote_by_rule(self):
        for spec in (getattr(self, f, None) for f in ("debater", "debater_b", "consultant")):
            if not spec or not is_evidence(spec):
                continue
            if problem := unknown_kind(spec):
                raise ValueError(problem)
            if self.train_arguers is not None or self.refine is not None:
                raise ValueError(f"{spec!r} quotes by a fixed rule: train_arguers and refine need a language model")
        return self

    @model_validator(mode="after")
    def _the_expert_learns_where_nobody_is_judged_or_taught(self):
        arguers = [getattr(self, f, None) for f in ("debater", "debater_b", "consultant")]
        arguers += [p.model for p in getattr(self, "players", [])]  # a tournament's
        if QUOTER in arguers:
            arguers.append(self.quoter.teacher)
        if EXPERT_EVIDENCE not in arguers:
            return self
        split = self.evidence_expert.split
        if split == self.split:
            raise ValueError(f"{EXPERT_EVIDENCE}: its reward model learns on evidence_expert.split, which should "
                             f"not be the evaluated split ({split!r})")
        if split == "train" and (self.train_judge is not None or QUOTER in arguers):
            raise ValueError(f"{EXPERT_EVIDENCE}: evidence_expert.split 'train' holds the items the judges or the "
                             "quoter learn from, where its evidence would be its own training fit; use validation")
        return self

    @model_validator(mode="after")
    def _judges_train_from_a_language_model(self):
        if self.train_judge is not None and self.train_judge.base is None and self.judge.startswith("rm:"):
            raise ValueError(f"train_judge: the judge {self.judge!r} is a trained reward model, not a model to train "
                             "from; set train_judge.base (e.g. embedded)")
        return self

    @model_validator(mode="after")
    def _per_answer_is_for_judges_that_score_each_answer(self):
        if self.judge_layout != "together" and self.train_judge is not None \
                and self.train_judge.route != "reward_model":
            raise ValueError("judge_layout per_answer: train_judge route sft trains a pairwise chat judge, which "
                             "reads the arguments together; use route reward_model")
        if self.judge_layout != "together" and self.train_judge is None and not self.judge.startswith("rm:"):
            raise ValueError(f"judge_layout per_answer: no judge here scores each answer alone (judge {self.judge!r},"
                             " no train_judge); use a reward model (rm:FOLDER) or train_judge route reward_model")
        return self

    @model_validator(mode="after")
    def _arguers_learn_from_best_of_n(self):
        if self.train_arguers is not None and self.best_of < 2:
            raise ValueError(f"{self.protocol}: train_arguers learns from best-of-N turns; set best_of to 2 or more")
        return self


class DebateConfig(PassageProtocolConfig):
    protocol: str = "debate"
    debater: str = "embedded"  # both debaters (self-play) ...
    debater_b: str | None = None  # ... unless debater_b names another model for debater_b
    best_of_b: int | None = Field(None, ge=1, le=64)  # debater_b's N, when it differs from best_of
    style: Literal["simultaneous", "sequential"] = "simultaneous"

    @model_validator(mode="after")
    def _arguers_learn_in_self_play(self):
        if self.train_arguers is not None and self.debater_b not in (None, self.debater):
            raise ValueError("debate: train_arguers trains one model in self-play; leave debater_b out")
        return self


class ConsultancyConfig(PassageProtocolConfig):
    protocol: str = "consultancy"
    consultant: str = "embedded"


# ---- the protocols ---------------------------------------------------------------------------------
@register("debate", DebateConfig, "two debaters argue over a passage the judge cannot read; blind and expert "
          "judges beside")
def run_debate(cfg: DebateConfig, run: Run) -> Result:
    return run_arguing_protocol("debate", cfg, run)


@register("consultancy", ConsultancyConfig, "one consultant argues (right on half the items) to a judge who "
          "cannot read the passage; blind and expert judges beside")
def run_consultancy(cfg: ConsultancyConfig, run: Run) -> Result:
    return run_arguing_protocol("consultancy", cfg, run)


def run_arguing_protocol(protocol: str, cfg: PassageProtocolConfig, run: Run) -> Result:
    """The steps of the module docstring, one line each."""
    items, dropped = load_items(cfg)                                                      # items
    transcripts = argue(protocol, cfg, run, items)                                        # sides, transcripts
    judge = build_judge(cfg.judge, cfg.judge_config, run.model)
    verdicts = {reader: read(reader, cfg, run, judge, items, transcripts)                # every reader
                for reader in [*cfg.baselines, protocol]}
    if cfg.train_judge is not None:                                                       # trained judges
        train_items, argued = argue_train_split(protocol, cfg, run)
        for reader, (trained, identity) in train_judges(protocol, cfg, run, train_items, argued).items():
            verdicts[f"{reader} {TRAINED}"] = read(reader, cfg, run, trained, items, transcripts, identity)
    if cfg.train_arguers is not None:                                                     # trained arguers
        spec = train_arguers(protocol, cfg, run, argue_train_split(protocol, cfg, run)[1],
                             base=arguer_spec(run, cfg, arguer_specs(protocol, cfg)[0]))
        trained_cfg = cfg.model_copy(update=dict.fromkeys(ARGUER_FIELDS[protocol], spec))
        said = argue(protocol, trained_cfg, run, items, stage="transcripts-trained-arguers")
        verdicts[f"{protocol} {TRAINED_ARGUERS}"] = read(protocol, trained_cfg, run, judge, items, said,
                                                          stage=f"judge-{protocol}-trained-arguers")
    metrics = measure(protocol, cfg, items, dropped, transcripts, verdicts)              # metrics
    run.save_metrics({protocol: metrics})
    return Result(metrics, headline(metrics["readers"]),
                  f"{protocol} on {len(items)} {cfg.split} items of {cfg.items}: judge accuracy per reader, "
                  f"95% intervals")


# ---- items -----------------------------------------------------------------------------------------
def load_items(cfg: PassageProtocolConfig, split: str | None = None, limit: int | None = None
               ) -> tuple[list[PassageItem], dict]:
    """The configured split (or ``split``), cut to ``limit`` items by a seeded draw (so a smaller limit
    takes a subset of a larger one), in file order; and the loader's dropped-line counts."""
    split, limit = split or cfg.split, limit if split else cfg.limit
    loaded = load_passage_items(cfg.items, cfg.seed)
    part = split_items(loaded, cfg.seed, cfg.shares)[split]
    if limit is not None:
        kept = set(sorted((it.id for it in part), key=lambda i: seeded_unit(cfg.seed, "limit", i))[:limit])
        part = [it for it in part if it.id in kept]
    if not part:
        sizes = ", ".join(f"{name} {len(v)}" for name, v in split_items(loaded, cfg.seed, cfg.shares).items())
        raise RefereeError(f"{cfg.items}: no items in split '{split}' ({sizes} of {len(loaded)} items)")
    return part, dict(loaded.dropped)


# ---- transcripts -----------------------------------------------------------------------------------
def argue(protocol: str, cfg: PassageProtocolConfig, run: Run, items: list[PassageItem],
          stage: str = "transcripts") -> list[dict]:
    """The arguers' transcripts, one record per item (``debaters.transcript_record``: turns, sides, quote
    statistics per turn). Stage ``transcripts`` (``transcripts-train`` for the judges' training items)."""
    models = [arguer_model(run, cfg, arguer_spec(run, cfg, spec)) for spec in arguer_specs(protocol, cfg)]
    speakers = speakers_for(protocol, models, cfg.sampling.to_sampling(cfg.seed), cfg.word_limit)
    best_of = arguer_best_of(protocol, cfg)
    if max(best_of) > 1:  # Khan et al.'s best-of-N: the judge's probability of the arguer's own answer ranks
        prefer = preference(build_judge(cfg.judge, cfg.judge_config, run.model), items, protocol, cfg.judge_layout)
        speakers = [replace(s, best_of=n, prefer=prefer if n > 1 else None) for s, n in zip(speakers, best_of)]
    critic = run.model(cfg.refine.critic or arguer_spec(run, cfg, arguer_specs(protocol, cfg)[0])) \
        if cfg.refine is not None else None
    if critic is not None:  # critique, then refine: every draft (each best-of-N candidate too) is written again
        revise = reviser(critic, cfg.sampling.to_sampling(cfg.seed), cfg.rounds, cfg.word_limit, speakers)
        speakers = [replace(s, revise=revise) for s in speakers]
    schedule = schedule_for(protocol, cfg.rounds, getattr(cfg, "style", "sequential"))
    openings = opening_transcripts(protocol, items, cfg.seed)

    def compute() -> list[dict]:
        return [transcript_record(t) for t in run_dialogue(openings, schedule, speakers, desc=protocol)]

    inputs = {"protocol": protocol, "openings": [t.to_record() for t in openings],  # the items' texts and sides
              "schedule": schedule, "speakers": [_speaker_settings(s) for s in speakers],
              **({"best_of": best_of, "preference": judge_identity(cfg.judge, cfg.judge_config, run.model)}
                 if max(best_of) > 1 else {}), **({"critic": critic} if critic is not None else {}),
              **({"layout": cfg.judge_layout} if max(best_of) > 1 and cfg.judge_layout != "together" else {})}
    return run.run_stage(stage, inputs, compute)


def argue_train_split(protocol: str, cfg: PassageProtocolConfig, run: Run) -> tuple[list[PassageItem], list[dict]]:
    """The train split's first ``train_items`` items and the arguers' transcripts over them (stage
    ``transcripts-train``): what the trained judges and arguers learn from."""
    items, _ = load_items(cfg, "train", cfg.train_items)
    return items, argue(protocol, cfg, run, items, stage="transcripts-train")


def arguer_spec(run: Run, cfg: PassageProtocolConfig, spec: str) -> str:
    """The model an arguer spec names: ``quoter`` is this run's trained quoter (trained on first use)."""
    return train_quoter(cfg, run) if spec == QUOTER else spec


def train_quoter(cfg: PassageProtocolConfig, run: Run) -> str:
    """The quoter's checkpoint spec (``QuoterTraining``): its teacher argues the train split's first
    ``train_items`` items in debate and in consultancy, and each turn, after the prompt a language-model
    arguer would have been shown, is one demonstration (stage ``quoter-training``)."""
    items, _ = load_items(cfg, "train", cfg.train_items)
    shared = {k: getattr(cfg, k) for k in SHARED}
    rows, taught = [], {}
    for protocol, config, extra in (("debate", DebateConfig, {"style": getattr(cfg, "style", "simultaneous")}),
                                    ("consultancy", ConsultancyConfig, {})):
        teacher = config.model_validate({**shared, **extra, "protocol": protocol, "baselines": [],
                                         ARGUER_FIELDS[protocol][0]: cfg.quoter.teacher})
        made = quoter_rows(protocol, teacher, argue(protocol, teacher, run, items, f"transcripts-quoter-{protocol}"))
        rows, taught[protocol] = rows + made, len(made)
    report = {"teacher": cfg.quoter.teacher, "items": len(items), "demonstrations": taught}
    return stages.sft(run, "quoter-training", name="quoter", base=cfg.quoter.base, data=rows,
                      settings=cfg.quoter.sft, report=report, report_as="quoter_training")


def arguer_model(run: Run, cfg: PassageProtocolConfig, spec: str):
    """The model behind an arguer spec: a language model, or an evidence debater (``evidence:random``,
    ``evidence:overlap``, ``evidence:expert``: ``referee.debate.evidence``), which the run caches and names
    like any model; the expert's reward model is trained on first use (stage ``evidence-expert-training``)."""
    if not is_evidence(spec):
        return run.model(spec)
    if spec not in run.models:
        expert = {}
        if spec == EXPERT_EVIDENCE:
            items, _ = load_items(cfg, cfg.evidence_expert.split, cfg.evidence_expert.items)
            rm, key = train_evidence_expert(cfg, run, items)
            expert = {"expert": rm, "expert_key": key}
        run.add_model(EvidenceWriter(spec, **expert))
    return run.models[spec]


def arguer_specs(protocol: str, cfg: PassageProtocolConfig) -> list[str]:
    """The model spec of each arguing role, in role order."""
    if protocol == "debate":
        return [cfg.debater, cfg.debater_b or cfg.debater]
    return [cfg.consultant]


def arguer_best_of(protocol: str, cfg: PassageProtocolConfig) -> list[int]:
    """The N of best-of-N of each arguing role, in role order."""
    if protocol == "debate":
        return [cfg.best_of, cfg.best_of_b or cfg.best_of]
    return [cfg.best_of]


def _speaker_settings(speaker) -> dict:
    """What a speaker's turns depend on (its model by fingerprint; a Speaker holds a model, so not asdict)."""
    return {"name": speaker.name, "role": speaker.role, "model": speaker.model, "system": speaker.system,
            "instruction": speaker.instruction, "later": speaker.later, "defends": speaker.defends,
            "opposes": speaker.opposes, "sampling": speaker.sampling, "word_limit": speaker.word_limit}


# ---- verdicts --------------------------------------------------------------------------------------
def read(reader: str, cfg: PassageProtocolConfig, run: Run, judge, items: list[PassageItem],
         transcripts: list[dict], trained: dict | None = None, stage: str | None = None) -> list[dict]:
    """The judge's verdict on every item as ``reader`` (``debate.judging.judge_items``, in ``cfg.judge_layout``),
    with each record's sides where there are arguers. Stage ``judge-READER`` (``judge-trained-READER`` for the
    judge trained as that reader, whose identity is ``trained``), or ``stage``."""
    arguing = reader in ARGUING_ROLES

    def compute() -> list[dict]:
        if not arguing:
            return judge_items(judge, items, reader)
        by_id = {r["id"]: Transcript.from_record(r, f"transcripts: item {r['id']}") for r in transcripts}
        records = judge_items(judge, items, reader, by_id, cfg.judge_layout)
        for rec in records:
            rec["sides"] = by_id[rec["id"]].meta["sides"]
            if reader == "consultancy":
                rec["consultant_defends_correct"] = rec["sides"]["consultant"] == rec["correct_answer"]
        return records

    shown = [replace(it, where="") for it in items]  # what the judge reads, not where the file keeps it
    identity = trained if trained is not None else judge_identity(cfg.judge, cfg.judge_config, run.model)
    inputs = {"judge": identity, "reader": reader, "items": shown, **({"transcripts": transcripts} if arguing else {}),
              **({"layout": cfg.judge_layout} if arguing and cfg.judge_layout != "together" else {})}
    return run.run_stage(stage or (f"judge-trained-{reader}" if trained else f"judge-{reader}"), inputs, compute)


# ---- metrics ---------------------------------------------------------------------------------------
def measure(protocol: str, cfg: PassageProtocolConfig, items: list[PassageItem], dropped: dict,
            transcripts: list[dict], verdicts: dict[str, list[dict]]) -> dict:
    """All the protocol measured (metrics.json under its name)."""
    kw = {"n_boot": cfg.bootstrap, "seed": cfg.seed}
    readers = {reader: accuracy_summary(records, **kw) for reader, records in verdicts.items()}
    out = {"protocol": protocol, "items": len(items), "split": cfg.split, "dropped_by_loader": dropped,
           "rounds": cfg.rounds, "word_limit": cfg.word_limit, "arguers": arguer_specs(protocol, cfg),
           "judge": cfg.judge, "readers": readers,
           "ties": {r: s["ties"] for r, s in readers.items()},
           "invalid": {r: s["invalid"] for r, s in readers.items()},
           "quotes": quote_summary(transcripts),
           "persuasiveness": {reader: persuasiveness(records, **kw) for reader, records in verdicts.items()
                              if reader.startswith(protocol)},
           "best_of": best_of_summary(transcripts, cfg.best_of, getattr(cfg, "best_of_b", None)),
           **({"refine": refine_summary(transcripts)} if cfg.refine else {})}
    if protocol == "debate":
        out["style"] = cfg.style
        out["win_rates"] = win_rates(verdicts["debate"], **kw)
    else:
        out["consultant_halves"] = consultant_halves(verdicts["consultancy"], **kw)
    blind = f"blind {TRAINED}"
    for reader, key in ((protocol, "trained_minus_blind"), ("expert", "trained_expert_minus_blind")):
        if f"{reader} {TRAINED}" in verdicts and blind in verdicts:
            out[key] = paired_diff([float(r["correct"]) for r in verdicts[f"{reader} {TRAINED}"]],
                                   [float(r["correct"]) for r in verdicts[blind]], **kw).to_dict()
    return out
