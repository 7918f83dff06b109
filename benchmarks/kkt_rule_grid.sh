#!/usr/bin/env bash
# KKT rule grid (issue #17): ExSSNeT, seeds 0-2, densities 0.1 and 0.02, SplitMNIST, SplitFashionMNIST, gray-stream.
# Stage 1 (1 + 1 epochs): no KKT, the paper's rule, the paired rule with three starts (copy, fresh head, blend).
# Stage 2 (5 + 5 epochs): the chosen default rule and no KKT (copied from the rule's run where nothing transferred,
# see benchmarks/kkt_compare.py). One run at a time, --threads 1. Rows are appended to
# benchmarks/results/kkt_rule_m{1,5}w{1,5}.jsonl; finished runs are skipped on a rerun.
#   bash benchmarks/kkt_rule_grid.sh 1                 # stage 1
#   bash benchmarks/kkt_rule_grid.sh 5 paired off      # stage 2 (variants of kkt_compare.py, rule first)
# PAIRS (benchmark:density, in order) picks and orders the streams; the default runs the riskiest first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
epochs=${1:-1}
shift || true
variants=${*:-off chance paired paired-fresh-head paired-blend}
pairs=${PAIRS:-gray-stream:0.02 gray-stream:0.1 split-fashion-mnist:0.02 split-mnist:0.02 split-fashion-mnist:0.1 split-mnist:0.1}
export PYTHONPATH=$PWD/src
for pair in $pairs; do
    # shellcheck disable=SC2086
    "$PY" benchmarks/kkt_compare.py --benchmarks "${pair%%:*}" --densities "${pair##*:}" --seeds 0 1 2 \
        --methods exssnet --variants $variants --mask-epochs "$epochs" --weight-epochs "$epochs" \
        --threads 1 --log "benchmarks/results/kkt_rule_m${epochs}w${epochs}.jsonl" > /dev/null
done
"$PY" benchmarks/kkt_compare.py --log "benchmarks/results/kkt_rule_m${epochs}w${epochs}.jsonl" --table-only --deltas
