"""The GPU check: one short script a session with a lent GPU runs once, recording what referee's GPU path
does and how fast, in one JSON file.

    python scripts/gpu_check.py --device cuda --out OUT        # on the device (see scripts/gpu_prepare.sh)
    .venv/bin/python scripts/gpu_check.py --device cpu --quick --out /tmp/gpucheck   # dry run, tiny sizes

Steps, each timed and run on its own (one that fails does not lose the others); OUT/gpu_check.json is
rewritten after every measurement, so a run that is killed keeps what it had, and OUT/gpu_check.log
has everything printed:

  env       torch / transformers / TRL versions, the GPU, its memory; whether referee's modules import
  models    random-weight models of two shapes, built from the embedded model's config and tokenizer
            (.gpu/model_files; the weights cannot travel, and random weights run at the same speed):
            SmolLM2-135M's shape and SmolLM2-1.7B's (hidden 2048, 24 layers, 32 heads, MLP 8192), fp32
  pytest    the suite's GPU-marked tests (pytest -m gpu), with the 135M-shaped folder standing in for
            the embedded model (REFEREE_EMBEDDED_DIR) so the tiny-model fixtures find its tokenizer
  sampling  tokens/s of referee's batched hf backend vs a naive one-request-at-a-time model.generate
            loop (benchmarks/bench_generate.py's), float32 and bfloat16, both shapes
  judging   judgments/s of referee's probability verdicts vs the naive one-forward-per-prompt loop
            (benchmarks/bench_judge_speed.py run as it is, on synthetic LLMBar-format pairs), both shapes
  training  a short LoRA DPO run (referee.trainers.train_dpo) and Bradley-Terry reward models (frozen
            backbone and LoRA; referee.rewards.train_reward_model), steps/s, both shapes

With random weights every sample runs to its token limit (an end-of-turn token is as likely as any
other), so the naive loop and referee generate the same number of tokens per sample; judge verdicts and
losses mean nothing here, only speed and that the code runs. --quick makes both shapes tiny (the
results keep the names "135m" and "1.7b"; the models step records the real shapes).

Sizes (--device cuda) are meant to take about 6 minutes on an H200, estimated from eager transformers'
decoding being bound by kernel launches at these sizes (some 25-40 ms a new token for 24-30 layers,
whatever the batch), each load of the 6.8 GB float32 1.7B folder (7 of them, 5-10 s each from the page
cache) and TRL's set-up (5-10 s a trainer): env + models ~40 s, pytest ~90 s, sampling ~80 s (the naive
loop: 4 calls x 64 tokens per row), judging ~60 s, training ~90 s. Past --budget, nothing more is started
on the 1.7B shape.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))  # reuse bench_generate and bench_judge_speed as they are
MODEL_FILES = REPO / ".gpu" / "model_files"

# Two shapes over the embedded model's config (vocabulary, tokenizer, RoPE kept): --quick makes them tiny.
SHAPES = {
    "135m": {},  # SmolLM2-135M as it is: hidden 576, 30 layers, 9 heads (3 KV), MLP 1536
    "1.7b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                 num_key_value_heads=32, head_dim=64),  # SmolLM2-1.7B's shape
}
QUICK_SHAPES = {
    "135m": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16),
    "1.7b": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4,
                 num_key_value_heads=4, head_dim=32),
}
# Sizes per mode: cuda (the estimate is in the docstring) and quick (a CPU dry run, ~2.5 min on 2 cores).
SIZES = {
    "cuda": dict(gen_prompts=64, gen_n=4, gen_tokens=64, gen_batch=256, naive_prompts=1,
                 judge_pairs=64, judge_generative=32, judge_tokens=48,
                 dpo_pairs=64, dpo_steps=16, dpo_batch=8, rm_pairs=96, rm_epochs=10, rm_lora_epochs=2, rm_batch=16,
                 pytest_timeout=240),
    "quick": dict(gen_prompts=4, gen_n=2, gen_tokens=8, gen_batch=8, naive_prompts=1,
                  judge_pairs=4, judge_generative=2, judge_tokens=8,
                  dpo_pairs=8, dpo_steps=2, dpo_batch=4, rm_pairs=16, rm_epochs=2, rm_lora_epochs=1, rm_batch=8,
                  pytest_timeout=120),
}
# Seconds that must be left of --budget to start a measurement on the 1.7B shape (loading it alone
# reads 6.8 GB); the 135M shape's measurements always start.
LARGE_NEEDS = {"sampling": 60, "judging": 60, "dpo": 60, "rm": 45}

FILLER = ("the a of to and in is that it for on with as was by this are be at from or an have not which one "
          "time water light people small large because first over after river stone city market music paper "
          "window garden morning story number friend question answer reason simple careful quickly slowly "
          "often never always sometimes together between under against during without").split()


# ---- output: a log and a JSON file that are always up to date ---------------------------------------
class Tee:
    """Everything printed goes to the terminal and to the log file as well, flushed at once."""

    def __init__(self, stream, log):
        self.stream, self.log = stream, log

    def write(self, text):
        self.stream.write(text)
        self.stream.flush()
        self.log.write(text)
        self.log.flush()
        return len(text)

    def flush(self):
        self.stream.flush()
        self.log.flush()

    def isatty(self):
        return False

    def fileno(self):
        return self.stream.fileno()


class Report:
    def __init__(self, out: Path, args, budget: float):
        self.path = out / "gpu_check.json"
        self.started = time.monotonic()
        self.deadline = self.started + budget
        self.data = {"script": "scripts/gpu_check.py", "argv": sys.argv[1:], "device": args.device,
                     "quick": args.quick, "budget_s": budget, "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                            time.gmtime()),
                     "steps": {}}
        self.write()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def write(self) -> None:
        self.data["elapsed_s"] = round(time.monotonic() - self.started, 1)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        os.replace(tmp, self.path)

    def step(self, name: str, fn, *args) -> None:
        """Run one step; what it records in its result dict is written as it goes."""
        say(f"\n==== {name} ({self.left():.0f} s of the budget left)")
        entry = {"ok": None, "result": {}}
        self.data["steps"][name] = entry
        cuda = _cuda()
        if cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        try:
            fn(entry["result"], *args)
            entry["ok"] = True
        except Exception as e:  # one failing step must not lose the others
            entry["ok"] = False
            entry["error"] = f"{type(e).__name__}: {e}"[:2000]
            entry["traceback"] = traceback.format_exc()[-6000:]
            say(entry["traceback"])
        entry["seconds"] = round(time.perf_counter() - start, 2)
        if cuda:
            import torch

            entry["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        _free()
        self.write()
        say(f"==== {name}: {'ok' if entry['ok'] else 'FAILED'} in {entry['seconds']:.1f} s")


REPORT: Report | None = None


def say(text: str) -> None:
    print(text, flush=True)


def save() -> None:
    if REPORT is not None:
        REPORT.write()


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available() and torch.cuda.is_initialized()
    except Exception:
        return False


def _free() -> None:
    try:
        from referee.models.devices import free_memory

        free_memory()
    except Exception:
        pass


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# ---- steps ---------------------------------------------------------------------------------------
def step_env(res: dict, device: str) -> None:
    import importlib
    import importlib.metadata as md

    import torch

    res["python"] = platform.python_version()
    res["platform"] = platform.platform()
    res["cpu_count"] = os.cpu_count()
    versions = {}
    for dist in ("torch", "transformers", "peft", "accelerate", "trl", "datasets", "pyarrow", "pydantic",
                 "pydantic-core", "tokenizers", "safetensors", "huggingface-hub", "numpy", "pytest"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    res["versions"] = versions
    res["torch_cuda"] = torch.version.cuda
    res["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        res["gpu"] = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                      "capability": f"{props.major}.{props.minor}", "count": torch.cuda.device_count(),
                      "bf16_supported": torch.cuda.is_bf16_supported(),
                      "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}
        free, total = torch.cuda.mem_get_info()
        res["gpu"]["free_gib"] = round(free / 2**30, 1)
        try:
            res["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv"],
                capture_output=True, text=True, timeout=30).stdout.strip()
        except Exception as e:
            res["nvidia_smi"] = f"unavailable: {e}"
    imports = {}
    for module in ("referee.models", "referee.judges", "referee.trainers", "referee.rewards", "referee.cli",
                   "trl", "datasets", "peft"):
        try:
            importlib.import_module(module)
            imports[module] = "ok"
        except Exception as e:
            imports[module] = f"{type(e).__name__}: {e}"[:300]
    res["imports"] = imports
    # datasets hashes functions with dill, which pickles by value any module whose path does not look
    # installed (no "site-packages" in it): pyarrow's then fails to pickle, and TRL's trainers with it
    res["not_in_site_packages"] = [m for m in ("pyarrow", "datasets", "trl", "dill") if m in sys.modules
                                   and "site-packages" not in (getattr(sys.modules[m], "__file__", "") or "")
                                   and not (sys.modules[m].__file__ or "").startswith(sys.prefix)]
    say(json.dumps(res, indent=2))
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda but torch sees no GPU")


def build_model(folder: Path, overrides: dict, device: str) -> dict:
    """A random-weight causal LM of the embedded model's config with ``overrides``, saved in float32 (as the
    embedded model's converted copy is) with the tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(MODEL_FILES)
    for key, value in overrides.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.device(device):  # initialise on the GPU: 1.7B random weights on a CPU take long
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(MODEL_FILES).save_pretrained(folder)
    if (MODEL_FILES / "generation_config.json").exists():
        shutil.copy(MODEL_FILES / "generation_config.json", folder / "generation_config.json")
    del model
    return {"parameters": params, "parameters_millions": round(params / 1e6, 1), "seconds": round(
        time.perf_counter() - start, 2), "shape": {k: getattr(config, k) for k in (
            "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "vocab_size")}}


def step_models(res: dict, shapes: dict, work: Path, device: str, folders: dict) -> None:
    if not (MODEL_FILES / "config.json").exists():
        raise RuntimeError(f"{MODEL_FILES} has no config.json: run scripts/gpu_prepare.sh first")
    for name, overrides in shapes.items():
        folder = work / f"model-{name}"
        res[name] = build_model(folder, overrides, device)
        folders[name] = folder
        say(f"{name}: {res[name]}")
        save()
    # the 135M-shaped folder stands in for the embedded model (tests take its tokenizer from there)
    (folders["135m"] / "referee-embedded.json").write_text(json.dumps(
        {"fingerprint": "random-weights-smollm2-135m-shape", "model": "random weights, SmolLM2-135M's shape"}))
    os.environ["REFEREE_EMBEDDED_DIR"] = str(folders["135m"])


def step_pytest(res: dict, timeout: int) -> None:
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                   if "mark.gpu" in p.read_text(errors="replace"))
    res["files"] = files
    if not files:
        raise RuntimeError("no test file has a test marked gpu")
    junit = Path(tempfile.mkdtemp()) / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rfEs", "-p", "no:cacheprovider",
           f"--junitxml={junit}", *files]
    res["command"] = " ".join(cmd[1:])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src")] + [
        p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        output, res["returncode"] = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        res["returncode"] = f"timed out after {timeout} s"
    say(output)
    last = [line for line in output.strip().splitlines() if line.strip()][-1:] or [""]
    res["summary"] = last[0]
    res["counts"] = {kind: int(n) for n, kind in re.findall(
        r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed|warnings?)", last[0])}
    if junit.exists():
        cases = []
        for case in ET.parse(junit).getroot().iter("testcase"):
            outcome, message = "passed", ""
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    outcome, message = child.tag, (child.get("message") or "")[:300]
            cases.append({"test": case.get("name"), "outcome": outcome, "seconds": float(case.get("time", 0)),
                          "message": message})
        res["tests"] = cases
    res["output_tail"] = output[-3000:]
    if res["returncode"] not in (0, 5):  # 5: nothing collected/selected
        raise RuntimeError(f"pytest: {res['summary']}")


def step_sampling(res: dict, folders: dict, device: str, size: dict) -> None:
    import bench_generate

    from referee import progress
    from referee.ledger import Ledger
    from referee.models import Sampling, load_model

    progress.set_quiet(True)
    chats = bench_generate.prompts(size["gen_prompts"])
    sampling = Sampling(temperature=0.7, max_new_tokens=size["gen_tokens"], seed=0)
    res["settings"] = {"prompts": size["gen_prompts"], "n": size["gen_n"], "max_new_tokens": size["gen_tokens"],
                       "batch_size": size["gen_batch"], "naive_prompts": size["naive_prompts"]}
    for name, folder in folders.items():
        for dtype in ("float32", "bfloat16"):
            key = f"{name} {dtype}"
            if name != "135m" and REPORT.left() < LARGE_NEEDS["sampling"]:
                res[key] = {"skipped": "out of time"}
                continue
            model = load_model(f"hf:{folder}?device={device}&dtype={dtype}&batch_size={size['gen_batch']}")
            model.generate(bench_generate.prompts(2), Sampling(max_new_tokens=4), n=1)  # warm-up, not timed
            bench_generate.bench_naive(model, chats[:1], 1, 4)
            ledger = Ledger()
            with ledger.activate():
                _sync(device)
                start = time.perf_counter()
                model.generate(chats, sampling, n=size["gen_n"])
                _sync(device)
                secs = time.perf_counter() - start
            tokens = ledger.to_dict()["totals"]["completion_tokens"]
            naive_tokens, naive_s = bench_generate.bench_naive(model, chats[:size["naive_prompts"]],
                                                               size["gen_n"], size["gen_tokens"])
            row = {"referee_tokens": tokens, "referee_seconds": round(secs, 3),
                   "referee_tokens_per_s": round(tokens / secs, 1), "naive_tokens": naive_tokens,
                   "naive_seconds": round(naive_s, 3), "naive_tokens_per_s": round(naive_tokens / naive_s, 1)}
            row["speedup_vs_naive"] = round(row["referee_tokens_per_s"] / row["naive_tokens_per_s"], 2)
            res[key] = row
            say(f"sampling {key}: {row}")
            save()
            del model
            _free()


def synthetic_judge_pairs(n: int, seed: int = 0) -> list[dict]:
    """LLMBar-format pairs (input, output_1, output_2, label) of about the natural set's lengths: a question
    of 40-100 words, answers of 30-120 words."""
    import bench_generate

    rng = random.Random(seed)

    def words(lo, hi):
        out = [rng.choice(FILLER) for _ in range(rng.randint(lo, hi))]
        return " ".join(w + ("." if (i + 1) % 12 == 0 else "") for i, w in enumerate(out)).capitalize() + "."

    topics, forms = bench_generate.TOPICS, bench_generate.FORMS
    return [{"input": forms[i % len(forms)].format(topics[i % len(topics)]) + " " + words(40, 100),
             "output_1": words(30, 120), "output_2": words(30, 120), "label": 1 + i % 2} for i in range(n)]


def step_judging(res: dict, folders: dict, device: str, size: dict, work: Path) -> None:
    import bench_judge_speed

    from referee import progress

    progress.set_quiet(True)
    data = work / "judge_pairs.json"
    data.write_text(json.dumps(synthetic_judge_pairs(size["judge_pairs"])))
    for name, folder in folders.items():
        if name != "135m" and REPORT.left() < LARGE_NEEDS["judging"]:
            res[name] = {"skipped": "out of time"}
            continue
        out = work / f"judge_{name}.json"
        argv = ["bench_judge_speed.py", "--model", f"hf:{folder}?device={device}", "--data", str(data),
                "--dtypes", "float32,bfloat16", "--limit", str(size["judge_pairs"]),
                "--generative-limit", str(size["judge_generative"]),
                "--max-new-tokens", str(size["judge_tokens"]), "--json", str(out)]
        saved_argv, sys.argv = sys.argv, argv
        try:
            bench_judge_speed.main()
        finally:
            sys.argv = saved_argv
        res[name] = json.loads(out.read_text())
        save()
        _free()


def _dpo_pairs(n: int) -> list[dict]:
    import bench_generate

    rng = random.Random(1)
    prompts = [c[0]["content"] for c in bench_generate.prompts(n)]
    return [{"prompt": p, "chosen": " ".join(rng.choice(FILLER) for _ in range(rng.randint(20, 60))),
             "rejected": " ".join(rng.choice(FILLER) for _ in range(rng.randint(20, 60)))} for p in prompts]


def _rm_pairs(n: int, seed: int = 0):
    """Chosen answers end in 'certainly', rejected ones in 'maybe' (the toy signal of tests/test_rewards.py)."""
    from referee.rewards.data import PreferencePair

    rng = random.Random(seed)
    out = []
    for i in range(n):
        filler = " ".join(rng.choice(FILLER) for _ in range(rng.randint(10, 40)))
        out.append(PreferencePair([{"role": "user", "content": f"Tell me about {rng.choice(FILLER)} {i}."}],
                                  f"{filler} certainly", f"{filler} maybe", str(i)))
    return out


def step_training(res: dict, folders: dict, device: str, size: dict, work: Path) -> None:
    from referee import progress
    from referee.rewards import TrainOptions, train_reward_model
    from referee.rewards.evaluate import eval_pairs
    from referee.trainers import LoraSettings, TrainSettings, train_dpo

    progress.set_quiet(True)
    pairs = _dpo_pairs(size["dpo_pairs"])
    rm_pairs, rm_test = _rm_pairs(size["rm_pairs"]), _rm_pairs(32, seed=1)
    for name, folder in folders.items():
        key = f"{name} dpo (LoRA r=16)"
        if name != "135m" and REPORT.left() < LARGE_NEEDS["dpo"]:
            res[key] = {"skipped": "out of time"}
        else:
            settings = TrainSettings(learning_rate=1e-4, max_steps=size["dpo_steps"], batch_size=size["dpo_batch"],
                                     max_length=256, lora=LoraSettings(r=16, alpha=32, dropout=0.0))
            start = time.perf_counter()
            spec, history = train_dpo(f"hf:{folder}", pairs, work / f"dpo-{name}", settings, beta=0.1)
            wall = time.perf_counter() - start
            final = next((h for h in reversed(history) if "train_runtime" in h), {})
            losses = [h["loss"] for h in history if "loss" in h]
            res[key] = {"steps": size["dpo_steps"], "batch_size": size["dpo_batch"], "pairs": len(pairs),
                        "train_runtime_s": final.get("train_runtime"),
                        "steps_per_s": final.get("train_steps_per_second"),
                        "samples_per_s": final.get("train_samples_per_second"),
                        "wall_s_with_loading_and_saving": round(wall, 2),
                        "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
                        "bf16_mixed_precision": device == "cuda"}
            say(f"training {key}: {res[key]}")
            save()
            shutil.rmtree(work / f"dpo-{name}", ignore_errors=True)
            _free()
        for lora in (False, True):
            key = f"{name} reward model ({'LoRA r=8' if lora else 'frozen backbone'})"
            if name != "135m" and REPORT.left() < LARGE_NEEDS["rm"]:
                res[key] = {"skipped": "out of time"}
                continue
            options = TrainOptions(lora=lora, epochs=size["rm_lora_epochs" if lora else "rm_epochs"],
                                   batch_size=size["rm_batch"], lr=3e-4 if lora else None)
            start = time.perf_counter()
            rm, metrics = train_reward_model(f"hf:{folder}", rm_pairs, options, device=device, max_length=256)
            wall = time.perf_counter() - start
            steps = metrics["epochs"] * math.ceil(metrics["train_examples"] / metrics["batch_size"])
            accuracy = eval_pairs(rm, rm_test)["accuracy"].value
            res[key] = {"examples": metrics["examples"], "epochs": metrics["epochs"], "batch_size": options.batch_size,
                        "steps": steps, "train_seconds": metrics["train_seconds"],
                        "steps_per_s": round(steps / max(metrics["train_seconds"], 1e-9), 2),
                        "pairs_per_s": round(metrics["epochs"] * metrics["train_examples"]
                                             / max(metrics["train_seconds"], 1e-9), 1),
                        "wall_s_with_loading": round(wall, 2), "loss_first_epoch": metrics["loss_first_epoch"],
                        "loss_last_epoch": metrics["loss_last_epoch"], "held_out_accuracy": accuracy,
                        "device": str(rm.net.device)}
            say(f"training {key}: {res[key]}")
            save()
            del rm
            _free()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny models and sizes: a CPU dry run of every step")
    ap.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json and gpu_check.log")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds; near the end, measurements on the 1.7B shape are skipped (default 480, quick 900)")
    ap.add_argument("--steps", default="env,models,pytest,sampling,judging,training",
                    help="which steps to run (env and models are always run)")
    args = ap.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "gpu_check.log", "a", buffering=1)
    sys.stdout, sys.stderr = Tee(sys.__stdout__, log), Tee(sys.__stderr__, log)
    global REPORT
    REPORT = Report(args.out, args, args.budget or (900 if args.quick else 480))
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))

    def stop(signum, frame):  # `timeout` sends SIGTERM: end through the finally below, which says so
        REPORT.data["killed_by_signal"] = signum
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    # referee's own files (caches, the embedded stand-in) go to the work folder, never to ~/.cache
    os.environ["REFEREE_HOME"] = str(work / "referee_home")
    os.environ.setdefault("REFEREE_QUIET", "1")
    size = SIZES["quick" if args.quick else args.device]
    REPORT.data["sizes"] = size
    wanted = set(args.steps.split(","))
    folders: dict[str, Path] = {}
    try:
        REPORT.step("env", step_env, args.device)
        REPORT.step("models", step_models, QUICK_SHAPES if args.quick else SHAPES, work, args.device, folders)
        if "pytest" in wanted:
            REPORT.step("pytest", step_pytest, size["pytest_timeout"])
        if folders:
            if "sampling" in wanted:
                REPORT.step("sampling", step_sampling, folders, args.device, size)
            if "judging" in wanted:
                REPORT.step("judging", step_judging, folders, args.device, size, work)
            if "training" in wanted:
                REPORT.step("training", step_training, folders, args.device, size, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        steps = REPORT.data["steps"]
        REPORT.data["finished"] = True
        REPORT.data["failed_steps"] = [k for k, v in steps.items() if not v["ok"]]
        REPORT.write()
        say(f"\n{len(steps)} steps, failed: {REPORT.data['failed_steps'] or 'none'}; "
            f"{REPORT.data['elapsed_s']:.0f} s; {REPORT.path}")


if __name__ == "__main__":
    main()
