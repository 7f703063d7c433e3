"""Trained judges, each evaluated on a data set it never saw (leave one set out).

``train_judge`` is ``referee train judge``: a chat model fine-tuned (LoRA by default) to give the
project's own verdict marker after the project's own judge prompt, every pair in both orders. The
protocol ``judge_training`` is the honest test of it. For each held-out set H (a fold):

1. **Data.** The labelled pairs of every other set and the extra training files (HH-RLHF, ...), drawn
   down to ``max_train_pairs`` by a seeded hash. A training pair that is also in H (same question and
   answers, either order) stops the run with the count. ``train.augment.share`` of the training pairs
   are the audit's attacks with the right verdict (``audit.augment``, in other words than the audit's).
2. **The judge.** SFT of ``model`` on those pairs (``train_judge``): a checkpoint per fold.
3. **The reward model** (``reward_model:``), the other route: a Bradley-Terry head on the frozen
   backbone (or with LoRA, ``reward_model.lora_r``), trained on the same pairs (ties and attacked copies
   left out: no tie class).
4. **Evaluation on H**, the same pairs for every judge: the trained judge, the untrained model with the
   same prompt, always-longer and the reward model. Probability verdicts in both orders (swap
   ``average``) give agreement (S2), accuracy (judge ties are misses), position consistency and the
   invalid rate; the audit (verbosity, assertiveness, injection, self: the base model's own answers
   against the gold winners) runs on the same pairs (or the first ``audit_limit``); generative verdicts on the first
   ``generative_limit`` pairs give the generative invalid rate. Each judge's accuracy minus
   always-longer's comes with a paired bootstrap interval. With ``eval.calibration`` the trained judge
   is also read with its position prior divided out (the same calls, reweighted).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path
from typing import Literal

from pydantic import Field

from referee import progress
from referee.audit.agreement import pairwise_agreement
from referee.audit.augment import KINDS, robustness_pairs
from referee.audit.biases import position_bias
from referee.audit.runner import CHECKS, run_audit
from referee.config import ProtocolConfig, StrictModel
from referee.errors import RefereeError
from referee.io import write_json
from referee.judges.build import JUDGE_FILE, JudgeConfig
from referee.judges.targets import TIE_POLICIES, grading_examples, pairwise_examples
from referee.protocols import Result, register, stages
from referee.runs import Run, fingerprint
from referee.stats import Estimate, jsonable, paired_diff, rate
from referee.supervisors import baseline_judge, llm_judge, rm_judge
from referee.tasks.pairs import Pair, load_pairs, shared_pairs
from referee.trainers import TrainSettings, train_sft

MODES = ("pairwise", "single")
COT_RESERVE = 256  # prompt tokens left for a reason before the verdict


class AugmentSettings(StrictModel):
    share: float = Field(0.0, ge=0, lt=1)  # of the training pairs after adding the attacked copies
    kinds: list[str] = list(KINDS)


class JudgeTrainSettings(StrictModel):
    """How a judge is trained; the slice of a config (and of ``referee train judge``) a checkpoint depends on."""

    mode: str = "pairwise"  # pairwise (labelled pairs) | single (graded answers, a score target)
    template: str | None = None  # default: pairwise / single_1to10
    cot: bool = False  # the data's reasons before the verdict (pairs without one get the verdict alone)
    ties: str = "train"  # a tie label: train ([[C]]) | drop (counted) | error
    augment: AugmentSettings = AugmentSettings()
    sft: TrainSettings = TrainSettings(learning_rate=2e-4, epochs=1, batch_size=8, max_length=640)

    def template_name(self) -> str:
        return self.template or {"pairwise": "pairwise", "single": "single_1to10"}[self.mode]

    def prompt_budget(self) -> int:
        """Prompt tokens a training chat may use, so the verdict always fits in ``sft.max_length``."""
        return max(64, self.sft.max_length - (COT_RESERVE if self.cot else 16))


def train_judge(base: str, data: list, out: str | Path, settings: JudgeTrainSettings, load_model,
                evaluate: list[Pair] | None = None) -> tuple[str, dict]:
    """Fine-tune ``base`` into a judge on labelled pairs (mode pairwise) or graded items (mode single:
    dicts with prompt, response, score); returns (checkpoint spec, report). ``evaluate``: pairs the judge
    will be evaluated on; any of them among the training pairs is refused."""
    if settings.mode not in MODES:
        raise RefereeError(f"train judge: mode should be one of {', '.join(MODES)}, got {settings.mode!r}")
    if settings.ties not in TIE_POLICIES:
        raise RefereeError(f"train judge: ties should be one of {', '.join(TIE_POLICIES)}, got {settings.ties!r}")
    model = load_model(base)
    common = dict(template=settings.template_name(), cot=settings.cot, max_prompt_tokens=settings.prompt_budget())
    report: dict = {"mode": settings.mode, "template": settings.template_name(),
                    "max_prompt_tokens": settings.prompt_budget(), "cot": settings.cot}
    if settings.mode == "pairwise":
        if evaluate:
            shared = shared_pairs(data, evaluate)
            if shared:
                raise RefereeError(f"train judge: {len(shared)} evaluation pair(s) are also training pairs (same "
                                   f"question and answers), e.g. {', '.join(shared[:5])}; remove them from one side")
        attacked, counts = robustness_pairs(data, settings.augment.share, settings.augment.kinds, settings.sft.seed)
        examples, made = pairwise_examples(llm_judge(model, JudgeConfig(**common)), list(data) + attacked,
                                           settings.ties, reasons=settings.cot)
        report["augment"] = counts
    else:
        examples, made = grading_examples(llm_judge(model, JudgeConfig(mode="single", **common)), data)
    if not examples:
        raise RefereeError(f"train judge: no training example left ({made.skipped or 'no data'})")
    report["examples"] = made.__dict__
    progress.say(f"train judge: {made.examples} examples from {made.pairs} labelled items "
                 f"({made.truncated} cut to fit {settings.prompt_budget()} prompt tokens"
                 + (f"; skipped: {made.skipped}" if made.skipped else "") + ")")
    spec, history = train_sft(base, [{"messages": e["messages"]} for e in examples], out, settings.sft)
    losses = [h["loss"] for h in history if "loss" in h]
    report["loss"] = {"first": losses[0], "last": losses[-1]} if losses else None
    write_json(Path(out) / JUDGE_FILE, report)  # `referee judge --judge hf:OUT` reads template and budget here
    return spec, report


# ---- the leave-one-set-out experiment ----------------------------------------------------------------
class ExtraSource(StrictModel):
    path: str
    limit: int | None = Field(None, ge=1)  # pairs drawn from the file (seeded)


class RewardModelSettings(StrictModel):
    """The defaults fit a frozen backbone (a linear problem: many cheap epochs at a high rate); with
    ``lora_r`` set the backbone moves too, which wants one or two epochs at a small rate."""

    epochs: int = Field(30, ge=1)
    lr: float = Field(1e-2, gt=0)
    max_length: int = Field(640, ge=16)
    lora_r: int | None = Field(None, ge=1)  # None: frozen backbone, the head alone learns
    batch_size: int = Field(16, ge=1)


class EvalSettings(StrictModel):
    limit: int | None = Field(None, ge=1)  # pairs of each held-out set
    audit_limit: int | None = Field(None, ge=1)  # the audit on the first pairs only (it costs about 6x agreement)
    checks: list[str] = ["verbosity", "assertiveness", "injection", "self"]
    generative_limit: int = Field(20, ge=0)
    generative_max_new_tokens: int = Field(24, ge=1)
    untrained: bool = True
    # batch | content-free: also the trained judge with its position prior divided out (judges.pairwise),
    # the same model calls reweighted: "trained judge, calibrated"
    calibration: Literal["none", "batch", "content-free"] = "none"


class JudgeTrainingConfig(ProtocolConfig):
    protocol: str = "judge_training"
    model: str = "embedded"
    sets: dict[str, str]  # name -> labelled pairs file; each is held out in turn
    held_out: list[str] | None = None  # default: every set
    extra_train: list[ExtraSource] = []
    max_train_pairs: int | None = Field(None, ge=1)
    train: JudgeTrainSettings = JudgeTrainSettings()
    reward_model: RewardModelSettings | None = RewardModelSettings()
    eval: EvalSettings = EvalSettings()


def _draw(pairs: list[Pair], limit: int | None, seed: int, salt: str) -> list[Pair]:
    """At most ``limit`` pairs, chosen by a seeded hash of each pair's id (the same on every run)."""
    if limit is None or len(pairs) <= limit:
        return list(pairs)
    ranked = sorted(pairs, key=lambda p: hashlib.sha256(f"{seed}|{salt}|{p.id}".encode()).hexdigest())
    return ranked[:limit]


