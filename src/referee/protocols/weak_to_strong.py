"""Weak-to-strong generalisation (Burns et al. 2023): can a strong student trained on a weak
supervisor's labels beat its supervisor, and how much of the gap to a ground-truth-trained ceiling
does it recover?

    cut the data in three: part 1, part 2, test;
    for each weak rung:   train it on part 1's ground truth; it labels part 2 (soft labels) and test;
    for each strong rung: train its ceiling on part 2's ground truth;
    for each (weak, strong) pair of rungs, weaker first, and each loss (naive, auxiliary confidence):
        train the strong student on part 2 with the weak labels;
        PGR = (acc student - acc weak) / (acc ceiling - acc weak) on test, with a bootstrap interval;
    bootstrapping walks the ladder instead: the weakest rung labels part 2 for the next rung, which
        relabels part 2 (out of fold: no model labels the items it was trained on) for the one after,
        up to the strongest; its last student is compared with the direct weakest -> strongest one.

Every trained model is one run stage whose records are its class probabilities on the items it
predicts, keyed by everything the training read (the rung, its settings, the loss, the items and their
targets, the seed, the data): a rerun reads them back, and a changed input retrains only what it
touches. The building blocks (data, features, classifiers, losses, metrics) are in ``referee.w2s``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal, NamedTuple

import numpy as np
from pydantic import Field, model_validator

from referee import progress
from referee.config import MAX_EXAMPLES, MAX_RESAMPLES, MAX_ROUNDS, ProtocolConfig, StrictModel
from referee.errors import RefereeError
from referee.io import write_json
from referee.protocols import Result, register
from referee.runs import Run, fingerprint
from referee.w2s import data as data_mod
from referee.w2s.features import (Features, backbone_features, base_model, bow_features, n_blocks, params_up_to,
                                  resolve_layer)
from referee.w2s.losses import make_loss
from referee.w2s.metrics import accuracy, imitation, pgr_report, summarise
from referee.w2s.models import ClassifierTrainSettings, FeatureRung, LoraRung, RungConfig


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
    n_weak: int = Field(1000, ge=2, le=MAX_EXAMPLES)  # part 1: trains the weak supervisors on ground truth
    n_w2s: int = Field(2000, ge=2, le=MAX_EXAMPLES)  # part 2: weak labels for the students, ground truth for the ceilings
    n_test: int = Field(0, ge=0, le=MAX_EXAMPLES)  # 0: the whole test file


class AuxConfig(StrictModel):
    a_max: float = Field(0.75, ge=0, le=1)  # the paper: 0.75 for the largest students, 0.5 otherwise
    warmup: float = Field(0.2, ge=0, le=1)  # fraction of training over which a rises from 0 to a_max


class BootstrapConfig(StrictModel):
    enabled: bool = True
    loss: Literal["naive", "aux"] = "naive"
    folds: int = Field(2, ge=2, le=MAX_ROUNDS)  # intermediate rungs label part 2 out of fold


class W2SConfig(ProtocolConfig):
    protocol: str = "weak_to_strong"
    data: DataConfig
    split: SplitConfig = SplitConfig()
    ladder: list[RungConfig] = Field(min_length=2)
    losses: list[Literal["naive", "aux"]] = ["naive", "aux"]
    pairs: Literal["all", "from_weakest", "adjacent"] = "all"
    aux: AuxConfig = AuxConfig()
    train: ClassifierTrainSettings = ClassifierTrainSettings()
    bootstrap: BootstrapConfig = BootstrapConfig()
    n_boot: int = Field(1000, ge=10, le=MAX_RESAMPLES)
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


# ---- the method --------------------------------------------------------------------------------
@register("weak_to_strong", W2SConfig,
          "weak supervisors label data for strong students: PGR, aux confidence loss, bootstrapping")
def run_weak_to_strong(config: W2SConfig, run: Run) -> Result:
    task, split = load_and_split(config)
    items = record_split(run, split, len(task.classes))
    progress.say(f"weak-to-strong on {task.name}: {len(items.weak)} weak-training, {len(items.w2s)} "
                 f"student-training, {len(items.test)} test examples; "
                 f"ladder {' < '.join(r.name for r in config.ladder)}")
    rungs = build_rungs(config, run, items)
    jobs = TrainingStages(config, run, items)
    pairs = pairs_to_run(len(rungs), config.pairs)  # (weak, strong) rung indices, weaker first
    supervisors = {i for i, _ in pairs} | ({0} if config.bootstrap.enabled else set())

    weak = train_weak_supervisors(jobs, rungs, sorted(supervisors))
    ceilings = train_ceilings(jobs, rungs, sorted({j for _, j in pairs}))
    rows = [train_student(config, jobs, rungs, i, j, loss, weak[i], ceilings[j])
            for i, j in pairs for loss in config.losses]
    boot_rows = []
    if config.bootstrap.enabled and len(rungs) >= 3:
        boot_rows = bootstrap_chains(config, jobs, rungs, weak[0], ceilings, rows)

    metrics = {"weak_to_strong": collect_metrics(config, task, split, rungs, items, weak, ceilings, rows, boot_rows)}
    run.save_metrics(metrics)
    return Result(metrics, headline=headline_rows(metrics["weak_to_strong"]),
                  title=f"weak-to-strong on {task.name}: accuracy on test and performance gap recovered")


# ---- the steps ---------------------------------------------------------------------------------
def load_and_split(config: W2SConfig) -> tuple[data_mod.Task, data_mod.Split]:
    """The task (its classes, what was dropped) and its seeded three-way split."""
    train_task = load_task(config.data, config.data.train, config.seed)
    test_task = load_task(config.data, config.data.test, config.seed) if config.data.test else None
    split = data_mod.make_split(train_task, test_task, config.split.n_weak, config.split.n_w2s,
                                config.split.n_test, config.seed, where="config: split")
    return train_task, split


def load_task(cfg: DataConfig, path: str, seed: int) -> data_mod.Task:
    if cfg.format == "csqa2":
        return data_mod.load_csqa2(path)
    if cfg.format == "liar":
        return data_mod.load_liar(path)
    if cfg.format == "pairs":
        return data_mod.load_pair_task(path, seed)
    return data_mod.load_classification(path, cfg.text_field, cfg.label_field, cfg.classes)


class Items:
    """Every example of the run in one list (part 1, part 2, then test), as the ``split`` stage recorded
    them; training stages name items by their index here. ``fingerprint`` hashes all the records (texts,
    labels, parts), and every training stage counts it among its inputs: changed data is never stale."""

    def __init__(self, records: list[dict], n_classes: int):
        self.records = records
        self.n_classes = n_classes
        self.texts = [r["text"] for r in records]
        self.labels = np.array([r["label"] for r in records])
        self.weak, self.w2s, self.test = ([r["index"] for r in records if r["part"] == part]
                                          for part in ("weak", "w2s", "test"))
        self.fingerprint = fingerprint(records)

    def ground_truth(self, idx: list[int]) -> np.ndarray:
        """One-hot targets of the items ``idx``."""
        return np.eye(self.n_classes)[self.labels[idx]]


def record_split(run: Run, split: data_mod.Split, n_classes: int) -> Items:
    """Which example went to which part, as the records of stage ``split``; the rest reads them."""
    parts = [("weak", e) for e in split.weak] + [("w2s", e) for e in split.w2s] + [("test", e) for e in split.test]
    records = [{"index": i, "part": part, "id": e.id, "label": e.label, "text": e.text}
               for i, (part, e) in enumerate(parts)]
    return Items(run.run_stage("split", records, lambda: records), n_classes)


def build_rungs(config: W2SConfig, run: Run, items: Items) -> list:
    """Turn the ladder config into rungs, computing features once per backbone for all its layers. A bag
    of words learns its vocabulary from parts 1 and 2 only (texts the models may train on)."""
    rungs: dict[str, object] = {}
    groups: dict[tuple, list[RungConfig]] = {}
    for rc in config.ladder:
        if rc.kind == "bow":
            features, vocab = bow_features(items.texts, items.weak + items.w2s, rc.max_features, rc.ngrams, rc.min_df)
            rungs[rc.name] = FeatureRung(rc, features, size=vocab)
        else:
            groups.setdefault((rc.kind, rc.model, rc.pooling, rc.max_length), []).append(rc)
    for (kind, spec, pooling, max_length), rcs in groups.items():
        hf = _load_backbone(run, spec, config.device)
        layers = {rc.name: resolve_layer(rc.layer, n_blocks(hf.model), f"config: rung '{rc.name}'") for rc in rcs}
        if kind == "lora":
            if len(rcs) > 1:
                raise RefereeError(f"config: lora rungs {', '.join(r.name for r in rcs)} share model {spec!r}; "
                                   f"give each lora rung its own model")
            rungs[rcs[0].name] = LoraRung(rcs[0], hf, items.texts, layers[rcs[0].name])
            continue
        with run.stage("features"):
            feats = backbone_features(hf, items.texts, list(layers.values()), pooling, max_length,
                                      max(r.feature_batch_size for r in rcs), run.folder / "features")
        for rc in rcs:
            rungs[rc.name] = FeatureRung(rc, Features(feats[layers[rc.name]]), model=hf,
                                         size=params_up_to(base_model(hf.model), layers[rc.name]))
    return [rungs[rc.name] for rc in config.ladder]


def _load_backbone(run: Run, spec: str, device: str | None):
    if device and "device=" not in spec:
        spec = f"{spec}{'&' if '?' in spec else '?'}device={device}"
    return run.model(spec)


def pairs_to_run(n: int, mode: str) -> list[tuple[int, int]]:
    if mode == "adjacent":
        return [(i, i + 1) for i in range(n - 1)]
    if mode == "from_weakest":
        return [(0, j) for j in range(1, n)]
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


class Supervisor(NamedTuple):
    """A weak supervisor's class probabilities: on part 2 (the students' labels) and on test."""

    part2: np.ndarray
    test: np.ndarray


def train_weak_supervisors(jobs: "TrainingStages", rungs: list, which: list[int]) -> dict[int, Supervisor]:
    """Each weak supervisor trains on part 1's ground truth and labels part 2 and test."""
    items, out = jobs.items, {}
    for i in which:
        probs = jobs.train(f"weak__{rungs[i].name}", rungs[i], items.weak, items.ground_truth(items.weak), "naive",
                           items.w2s + items.test)
        out[i] = Supervisor(probs[:len(items.w2s)], probs[len(items.w2s):])
    return out


