#!/usr/bin/env bash
# Syntax-checks the CUDA backend's host code (native/cuda/*.cc) on a machine without cuBLAS/cuDNN, given
# their headers in a folder (KILN_CUDA_HEADERS, e.g. the headers of a CUDA 12/13 + cuDNN 9 install):
#   KILN_CUDA_HEADERS=/path/to/include scripts/cuda-host-check.sh [files...]
# The addon itself is only built (and linked) on the GPU machine; this catches compile errors first.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
H="${KILN_CUDA_HEADERS:?set KILN_CUDA_HEADERS to a folder holding cudnn*.h and cublasLt.h}"
CUDA_INC="${CUDA_HOME:-/usr/local/cuda}/include"; [ -f "$CUDA_INC/cuda_runtime.h" ] || CUDA_INC="$(dirname "$(readlink -f "$(command -v nvcc)")")/../include"
NAPI="$(node -p "require('node-addon-api').include" | tr -d '"')"
NAPI_H="$(node -p "require('node-api-headers').include_dir")"
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(native/cuda/*.cc)
rc=0
for f in "${files[@]}"; do
  g++ -std=c++20 -fsyntax-only -Wall -DKILN_WITH_CUDA -I"$H" -I"$CUDA_INC" -Inative -Icuda -I"$NAPI" -I"$NAPI_H" "$f" || rc=1
done
exit $rc
