#!/usr/bin/env bash
# KKT rule grid (issue #17): ExSSNeT, seeds 0-2, densities 0.1 and 0.02, SplitMNIST, SplitFashionMNIST, gray-stream.
# Stage 1 (1 + 1 epochs): no KKT, the paper's rule, the paired rule with three starts (copy, fresh head, blend).
# Stage 2 (5 + 5 epochs): no KKT and the chosen default rule. One run at a time, --threads 1.
# Rows are appended to benchmarks/results/kkt_rule_m{1,5}w{1,5}.jsonl; finished runs are skipped on a rerun.
#   bash benchmarks/kkt_rule_grid.sh 1      # stage 1
#   bash benchmarks/kkt_rule_grid.sh 5 off paired   # stage 2 (variants of kkt_compare.py)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
epochs=${1:-1}
shift || true
variants=${*:-off chance paired paired-fresh-head paired-blend}
export PYTHONPATH=$PWD/src
# shellcheck disable=SC2086
"$PY" benchmarks/kkt_compare.py --benchmarks split-mnist split-fashion-mnist gray-stream --densities 0.1 0.02 \
    --seeds 0 1 2 --methods exssnet --variants $variants --mask-epochs "$epochs" --weight-epochs "$epochs" \
    --threads 1 --log "benchmarks/results/kkt_rule_m${epochs}w${epochs}.jsonl"
