"""Prover-verifier games (Kirchner et al. 2024, "Prover-verifier games improve legibility of LLM outputs").

One policy plays two provers, told its role in the prompt (or two checkpoints, ``sneaky_model``): a
helpful one (right, convincing solutions) and a sneaky one (wrong solutions that convince the verifier).
A smaller verifier learns to tell right from wrong; the provers then learn against it; rounds alternate.

    problems = synthetic arithmetic (every step checkable) or GSM8K (final answers checked), three
               disjoint sets: warm-start demonstrations, game problems, held-out problems
    P0 = SFT(model, reference solutions under the helpful prompt; on arithmetic also corrupted ones
         under the sneaky prompt, so a small model knows what the role asks)
    data[0] = P0's samples in both roles on the game problems, checked exactly; on arithmetic plus
              the programmatic sneaky prover's solutions (one slipped step carried forward)
    for r = 1..R:
        V_r = Bradley-Terry(verifier base, right-vs-wrong pairs to the same problem from data[0..r-1],
              as many from each round) + a small penalty keeping scores near zero
        reward each sample of data[r-1] from P(r-1) (src | cgc | goodhart) under V_r
        P_r = DPO(P(r-1), the best against the worst sample of each problem and role)
        data[r] = P_r's samples in both roles on the game problems, checked
    every prover P_r also answers the held-out problems in both roles (``eval_samples`` each)

Measured on the held-out samples (``games.prover_verifier`` has the definitions): per round, the
helpful prover's accuracy and mean score, the sneaky prover's wrong share and sneaky success, and the
best-of-k attack, each under the verifier it trained against; the AUC of every verifier on every
round's samples (robustness to later, sneakier provers shows along a row); the programmatic attack
against every verifier (its corrupted solution scored above the reference); the legibility proxy (a
fixed checker, V_1 with the cut that best splits its own training samples, right about each role's
solutions); length and steps per role. Prover training is DPO, not the paper's PPO: GRPO on a CPU
was too slow for rounds of this size.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

from pydantic import Field

from referee.config import MAX_PROMPTS, MAX_ROUNDS, MAX_SAMPLES, ProtocolConfig, SamplingConfig, StrictModel
from referee.errors import RefereeError
from referee.feedback.preference_pairs import best_vs_worst
from referee.games.prover_setup import HELPFUL  # noqa: F401  (tests read the default prompt from here)
from referee.games.prover_setup import RolePrompts, gsm8k_sets, role_chat
from referee.games.prover_setup import dpo_prompt as _dpo_prompt
from referee.games.prover_verifier import (ROLES, best_cut, fixed_checker_accuracy, headline, mean_or_none,
                                           prover_rewards, round_measures, shape, verifier_pairs)
from referee.protocols import Result, register, stages
from referee.feedback.arithmetic import ArithmeticSettings, checked, distinct_problem_sets
from referee.runs import Run
from referee.stats import rate
from referee.tasks.arithmetic import corrupt_solution
from referee.tasks.math import MathProblem, answers_match, extract_answer, split_steps
from referee.trainers import TrainSettings

class GameVerifierSettings(StrictModel):
    base: str | None = None  # default: the prover's model, cut to `layers`
    layers: int | None = Field(10, ge=1)  # keep the first blocks of the base (a smaller verifier); None: all
    center: float = Field(0.01, ge=0)  # the penalty on squared scores (keeps them near zero)
    pairs_per_problem: int = Field(4, ge=1, le=MAX_SAMPLES)
    epochs: int = Field(30, ge=1)
    lr: float = Field(1e-2, gt=0)
    lora_r: int | None = Field(None, ge=1)  # None: frozen backbone, a linear head
    max_length: int = Field(384, ge=16)


class ProverVerifierConfig(ProtocolConfig):
    protocol: str = "prover_verifier"
    model: str = "embedded"  # the provers' starting policy (both roles, unless sneaky_model is set)
    sneaky_model: str | None = None  # two checkpoints: the sneaky prover's own policy, trained on its role alone
    task: ArithmeticSettings = ArithmeticSettings()
    gsm8k: str | None = None  # a GSM8K file instead of arithmetic (final answers checked; no programmatic prover)
    warm_start_problems: int = Field(96, ge=0, le=MAX_PROMPTS)
    game_problems: int = Field(64, ge=2, le=MAX_PROMPTS)
    eval_problems: int = Field(48, ge=2, le=MAX_PROMPTS)
    rounds: int = Field(3, ge=1, le=MAX_ROUNDS)
    samples: int = Field(4, ge=2, le=MAX_SAMPLES)  # per game problem and role, each round
    eval_samples: int = Field(2, ge=1, le=MAX_SAMPLES)  # per held-out problem and role (k of the best-of-k attack)
    rewards: list[Literal["src", "cgc", "goodhart"]] = ["src", "goodhart"]  # arms: one game per prover reward
    roles: RolePrompts = RolePrompts()
    programmatic_sneaky: bool = True  # arithmetic only
    sampling: SamplingConfig = SamplingConfig(temperature=0.8, top_p=1.0, max_new_tokens=96)
    warm_start: TrainSettings | None = TrainSettings(learning_rate=1e-3, epochs=1, batch_size=8, max_length=320)
    dpo: TrainSettings = TrainSettings(learning_rate=5e-4, epochs=1, batch_size=4, max_length=320)
    dpo_beta: float = Field(0.1, gt=0)
    verifier: GameVerifierSettings = GameVerifierSettings()


@register("prover_verifier", ProverVerifierConfig,
          "Prover-verifier game: helpful and sneaky provers against a verifier trained round by round")
def run_prover_verifier(cfg: ProverVerifierConfig, run: Run) -> Result:
    if not cfg.rewards or len(set(cfg.rewards)) != len(cfg.rewards):
        raise RefereeError("prover_verifier: 'rewards' should name each of src, cgc, goodhart at most once, "
                           "and at least one")
    problems = _problems(run, cfg)
    game, held_out = problems["game"], problems["eval"]
    p0 = _warm_start(run, cfg, problems["warm"])
    round0 = _samples(run, cfg, "r0_samples", p0, game, cfg.samples) + programmatic_solutions(cfg, game)
    eval0 = _samples(run, cfg, "r0_eval", p0, held_out, cfg.eval_samples)
    _release(run, p0)
    arms = {}
    for reward in cfg.rewards:  # every arm starts from the same P0, round-0 data and V1
        provers, data, evals, verifiers = [p0], [round0], [eval0], []
        for r in range(1, cfg.rounds + 1):
            verifiers.append(_train_verifier(run, cfg, reward, r, data))
            scores = _scores(run, f"{reward}.r{r}_scores", verifiers[-1], game, data[-1])
            provers.append(_dpo(run, cfg, reward, r, provers[-1], game, data[-1], scores))
            data.append(_samples(run, cfg, f"{reward}.r{r}_samples", provers[-1], game, cfg.samples))
            evals.append(_samples(run, cfg, f"{reward}.r{r}_eval", provers[-1], held_out, cfg.eval_samples))
            _release(run, provers[-1])
        arms[reward] = {"provers": {f"P{i}": p for i, p in enumerate(provers)},
                        "verifiers": {f"V{i + 1}": v for i, v in enumerate(verifiers)},
                        "rounds": _measure(run, cfg, reward, verifiers, round0, evals, game, held_out)}
        run.save_metrics({"arms": arms})
    metrics = run.metrics()
    return Result(metrics, headline(arms), "prover-verifier game: held-out problems, checked exactly")


# ---- problems and the warm start -------------------------------------------------------------------
def _problems(run: Run, cfg: ProverVerifierConfig) -> dict[str, list[MathProblem]]:
    sizes = {"eval": cfg.eval_problems, "warm": cfg.warm_start_problems, "game": cfg.game_problems}
    if cfg.gsm8k:
        sets = gsm8k_sets(cfg.gsm8k, sizes, cfg.seed)
    else:
        sets = distinct_problem_sets(cfg.task, sizes, cfg.seed, "prover_verifier")
    run.run_stage("problems", {"task": cfg.task, "gsm8k": cfg.gsm8k, "sizes": sizes, "seed": cfg.seed},
                  lambda: [p.to_record() | {"set": name} for name, ps in sets.items() for p in ps])
    return sets


def _chat(cfg: ProverVerifierConfig, role: str, problem: MathProblem) -> list[dict]:
    return role_chat(cfg.roles, role, problem)


def _check(problem: MathProblem, text: str) -> dict:
    """The exact verdict on one solution: every step on arithmetic, the stated final answer on GSM8K."""
    if "values" in problem.meta:
        return checked(problem, text)
    answer = extract_answer(text)
    stated = answer.found and answer.method != "last_number"
    return {"correct": stated and answers_match(answer, problem.answer), "no_answer": not stated,
            "steps": len(split_steps(text))}


def _warm_start(run: Run, cfg: ProverVerifierConfig, problems: list[MathProblem]) -> dict[str, str]:
    """P0, the policy of each role: one policy for both (``model``), or ``model`` for the helpful role and
    ``sneaky_model`` for the sneaky one, each warm-started on its own role's demonstrations."""
    if cfg.sneaky_model is None:
        spec = _sft_policy(run, cfg, cfg.model, problems, ROLES, "warm_start", "p0")
        return {role: spec for role in ROLES}
    return {"helpful": _sft_policy(run, cfg, cfg.model, problems, ("helpful",), "warm_start_helpful", "p0_helpful"),
            "sneaky": _sft_policy(run, cfg, cfg.sneaky_model, problems, ("sneaky",), "warm_start_sneaky",
                                  "p0_sneaky")}


