#!/usr/bin/env bash
# CUDA checks for a machine with a GPU (docs/distributed.md): the CUDA tests, a short ExSSNeT run per precision
# with old tasks checked bit-identical, the step-time ratios, and (with 2+ GPUs) a 2-process NCCL run.
#   scripts/gpu_check.sh [OUT]         (default OUT: runs/gpu-check); PYTHON=... to pick the interpreter
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${1:-runs/gpu-check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible to torch " + torch.__version__)
print("torch", torch.__version__, "CUDA", torch.version.cuda, "devices:",
      [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
PY
echo "== CUDA tests"
"$PY" -m pytest -q -p no:cacheprovider tests/test_gpu_ready.py tests/test_imagenet.py
for amp in fp32 bf16 fp16; do
  flag=""; [ "$amp" != fp32 ] && flag="--amp $amp --channels-last"
  echo "== ExSSNeT on SplitMNIST, 2 tasks, cuda, $amp"
  /usr/bin/time -f "wall %e s" "$PY" -m exssnet run --benchmark split-mnist --method exssnet --num-tasks 2 \
      --mask-epochs 1 --weight-epochs 1 --device cuda $flag --quiet --overwrite --out "$OUT/splitmnist-$amp"
  "$PY" - "$OUT/splitmnist-$amp/results.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
m = r["acc_matrix"]
same = all(m[i][j] == m[j][j] for i in range(len(m)) for j in range(i + 1))
print(f"avg_acc {r['avg_acc']:.2f} forgetting {r['forgetting']} old tasks bit-identical: {same}")
sys.exit(0 if same and r["forgetting"] == 0 else 1)
PY
done
echo "== step ratios (cuda)"
"$PY" benchmarks/step_ratio.py --device cuda --repeats 100
ngpu=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if [ "$ngpu" -ge 2 ]; then
  echo "== 2-process NCCL run"
  "$PY" -m torch.distributed.run --standalone --nproc-per-node 2 -m exssnet run --benchmark split-mnist \
      --method exssnet --num-tasks 2 --mask-epochs 1 --weight-epochs 1 --device cuda --quiet --overwrite --out "$OUT/nccl"
  "$PY" -c "import json,sys; r=json.load(open('$OUT/nccl/results.json')); print('world_size', r['config']['world_size'], 'forgetting', r['forgetting'])"
fi
echo "gpu_check: all passed"
