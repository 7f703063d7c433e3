"""Runs: one folder per experiment, holding everything needed to read, resume or reproduce it.

    RUN/config.yaml        the resolved, validated config
    RUN/manifest.json      package versions, git commit, seeds, model fingerprints, command line
    RUN/records/STAGE.jsonl records of each stage
    RUN/state.json         each finished stage's name and the fingerprint of its inputs
    RUN/metrics.json       metrics, merged stage by stage
    RUN/ledger.json        calls, tokens and wall time per stage and per model (this invocation at the
                           top; earlier invocations in this folder and the sum over all of them below)
    RUN/plots/*.png        figures
    RUN/checkpoints/NAME/  models a protocol trained (``protocols.stages``: a stage whose product is a folder)
    RUN/third_party.log    warnings and logs of transformers, TRL, datasets, ... (kept off the terminal
                           unless --verbose)
    RUN/cache.sqlite       every model call, so a killed run resumes where it stopped

A run is a sequence (or rounds) of named stages, each run through ``Run.run_stage(name, inputs,
compute)``: the stage's inputs (its slice of the config, the records it reads, the fingerprints of the
models it calls) are hashed into a fingerprint. Started again with the same fingerprint, the stage reads
its records back; with a different one it says so and recomputes. It runs under the ledger stage of the
same name, and its records are written atomically (temp file, fsync, rename) before it is marked done.
Below the stages, every model call is cached, so even a stage killed half-way repeats no finished call, and
a killed SFT or DPO training goes on from the last state it kept (RUN/checkpoints/NAME/trainer).
Under several processes (``accelerate launch``) only the main one writes these files.

An existing run folder is left as it was until the new invocation's work begins (its first stage, metrics
or plot): config.yaml, manifest.json and ledger.json are written only then, so an invocation refused for
bad inputs, which protocols read before their first stage, leaves the folder's own config runnable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import yaml

from referee import ledger as ledger_mod
from referee import noise, progress
from referee.cache import Cache
from referee.distributed import is_main_process
from referee.errors import RefereeError
from referee.io import read_jsonl, write_json, write_jsonl

PACKAGES = ("referee", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "httpx", "numpy")


class Run:
    def __init__(self, folder: str | os.PathLike, config: dict | Any | None = None, seed: int | None = None):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise RefereeError(f"{self.folder}: is a file; a run folder is needed here")
        self._made_folder = not self.folder.exists()  # removed again if the invocation is refused
        try:
            (self.folder / "records").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RefereeError(f"{self.folder}: cannot make the run folder here ({e.strerror or e})") from None
        self.cache = Cache(self.folder / "cache.sqlite")
        self.ledger = ledger_mod.Ledger()
        self.models: dict[str, Any] = {}
        self.released_models: dict[str, dict] = {}  # spec -> description, of models freed by release()
        self.environment: dict[str, Any] = {}  # what else the results depend on (say, the sandbox's protections)
        self.seed = seed
        self.started = time.time()
        self._ledger_ctx = None
        self._earlier_ledgers = _earlier_invocations(self.folder / "ledger.json")
        self._state_path = self.folder / "state.json"
        self.state = _read_state(self._state_path)
        self._config = config  # written to config.yaml when the work begins
        self._begun = False

    # ---- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> "Run":
        noise.route_to(self.folder)
        self._ledger_ctx = self.ledger.activate()
        self._ledger_ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        # Written on success and on failure alike, once work has begun: what was spent is never lost. An
        # invocation that failed before (bad inputs) leaves the folder as it found it, or not there at all.
        if self._begun or exc[0] is None or self.ledger.rows():  # rows: model calls made outside a stage
            self.begin()
            self.write_ledger()
            self.write_manifest(finished=exc[0] is None)
        elif self._made_folder and is_main_process():  # refused before any work: leave no empty folder behind
            self.cache.close()
            shutil.rmtree(self.folder, ignore_errors=True)
        if self._ledger_ctx is not None:
            self._ledger_ctx.__exit__(*exc)
            self._ledger_ctx = None
        self.cache.close()  # a run used in a longer-lived process (the Python API, a notebook) lets its file go

    # ---- models --------------------------------------------------------------------------------
    def model(self, spec: str):
        """Load (once per run) the model a spec names, answering through the run's cache."""
        if spec not in self.models:
            from referee.models import load_model

            self.models[spec] = load_model(spec, cache=self.cache)
        return self.models[spec]

    def release(self, spec: str) -> None:
        """Free a model's weights once the protocol is done with it; the manifest still names it."""
        model = self.models.pop(spec, None)
        if model is not None:
            self.released_models[spec] = model.describe()
            del model
            from referee.models.devices import free_memory

            free_memory()

    def model_key(self, spec: str) -> dict:
        """What a stage input naming this model is keyed on (its weights' fingerprint), the same as passing
        the model itself. A local model's key is read from its files, without loading its weights; a served
        one is asked for it (and let go). The manifest names the model either way."""
        if spec in self.models:
            return {"model": self.models[spec].fingerprint}
        if spec not in self.released_models:
            from referee.models.fingerprints import spec_fingerprint

            fingerprint = spec_fingerprint(spec)
            if fingerprint is None:
                self.model(spec)
                self.release(spec)
            else:
                self.released_models[spec] = {"spec": spec, "fingerprint": fingerprint, "loaded": False}
        return {"model": self.released_models[spec]["fingerprint"]}

    def add_model(self, model) -> None:
        """Register a model built elsewhere (say, a freshly trained policy) so the manifest names it."""
        model.cache = self.cache
        self.models[model.spec] = model

    def begin(self) -> None:
        """The work begins: write the new config.yaml (once). Called by everything that writes the folder,
        so the inputs a protocol reads before its first stage are checked before the folder changes."""
        if self._begun:
            return
        self._begun = True
        if self._config is not None:
            self.save_config(self._config)

    # ---- stages --------------------------------------------------------------------------------
    @contextmanager
    def stage(self, name: str):
        """Charge model calls to this stage in the ledger and time it."""
        self.begin()
        with ledger_mod.stage(name):
            yield

    def run_stage(self, name: str, inputs: Any, compute: Callable[[], Iterable[dict] | None],
                  outputs: Sequence[str | os.PathLike] = ()) -> list[dict] | None:
        """The stage runner: the records of stage ``name``, read back when a finished stage in this folder
        had the same ``inputs``, else computed by ``compute()`` under the ledger stage ``name`` and written.

        ``inputs`` is anything ``fingerprint`` can hash: the config slice, input records, models (by their
        fingerprint). ``compute`` returns the stage's records, or None for a stage whose product is not
        records (a checkpoint): then ``outputs`` names what it makes, and a missing one means not done.
        """
        fp = fingerprint(inputs)
        self.begin()
        kept = self.state["stages"].get(name)
        has_records = kept is not None and kept.get("records", True)
        if kept is not None and kept["fingerprint"] != fp:
            progress.say(f"{name}: its inputs changed since it last ran, recomputing")
        elif kept is not None:
            products = [self.records_path(name)] * has_records + [Path(o) for o in outputs]
            if all(p.exists() for p in products):
                progress.say(f"{name}: finished earlier with the same inputs, read back")
                return self.read_records(name) if has_records else None
            progress.say(f"{name}: finished earlier but its output is gone, recomputing")
        if kept is not None:  # no longer done: outputs half-rewritten by a killed recompute must not count
            del self.state["stages"][name]
            self._write_state()
        withheld_before = self.ledger.withheld(name)
        with self.stage(name):
            records = compute()
        records = None if records is None else list(records)
        if records is not None:
            self._write_records(name, records)
        withheld = self.ledger.withheld(name) - withheld_before
        if withheld:
            progress.say(f"{name}: the server withheld {withheld} answer(s) (content filter or refusal); they are "
                         f"recorded with that finish reason, and the stage will ask again when run again")
        else:
            self._mark_done(name, fp, records=records is not None)
        return records

    def records_path(self, stage: str) -> Path:
        return self.folder / "records" / f"{stage}.jsonl"

    def _write_records(self, stage: str, records: list[dict]) -> None:
        self.begin()
        if is_main_process():
            write_jsonl(self.records_path(stage), records)

    def _mark_done(self, stage: str, fp: str, records: bool = True) -> None:
        """Only after the stage's records are on disk: a crash before this leaves the stage not done."""
        self.state["stages"][stage] = {"fingerprint": fp, **({} if records else {"records": False})}
        self._write_state()

    def _write_state(self) -> None:
        self.begin()
        if is_main_process():
            write_json(self._state_path, self.state)

    def read_records(self, stage: str) -> list[dict]:
        return [obj for _, obj in read_jsonl(self.records_path(stage))]

    # ---- outputs -------------------------------------------------------------------------------
    def save_config(self, config: Any) -> None:
        if not is_main_process():
            return
        data = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config)
        with open(self.folder / "config.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(data, f, sort_keys=False, allow_unicode=True)

    def metrics(self) -> dict:
        """metrics.json as it stands ({} before any stage saved one); a damaged one names the file."""
        path = self.folder / "metrics.json"
        return read_metrics_file(path) if path.exists() else {}

    def save_metrics(self, metrics: dict) -> dict:
        """Merge metrics into metrics.json (later stages add keys, reruns overwrite their own)."""
        path = self.folder / "metrics.json"
        current = self.metrics()
        current.update(metrics)
        self.begin()
        if is_main_process():
            write_json(path, current)
        return current

    def plot_path(self, name: str) -> Path:
        self.begin()
        (self.folder / "plots").mkdir(exist_ok=True)
        return self.folder / "plots" / name

    def _started_text(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started))

    def write_ledger(self) -> None:
        """This invocation's ledger, with the totals of the earlier ones (a resumed run shows mostly cached
        calls; what the whole experiment cost is in ``all_invocations``). An invocation that fails, is
        interrupted or gets SIGTERM writes its own too; only SIGKILL leaves none."""
        if not is_main_process():
            return
        now = self.ledger.to_dict()
        earlier = self._earlier_ledgers
        all_totals = {k: sum(inv["totals"].get(k, 0) for inv in earlier) + v for k, v in now["totals"].items()}
        write_json(self.folder / "ledger.json", {
            **now, "started": self._started_text(), "earlier_invocations": earlier,
            "all_invocations": {"invocations": len(earlier) + 1, "totals": all_totals}})

    def write_manifest(self, finished: bool = False) -> None:
        if not is_main_process():
            return
        write_json(self.folder / "manifest.json", {
            "command": sys.argv,
            "started": self._started_text(),
            "finished": finished,
            "wall_seconds": round(time.time() - self.started, 3),
            "seed": self.seed,
            "models": self.released_models | {spec: m.describe() for spec, m in self.models.items()},
            **self.environment,
            "packages": package_versions(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "git_commit": git_commit(),
        })


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The commit of the referee source tree, when it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def read_metrics_file(path: Path) -> dict:
    """An existing metrics.json, to merge into; a damaged one names the file to delete (the finished stages
    are read back from their records when the run is started again, so deleting it loses nothing)."""
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
        problem = None if isinstance(current, dict) else f"a JSON {type(current).__name__}, not an object"
    except (OSError, ValueError) as e:
        problem = str(e)
    if problem:
        raise RefereeError(f"{path}: unreadable metrics ({problem}); delete it and run again (finished stages "
                           f"and cached model calls are kept)") from None
    return current


def fingerprint(inputs: Any) -> str:
    """A short hash of a stage's inputs as canonical JSON. Models count by their ``fingerprint`` (weights and
    backend), pydantic configs by their settings, dataclasses by their fields, paths by their text."""
    text = json.dumps(inputs, sort_keys=True, ensure_ascii=False, default=_canonical, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _canonical(obj: Any) -> Any:
    if hasattr(obj, "fingerprint") and hasattr(obj, "spec"):  # a Model
        return {"model": obj.fingerprint}
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"stage inputs: cannot fingerprint a {type(obj).__name__}")


def _read_state(path: Path) -> dict:
    """state.json: {"stages": {name: {"fingerprint": ...}}}. A folder from before fingerprints (a list of
    stage names) has no fingerprints to trust: its stages count as not done and are recomputed."""
    if not path.exists():
        return {"stages": {}}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RefereeError(f"{path}: unreadable run state ({e}); delete it to recompute the stages "
                           f"(cached model calls are kept)") from None
    if not isinstance(state, dict) or not isinstance(state.get("stages"), dict):
        return {"stages": {}}
    # an entry of another shape (edited by hand) is not trusted either: that stage is recomputed
    state["stages"] = {k: v for k, v in state["stages"].items()
                       if isinstance(v, dict) and isinstance(v.get("fingerprint"), str)}
    return state


def _earlier_invocations(path: Path) -> list[dict]:
    """The invocations an existing ledger.json records (its own and the ones before it), in order."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(old, dict) or not isinstance(old.get("totals"), dict):
        return []
    own = {"started": old.get("started"), "totals": old["totals"],
           "stage_wall_seconds": old.get("stage_wall_seconds", {})}
    return list(old.get("earlier_invocations") or []) + [own]