def tagged(pairs: list[Pair], source: str) -> list[Pair]:
    """Pairs with ids that name their file, so pairs from two sets never share an id."""
    return [replace(p, id=f"{source}:{p.id}", meta={**p.meta, "set": source}) for p in pairs]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@register("judge_training", JudgeTrainingConfig, "Trained judges, each evaluated on a data set left out of its "
                                                  "training, against the untrained judge, always-longer and an RM")
def run_judge_training(cfg: JudgeTrainingConfig, run: Run) -> Result:
    if cfg.train.mode != "pairwise":
        raise RefereeError("judge_training: the leave-one-set-out experiment trains pairwise judges (train.mode)")
    unknown = set(cfg.eval.checks) - set(CHECKS)
    if unknown:
        raise RefereeError(f"judge_training: eval.checks: unknown {sorted(unknown)}; choose from {', '.join(CHECKS)}")
    sets = {name: tagged(load_pairs(path), name) for name, path in cfg.sets.items()}
    held_out = cfg.held_out or list(sets)
    missing = [h for h in held_out if h not in sets]
    if missing:
        raise RefereeError(f"judge_training: held_out names {missing}, which are not in sets ({', '.join(sets)})")
    extra = [p for src in cfg.extra_train
             for p in _draw(tagged(load_pairs(src.path), Path(src.path).name), src.limit, cfg.seed, src.path)]
    metrics = run.metrics().get("folds", {})
    for fold in held_out:
        evaluate = sets[fold][:cfg.eval.limit] if cfg.eval.limit else sets[fold]
        train = _draw([p for name, ps in sets.items() if name != fold for p in ps] + extra,
                      cfg.max_train_pairs, cfg.seed, "train")
        progress.say(f"fold {fold}: train on {len(train)} pairs, evaluate on {len(evaluate)}")
        metrics[fold] = _fold(run, cfg, fold, train, evaluate)
        run.save_metrics({"folds": jsonable(metrics)})
    return Result(run.metrics(), _headline(metrics), "trained judges on held-out sets: accuracy and audits")


