#!/usr/bin/env bash
# Best-of-N on synthetic arithmetic with the embedded model: PRM vs ORM vs majority vote, up to N = 64.
#
#   bash benchmarks/bench_best_of_n.sh [OUT_DIR] [TEST_PROBLEMS] [N_MAX]
#
# Every step is a referee command, so this is also the workflow a user follows:
#   1. SFT the embedded model on the generator's reference solutions (it solves almost none before).
#   2. Sample 8 solutions per problem from the SFT policy on verifier-training problems, check every
#      step exactly (`referee tasks check --task arithmetic`): the checked file is ORM data (correct)
#      and PRM data (per-step labels 1 / 0 neutral / -1) as it stands.
#   3. Train the ORM and the PRM (frozen backbone + head).
#   4. Best-of-N on separate test problems: N_MAX samples per problem, picked by random, majority,
#      ORM, PRM (product, min), weighted votes, and the exact-answer oracle (pass@N).
# Problems for SFT, verifier training and test come from different seeds; the script counts test
# questions that also occur in a training file.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/bench_best_of_n}
TEST_N=${2:-30}
N_MAX=${3:-64}
R=".venv/bin/referee"
STEPS=3
mkdir -p "$OUT"
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*"; }

stamp "1. SFT data and policy"
$R tasks arithmetic --out "$OUT/sft.jsonl" --n 320 --steps $STEPS --seed 1 --format sft
[ -d "$OUT/policy" ] || $R train sft --data "$OUT/sft.jsonl" --out "$OUT/policy" --epochs 1 --lr 5e-4 --batch-size 8

stamp "2. policy samples on verifier-training problems, checked step by step"
$R tasks arithmetic --out "$OUT/verifier_problems.jsonl" --n 120 --steps $STEPS --seed 2
$R -q generate --prompts "$OUT/verifier_problems.jsonl" --model "hf:$OUT/policy" -n 8 --temperature 0.8 \
   --max-new-tokens 96 --out "$OUT/verifier_samples.jsonl" --run "$OUT/verifier_sampling" --show 0
$R tasks check --file "$OUT/verifier_samples.jsonl" --task arithmetic \
   --problems "$OUT/verifier_problems.jsonl" --out "$OUT/verifier_checked.jsonl" | tee "$OUT/verifier_check.json"

stamp "3. ORM and PRM"
[ -d "$OUT/orm" ] || $R rm train --kind orm --data "$OUT/verifier_checked.jsonl" --out "$OUT/orm"
[ -d "$OUT/prm" ] || $R rm train --kind prm --data "$OUT/verifier_checked.jsonl" --out "$OUT/prm"

stamp "4. best-of-N on test problems"
$R tasks arithmetic --out "$OUT/test_problems.jsonl" --n "$TEST_N" --steps $STEPS --seed 3
.venv/bin/python - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
q = lambda f, k: {json.loads(l)[k] if k != "messages" else json.loads(l)["messages"][0]["content"]
                  for l in open(f"{out}/{f}")}
test = q("test_problems.jsonl", "prompt")
seen = q("sft.jsonl", "messages") | q("verifier_problems.jsonl", "prompt")
print(f"test problems also in a training file: {len(test & seen)} of {len(test)}")
EOF
cat > "$OUT/bon.yaml" <<EOF
protocol: best_of_n
model: hf:$OUT/policy
task: arithmetic
problems: $OUT/test_problems.jsonl
out: $OUT/bon
n_max: $N_MAX
sampling: {temperature: 0.8, top_p: 1.0, max_new_tokens: 96}
verifiers:
  prm: {kind: prm, path: $OUT/prm}
  orm: {kind: orm, path: $OUT/orm}
  oracle: {kind: exact}
methods: [random, majority, orm, orm_vote, prm_product, prm_min, prm_vote, oracle]
subsets: 200
EOF
$R run "$OUT/bon.yaml"
stamp "done: $OUT/bon/metrics.json, $OUT/bon/plots/best_of_n.png"