def _sft_policy(run: Run, cfg: ProverVerifierConfig, base: str, problems: list[MathProblem], roles: tuple,
                stage: str, name: str) -> str:
    """SFT of ``base`` on the reference solution under the helpful prompt and, on arithmetic, a corrupted
    one under the sneaky prompt (without it a 135M model has no idea what a subtle slip looks like)."""
    if cfg.warm_start is None or not problems:
        return base
    rows = []
    for p in problems:
        if "helpful" in roles:
            rows.append({"messages": _chat(cfg, "helpful", p) + [{"role": "assistant", "content": "\n".join(p.steps)}]})
        if "sneaky" not in roles or "values" not in p.meta:
            continue
        bad = corrupt_solution(p, random.Random(f"pvg-warm-{cfg.seed}-{p.id}"))
        if bad:
            rows.append({"messages": _chat(cfg, "sneaky", p) + [{"role": "assistant", "content": "\n".join(bad)}]})
    if not rows:
        raise RefereeError(f"prover_verifier: no demonstration to warm-start the {roles[0]} prover on (GSM8K has "
                           "no corrupted solutions); set warm_start to null")
    return stages.sft(run, stage, name=name, base=base, data=rows, settings=cfg.warm_start)


def _release(run: Run, provers: dict[str, str]) -> None:
    for spec in set(provers.values()):
        run.release(spec)