def train_ceilings(jobs: "TrainingStages", rungs: list, which: list[int]) -> dict[int, np.ndarray]:
    """Each strong rung trained on part 2's ground truth: its test probabilities, the students' ceiling."""
    items = jobs.items
    return {j: jobs.train(f"ceiling__{rungs[j].name}", rungs[j], items.w2s, items.ground_truth(items.w2s), "naive",
                          items.test)
            for j in which}


def train_student(config: W2SConfig, jobs: "TrainingStages", rungs: list, i: int, j: int, loss: str,
                  weak: Supervisor, ceiling_test: np.ndarray) -> dict:
    """Strong rung ``j`` trained on part 2 with weak rung ``i``'s labels, scored against both."""
    items = jobs.items
    stage = f"w2s__{rungs[i].name}__{rungs[j].name}__{loss}"
    probs = jobs.train(stage, rungs[j], items.w2s, weak.part2, loss, items.w2s + items.test)
    student_p2, student_test = probs[:len(items.w2s)].argmax(1), probs[len(items.w2s):].argmax(1)
    y_test, y_p2 = items.labels[items.test], items.labels[items.w2s]
    weak_test, weak_p2, ceiling = weak.test.argmax(1), weak.part2.argmax(1), ceiling_test.argmax(1)
    return {"weak": rungs[i].name, "strong": rungs[j].name, "loss": loss,
            **pgr_report(y_test, weak_test, student_test, ceiling, config.n_boot, config.seed),
            "imitation_test": imitation(y_test, weak_test, student_test),
            "imitation_train": imitation(y_p2, weak_p2, student_p2),
            "ceiling_imitation_test": imitation(y_test, weak_test, ceiling),
            "weak_label_acc_part2": accuracy(weak_p2, y_p2),
            "final_train_loss": (jobs.histories.get(stage) or [None])[-1]}


