#!/usr/bin/env bash
# kiln's one command for the GPU machine (the device tool's `run`; see docs/gpu.md).
#
#   scripts/gpu.sh STAGE...        stages run in order; logs and results go to $OUT
#     info     nvidia-smi, toolchain and Python package versions            -> $OUT/info.txt
#     export   scripts/gpu/export_models.py (PyTorch's ONNX exporters)      -> $OUT/models.tar,
#              $OUT/summary.json, $OUT/export.log  (models.tar.part-* if over 15 MiB)
#     bench    PyTorch exports and times ResNet-50, MobileNetV2, GoogLeNet, BERT-base; kiln builds and
#              times the same files (fp32/fp16, batch 1/32, optimizer on/off)  -> $OUT/gpu.jsonl
#     test     unpack the carried node and node_modules, build the addon with cmake-js, run the
#              `npm test` script (and `npm run test:gpu` when test/gpu holds tests)
#              -> $OUT/build.log, $OUT/test.log, $OUT/jest.json, $OUT/test-gpu.log, $OUT/jest-gpu.json
#              (KILN_GPU_ONLY=1: the gpu project alone; KILN_GPU_TESTS: jest path patterns to run)
#     trained  scripts/gpu/train_shapes.py trains ResNet-18 on generated shapes (KILN_TRAIN_SECONDS, 90;
#              KILN_TRAIN_ARCH=resnet50 and KILN_TRAIN_SIZE for another model and image size) and
#              kiln builds it fp32/fp16/int8/best (KILN_TRAIN_PRECISIONS) at batch 1 and 32 (KILN_TRAIN_BATCHES); accuracy against the held-out labels
#              (top1_label)                                       -> $OUT/gpu.jsonl, $OUT/train.json
#     sanitize compute-sanitizer memcheck over the model tests on cuda (test/gpu/models-cuda.test.ts,
#              KILN_GPU_MODELS picks models; KILN_SANITIZE_TESTS: other jest paths and
#              arguments instead)                                 -> $OUT/sanitize.log
#     kbench   nvcc builds bench/kernels/int8_conv_cl.cu with the int8 kernels and runs it (no Node):
#              every channels-last block shape on ResNet-50's convolutions, and the wgmma experiment
#              (bench/kernels/int8_conv_wgmma.cu) as the last column (KILN_KBENCH_ARGS);
#              KILN_KBENCH_NCU=1 adds an Nsight Compute profile of one launch per shape,
#              KILN_KBENCH_SANITIZE=1 compute-sanitizer (memcheck, racecheck) over one launch of each
#                                  -> $OUT/kbench.log (, $OUT/kbench-ncu.log, $OUT/kbench-sanitize.log)
#     ltbench  nvcc builds bench/kernels/int8_gemm_lt.cu (cuBLASLt's int8 GEMM with an int8 output and its
#              own epilogue on ResNet-50's 1x1 layers, every heuristic algorithm) and runs it (no Node;
#              KILN_LTBENCH_ARGS)                                -> $OUT/ltbench.log
#     cudnnbench nvcc builds bench/kernels/int8_conv_cudnn.cu (cuDNN's int8 convolution graphs with kiln's
#              folded epilogue on ResNet-50's layers, every heuristic engine) and runs it (no Node;
#              KILN_CUDNNBENCH_ARGS)                             -> $OUT/cudnnbench.log
#
# `test` needs .gpu/ made by scripts/gpu-pack.sh and carried: run({ command: 'scripts/gpu.sh test',
# carry: ['.gpu'] }). `export` needs nothing carried. The exit status is the first failing stage's.
set -uo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
[ $# -gt 0 ] || { usage; exit 2; }
for s in "$@"; do
  case "$s" in info|export|test|bench|trained|sanitize|kbench|ltbench|cudnnbench) ;; -h|--help) usage; exit 0 ;; *) echo "gpu.sh: unknown stage '$s'" >&2; usage >&2; exit 2 ;; esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/out-gpu}"
mkdir -p "$OUT"
WORK="$(mktemp -d /tmp/kiln-gpu.XXXXXX)"
status=0