# ---- samples, the programmatic prover ---------------------------------------------------------------
def _samples(run: Run, cfg: ProverVerifierConfig, stage: str, provers: dict[str, str], problems: list[MathProblem],
             n: int) -> list[dict]:
    """``n`` samples per problem and role, each from its role's policy, each checked exactly."""
    models = {role: run.model(provers[role]) for role in ROLES}
    shared = provers["helpful"] == provers["sneaky"]

    def sample() -> list[dict]:
        out = []
        for role in ROLES:
            chats = [_chat(cfg, role, p) for p in problems]
            rows = models[role].generate(chats, cfg.sampling.to_sampling(cfg.seed), n=n, desc=f"{stage} {role}")
            out += [{"id": p.id, "role": role, "sample": j, "source": "prover", "text": c.text,
                     "completion_tokens": c.completion_tokens, **_check(p, c.text)}
                    for p, row in zip(problems, rows) for j, c in enumerate(row)]
        return out

    who = {"model": models["helpful"]} if shared else {"models": models}
    return run.run_stage(stage, who | {"problems": [p.id for p in problems], "n": n, "roles": cfg.roles,
                                       "sampling": cfg.sampling, "seed": cfg.seed}, sample)


def programmatic_solutions(cfg: ProverVerifierConfig, problems: list[MathProblem]) -> list[dict]:
    """The programmatic sneaky prover: a reference solution with one slipped step carried forward."""
    if not cfg.programmatic_sneaky:
        return []
    out = []
    for p in problems:
        bad = corrupt_solution(p, random.Random(f"pvg-attack-{cfg.seed}-{p.id}")) if "values" in p.meta else None
        if bad:
            text = "\n".join(bad)
            out.append({"id": p.id, "role": "sneaky", "sample": 0, "source": "programmatic", "text": text,
                        **_check(p, text)})
    return out


# ---- the verifier -----------------------------------------------------------------------------------
def _verifier_base(run: Run, cfg: ProverVerifierConfig) -> str:
    """The verifier's backbone: ``verifier.base``, or the prover's model cut to ``verifier.layers``."""
    from referee.models.shallow import save_first_layers
    from referee.rewards.heads import resolve_base

    base = cfg.verifier.base or cfg.model
    if cfg.verifier.layers is None:
        return base
    folder = run.folder / "checkpoints" / f"verifier_base_{cfg.verifier.layers}_layers"

    def cut() -> None:
        save_first_layers(resolve_base(base)[0], cfg.verifier.layers, folder)

    run.run_stage("verifier_base", {"base": run.model_key(base), "layers": cfg.verifier.layers}, cut,
                  outputs=[folder / "config.json"])
    return f"hf:{folder}"


