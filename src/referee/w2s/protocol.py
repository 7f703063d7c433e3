"""Weak-to-strong generalisation (Burns et al. 2023): can a strong student trained on a weak
supervisor's labels beat its supervisor, and how much of the gap to a ground-truth-trained ceiling
does it recover?

The data is cut in three: part 1 trains each weak supervisor on ground truth; the supervisor labels
part 2 (its class probabilities are kept as soft labels); a strong student trains on part 2 with those
labels, once per loss (naive cross-entropy, auxiliary confidence); the strong ceiling trains on part 2
with ground truth; all are scored on the test split. Every ordered pair of ladder rungs (weaker first)
is one weak-to-strong experiment. Bootstrapping walks the ladder instead: the weakest model labels part
2 for the next rung, which relabels part 2 for the one after (out of fold, so no model labels the items
it was trained on), up to the strongest.

Every trained model's predictions are records in the run folder (one stage each), so a rerun reads
them back instead of training again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from referee import progress
from referee.config import ProtocolConfig, StrictModel
from referee.errors import RefereeError
from referee.io import write_json
from referee.runs import Run
from referee.w2s import data as data_mod
from referee.w2s.losses import make_loss
from referee.w2s.metrics import accuracy, imitation, pgr_report, summarise
from referee.w2s.models import (FeatureRung, Features, LoraRung, RungConfig, TrainSettings, backbone_features,
                                base_model, bow_features, n_blocks, params_up_to, resolve_layer)


# ---- config ------------------------------------------------------------------------------------
class DataConfig(StrictModel):
    format: Literal["jsonl", "csqa2", "liar", "pairs"] = "jsonl"
    train: str
    test: str | None = None  # without one, the test split is cut from ``train``
    text_field: str | list[str] = "text"  # jsonl only
    label_field: str = "label"  # jsonl only
    classes: list[str | int | bool] | None = None  # jsonl only: the allowed labels, in order

    @model_validator(mode="after")
    def _classes_declared(self):
        if self.format == "jsonl" and not self.classes:
            raise ValueError("format jsonl needs 'classes': the allowed label values")
        ignored = sorted({"text_field", "label_field", "classes"} & self.model_fields_set)
        if self.format != "jsonl" and ignored:
            raise ValueError(f"format {self.format} has fixed fields; {', '.join(ignored)} apply to format jsonl only")
        return self


class SplitConfig(StrictModel):
    n_weak: int = Field(1000, ge=2)  # part 1: trains the weak supervisors on ground truth
    n_w2s: int = Field(2000, ge=2)  # part 2: weak labels for the students, ground truth for the ceilings
    n_test: int = Field(0, ge=0)  # 0: the whole test file


class AuxConfig(StrictModel):
    a_max: float = Field(0.75, ge=0, le=1)  # the paper: 0.75 for the largest students, 0.5 otherwise
    warmup: float = Field(0.2, ge=0, le=1)  # fraction of training over which a rises from 0 to a_max


class BootstrapConfig(StrictModel):
    enabled: bool = True
    loss: Literal["naive", "aux"] = "naive"
    folds: int = Field(2, ge=2)  # intermediate rungs label part 2 out of fold


class W2SConfig(ProtocolConfig):
    protocol: str = "weak_to_strong"
    data: DataConfig
    split: SplitConfig = SplitConfig()
    ladder: list[RungConfig] = Field(min_length=2)
    losses: list[Literal["naive", "aux"]] = ["naive", "aux"]
    pairs: Literal["all", "from_weakest", "adjacent"] = "all"
    aux: AuxConfig = AuxConfig()
    train: TrainSettings = TrainSettings()
    bootstrap: BootstrapConfig = BootstrapConfig()
    n_boot: int = Field(1000, ge=10)
    device: str | None = None  # for backbones: cpu, cuda, ... (default: cuda when there is one)

    @model_validator(mode="after")
    def _unique_rungs(self):
        names = [r.name for r in self.ladder]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"ladder names must be unique; repeated: {', '.join(dup)}")
        if not self.losses:
            raise ValueError("give at least one loss")
        return self


# ---- data --------------------------------------------------------------------------------------
def load_task(cfg: DataConfig, path: str, seed: int) -> data_mod.Task:
    if cfg.format == "csqa2":
        return data_mod.load_csqa2(path)
    if cfg.format == "liar":
        return data_mod.load_liar(path)
    if cfg.format == "pairs":
        return data_mod.load_pair_task(path, seed)
    return data_mod.load_classification(path, cfg.text_field, cfg.label_field, cfg.classes)


# ---- the ladder --------------------------------------------------------------------------------
def build_rungs(config: W2SConfig, run: Run, texts: list[str], fit_on: list[int], where: str) -> list:
    """Turn the ladder config into rungs, computing features once per backbone for all its layers."""
    rungs: dict[str, object] = {}
    groups: dict[tuple, list[RungConfig]] = {}
    for rc in config.ladder:
        if rc.kind == "bow":
            features, vocab = bow_features(texts, fit_on, rc.max_features, rc.ngrams, rc.min_df)
            rungs[rc.name] = FeatureRung(rc, features, size=vocab)
        else:
            groups.setdefault((rc.kind, rc.model, rc.pooling, rc.max_length), []).append(rc)
    for (kind, spec, pooling, max_length), rcs in groups.items():
        hf = _load_backbone(run, spec, config.device)
        blocks = n_blocks(hf.model)
        layers = {rc.name: resolve_layer(rc.layer, blocks, f"{where}: rung '{rc.name}'") for rc in rcs}
        if kind == "lora":
            if len(rcs) > 1:
                raise RefereeError(f"{where}: lora rungs {', '.join(r.name for r in rcs)} share model {spec!r}; "
                                   f"give each lora rung its own model")
            rungs[rcs[0].name] = LoraRung(rcs[0], hf, texts, layers[rcs[0].name])
            continue
        with run.stage("features"):
            feats = backbone_features(hf, texts, list(layers.values()), pooling, max_length,
                                      max(r.feature_batch_size for r in rcs), run.folder / "features")
        for rc in rcs:
            rungs[rc.name] = FeatureRung(rc, Features(feats[layers[rc.name]]),
                                         size=params_up_to(base_model(hf.model), layers[rc.name]))
    return [rungs[rc.name] for rc in config.ladder]


def _load_backbone(run: Run, spec: str, device: str | None):
    if device and "device=" not in spec:
        spec = f"{spec}{'&' if '?' in spec else '?'}device={device}"
    return run.model(spec)


# ---- jobs --------------------------------------------------------------------------------------
class Jobs:
    """Trains a rung toward targets on some items and records its predictions as one run stage; a stage
    already in the run folder is read back instead of trained again."""

    def __init__(self, config: W2SConfig, run: Run, items: list[tuple[str, data_mod.Example]], n_classes: int):
        self.config = config
        self.run = run
        self.items = items
        self.labels = np.array([e.label for _, e in items])
        self.n_classes = n_classes
        self._history_path = run.folder / "train_history.json"
        # loss per epoch of every trained model, kept beside the records so a resumed run still has it
        self.histories: dict[str, list[float]] = (json.loads(self._history_path.read_text())
                                                  if self._history_path.exists() else {})

    def seed(self, stage: str) -> int:
        return (self.config.seed * 1_000_003 + int(hashlib.sha256(stage.encode()).hexdigest()[:8], 16)) % (1 << 31)

    def train(self, stage: str, rung, train_idx, targets: np.ndarray, loss: str, predict_idx) -> np.ndarray:
        """Class probabilities of ``predict_idx`` (rows in that order) from ``rung`` trained on ``train_idx``."""
        predict_idx = list(predict_idx)
        if self.run.stage_done(stage):
            got = {r["index"]: r["probs"] for r in self.run.read_records(stage)}
            if all(i in got for i in predict_idx):
                return np.array([got[i] for i in predict_idx], dtype=np.float64)
        settings = rung.config.train_settings(self.config.train, "config")
        loss_fn = make_loss(loss, self.config.aux.a_max, self.config.aux.warmup)
        with self.run.stage(stage):
            probs, history = rung.fit_predict(list(train_idx), targets, loss_fn, settings, self.seed(stage),
                                              predict_idx, desc=stage)
        self.histories[stage] = history
        write_json(self._history_path, self.histories)
        records = []
        for i, p in zip(predict_idx, probs):
            part, ex = self.items[i]
            records.append({"index": i, "part": part, "id": ex.id, "label": int(ex.label),
                            "probs": [float(x) for x in p], "pred": int(np.argmax(p))})
        self.run.write_records(stage, records)
        return np.asarray(probs, dtype=np.float64)


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes)[labels]


def crossfit_labels(jobs: Jobs, stage: str, rung, p2: list[int], targets: np.ndarray, loss: str, folds: int,
                    seed: int) -> np.ndarray:
    """Soft labels for part 2 from ``rung`` trained on part 2 itself, out of fold: each fold is labelled
    by a model that never saw it."""
    order = np.random.default_rng(seed).permutation(len(p2))
    chunks = np.array_split(order, folds)
    out = np.zeros((len(p2), targets.shape[1]))
    for f, held in enumerate(chunks):
        rest = np.setdiff1d(order, held)
        out[held] = jobs.train(f"{stage}_fold{f}", rung, [p2[k] for k in rest], targets[rest], loss,
                               [p2[k] for k in held])
    return out


def pairs_to_run(n: int, mode: str) -> list[tuple[int, int]]:
    if mode == "adjacent":
        return [(i, i + 1) for i in range(n - 1)]
    if mode == "from_weakest":
        return [(0, j) for j in range(1, n)]
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


# ---- the protocol ------------------------------------------------------------------------------
def run_weak_to_strong(config: W2SConfig, run: Run) -> dict:
    where = "config"
    train_task = load_task(config.data, config.data.train, config.seed)
    test_task = load_task(config.data, config.data.test, config.seed) if config.data.test else None
    split = data_mod.make_split(train_task, test_task, config.split.n_weak, config.split.n_w2s,
                                config.split.n_test, config.seed, where=f"{where}: split")
    classes = train_task.classes
    items = [("weak", e) for e in split.weak] + [("w2s", e) for e in split.w2s] + [("test", e) for e in split.test]
    p1 = [i for i, (part, _) in enumerate(items) if part == "weak"]
    p2 = [i for i, (part, _) in enumerate(items) if part == "w2s"]
    test = [i for i, (part, _) in enumerate(items) if part == "test"]
    run.write_records("split", [{"index": i, "part": part, "id": e.id, "label": e.label, "text": e.text}
                                for i, (part, e) in enumerate(items)])
    progress.say(f"weak-to-strong on {train_task.name}: {len(p1)} weak-training, {len(p2)} student-training, "
                 f"{len(test)} test examples; ladder {' < '.join(r.name for r in config.ladder)}")

    rungs = build_rungs(config, run, [e.text for _, e in items], p1 + p2, where)
    n_classes = len(classes)
    jobs = Jobs(config, run, items, n_classes)
    labels = jobs.labels
    y_test = labels[test]
    gt1, gt2 = one_hot(labels[p1], n_classes), one_hot(labels[p2], n_classes)
    n = len(rungs)
    pairs = pairs_to_run(n, config.pairs)
    need_weak = sorted({i for i, _ in pairs} | ({0} if config.bootstrap.enabled else set()))
    need_ceiling = sorted({j for _, j in pairs})

    # Weak supervisors: trained on part 1 ground truth, predicting part 2 (their labels) and test.
    weak_p2, weak_test = {}, {}
    for i in need_weak:
        probs = jobs.train(f"weak__{rungs[i].name}", rungs[i], p1, gt1, "naive", p2 + test)
        weak_p2[i], weak_test[i] = probs[:len(p2)], probs[len(p2):]
    # Ceilings: trained on part 2 ground truth.
    ceiling_test = {j: jobs.train(f"ceiling__{rungs[j].name}", rungs[j], p2, gt2, "naive", test) for j in need_ceiling}

    rows = []
    for i, j in pairs:
        for loss in config.losses:
            stage = f"w2s__{rungs[i].name}__{rungs[j].name}__{loss}"
            probs = jobs.train(stage, rungs[j], p2, weak_p2[i], loss, p2 + test)
            s_p2, s_test = probs[:len(p2)].argmax(1), probs[len(p2):].argmax(1)
            w_test, w_p2 = weak_test[i].argmax(1), weak_p2[i].argmax(1)
            row = {"weak": rungs[i].name, "strong": rungs[j].name, "loss": loss,
                   **pgr_report(y_test, w_test, s_test, ceiling_test[j].argmax(1), config.n_boot, config.seed),
                   "imitation_test": imitation(y_test, w_test, s_test),
                   "imitation_train": imitation(labels[p2], w_p2, s_p2),
                   "ceiling_imitation_test": imitation(y_test, w_test, ceiling_test[j].argmax(1)),
                   "weak_label_acc_part2": accuracy(w_p2, labels[p2]),
                   "final_train_loss": (jobs.histories.get(stage) or [None])[-1]}
            rows.append(row)

    boot_rows = []
    if config.bootstrap.enabled and n >= 3:
        boot_rows = bootstrap_chains(config, jobs, rungs, p2, test, weak_p2[0], weak_test[0], ceiling_test,
                                     rows, y_test)

    metrics = {
        "task": train_task.name, "classes": classes, "split": split.sizes(),
        "dropped": train_task.dropped or None,
        "rungs": {r.name: {"kind": r.config.kind, "size": int(r.size),
                           "acc_trained_on_part1": accuracy(weak_test[k].argmax(1), y_test) if k in weak_test else None,
                           "acc_ceiling": accuracy(ceiling_test[k].argmax(1), y_test) if k in ceiling_test else None}
                  for k, r in enumerate(rungs)},
        "pairs": rows,
        "bootstrap": boot_rows,
        "summary": {**{loss: summarise([r for r in rows if r["loss"] == loss]) for loss in config.losses},
                    **({f"bootstrap_{config.bootstrap.loss}": summarise(boot_rows)} if boot_rows else {})},
    }
    from referee.w2s.plots import plot_accuracy, plot_pgr

    metrics["plots"] = [str(plot_accuracy(metrics, run.plot_path("w2s_accuracy.png"))),
                        str(plot_pgr(metrics, run.plot_path("w2s_pgr.png")))]
    run.save_metrics({"weak_to_strong": metrics})
    return {"weak_to_strong": {"summary": metrics["summary"], "split": metrics["split"],
                               "table": table_rows(metrics)}}


def bootstrap_chains(config: W2SConfig, jobs: Jobs, rungs: list, p2: list[int], test: list[int],
                     weak0_p2: np.ndarray, weak0_test: np.ndarray, ceiling_test: dict, rows: list,
                     y_test: np.ndarray) -> list[dict]:
    """For each rung j >= 2: walk 0 -> 1 -> ... -> j, each rung labelling part 2 for the next, and
    compare the last student with the direct 0 -> j student (same loss)."""
    loss = config.bootstrap.loss
    out = []
    labels_p2 = weak0_p2
    chain = [rungs[0].name]
    for k in range(1, len(rungs)):
        j_name = rungs[k].name
        chain.append(j_name)
        prefix = "boot__" + "__".join(chain)
        if k >= 2 and k in ceiling_test:
            probs = jobs.train(f"{prefix}__{loss}", rungs[k], p2, labels_p2, loss, test)
            w2s = probs.argmax(1)
            row = {"chain": list(chain), "loss": loss,
                   **pgr_report(y_test, weak0_test.argmax(1), w2s, ceiling_test[k].argmax(1), config.n_boot,
                                config.seed),
                   "imitation_test": imitation(y_test, weak0_test.argmax(1), w2s)}
            direct = [r for r in rows if r["weak"] == rungs[0].name and r["strong"] == j_name and r["loss"] == loss]
            row["direct_pgr"] = direct[0]["pgr"] if direct else None
            row["direct_acc_w2s"] = direct[0]["acc_w2s"] if direct else None
            out.append(row)
        if k < len(rungs) - 1:  # this rung labels part 2 for the next one
            labels_p2 = crossfit_labels(jobs, f"{prefix}__{loss}__labels", rungs[k], p2, labels_p2, loss,
                                        config.bootstrap.folds, jobs.seed(prefix))
    return out


def table_rows(metrics: dict) -> list[dict]:
    """One short row per weak-to-strong run, for printing."""
    out = []
    for r in metrics["pairs"]:
        out.append({"weak": r["weak"], "strong": r["strong"], "loss": r["loss"], "acc_weak": r["acc_weak"],
                    "acc_w2s": r["acc_w2s"], "acc_ceiling": r["acc_ceiling"], "pgr": r["pgr"],
                    "pgr_ci": r["pgr_ci"], "flag": r["flag"],
                    "imitation": r["imitation_test"]["imitation_rate"]})
    for r in metrics["bootstrap"]:
        out.append({"weak": r["chain"][0], "strong": r["chain"][-1], "loss": f"bootstrap-{r['loss']}",
                    "acc_weak": r["acc_weak"], "acc_w2s": r["acc_w2s"], "acc_ceiling": r["acc_ceiling"],
                    "pgr": r["pgr"], "pgr_ci": r["pgr_ci"], "flag": r["flag"],
                    "imitation": r["imitation_test"]["imitation_rate"], "via": " > ".join(r["chain"])})
    return out


def markdown_table(metrics: dict) -> str:
    """The PGR table as Markdown (for BENCHMARKS.md)."""
    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}"

    lines = ["| weak | strong | loss | weak acc | w2s acc | ceiling acc | PGR [95% CI] | imitation | flag |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in table_rows(metrics):
        ci = f" [{r['pgr_ci'][0]:.2f}, {r['pgr_ci'][1]:.2f}]" if r["pgr_ci"] else ""
        p = "-" if r["pgr"] is None else f"{r['pgr']:.2f}{ci}"
        strong = r.get("via", r["strong"])
        lines.append(f"| {r['weak']} | {strong} | {r['loss']} | {pct(r['acc_weak'])} | {pct(r['acc_w2s'])} | "
                     f"{pct(r['acc_ceiling'])} | {p} | {pct(r['imitation'])} | {r['flag'] or ''} |")
    lines.append("")
    for name, s in metrics["summary"].items():
        mean = "-" if s["mean_pgr"] is None else f"{s['mean_pgr']:.2f}"
        median = "-" if s["median_pgr"] is None else f"{s['median_pgr']:.2f}"
        lines.append(f"- {name}: mean PGR {mean}, median {median} over {s['runs'] - s['flagged']} runs "
                     f"({s['flagged']} flagged, left out)")
    return "\n".join(lines)
