"""Critics of code, measured against bugs whose place is known (CriticGPT's evaluation, made exact).

1. **Programs.** HumanEval canonical solutions, split by a seeded hash of the task id into a train and an
   eval half; every QuixBugs program (with JSON test cases) is eval only. No program trains and evaluates.
2. **Bugs.** ``programs.tamper`` inserts up to ``per_program`` bugs per program (kept only when the
   tests then fail); QuixBugs' real one-line bugs are a second eval set (``natural``).
3. **Critics.** Each critic critiques every eval item (tampered, natural, and the correct programs):
   the model as it is (``M0``), the baselines that need no model (a random code line, the longest
   line), and with ``sft`` set, the model fine-tuned on the train half's tampering records (the
   tampered program in; a critique quoting the changed code and saying what is wrong out; correct
   programs with "No problems found."): ``M-sft``.
   With ``two_bugs``, eval programs also get two of their tampered bugs at once (``programs.multi_bug``):
   comprehensiveness is the share of a program's bugs a critique includes.
4. **Scores.** ``critics.metrics`` scores each critique against the record: CBI on bugs, false alarms
   and nitpicks on correct programs, hallucinated quotes, unreadable critiques counted. Each critic's
   per-item scores go to ``records/scores_NAME.jsonl`` (of answered and of all), for ``referee compare``.
   A removed statement has no line of its own: a quote of the line before or after the gap counts as a catch.
   For the models, critiqueability (P(bug)) gives an AUC of buggy against correct programs.
5. **Critique, then refine** (``refine: true``). The model rewrites each buggy eval program given no
   review, each model critic's critique, or the gold review (the tampering record as a critique: the
   changed code, what is wrong, the original: the upper bound); the tests decide. Every buggy program
   fails its tests before (that is how it was kept), so the pass rate after is the fix rate; each review
   is compared with no review on the same programs (paired bootstrap).
6. **Force Sampling Beam Search** (``fsbs:``). The last critic (M-sft if trained, else M0) samples ``k``
   critiques per buggy train program, forced to open with a highlight; ``critics.fsbs.comparison_pairs``
   makes preference pairs (a critique that includes the bug over one that misses it or invents a quote);
   a Bradley-Terry critique RM (frozen backbone and head, ``referee.rewards``) learns them; then ``k``
   forced samples per eval item are scored by the RM and, for each lambda, the one with the largest
   RM score + lambda * highlights is kept and scored exactly (``critics.fsbs.sweep``). With ``dpo: true``
   the sampling critic is also trained by DPO on its train-half samples, the RM's best over its worst
   (``M-dpo``), before the critics are evaluated; ``dpo_rejected: own_critique`` pairs the best with the
   critic's own greedy critique instead, and ``dpo_correct`` adds "No problems found." over a forced quote
   on each correct train program.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import Field

from referee import progress
from referee.config import ProtocolConfig, SamplingConfig, StrictModel
from referee.critics.critique import critique_chat, critique_programs, critiqueability
from referee.critics.fsbs import CHOICE_RULE, choose_lambda, comparison_pairs, sample_critiques, sweep
from referee.critics.items import (as_programs, bug_span, critic_training_rows, eval_items, program_record,
                                   sft_target, train_bugs)
from referee.critics.metrics import (NO_PROBLEMS_TEXT, SETS, headline, item_scores, longest_line_critique, per_set,
                                     random_line_critique, score_all)
from referee.critics.refine import extract_program, fix_rates, refine_programs
from referee.draws import seeded_unit
from referee.errors import RefereeError
from referee.io import write_jsonl
from referee.feedback.preference_pairs import best_over_reference, best_scored, best_vs_worst
from referee.programs import sandbox
from referee.programs.datasets import DEFAULT_LIMITS, load_humaneval, load_quixbugs, run_tests
from referee.programs.multi_bug import two_bug_programs
from referee.programs.tamper import natural_bugs, tamper
from referee.protocols import Result, register, stages
from referee.runs import Run
from referee.stats import auc, bootstrap
from referee.trainers import TrainSettings

BASELINES = ("random_line", "longest_line")


class FsbsSettings(StrictModel):
    samples: int = Field(4, ge=2, le=32)
    lambdas: list[float] = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0]
    sampling: SamplingConfig = SamplingConfig(temperature=1.0, max_new_tokens=96)
    rm_epochs: int = Field(30, ge=1)  # the critique RM: a head on the frozen backbone
    rm_lr: float = Field(1e-2, gt=0)
    dpo: bool = False  # also M-dpo: DPO of the sampling critic on its samples ranked by the critique RM
    dpo_settings: TrainSettings = TrainSettings(learning_rate=5e-5, epochs=1, batch_size=4, max_length=768)
    dpo_beta: float = Field(0.1, gt=0)
    # the rejected side of each DPO pair: the RM's worst forced sample, or the critic's own unforced (greedy)
    # critique of the same buggy program, which is what it says at evaluation ("No problems found." mostly)
    dpo_rejected: Literal["worst_sample", "own_critique"] = "worst_sample"
    # also pairs on the correct train programs: "No problems found." over the forced sample the RM likes best
    # (a false alarm whatever it says), so that DPO cannot teach the critic to flag every program
    dpo_correct: bool = False


class CriticsConfig(ProtocolConfig):
    protocol: str = "critics"
    model: str = "embedded"
    humaneval: str | None = None  # HumanEval.jsonl(.gz)
    quixbugs: str | None = None  # the QuixBugs folder
    limit: int | None = Field(None, ge=1)  # programs per source, for small runs
    per_program: int = Field(2, ge=1, le=8)
    eval_share: float = Field(0.5, gt=0, le=1)  # of HumanEval programs
    # of the other HumanEval programs, held out of all training as dev: FSBS's lambda is chosen on them
    # (``choose_lambda``) and the eval programs are scored once at that lambda. 0: no dev split (as before)
    dev_share: float = Field(0.0, ge=0, lt=1)
    natural: bool = True
    two_bugs: bool = False  # also eval programs with two tampered bugs at once (comprehensiveness)
    baselines: list[str] = list(BASELINES)
    critic: SamplingConfig = SamplingConfig(temperature=0.0, max_new_tokens=96)
    train_critic: bool = False  # also fine-tune the model as a critic on the train half (M-sft)
    refine: bool = False  # also let the model fix each buggy program, given no review, a critique or gold
    refine_sampling: SamplingConfig = SamplingConfig(temperature=0.0, max_new_tokens=384)
    fsbs: FsbsSettings | None = None
    sft: TrainSettings = TrainSettings(learning_rate=5e-4, epochs=2, batch_size=4, gradient_accumulation=2,
                                       max_length=768)
    # protections the sandbox must give before a program runs (e.g. [pid, mount, net]); without one the run
    # stops with an error naming it, instead of running untrusted code with less isolation
    sandbox_require: list[Literal[sandbox.PROTECTIONS]] = []


@register("critics", CriticsConfig, "Critics of code: CBI, false alarms and hallucinated quotes on tampered and real "
                                    "bugs, against baselines, optionally an SFT critic")
def run_critics(cfg: CriticsConfig, run: Run) -> Result:
    unknown = set(cfg.baselines) - set(BASELINES)
    if unknown:
        raise RefereeError(f"critics: setting 'baselines': unknown {sorted(unknown)}; known: {', '.join(BASELINES)}")
    run.environment["sandbox"] = sandbox.summary()  # what isolated the programs: in the manifest ...
    run.save_metrics({"sandbox": run.environment["sandbox"]})  # ... and beside the results
    programs = _programs(run, cfg)                                   # 1. programs and their split
    bugs = _bugs(run, cfg, programs)                                 # 2. tampered and natural bugs
    if cfg.two_bugs:
        bugs["two_bugs"] = _two_bugs(run, cfg, programs, bugs)
    items = eval_items(programs, bugs)
    critics = {"M0": cfg.model}
    if cfg.train_critic:
        critics["M-sft"] = _train_critic(run, cfg, programs, bugs)   # 3. the trained critic
    sampler = list(critics)[-1]  # the critic whose samples FSBS (and DPO) use
    if cfg.fsbs is not None:                                         # 6. the critique RM, DPO against it
        rm, train_samples = _critique_rm(run, cfg, critics[sampler], programs, bugs)
        if cfg.fsbs.dpo:
            critics["M-dpo"] = _dpo_critic(run, cfg, critics[sampler], rm, train_samples, programs)
    metrics = {"critics": _score_critics(run, cfg, critics, items, "eval")}  # 4. scores
    metrics["critiqueability"] = {name: _critiqueability(run, cfg, name, spec, items) for name, spec in critics.items()}
    dev = eval_items(programs, bugs, "dev")
    if dev:  # every critic on dev too: recipes are compared there, so the eval half is read once, after
        metrics["critics_dev"] = _score_critics(run, cfg, critics, dev, "dev")
    if cfg.fsbs is not None:                                         # 6. force sampling beam search
        metrics["fsbs"] = {"critic": sampler, **_fsbs(run, cfg, critics[sampler], rm, items)}
        if dev:  # lambda chosen on dev, then read off the eval sweep: the eval programs are scored once
            points = _fsbs(run, cfg, critics[sampler], rm, dev, ("fsbs_dev_samples", "fsbs_dev_rm_scores"),
                           "dev")["points"]
            chosen = choose_lambda(points)
            metrics["fsbs"]["chosen"] = {"rule": CHOICE_RULE, "lambda": chosen["lambda"], "dev": chosen,
                                         "dev_points": points,
                                         "eval": next(p for p in metrics["fsbs"]["points"]
                                                      if p["lambda"] == chosen["lambda"])}
    if cfg.refine:                                                   # 5. critique, then refine
        critiques = {name: run.read_records(f"critiques_{_stage_name(name)}") for name in critics}
        metrics["refine"] = _refine(run, cfg, programs, bugs, items, critiques)
    metrics["items"] = {s: sum(i["set"] == s for i in items) for s in SETS}
    metrics = run.save_metrics(metrics)  # merged with the bug report the bugs stage saved
    return Result(metrics, headline(metrics), "critics of code: bugs caught (CBI) and false alarms")


# ---- 1 and 2: programs and bugs --------------------------------------------------------------------
def _programs(run: Run, cfg: CriticsConfig) -> dict:
    if not cfg.humaneval and not cfg.quixbugs:
        raise RefereeError("critics: give 'humaneval' (a HumanEval.jsonl.gz) and/or 'quixbugs' (its folder)")

    # Loaded on every run (a second or two) and keyed on their content, so an edited data file recomputes
    # every stage after this one instead of reading back bugs of the old programs.
    found = []
    if cfg.humaneval:
        for p in load_humaneval(cfg.humaneval, cfg.limit):
            split = "eval" if seeded_unit(cfg.seed, "critics-split", p.id) < cfg.eval_share else \
                "dev" if seeded_unit(cfg.seed, "critics-dev", p.id) < cfg.dev_share else "train"
            found.append({**program_record(p), "split": split})
    if cfg.quixbugs:
        found += [{**program_record(p), "split": "eval"} for p in load_quixbugs(cfg.quixbugs, "correct",
                                                                                   cfg.limit)[0]]
    records = run.run_stage("programs", {"programs": found}, lambda: found)
    return {r["id"]: r for r in records}


def _limits(cfg: CriticsConfig):
    """The sandbox's usual limits, with the protections the config requires (None, the usual: nothing required)."""
    return replace(DEFAULT_LIMITS, require=tuple(cfg.sandbox_require)) if cfg.sandbox_require else None


