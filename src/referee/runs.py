"""Runs: one folder per experiment, holding everything needed to read, resume or reproduce it.

    RUN/config.yaml        the resolved, validated config
    RUN/manifest.json      package versions, git commit, seeds, model fingerprints, command line
    RUN/records/STAGE.jsonl records of each stage
    RUN/metrics.json       metrics, merged stage by stage
    RUN/ledger.json        calls, tokens and wall time per stage and per model (this invocation at the
                           top; earlier invocations in this folder and the sum over all of them below)
    RUN/plots/*.png        figures
    RUN/cache.sqlite       every model call, so a killed run resumes where it stopped

A run that is started again in the same folder reads finished stages back and answers finished model
calls from the cache; nothing computed is lost.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import yaml

from referee import ledger as ledger_mod
from referee.cache import Cache
from referee.errors import RefereeError
from referee.io import read_jsonl, write_json, write_jsonl

PACKAGES = ("referee", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "httpx", "numpy")


class Run:
    def __init__(self, folder: str | os.PathLike, config: dict | Any | None = None, seed: int | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "records").mkdir(exist_ok=True)
        self.cache = Cache(self.folder / "cache.sqlite")
        self.ledger = ledger_mod.Ledger()
        self.models: dict[str, Any] = {}
        self.seed = seed
        self.started = time.time()
        self._ledger_ctx = None
        self._earlier_ledgers = _earlier_invocations(self.folder / "ledger.json")
        self._state_path = self.folder / "state.json"
        self.state = json.loads(self._state_path.read_text()) if self._state_path.exists() else {"stages_done": []}
        if config is not None:
            self.save_config(config)

    # ---- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> "Run":
        self._ledger_ctx = self.ledger.activate()
        self._ledger_ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        # Written on success and on failure alike: what was spent is never lost.
        self.write_ledger()
        self.write_manifest(finished=exc[0] is None)
        if self._ledger_ctx is not None:
            self._ledger_ctx.__exit__(*exc)
            self._ledger_ctx = None

    # ---- models --------------------------------------------------------------------------------
    def model(self, spec: str):
        """Load (once per run) the model a spec names, answering through the run's cache."""
        if spec not in self.models:
            from referee.models import load_model

            self.models[spec] = load_model(spec, cache=self.cache)
        return self.models[spec]

    def add_model(self, model) -> None:
        """Register a model built elsewhere (say, a freshly trained policy) so the manifest names it."""
        model.cache = self.cache
        self.models[model.spec] = model

    # ---- stages --------------------------------------------------------------------------------
    @contextmanager
    def stage(self, name: str):
        """Charge model calls to this stage in the ledger and time it."""
        with ledger_mod.stage(name):
            yield

    def stage_done(self, name: str) -> bool:
        return name in self.state["stages_done"] and self.records_path(name).exists()

    def records_path(self, stage: str) -> Path:
        return self.folder / "records" / f"{stage}.jsonl"

    def write_records(self, stage: str, records: Iterable[dict], done: bool = True) -> int:
        n = write_jsonl(self.records_path(stage), records)
        if done and stage not in self.state["stages_done"]:
            self.state["stages_done"].append(stage)
            write_json(self._state_path, self.state)
        return n

    def read_records(self, stage: str) -> list[dict]:
        return [obj for _, obj in read_jsonl(self.records_path(stage))]

    # ---- outputs -------------------------------------------------------------------------------
    def save_config(self, config: Any) -> None:
        data = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config)
        with open(self.folder / "config.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(data, f, sort_keys=False, allow_unicode=True)

    def save_metrics(self, metrics: dict) -> dict:
        """Merge metrics into metrics.json (later stages add keys, reruns overwrite their own)."""
        path = self.folder / "metrics.json"
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update(metrics)
        write_json(path, current)
        return current

    def plot_path(self, name: str) -> Path:
        (self.folder / "plots").mkdir(exist_ok=True)
        return self.folder / "plots" / name

    def _started_text(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started))

    def write_ledger(self) -> None:
        """This invocation's ledger, with the totals of the earlier ones (a resumed run shows mostly cached
        calls; what the whole experiment cost is in ``all_invocations``). A killed invocation writes none."""
        now = self.ledger.to_dict()
        earlier = self._earlier_ledgers
        all_totals = {k: sum(inv["totals"].get(k, 0) for inv in earlier) + v for k, v in now["totals"].items()}
        write_json(self.folder / "ledger.json", {
            **now, "started": self._started_text(), "earlier_invocations": earlier,
            "all_invocations": {"invocations": len(earlier) + 1, "totals": all_totals}})

    def write_manifest(self, finished: bool = False) -> None:
        write_json(self.folder / "manifest.json", {
            "command": sys.argv,
            "started": self._started_text(),
            "finished": finished,
            "wall_seconds": round(time.time() - self.started, 3),
            "seed": self.seed,
            "models": {spec: m.describe() for spec, m in self.models.items()},
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


def load_config_file(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.exists():
        raise RefereeError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise RefereeError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise RefereeError(f"{path}: expected a mapping of settings at the top level")
    return data


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
