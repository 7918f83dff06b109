#!/usr/bin/env bash
# KKT grid of issue #17 with the current defaults: ExSSNeT, seeds 0-2, densities 0.1 and 0.02, SplitMNIST,
# SplitFashionMNIST and gray-stream, 1 + 1 and 5 + 5 epochs. Variants: `default` (--kkt as shipped: rule paired,
# fresh head, rescue), `no-rescue` (the same without the rescue), `off` (no KKT) and `chance` (the paper's rule,
# copied head, float scores, no rescue). Runs whose KKT changed nothing are recorded as copies of `off`
# (see benchmarks/kkt_compare.py). Rows go to benchmarks/results/kkt_rescue_m{E}w{E}.jsonl; finished runs are skipped.
#   bash benchmarks/kkt_rescue_grid.sh 1      # 1 + 1 epochs
#   bash benchmarks/kkt_rescue_grid.sh 5      # 5 + 5 epochs
# PAIRS (benchmark:density) picks the streams; SEEDS the seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
epochs=${1:-1}
pairs=${PAIRS:-gray-stream:0.02 gray-stream:0.1 split-fashion-mnist:0.02 split-mnist:0.02 split-fashion-mnist:0.1 split-mnist:0.1}
log="benchmarks/results/kkt_rescue_m${epochs}w${epochs}.jsonl"
export PYTHONPATH=$PWD/src
for pair in $pairs; do
    # shellcheck disable=SC2086
    "$PY" benchmarks/kkt_compare.py --benchmarks "${pair%%:*}" --densities "${pair##*:}" --seeds ${SEEDS:-0 1 2} \
        --methods exssnet --variants default no-rescue off chance --mask-epochs "$epochs" --weight-epochs "$epochs" \
        --threads 1 --log "$log" > /dev/null
done
"$PY" benchmarks/kkt_compare.py --log "$log" --table-only --deltas