def _bugs(run: Run, cfg: CriticsConfig, programs: dict) -> dict:
    def make() -> list[dict]:
        with progress.bar(total=2 * len(programs), desc="tamper", unit="program") as bar:
            records, report = tamper(as_programs(list(programs.values())), cfg.seed, cfg.per_program,
                                     limits=_limits(cfg), on_program=lambda _: bar.update())
        out = [{**r, "set": "tampered"} for r in records]
        if cfg.natural and cfg.quixbugs:
            natural, natural_report = natural_bugs(cfg.quixbugs, _limits(cfg), limit=cfg.limit)
            out += [{**r, "set": "natural"} for r in natural]
            report = {"tampered": report, "natural": natural_report}
        else:
            report = {"tampered": report}
        run.save_metrics({"bugs": report})
        return out

    records = run.run_stage("bugs", {"programs": list(programs.values()), "per_program": cfg.per_program,
                                     "natural": cfg.natural, "quixbugs": cfg.quixbugs, "seed": cfg.seed}, make)
    return {"records": records}


def _two_bugs(run: Run, cfg: CriticsConfig, programs: dict, bugs: dict) -> list[dict]:
    """Eval programs with two of their tampered bugs at once (``programs.multi_bug``), one per program."""
    evaluated = {pid: p for pid, p in programs.items() if p["split"] == "eval"}
    tampered = [r for r in bugs["records"] if r["set"] == "tampered"]

    def make() -> list[dict]:
        records, report = two_bug_programs({pid: p["source"] for pid, p in evaluated.items()}, tampered,
                                           {pid: p["tests"] for pid, p in evaluated.items()}, cfg.seed,
                                           _limits(cfg))
        run.save_metrics({"two_bugs": report})
        return [{**r, "set": "two_bugs"} for r in records]

    return run.run_stage("two_bugs", {"bugs": tampered, "programs": sorted(evaluated), "seed": cfg.seed}, make)