stage_info() {
  {
    date -u; uname -a
    nvidia-smi 2>&1 | head -20
    nvcc --version 2>&1 | tail -2
    cmake --version 2>&1 | head -1; g++ --version 2>&1 | head -1
    python3 -c 'import sys; print("python", sys.version.split()[0])'
    python3 -m pip list 2>/dev/null | grep -iE '^(torch|torchvision|onnx|onnxruntime|onnxscript|onnx-ir|transformers|numpy) '
    nproc
  } > "$OUT/info.txt" 2>&1
  cat "$OUT/info.txt"
}

stage_export() {
  local dir="$WORK/export" rc
  PYTHONUNBUFFERED=1 python3 scripts/gpu/export_models.py --out "$dir/models" 2>&1 | tee "$OUT/export.log"
  rc=${PIPESTATUS[0]}
  [ -f "$dir/models/summary.json" ] && cp "$dir/models/summary.json" "$OUT/summary.json"
  if ls "$dir"/models/*.onnx >/dev/null 2>&1; then
    tar -C "$dir" -cf "$dir/models.tar" models
    if [ "$(stat -c %s "$dir/models.tar")" -gt $((15 * 1024 * 1024)) ]; then
      split -b 15m "$dir/models.tar" "$OUT/models.tar.part-"   # join with: cat models.tar.part-* > models.tar
    else
      cp "$dir/models.tar" "$OUT/models.tar"
    fi
  fi
  return "$rc"
}

# Unpacks the carried node, node_modules, dist/ and conformance data, and builds the addon (once).
setup_node() {
  local g="$ROOT/.gpu"
  [ -n "${KILN_SETUP_DONE:-}" ] && return 0
  for f in node.xz node_modules.tar.xz; do
    [ -f "$g/$f" ] || { echo "gpu.sh: .gpu/$f is missing: run scripts/gpu-pack.sh here and carry .gpu" >&2; return 1; }
  done
  # node lives at a fixed path: CMake caches where it found node, and a warm machine's build/ re-runs
  # its configure step with that path (a per-call temporary folder would be gone by then).
  local bin=/tmp/kiln-gpu-node/bin
  mkdir -p "$bin"
  xz -dc "$g/node.xz" > "$bin/node.tmp" && chmod +x "$bin/node.tmp" && mv "$bin/node.tmp" "$bin/node" || return 1
  export PATH="$ROOT/node_modules/.bin:$bin:$PATH"
  node --version || return 1
  [ -d node_modules ] || tar -xJf "$g/node_modules.tar.xz" || return 1
  [ -d dist ] || { [ -f "$g/dist.tar.xz" ] && tar -xJf "$g/dist.tar.xz"; } || return 1
  if [ -f "$g/onnx-conformance.tar.xz" ]; then
    tar -C "$WORK" -xJf "$g/onnx-conformance.tar.xz" && export KILN_CONFORMANCE_DIR="$WORK/onnx-conformance"
  fi
  # The addon: cmake-js builds offline from node-api-headers (package.json "binary.napi_versions").
  KILN_BUILD_JOBS="$(nproc)" node scripts/build-native.js > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; return 1; }
  tail -5 "$OUT/build.log"
  node -e "console.log(JSON.stringify(require('./build/Release/kiln.node').info()))" 2>&1 | tee -a "$OUT/build.log"
  export KILN_SETUP_DONE=1
}

stage_test() {
  local rc=0
  setup_node || return 1
  # Exactly the package.json scripts, as npm would run them (npm itself is not carried).
  local cmd
  if [ "${KILN_GPU_ONLY:-0}" != 1 ]; then  # KILN_GPU_ONLY=1: only the gpu project (device time is scarce)
    cmd="$(node -p "require('./package.json').scripts.test")"
    sh -c "$cmd \"\$@\"" npm-test --json --outputFile="$OUT/jest.json" > "$OUT/test.log" 2>&1 || rc=$?
    grep -E '^(Tests|Test Suites|Snapshots|Time):' "$OUT/test.log"
  fi
  if compgen -G 'test/gpu/*.test.ts' >/dev/null || compgen -G 'test/gpu/*/*.test.ts' >/dev/null; then
    cmd="$(node -p "require('./package.json').scripts['test:gpu']")"
    # shellcheck disable=SC2086
    sh -c "$cmd \"\$@\"" npm-test-gpu --json --outputFile="$OUT/jest-gpu.json" ${KILN_GPU_TESTS:-} > "$OUT/test-gpu.log" 2>&1 || rc=$?
    grep -E '^(Tests|Test Suites):' "$OUT/test-gpu.log"
    grep -E '✕' "$OUT/test-gpu.log" | head -40
  fi
  return "$rc"
}