def bootstrap_chains(config: W2SConfig, jobs: "TrainingStages", rungs: list, weakest: Supervisor,
                     ceilings: dict[int, np.ndarray], rows: list[dict]) -> list[dict]:
    """For each rung k >= 2: walk 0 -> 1 -> ... -> k, each rung labelling part 2 for the next, and
    compare the last student with the direct 0 -> k student (same loss)."""
    loss, items = config.bootstrap.loss, jobs.items
    y_test, weak_test = items.labels[items.test], weakest.test.argmax(1)
    out, labels_p2, chain = [], weakest.part2, [rungs[0].name]
    for k in range(1, len(rungs)):
        chain.append(rungs[k].name)
        prefix = "boot__" + "__".join(chain)
        if k >= 2 and k in ceilings:
            student = jobs.train(f"{prefix}__{loss}", rungs[k], items.w2s, labels_p2, loss, items.test).argmax(1)
            row = {"chain": list(chain), "loss": loss,
                   **pgr_report(y_test, weak_test, student, ceilings[k].argmax(1), config.n_boot, config.seed),
                   "imitation_test": imitation(y_test, weak_test, student)}
            direct = [r for r in rows
                      if r["weak"] == rungs[0].name and r["strong"] == rungs[k].name and r["loss"] == loss]
            row["direct_pgr"] = direct[0]["pgr"] if direct else None
            row["direct_acc_w2s"] = direct[0]["acc_w2s"] if direct else None
            out.append(row)
        if k < len(rungs) - 1:  # this rung labels part 2 for the next one
            labels_p2 = crossfit_labels(jobs, f"{prefix}__{loss}__labels", rungs[k], labels_p2, loss,
                                        config.bootstrap.folds, jobs.seed(prefix))
    return out