# ---- 3: critics ------------------------------------------------------------------------------------
def _train_critic(run: Run, cfg: CriticsConfig, programs: dict, bugs: dict) -> str:
    rows = critic_training_rows(programs, bugs)
    if not rows:
        raise RefereeError("critics: no training programs (raise 'limit' or lower 'eval_share')")
    return stages.sft(run, "sft_critic", name="critic_sft", base=cfg.model, data=rows, settings=cfg.sft,
                      report_as="sft")


def _score_critics(run: Run, cfg: CriticsConfig, critics: dict, items: list[dict], split: str) -> dict:
    """Every baseline and model critic's greedy critiques of ``items`` scored, per set; each critic's per-item
    scores written to records/scores_NAME.jsonl (eval) or scores_dev_NAME.jsonl, for ``referee compare``."""
    scored = {name: score_all(items, _baseline(run, cfg, name, items, split)) for name in cfg.baselines}
    scored |= {name: score_all(items, _model_critiques(run, cfg, name, spec, items, split))
               for name, spec in critics.items()}
    for name, records in scored.items():
        write_jsonl(run.records_path(_stage_name(name, "scores", split)), item_scores(records, split))
    return {name: per_set(records, cfg.seed) for name, records in scored.items()}


def _baseline(run: Run, cfg: CriticsConfig, name: str, items: list[dict], split: str = "eval") -> list[dict]:
    def make() -> list[dict]:
        write = {"random_line": lambda i: random_line_critique(i["source"], cfg.seed, i["id"]),
                 "longest_line": lambda i: longest_line_critique(i["source"])}[name]
        return [{"id": i["id"], "critique": write(i)} for i in items]

    return run.run_stage(_stage_name(name, "critiques", split), {"items": items, "seed": cfg.seed}, make)