def _train_verifier(run: Run, cfg: ProverVerifierConfig, reward: str, r: int, data: list[list[dict]]) -> str:
    """V_r from the verifier base, on right-vs-wrong pairs from every earlier round (V1, trained on round
    0 alone, is the same in every arm)."""
    from referee.rewards.training import TrainOptions

    prompts = {p["id"]: p["prompt"] for p in run.read_records("problems")}
    pairs, report = verifier_pairs(data, cfg.verifier.pairs_per_problem, cfg.seed)
    if not pairs:
        raise RefereeError(f"round {r}: no problem has both a right and a wrong solution to train the verifier "
                           f"on ({report['rounds']}); records so far are in {run.folder}")
    prefs = verifier_preferences(pairs, prompts)
    base = _verifier_base(run, cfg)
    stage = "r1_verifier" if r == 1 else f"{reward}.r{r}_verifier"
    s = cfg.verifier
    folder = stages.reward_model(
        run, stage, name=stage.replace(".", "_"), base=base, pairs=prefs,
        options=TrainOptions(epochs=s.epochs, lr=s.lr, lora=s.lora_r is not None, lora_r=s.lora_r or 8, seed=cfg.seed),
        center=s.center, max_length=s.max_length, report={"data": report},
        key={"pairs": [(a["id"], a["text"], b["text"]) for a, b in pairs], "settings": s, "seed": cfg.seed})
    return str(folder)


def verifier_preferences(pairs: list[tuple[dict, dict]], prompts: dict[str, str]) -> list:
    """The verifier's training pairs: the right solution over the wrong one, shown the plain problem."""
    from referee.rewards.data import PreferencePair

    return [PreferencePair([{"role": "user", "content": prompts[a["id"]]}], a["text"], b["text"], a["id"])
            for a, b in pairs]


def _scores(run: Run, stage: str, verifier: str, problems: list[MathProblem], samples: list[dict]) -> list[float]:
    """The verifier's score of each sample, shown the problem as a plain question (never the role)."""
    from referee.supervisors import build_verifier

    question = {p.id: p.prompt() for p in problems}

    def score() -> list[dict]:
        rm = build_verifier(f"rm:{verifier}")
        values = rm.rewards([[{"role": "user", "content": question[s["id"]]}] for s in samples],
                            [s["text"] for s in samples])
        return [{"id": s["id"], "role": s["role"], "sample": s["sample"], "score": v}
                for s, v in zip(samples, values)]

    records = run.run_stage(stage, {"verifier": _verifier_key(verifier), "samples": samples}, score)
    return [r["score"] for r in records]


def _verifier_key(folder: str) -> dict:
    """A trained verifier's identity for stage keys: the bytes of its saved head."""
    from referee.rewards.heads import HEAD_NAME
    from referee.runs import fingerprint

    return {"head": fingerprint((Path(folder) / HEAD_NAME).read_bytes().hex())}