def crossfit_labels(jobs: "TrainingStages", stage: str, rung, targets: np.ndarray, loss: str, folds: int,
                    seed: int) -> np.ndarray:
    """Soft labels for part 2 from ``rung`` trained on part 2 itself, out of fold: each fold is labelled
    by a model that never saw it."""
    p2 = jobs.items.w2s
    order = np.random.default_rng(seed).permutation(len(p2))
    out = np.zeros((len(p2), targets.shape[1]))
    for f, held in enumerate(np.array_split(order, folds)):
        rest = np.setdiff1d(order, held)
        out[held] = jobs.train(f"{stage}_fold{f}", rung, [p2[k] for k in rest], targets[rest], loss,
                               [p2[k] for k in held])
    return out


def collect_metrics(config: W2SConfig, task: data_mod.Task, split: data_mod.Split, rungs: list, items: Items,
                    weak: dict[int, Supervisor], ceilings: dict[int, np.ndarray], rows: list[dict],
                    boot_rows: list[dict]) -> dict:
    y_test = items.labels[items.test]
    return {
        "task": task.name, "classes": task.classes, "split": split.sizes(),
        "dropped": task.dropped or None,
        "rungs": {r.name: {"kind": r.config.kind, "size": int(r.size),
                           "acc_trained_on_part1": accuracy(weak[k].test.argmax(1), y_test) if k in weak else None,
                           "acc_ceiling": accuracy(ceilings[k].argmax(1), y_test) if k in ceilings else None}
                  for k, r in enumerate(rungs)},
        "pairs": rows,
        "bootstrap": boot_rows,
        "summary": {**{loss: summarise([r for r in rows if r["loss"] == loss]) for loss in config.losses},
                    **({f"bootstrap_{config.bootstrap.loss}": summarise(boot_rows)} if boot_rows else {})},
    }


