"""``protocol: debate_tournament``: debaters of several strengths play each other; their Elo ratings, and
the judge's accuracy in debate and in consultancy against them (Khan et al. 2024's central figure: with
stronger debaters, debate accuracy should rise and consultancy accuracy fall).

    players = named debater configurations: a model (or `quoter`, the run's trained quoter) and best-of-N
    items   = the split's items, as in `debate`; the judge, rounds, style and sampling are shared
    for every ordered pair (x, y) of players, x == y included:               (stages "transcripts-X-vs-Y",
        a debate, x as debater_a (answer A), y as debater_b; the judge reads it   "judge-X-vs-Y")
        one game per item: x scores 1 when the judge picks A, 0 for B, 0.5 for a tie or no verdict
    elo     = Bradley-Terry on the games between different players, 95% intervals by resampling items
    for each player x:
        debate accuracy = the judge's accuracy on x's self-play debates (x vs x), and the judge's mean
            P(own answer) there per role (in self-play the two roles' mean is 1/2 by construction)
        quotes = x's quote statistics in self-play and as consultant (turns with a verified quote ...)
        persuasiveness = the judge's mean P(x's answer) in x's games against the other players, averaged
            per item, 95% interval by resampling items (persuasiveness against N across the players)
        consultancy accuracy = the judge's accuracy with x as the consultant      ("transcripts-consultancy-X")
    baselines: blind and expert, once (the same judge and items)
    if train_judge: for each player x and protocol (debate; consultancy too):  (stages "transcripts-train-X",
        x argues the train split's first `train_items` items                  "judge-training-PROTOCOL-X",
        a judge trained on them reads x's test transcripts; blind (and expert)     "judge-trained-X", ...)
        judges trained on the same train items once; per player: trained accuracy, and trained minus
        trained blind on the same items (paired bootstrap)
    plot: judge accuracy against Elo, debate and consultancy (trained judges too), with both intervals

Who defends the right answer is the loader's seeded coin per item (debater_a on about half the items),
so both sides of every pairing are played on right and wrong answers alike.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from referee.config import StrictModel
from referee.debate.elo import bootstrap_elo
from referee.debate.judging import accuracy_summary
from referee.debate.metrics import quote_summary
from referee.protocols import Result, register
from referee.protocols.debate import (SHARED, ConsultancyConfig, DebateConfig, PassageProtocolConfig, argue,
                                      load_items, p_of_answer, persuasiveness, read)
from referee.protocols.debate_training import train_judges
from referee.runs import Run
from referee.stats import mean_ci, paired_diff
from referee.supervisors import build_judge


class Player(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.]+$")  # it names stages and files
    model: str = "embedded"
    best_of: int = Field(1, ge=1, le=64)


class TournamentConfig(PassageProtocolConfig):
    protocol: str = "debate_tournament"
    players: list[Player]
    style: Literal["simultaneous", "sequential"] = "simultaneous"
    consultancy: bool = True  # also each player as a consultant

    @field_validator("players")
    @classmethod
    def _two_distinct(cls, value: list[Player]) -> list[Player]:
        names = [p.name for p in value]
        if len(value) < 2 or len(set(names)) < len(names):
            raise ValueError(f"name at least two players, each name once; got {names}")
        return value

    @field_validator("best_of")
    @classmethod
    def _per_player(cls, value: int) -> int:
        if value != 1:
            raise ValueError("give each player its own best_of")
        return value


@register("debate_tournament", TournamentConfig, "debaters of several strengths play each other: Elo, and judge "
                                                 "accuracy in debate and consultancy against it")
def run_tournament(cfg: TournamentConfig, run: Run) -> Result:
    items, dropped = load_items(cfg)
    judge = build_judge(cfg.judge, cfg.judge_config, run.model)
    shared = {k: getattr(cfg, k) for k in SHARED}
    players = {p.name: p for p in cfg.players}
    kw = {"n_boot": cfg.bootstrap, "seed": cfg.seed}
    games: dict[str, list[tuple[str, str, float]]] = {str(it.id): [] for it in items}
    matches, self_play, persuasive, said, quotes = {}, {}, {}, {}, {}
    own: dict[str, dict[str, list[float]]] = {name: {} for name in players}  # player -> item -> P(own answer)
    for x in players.values():                                                    # every ordered pairing
        for y in players.values():
            match = DebateConfig.model_validate({**shared, "protocol": "debate", "style": cfg.style,
                                                 "debater": x.model, "debater_b": y.model,
                                                 "best_of": x.best_of, "best_of_b": y.best_of, "baselines": []})
            name = f"{x.name}-vs-{y.name}"
            transcripts = argue("debate", match, run, items, stage=f"transcripts-{name}")
            said[name] = match, transcripts
            verdicts = read("debate", match, run, judge, items, transcripts, stage=f"judge-{name}")
            a_wins = [1.0 if r["chosen"] == 0 else 0.0 if r["chosen"] == 1 else 0.5 for r in verdicts]
            matches[name] = {"a": x.name, "b": y.name, "a_score": sum(a_wins) / len(a_wins),
                             "decided": sum(r["chosen"] is not None for r in verdicts)}
            if x.name == y.name:
                self_play[x.name] = accuracy_summary(verdicts, **kw)
                quotes[x.name] = {"debate": quote_summary(transcripts)["all"]}
                persuasive[x.name] = persuasiveness(verdicts, **kw)
            else:
                for r, s in zip(verdicts, a_wins):
                    games[r["id"]].append((x.name, y.name, s))
                    p_a = p_of_answer(r, r["sides"]["debater_a"])
                    if p_a is not None:
                        own[x.name].setdefault(r["id"], []).append(p_a)
                        own[y.name].setdefault(r["id"], []).append(1 - p_a)
    out = {"items": len(items), "split": cfg.split, "dropped_by_loader": dropped, "judge": cfg.judge,
           "players": [p.model_dump() for p in cfg.players], "matches": matches,
           "elo": bootstrap_elo(games, list(players), n_boot=min(cfg.bootstrap, 500), seed=cfg.seed),
           "debate_accuracy": self_play, "self_play_persuasiveness": persuasive, "quotes": quotes,
           "persuasiveness": {name: mean_ci([sum(v) / len(v) for v in by_item.values()], **kw).to_dict()
                              for name, by_item in own.items()}}
    if cfg.consultancy:                                                           # each player consults
        out["consultancy_accuracy"] = {}
        for x in players.values():
            ccfg = ConsultancyConfig.model_validate({**shared, "protocol": "consultancy", "consultant": x.model,
                                                     "best_of": x.best_of, "baselines": []})
            transcripts = argue("consultancy", ccfg, run, items, stage=f"transcripts-consultancy-{x.name}")
            said[f"consultancy-{x.name}"] = ccfg, transcripts
            verdicts = read("consultancy", ccfg, run, judge, items, transcripts, stage=f"judge-consultancy-{x.name}")
            out["consultancy_accuracy"][x.name] = accuracy_summary(verdicts, **kw)
            quotes[x.name]["consultancy"] = quote_summary(transcripts)["all"]
    out["baselines"] = {reader: accuracy_summary(read(reader, cfg, run, judge, items, []), **kw)
                        for reader in cfg.baselines}
    if cfg.train_judge is not None:
        out |= trained_readers(cfg, run, items, list(players), said)
    run.save_metrics({"debate_tournament": out})
    return Result(out, _headline(out), f"debate tournament on {len(items)} {cfg.split} items: Elo and judge "
                                       f"accuracy per player, 95% intervals")


def trained_readers(cfg: TournamentConfig, run: Run, items: list, players: list[str], said: dict) -> dict:
    """Judges trained per player (module doc): each protocol's judge learns from the player's own
    train-split transcripts (self-play in debate) and reads its test ones; blind and expert once."""
    kw = {"n_boot": cfg.bootstrap, "seed": cfg.seed}
    train_items, _ = load_items(cfg, "train", cfg.train_items)
    out: dict = {"trained_debate_accuracy": {}, "trained_minus_blind": {}, "trained_baselines": {}}
    for x in players:
        for protocol, name in (("debate", f"{x}-vs-{x}"), ("consultancy", f"consultancy-{x}")):
            if name not in said:
                continue
            config, transcripts = said[name]
            config = config.model_copy(update={"train_judge": cfg.train_judge, "train_items": cfg.train_items})
            argued = argue(protocol, config, run, train_items, stage=f"transcripts-train-{name}")
            judges = train_judges(protocol, config, run, train_items, argued, tag=f"-{x}")
            verdicts = {reader: read(reader, config, run, judge, items, transcripts if reader == protocol else [],
                                     identity, stage=f"judge-trained-{name}" if reader == protocol else None)
                        for reader, (judge, identity) in judges.items()}
            out.setdefault(f"trained_{protocol}_accuracy", {})[x] = accuracy_summary(verdicts[protocol], **kw)
            out["trained_minus_blind"].setdefault(x, {})[protocol] = paired_diff(
                [float(r["correct"]) for r in verdicts[protocol]], [float(r["correct"]) for r in verdicts["blind"]],
                **kw).to_dict()
            out["trained_baselines"] |= {r: accuracy_summary(v, **kw) for r, v in verdicts.items() if r != protocol}
    return out


def _headline(out: dict) -> list[dict]:
    rows = []
    for name, elo in out["elo"].items():
        consult = out.get("consultancy_accuracy", {}).get(name)
        rows.append({"player": name, "elo": round(elo["value"]), "elo low": round(elo["low"]),
                     "elo high": round(elo["high"]),
                     "debate accuracy": out["debate_accuracy"][name]["accuracy"]["value"],
                     "P(own answer), cross-play": out["persuasiveness"][name]["value"],
                     "turns with a verified quote": out["quotes"][name]["debate"]["turns_with_verified_share"],
                     "consultancy accuracy": consult["accuracy"]["value"] if consult else None,
                     **({"trained debate minus blind": out["trained_minus_blind"][name]["debate"]["value"]}
                        if "trained_minus_blind" in out else {})})
    return rows