def _stage_name(name: str, kind: str = "", split: str = "eval") -> str:
    """critiques_m_sft, critiques_dev_m_sft, scores_longest_line...: the eval split's names are unmarked."""
    plain = name.lower().replace("-", "_")
    return "_".join(part for part in (kind, "" if split == "eval" else split, plain) if part)


def _model_critiques(run: Run, cfg: CriticsConfig, name: str, spec: str, items: list[dict],
                     split: str = "eval") -> list[dict]:
    model = run.model(spec)

    def make() -> list[dict]:
        texts = critique_programs(model, [i["source"] for i in items], cfg.critic.to_sampling(cfg.seed),
                                  desc=f"{name} critiques" + ("" if split == "eval" else f" ({split})"))
        return [{"id": i["id"], "critique": t[0]} for i, t in zip(items, texts)]

    return run.run_stage(_stage_name(name, "critiques", split),
                         {"model": model, "items": items, "sampling": cfg.critic}, make)


def _critiqueability(run: Run, cfg: CriticsConfig, name: str, spec: str, items: list[dict]) -> dict:
    model = run.model(spec)

    def make() -> list[dict]:
        return [{"id": i["id"], "set": i["set"], **r} for i, r in zip(items, critiqueability(model, [i["source"]
                                                                                            for i in items]))]

    records = run.run_stage(f"critiqueability_{_stage_name(name)}", {"model": model, "items": items}, make)
    scores = [r["p_bug"] for r in records]
    labels = [0.0 if r["set"] == "correct" else 1.0 for r in records]
    return {"auc_bug_vs_correct": bootstrap(auc, scores, labels, seed=cfg.seed).to_dict(),
            "mean_mass": sum(r["mass"] for r in records) / len(records) if records else None}


