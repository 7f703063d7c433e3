#!/usr/bin/env bash
# Prepare the GPU check (scripts/gpu_check.py) for a device machine that has no network: download, here,
# the wheels of what referee imports that the device lacks, copy the embedded model's config and
# tokenizer files (not its weights: the check builds random-weight models of that shape), and print the
# command line and carry list for the device tool's `run`.
#
#     bash scripts/gpu_prepare.sh            # then pass the printed command and carry to `run`
#
# Everything goes under .gpu/, which git ignores through .git/info/exclude (not .gitignore).
# The device (one H200, Python 3.12, torch, transformers, peft, accelerate, numpy, scipy, pyyaml, tqdm,
# typer, rich, jinja2, httpx, matplotlib, pandas, pytest, tokenizers, safetensors, huggingface_hub
# installed) lacks pydantic, TRL and datasets; their wheels travel, pinned to the versions in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
touch "$exclude"
grep -qxF '/.gpu/' "$exclude" || echo '/.gpu/' >> "$exclude"

# what the device lacks (pure wheels except pydantic-core, pyarrow, xxhash), at the versions .venv has
PACKAGES="pydantic pydantic-core annotated-types typing-inspection typing-extensions trl datasets pyarrow dill
multiprocess xxhash pytest-timeout"
mkdir -p .gpu/wheels .gpu/model_files
pins=()
for p in $PACKAGES; do
    pins+=("$p==$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$p")")
done
echo "wheels: ${pins[*]}"
# a wheel of another version left by an earlier run would travel too: start from an empty folder
rm -f .gpu/wheels/*.whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "${PY_VERSION:-3.12}" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .gpu/wheels "${pins[@]}"

# pyarrow's wheel (55 MB) would leave no room under the 64 MiB: rewrite it without what datasets never
# loads (Arrow Flight, the S3 filesystem, C++ headers, Cython sources, tests, the link-time copies of
# libraries whose versioned name is kept), with a RECORD that matches.
"$PY" - .gpu/wheels/pyarrow-*.whl <<'PYEOF'
import base64
import hashlib
import os
import re
import sys
import zipfile

path = sys.argv[1]
src = zipfile.ZipFile(path)
names = src.namelist()
drop = re.compile(r"pyarrow/(include|includes|tests|src)/|\.(pxd|pyx|pxi|h|hpp|cc|cpp)$"
                  r"|pyarrow/(libarrow_flight|libarrow_python_flight|libarrow_s3)\.so|pyarrow/_(flight|s3fs)\."
                  r"|pyarrow/_pyarrow_cpp_tests\.")
versioned = {n for n in names if re.search(r"\.so\.\d+$", n)}


def link_copy(n):
    """lib*.so or lib*.so.X.Y.Z beside the lib*.so.X that the loader asks for."""
    m = re.match(r"(.*/lib[^/]*\.so)(\.\d+\.\d+\.\d+)?$", n)
    return bool(m) and n not in versioned and any(v.startswith(m.group(1) + ".") for v in versioned)


record = next(n for n in names if n.endswith(".dist-info/RECORD"))
kept = [n for n in names if n != record and not drop.search(n) and not link_copy(n)]
rows = []
with zipfile.ZipFile(path + ".tmp", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
    for n in kept:
        data = src.read(n)
        out.writestr(src.getinfo(n), data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{n},sha256={digest},{len(data)}")
    out.writestr(record, "\n".join(rows + [f"{record},,"]) + "\n")
os.replace(path + ".tmp", path)
print(f"pyarrow wheel: kept {len(kept)} of {len(names) - 1} files, {os.path.getsize(path) / 2**20:.1f} MiB")
PYEOF

# the embedded model's shape and tokenizer (the converted folder; converted once here if it is not yet)
src=$("$PY" - <<'EOF'
import os
from pathlib import Path

from referee.models.embedded import embedded_dir, ensure_converted

candidates = [embedded_dir(), Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
              / "referee" / "embedded" / "smollm2-135m-instruct"]
found = next((c for c in candidates if (c / "config.json").exists() and (c / "tokenizer.json").exists()), None)
print(found or ensure_converted()[0])
EOF
)
for f in config.json generation_config.json tokenizer.json tokenizer_config.json chat_template.jinja \
         special_tokens_map.json; do
    if [ -f "$src/$f" ]; then cp "$src/$f" .gpu/model_files/; fi
done
echo "model files from $src: $(ls .gpu/model_files | tr '\n' ' ')"

tracked=$(git ls-files -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
untracked=$(git ls-files -z --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
gpu=$(du -sb .gpu | cut -f1)
total=$((tracked + ${untracked:-0} + gpu))
echo "sizes: .gpu $((gpu / 1024)) KiB, tracked files $((tracked / 1024)) KiB," \
     "untracked $((${untracked:-0} / 1024)) KiB; total $((total / 1024 / 1024)) MiB (the limit is 64 MiB)"
if [ "$total" -gt $((64 * 1024 * 1024)) ]; then
    echo "too big to travel" >&2
    exit 1
fi

# The wheels go to a folder whose path holds "site-packages": datasets hashes TRL's map functions with
# dill, which pickles by value (and fails on pyarrow's types) any module whose path does not look installed.
install='python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade'
install="$install --target /tmp/gpu/site-packages .gpu/wheels/*.whl"
check='timeout 560 python3 scripts/gpu_check.py --device cuda --out $OUT'
command="$install && export PYTHONPATH=\$PWD/src:/tmp/gpu/site-packages && $check"
echo
echo 'run it on the device (carry [".gpu"], timeout_s 600):'
echo
echo "$command"
echo
echo "(${#command} characters.) Then copy the figures of \$OUT/gpu_check.json into BENCHMARKS.md, marked as"
echo "GPU figures; \$OUT/gpu_check.log has the log."