def _fold(run: Run, cfg: JudgeTrainingConfig, fold: str, train: list[Pair], evaluate: list[Pair]) -> dict:
    from referee.judges.pairwise import PairwiseJudge

    folder = stages.checkpoint(run, f"judge_{_slug(fold)}", base=cfg.model,
                               inputs={"pairs": train, "settings": cfg.train},
                               train=lambda out: train_judge(cfg.model, train, out, cfg.train, run.model, evaluate),
                               resumable=True)
    spec = f"hf:{folder}"
    base_model = run.model(cfg.model)
    budget = cfg.train.prompt_budget()
    llm = dict(template=cfg.train.template_name(), cot=cfg.train.cot, max_prompt_tokens=budget, seed=cfg.seed)
    judges = {"trained judge": (llm_judge(run.model(spec), JudgeConfig(swap="average", **llm)), run.model(spec))}
    if cfg.eval.calibration != "none":
        judges["trained judge, calibrated"] = (llm_judge(run.model(spec), JudgeConfig(
            swap="average", calibration=cfg.eval.calibration, **llm)), run.model(spec))
    if cfg.eval.untrained:
        judges["untrained judge"] = (llm_judge(base_model, JudgeConfig(swap="average", **llm)), base_model)
    judges["always longer"] = (baseline_judge("baseline:longer"), None)
    if cfg.reward_model is not None:
        judges["reward model"] = reward_model_judge(run, cfg.model, train, f"rm_{_slug(fold)}", cfg.reward_model,
                                                    cfg.seed)
    out, hits = {"train_pairs": len(train), "eval_pairs": len(evaluate), "checkpoint": spec}, {}
    for name, (judge, model) in judges.items():
        prefix = f"{_slug(fold)}.{_slug(name)}."
        # self needs a model whose answers are "its own" (the base model's, for every judge)
        checks = [c for c in cfg.eval.checks if c != "position" and (model is not None or c != "self")]
        key = {"judge": name, "model": model, "settings": llm}
        if getattr(judge, "calibration", "none") != "none":  # batch and content-free read differently
            key["calibration"] = judge.calibration
        records = run.run_stage(prefix + "all", {"judge": key, "pairs": evaluate},
                                lambda: judge.judge_pairs(evaluate))
        audited = evaluate[:cfg.eval.audit_limit] if cfg.eval.audit_limit else evaluate
        audit = run_audit(judge, audited, checks, own_model=base_model, run=run, seed=cfg.seed, judge_key=key,
                          stage_prefix=prefix, save=False)  # its unperturbed pairs are cached calls now
        hits[name] = [None if r["label"] not in ("A", "B") else float(r["winner"] == r["label"]) for r in records]
        out[name] = {"agreement": pairwise_agreement(records, per_category=False, seed=cfg.seed),
                     "position": position_bias(records, seed=cfg.seed), "audit": audit}
        if isinstance(judge, PairwiseJudge) and judge.calibration == "none" and cfg.eval.generative_limit:
            out[name]["generative"] = _generative(run, cfg, prefix, judge.model, llm, evaluate)
    for name in judges:
        if name != "always longer":
            out[name]["accuracy_minus_longer"] = paired_diff(hits[name], hits["always longer"], seed=cfg.seed)
    return jsonable(out)