# ---- 5: critique, then refine ------------------------------------------------------------------------
def _refine(run: Run, cfg: CriticsConfig, programs: dict, bugs: dict, items: list[dict],
            critiques: dict[str, list[dict]]) -> dict:
    """Fix rates per review (none, each model critic, gold) on the buggy eval programs."""
    model = run.model(cfg.model)
    records = {r["id"]: r for r in bugs["records"]}
    buggy = [i for i in items if i["set"] in ("tampered", "natural")]
    reviews: dict[str, list[str | None]] = {"none": [None] * len(buggy)}
    for name, rows in critiques.items():
        text = {r["id"]: r["critique"] for r in rows}
        reviews[name] = [text[i["id"]] for i in buggy]
    reviews["gold"] = [sft_target(records[i["id"]], i["source"]) for i in buggy]
    outcomes = {}
    for review, texts in reviews.items():
        def make(texts=texts, review=review) -> list[dict]:
            replies = refine_programs(model, [i["source"] for i in buggy], texts,
                                      cfg.refine_sampling.to_sampling(cfg.seed), desc=f"refine ({review})")
            out = []
            for item, reply in zip(buggy, replies):
                program = extract_program(reply)
                result = run_tests(program, programs[item["program_id"]]["tests"], _limits(cfg)) if program else None
                out.append({"id": item["id"], "set": item["set"], "reply": reply, "has_program": program is not None,
                            "passed": bool(result and result["passed"]), "error": result and result["error"]})
            return out

        outcomes[review] = run.run_stage(f"refine_{_stage_name(review)}", {
            "model": model, "items": [i["id"] for i in buggy], "reviews": texts, "sampling": cfg.refine_sampling,
            "tests": sorted({programs[i["program_id"]]["id"] for i in buggy})}, make)
    return fix_rates(outcomes, cfg.seed)

# ---- 6: the critique RM, DPO against it, force sampling beam search ----------------------------------
def _samples(run: Run, cfg: CriticsConfig, stage: str, spec: str, wanted: list[dict]) -> list[list[str]]:
    """``fsbs.samples`` forced critiques of each item by the critic ``spec``."""
    model, settings = run.model(spec), cfg.fsbs

    def make() -> list[dict]:
        texts, forced = sample_critiques(model, [i["source"] for i in wanted], settings.samples,
                                         settings.sampling.to_sampling(cfg.seed), desc=stage)
        return [{"id": i["id"], "samples": t, "forced": forced} for i, t in zip(wanted, texts)]

    rows = run.run_stage(stage, {"model": model, "items": [i["id"] for i in wanted], "k": settings.samples,
                                 "sampling": settings.sampling, "seed": cfg.seed}, make)
    return [r["samples"] for r in rows]


def _rm_scores(run: Run, stage: str, critique_rm: tuple, items: list[dict], samples: list[list[str]]) -> list[list]:
    rm, folder = critique_rm

    def make() -> list[dict]:
        flat = [(i, c) for i, row in zip(items, samples) for c in row]
        values = iter(rm.score_many([critique_chat(i["source"]) for i, _ in flat], [c for _, c in flat]))
        return [{"id": i["id"], "scores": [next(values).value for _ in row]} for i, row in zip(items, samples)]

    return [r["scores"] for r in run.run_stage(stage, {"rm": str(folder), "samples": samples}, make)]