# The benchmarks: PyTorch exports and times the models (scripts/gpu/bench_torch.py), then kiln builds
# and times the same files (bench/gpu.js); both append to $OUT/gpu.jsonl. KILN_BENCH_MODELS picks
# models (default resnet50,mobilenet_v2,googlenet,bert_base), KILN_BENCH_ITERS the timed runs.
stage_bench() {
  local rc=0 models="${KILN_BENCH_MODELS:-resnet50,mobilenet_v2,googlenet,bert_base}"
  setup_node || return 1
  # KILN_BENCH_TORCH=0: export only (the PyTorch timings of these models are already recorded)
  PYTHONUNBUFFERED=1 python3 scripts/gpu/bench_torch.py --out "$WORK/bench-models" --results "$OUT/gpu.jsonl" \
    --models "$models" --iters "${KILN_BENCH_ITERS:-100}" $([ "${KILN_BENCH_TORCH:-1}" = 0 ] && echo --no-time) 2>&1 | tee "$OUT/bench-torch.log" || rc=1
  local files=()
  for m in ${models//,/ }; do files+=("$WORK/bench-models/$m.onnx"); done
  # KILN_BENCH_ARGS: more bench/gpu.js flags, e.g. "--precisions fp32 --batches 1"
  node bench/gpu.js --results "$OUT/gpu.jsonl" --iters "${KILN_BENCH_ITERS:-100}" ${KILN_BENCH_ARGS:-} "${files[@]}" 2>&1 | tee "$OUT/bench-kiln.log" || rc=1
  return "$rc"
}

# A trained model with realistic inputs for the int8/best accuracy rows (no hub downloads on the machine).
stage_trained() {
  local rc=0 dir="$WORK/trained"
  setup_node || return 1
  local arch="${KILN_TRAIN_ARCH:-resnet18}"
  PYTHONUNBUFFERED=1 python3 scripts/gpu/train_shapes.py --out "$dir" --arch "$arch" --size "${KILN_TRAIN_SIZE:-64}" --seconds "${KILN_TRAIN_SECONDS:-90}" 2>&1 | tee "$OUT/train.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || return 1
  cp "$dir/train.json" "$OUT/train.json"
  # shellcheck disable=SC2086
  node bench/gpu.js --results "$OUT/gpu.jsonl" --iters "${KILN_BENCH_ITERS:-100}" --data "$dir" --classes 10 --calib 64 --holdout 16 \
    --devices cuda --batches "${KILN_TRAIN_BATCHES:-1,32}" --precisions "${KILN_TRAIN_PRECISIONS:-fp32,fp16,int8,best}" --unoptimized , ${KILN_BENCH_ARGS:-} "$dir/shapes_$arch.onnx" 2>&1 | tee "$OUT/bench-trained.log" || rc=1
  return "$rc"
}

# compute-sanitizer's memcheck over the cuda model tests, in one process (jest --runInBand).
stage_sanitize() {
  local cs rc=0
  setup_node || return 1
  cs="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
  [ -x "$cs" ] || { echo "gpu.sh: compute-sanitizer not found" >&2; return 1; }
  # shellcheck disable=SC2086
  KILN_TEST_GPU=1 KILN_GPU_MODELS="${KILN_GPU_MODELS:-resnet-tiny-ts.onnx,bert-tiny-ts.onnx}" "$cs" --tool memcheck --leak-check full \
    --error-exitcode 7 --target-processes all node node_modules/jest/bin/jest.js --selectProjects gpu --runInBand \
    ${KILN_SANITIZE_TESTS:-test/gpu/models-cuda.test.ts} > "$OUT/sanitize.log" 2>&1 || rc=$?
  grep -E '^(Tests:|=========.*ERROR SUMMARY|========= LEAK SUMMARY)' "$OUT/sanitize.log" | head
  return "$rc"
}

stage_kbench() {
  local bin="$WORK/int8_conv_cl" rc=0
  # sm_90a with the wgmma experiment (bench/kernels/int8_conv_wgmma.cu); without it if that fails to build
  nvcc -O3 -std=c++17 -arch=sm_90a -DKILN_KBENCH_WGMMA -I. -Inative -Icuda -o "$bin" bench/kernels/int8_conv_cl.cu bench/kernels/int8_conv_wgmma.cu cuda/int8_conv_stem.cu cuda/int8_conv_pw.cu \
    cuda/int8_conv_cl.cu cuda/int8_conv.cu 2>&1 | tail -20
  [ -x "$bin" ] || nvcc -O3 -std=c++17 -arch=sm_90 -I. -Inative -Icuda -o "$bin" bench/kernels/int8_conv_cl.cu cuda/int8_conv_cl.cu cuda/int8_conv.cu cuda/int8_conv_stem.cu cuda/int8_conv_pw.cu 2>&1 | tail -20
  [ -x "$bin" ] || return 1
  # shellcheck disable=SC2086
  "$bin" ${KILN_KBENCH_ARGS:-} 2>&1 | tee "$OUT/kbench.log" || rc=1
  if [ "${KILN_KBENCH_SANITIZE:-0}" = 1 ]; then
    # every shape, the stem's im2col and the wgmma experiment once each under memcheck (batches 1 and 3:
    # partial tiles) and racecheck (shared memory; two layers: a 1x1 with residual, a 3x3)
    local cs
    cs="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
    { "$cs" --tool memcheck --leak-check full --error-exitcode 3 "$bin" --batch 1 --batch 3 --once &&
      "$cs" --tool racecheck --error-exitcode 3 "$bin" --batch 1 --once --only "l2 1x1 128-512" &&
      "$cs" --tool racecheck --error-exitcode 3 "$bin" --batch 1 --once --only "l3 3x3 256 s2"; } > "$OUT/kbench-sanitize.log" 2>&1 || rc=1
    tail -5 "$OUT/kbench-sanitize.log"
  fi
  if [ "${KILN_KBENCH_NCU:-0}" = 1 ]; then
    # one launch of each shape on the layers KILN_KBENCH_NCU_LAYER names (a substring), batch 32
    ncu --clock-control none --kernel-name regex:mma_cl_kernel --section SpeedOfLight --section WarpStateStats --section Occupancy \
      --section LaunchStats --section MemoryWorkloadAnalysis "$bin" --batch 32 --once --only "${KILN_KBENCH_NCU_LAYER:-3x3 64}" > "$OUT/kbench-ncu.log" 2>&1 || rc=1
  fi
  return "$rc"
}

stage_ltbench() {
  local bin="$WORK/int8_gemm_lt"
  nvcc -O3 -std=c++17 -arch=sm_90 -o "$bin" bench/kernels/int8_gemm_lt.cu -lcublasLt 2>&1 | tail -20
  [ -x "$bin" ] || return 1
  # shellcheck disable=SC2086
  "$bin" ${KILN_LTBENCH_ARGS:-} 2>&1 | tee "$OUT/ltbench.log"
}

stage_cudnnbench() {
  local bin="$WORK/int8_conv_cudnn"
  nvcc -O3 -std=c++17 -arch=sm_90 -I/usr/include/x86_64-linux-gnu -o "$bin" bench/kernels/int8_conv_cudnn.cu -lcudnn 2>&1 | tail -20
  [ -x "$bin" ] || return 1
  # shellcheck disable=SC2086
  "$bin" ${KILN_CUDNNBENCH_ARGS:-} 2>&1 | tee "$OUT/cudnnbench.log"
}

for s in "$@"; do
  echo "=== gpu.sh $s ==="
  start=$(date +%s)
  "stage_$s"; rc=$?
  echo "=== gpu.sh $s: exit $rc in $(( $(date +%s) - start )) s ==="
  [ "$rc" -ne 0 ] && [ "$status" -eq 0 ] && status=$rc
done
rm -rf "$WORK"
exit "$status"