def headline_rows(metrics: dict) -> list[dict]:
    """One row per weak-to-strong student (direct pairs, then bootstrapped chains, ``via`` naming the
    chain), from the ``weak_to_strong`` metrics."""
    def row(weak, strong, loss, r, via):
        return {"weak": weak, "strong": strong, "loss": loss, "acc_weak": r["acc_weak"], "acc_w2s": r["acc_w2s"],
                "acc_ceiling": r["acc_ceiling"], "pgr": r["pgr"], "pgr_ci": r["pgr_ci"], "flag": r["flag"],
                "imitation": r["imitation_test"]["imitation_rate"], "via": via}

    return ([row(r["weak"], r["strong"], r["loss"], r, None) for r in metrics["pairs"]]
            + [row(r["chain"][0], r["chain"][-1], f"bootstrap-{r['loss']}", r, " > ".join(r["chain"]))
               for r in metrics["bootstrap"]])


# ---- training stages ---------------------------------------------------------------------------
class TrainingStages:
    """Trains a rung toward targets on some items and records its class probabilities on others, one run
    stage per training, keyed by all it reads: a rerun with the same inputs reads the records back.

    The loss per epoch of every model trained goes to RUN/train_history.json, beside the records, so a
    resumed run still reports the final training loss of stages it read back."""

    def __init__(self, config: W2SConfig, run: Run, items: Items):
        self.config = config
        self.run = run
        self.items = items
        self._history_path = run.folder / "train_history.json"
        self.histories: dict[str, list[float]] = _read_histories(self._history_path)

    def seed(self, stage: str) -> int:
        return (self.config.seed * 1_000_003 + int(hashlib.sha256(stage.encode()).hexdigest()[:8], 16)) % (1 << 31)

    def train(self, stage: str, rung, train_idx, targets: np.ndarray, loss: str, predict_idx) -> np.ndarray:
        """Class probabilities of ``predict_idx`` (rows in that order) from ``rung`` trained on ``train_idx``."""
        train_idx, predict_idx = list(train_idx), list(predict_idx)
        settings = rung.config.train_settings(self.config.train, "config")
        inputs = {"rung": rung.config, "backbone": rung.model, "train": settings,
                  "loss": {"name": loss, "aux": self.config.aux if loss == "aux" else None},
                  "train_items": train_idx, "targets": targets, "seed": self.seed(stage),
                  "predict_items": predict_idx, "data": self.items.fingerprint}
        records = self.run.run_stage(
            stage, inputs, lambda: self._fit(stage, rung, train_idx, targets, loss, settings, predict_idx))
        return np.array([r["probs"] for r in records], dtype=np.float64)

    def _fit(self, stage: str, rung, train_idx: list[int], targets: np.ndarray, loss: str,
             settings: ClassifierTrainSettings, predict_idx: list[int]) -> list[dict]:
        loss_fn = make_loss(loss, self.config.aux.a_max, self.config.aux.warmup)
        probs, history = rung.fit_predict(train_idx, targets, loss_fn, settings, self.seed(stage), predict_idx,
                                          desc=stage)
        self.histories[stage] = history
        write_json(self._history_path, self.histories)
        split = self.items.records
        return [{"index": i, "part": split[i]["part"], "id": split[i]["id"], "label": int(split[i]["label"]),
                 "probs": [float(x) for x in p], "pred": int(np.argmax(p))}
                for i, p in zip(predict_idx, probs)]


def _read_histories(path) -> dict:
    """The loss histories kept beside the records; a damaged file is named (it only feeds the report:
    deleting it loses the curves of models trained earlier, not the models' records)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RefereeError(f"{path}: unreadable loss histories ({e}); delete it to go on") from None
    if not isinstance(data, dict):
        raise RefereeError(f"{path}: expected an object of loss histories; delete it to go on")
    return data