def _generative(run: Run, cfg: JudgeTrainingConfig, prefix: str, model, llm: dict, evaluate: list[Pair]) -> dict:
    """Generative verdicts (written, parsed, up to two retries) on the first pairs, both orders."""
    from referee.models.base import Sampling

    pairs = evaluate[:cfg.eval.generative_limit]
    sampling = Sampling(temperature=0.0, max_new_tokens=cfg.eval.generative_max_new_tokens, seed=cfg.seed)
    judge = llm_judge(model, JudgeConfig(verdict="generative", swap="conservative",
                                         max_new_tokens=cfg.eval.generative_max_new_tokens, **llm))
    records = run.run_stage(prefix + "generative", {"model": model, "settings": llm, "sampling": sampling,
                                                    "pairs": pairs}, lambda: judge.judge_pairs(pairs))
    orders = [o for r in records for o in r["orders"]]
    return {"pairs": len(pairs), "invalid_per_order": rate([o["winner_shown"] == "invalid" for o in orders],
                                                           seed=cfg.seed),
            "agreement": pairwise_agreement(records, per_category=False, seed=cfg.seed)}


def reward_model_judge(run: Run, base: str, train: list[Pair], name: str, settings: RewardModelSettings,
                       seed: int):
    """The reward-model route on labelled pairs: a Bradley-Terry head (frozen backbone or LoRA) on ``base``,
    trained as stage ``name`` into checkpoints/NAME, each pair's labelled answer over the other (ties and
    unlabelled pairs left out). Returns (the RM as a pairwise judge, the fingerprint of what it was made
    from), so any protocol with labelled pairs can read with an RM where it reads with an LLM judge."""
    folder, key = pair_reward_model(run, base, train, name, settings, seed)
    return rm_judge(folder, "reward model"), key


def pair_reward_model(run: Run, base: str, train: list[Pair], name: str, settings: RewardModelSettings,
                      seed: int) -> tuple[Path, str]:
    """``reward_model_judge``'s training step alone: (the reward model's folder, the fingerprint of what it was
    made from)."""
    from referee.rewards.data import PreferencePair
    from referee.rewards.training import TrainOptions

    prefs = []
    for p in train:
        if p.label not in ("A", "B"):
            continue
        side_a = (p.answer_a, p.turns_a[:-1] if p.turns_a else p.question)
        side_b = (p.answer_b, p.turns_b[:-1] if p.turns_b else p.question)
        (chosen, prompt), (rejected, other) = (side_a, side_b) if p.label == "A" else (side_b, side_a)
        prefs.append(PreferencePair(prompt, chosen, rejected, p.id, None if other == prompt else other))
    if not prefs:
        raise RefereeError(f"{name}: no pair labelled A or B to train a reward model on")
    key = {"pairs": prefs, "settings": settings, "seed": seed}
    options = TrainOptions(epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size,
                           lora=settings.lora_r is not None, lora_r=settings.lora_r or 8, seed=seed)
    folder = stages.reward_model(run, name, base=base, pairs=prefs, options=options, max_length=settings.max_length,
                                 key=key, report={"pairs": len(prefs)})
    return folder, fingerprint(stages.keyed(run, base, key))


def _pct(estimate: dict | None) -> str | None:
    """``62% [55, 70]`` from a stored estimate; None where it was not measured."""
    return None if not estimate else Estimate(**estimate).fmt(percent=True)


def _headline(folds: dict) -> list[dict]:
    rows = []
    for fold, result in folds.items():
        for name, m in result.items():
            if not isinstance(m, dict) or "agreement" not in m:
                continue
            audit, diff = m["audit"], m.get("accuracy_minus_longer")
            rows.append({"held out": fold, "judge": name, "n": m["agreement"]["n"],
                         "accuracy": _pct(m["agreement"]["accuracy"]),
                         "minus longer": None if not diff else Estimate(**diff).fmt(),
                         "consistent": _pct(m["position"]["consistent"]),
                         "invalid": _pct(m["agreement"]["invalid"]),
                         "generative invalid": _pct(m.get("generative", {}).get("invalid_per_order")),
                         "padding wins": _pct(audit.get("verbosity", {}).get("failure")),
                         "injection flips": _pct(audit.get("injection", {}).get("flip_rate")),
                         "assertive flips": _pct(audit.get("assertiveness", {}).get("flip_rate"))})
    return rows