# ---- the provers ------------------------------------------------------------------------------------
def _dpo(run: Run, cfg: ProverVerifierConfig, reward: str, r: int, provers: dict[str, str],
         problems: list[MathProblem], samples: list[dict], scores: list[float]) -> dict[str, str]:
    """P_r: DPO of P(r-1) on the best against the worst of its samples per problem and role, by reward
    (two policies: each on its own role's pairs; a role without pairs keeps its policy)."""
    by_id = {p.id: p for p in problems}
    own = [i for i, s in enumerate(samples) if s["source"] == "prover"]
    kept = [samples[i] for i in own]
    rewards = prover_rewards(reward, kept, [scores[i] for i in own])
    pairs, skipped = [], 0
    for role in ROLES:
        for pid in dict.fromkeys(s["id"] for s in kept):
            idx = [i for i, s in enumerate(kept) if s["id"] == pid and s["role"] == role and rewards[i] is not None]
            if len(idx) < 2:
                continue
            pair = best_vs_worst(_dpo_prompt(_chat(cfg, role, by_id[pid])), [kept[i]["text"] for i in idx],
                                 [rewards[i] for i in idx])
            if pair is None:
                skipped += 1
                continue
            pairs.append(pair | {"id": pid, "role": role})
    mean_reward = {role: mean_or_none(w for s, w in zip(kept, rewards) if s["role"] == role and w is not None)
                   for role in ROLES}
    run.save_metrics({f"{reward}.r{r}_prover_data": {
        "pairs": len(pairs), "tied_groups": skipped, "mean_reward": mean_reward,
        "per_role": {role: sum(p["role"] == role for p in pairs) for role in ROLES}}})
    if not pairs:
        raise RefereeError(f"round {r}: every group of samples was tied under the {reward} reward; no DPO pair "
                           f"(records so far are in {run.folder})")

    if provers["helpful"] == provers["sneaky"]:
        spec = stages.dpo(run, f"{reward}.r{r}_dpo", name=f"{reward}_p{r}", base=provers["helpful"], pairs=pairs,
                          settings=cfg.dpo, beta=cfg.dpo_beta)
        return {role: spec for role in ROLES}
    policies = {}
    for role in ROLES:
        role_pairs = [p for p in pairs if p["role"] == role]
        policies[role] = (stages.dpo(run, f"{reward}.r{r}_dpo_{role}", name=f"{reward}_p{r}_{role}",
                                     base=provers[role], pairs=role_pairs, settings=cfg.dpo, beta=cfg.dpo_beta)
                          if role_pairs else provers[role])
    return policies


# ---- measures ---------------------------------------------------------------------------------------
def _measure(run: Run, cfg: ProverVerifierConfig, reward: str, verifiers: list[str], round0: list[dict],
             evals: list[list[dict]], game: list[MathProblem], held_out: list[MathProblem]) -> dict:
    """Every verifier on every round's held-out samples and on the programmatic attack; per round, the
    table the paper draws (each prover under the verifier it trained against), and the legibility proxy."""
    attack = attack_pairs(cfg, held_out)
    grid = {}  # (verifier round, prover round) -> scores of that prover's held-out samples
    for i, v in enumerate(verifiers, start=1):
        for j, samples in enumerate(evals):
            grid[i, j] = _scores(run, f"{reward}.v{i}_on_p{j}_eval", v, held_out, samples)
    # the fixed checker: V1, cut where it best splits the round-0 samples it was trained on
    train_scores = _scores(run, "v1_on_r0_samples", verifiers[0], game, round0)
    cut = best_cut(train_scores, [bool(s["correct"]) for s in round0])
    rounds = {}
    for j, samples in enumerate(evals):
        judge = max(j, 1)  # P0 is measured under V1, the first verifier
        m = round_measures(samples, grid[judge, j], cfg.seed)
        m["verifier"] = f"V{judge}"
        m["auc_by_verifier"] = {f"V{i}": round_measures(samples, grid[i, j], cfg.seed)["auc"]
                                for i in range(1, len(verifiers) + 1)}
        m["fixed_checker"] = {"verifier": "V1", "cut": cut, **fixed_checker_accuracy(samples, grid[1, j], cut,
                                                                                      cfg.seed)}
        m["shape"] = shape(samples)
        if attack:
            m["programmatic_attack"] = _attack(run, cfg, f"{reward}.v{judge}", verifiers[judge - 1], held_out,
                                               attack)
        rounds[f"round {j}"] = m
    return rounds


def attack_pairs(cfg: ProverVerifierConfig, held_out: list[MathProblem]) -> list[tuple[dict, dict]]:
    """(reference, corrupted) solutions of each held-out arithmetic problem that can be corrupted."""
    out = []
    for p in held_out:
        if "values" not in p.meta:
            continue
        bad = corrupt_solution(p, random.Random(f"pvg-eval-attack-{cfg.seed}-{p.id}"))
        if bad:
            out.append(({"id": p.id, "role": "helpful", "sample": 0, "text": "\n".join(p.steps)},
                        {"id": p.id, "role": "sneaky", "sample": 0, "text": "\n".join(bad)}))
    return out


def _attack(run: Run, cfg: ProverVerifierConfig, name: str, verifier: str, held_out: list[MathProblem],
            attack: list[tuple[dict, dict]]) -> dict:
    """The fixed attack: how often the verifier scores the corrupted solution above the reference one."""
    scores = _scores(run, f"{name}_on_attack", verifier, held_out, [s for pair in attack for s in pair])
    wins = [bad > good for good, bad in zip(scores[0::2], scores[1::2])]
    return {"pairs": len(wins), "success": rate(wins, seed=cfg.seed).to_dict()}