def _critique_rm(run: Run, cfg: CriticsConfig, spec: str, programs: dict, bugs: dict) -> tuple:
    """The critique RM trained on comparisons from the train half's forced samples; returns ((the RM, its
    folder), (the train items, their samples))."""
    from referee.rewards.data import PreferencePair
    from referee.rewards.training import TrainOptions
    from referee.supervisors import build_verifier

    settings = cfg.fsbs
    train = [{"id": r["id"], "source": r["source"], "bugs": [list(bug_span(r))], "set": r["set"], "record": r}
             for r in train_bugs(programs, bugs)]
    if not train:
        raise RefereeError("critics: fsbs needs buggy training programs (raise 'limit' or lower 'eval_share')")
    samples = _samples(run, cfg, "fsbs_train_samples", spec, train)
    pairs, pair_report = comparison_pairs(train, samples, [sft_target(i["record"], i["source"]) for i in train])
    if not pairs:
        raise RefereeError("critics: fsbs found no critique that misses a bug to learn from")
    folder = stages.reward_model(
        run, "fsbs_rm", name="critique_rm", base=cfg.model,
        pairs=[PreferencePair(p["prompt"], p["chosen"], p["rejected"], p["id"]) for p in pairs],
        options=TrainOptions(epochs=settings.rm_epochs, lr=settings.rm_lr, seed=cfg.seed),
        key={"pairs": pairs, "epochs": settings.rm_epochs, "lr": settings.rm_lr}, report={"pairs": pair_report})
    return (build_verifier(f"rm:{folder}"), folder), (train, samples)


def _dpo_critic(run: Run, cfg: CriticsConfig, spec: str, rm, train_samples: tuple, programs: dict) -> str:
    """M-dpo: DPO from the sampling critic on its own train-half samples, the RM's best over its worst (or
    over the critic's own greedy critique), plus false-alarm pairs on correct programs if asked."""
    train, samples = train_samples
    scores = _rm_scores(run, "fsbs_train_rm_scores", rm, train, samples)
    if cfg.fsbs.dpo_rejected == "own_critique":
        own = [[r["critique"]] for r in _model_critiques(run, cfg, "own-train", spec, train)]
        own_scores = _rm_scores(run, "fsbs_train_own_rm_scores", rm, train, own)
        pairs = [p for i, row, s, mine, m in zip(train, samples, scores, own, own_scores)
                 if (p := best_over_reference(critique_chat(i["source"]), row, s, mine[0], m[0])) is not None]
    else:
        pairs = [p for i, row, s in zip(train, samples, scores)
                 if (p := best_vs_worst(critique_chat(i["source"]), row, s)) is not None]
    rows = [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs]
    if not rows:
        raise RefereeError("critics: the critique RM prefers no sample over what it is paired with; no DPO pairs")
    false_alarms = _false_alarm_pairs(run, cfg, spec, rm, programs) if cfg.fsbs.dpo_correct else []
    bug_pairs, rows = len(rows), rows + false_alarms
    return stages.dpo(run, "dpo_critic", name="critic_dpo", base=spec, pairs=rows, settings=cfg.fsbs.dpo_settings,
                      beta=cfg.fsbs.dpo_beta,
                      report={"of_items": len(train), "bug_pairs": bug_pairs, "false_alarm_pairs": len(false_alarms),
                              "rejected": cfg.fsbs.dpo_rejected})


def _false_alarm_pairs(run: Run, cfg: CriticsConfig, spec: str, critique_rm: tuple, programs: dict) -> list[dict]:
    """On each correct train program, "No problems found." over the forced sample the RM scores highest."""
    correct = [{"id": p["id"], "source": p["source"]} for p in programs.values() if p["split"] == "train"]
    samples = _samples(run, cfg, "fsbs_train_correct_samples", spec, correct)
    scores = _rm_scores(run, "fsbs_train_correct_rm_scores", critique_rm, correct, samples)
    return [{"prompt": critique_chat(item["source"]), "chosen": NO_PROBLEMS_TEXT, "rejected": top[1]}
            for item, row, row_scores in zip(correct, samples, scores)
            if (top := best_scored(row, row_scores)) is not None]


def _fsbs(run: Run, cfg: CriticsConfig, spec: str, rm, items: list[dict],
          stages: tuple[str, str] = ("fsbs_eval_samples", "fsbs_rm_scores"), split: str = "eval") -> dict:
    """The lambda sweep on ``items`` (of ``split``): k forced samples each, the RM's scores, the kept critique
    scored."""
    samples = _samples(run, cfg, stages[0], spec, items)
    scores = _rm_scores(run, stages[1], rm, items, samples)
    return {"points": sweep(items, samples, scores, cfg.fsbs.lambdas, cfg.seed, split)}

