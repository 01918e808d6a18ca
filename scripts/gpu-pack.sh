#!/usr/bin/env bash
# Prepares .gpu/ (git-ignored) for `scripts/gpu.sh test` on the GPU machine, which has no Node.js:
#   .gpu/node.xz                 this machine's node binary (x86-64, glibc), xz-compressed
#   .gpu/dist.tar.xz             dist/ (compiled TypeScript, for bench/gpu.js)
#   .gpu/node_modules.tar.xz     node_modules without what the tests don't use there (typescript,
#                                @types, node-gyp, protobufjs's cli, onnxruntime-node's binaries for
#                                other platforms, caches, *.map, *.md)
#   .gpu/onnx-conformance.tar.xz the ONNX conformance data (../shared/onnx-conformance, or
#                                $KILN_CONFORMANCE_DIR), so test/conformance runs there too
# Then prints what will travel: the device tool sends tracked + untracked-not-ignored files plus the
# carried paths, 64 MiB at most. Usage: scripts/gpu-pack.sh [--no-conformance]; run it again after
# node_modules or the conformance data change (existing files are rebuilt).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
G=.gpu
mkdir -p "$G"
[ "$(uname -m)" = x86_64 ] || { echo "gpu-pack: this machine is $(uname -m); the GPU machine needs x86-64 node and addons" >&2; exit 1; }
[ -d node_modules ] || { echo "gpu-pack: node_modules is missing: run npm install first" >&2; exit 1; }

echo "node $(node --version) -> $G/node.xz"
xz -T2 -6 -c "$(command -v node)" > "$G/node.xz.tmp" && mv "$G/node.xz.tmp" "$G/node.xz"

echo "node_modules -> $G/node_modules.tar.xz"
ORT_BIN=node_modules/onnxruntime-node/bin/napi-v6
excl=(--exclude=node_modules/typescript --exclude=node_modules/protobufjs/cli --exclude=node_modules/@types --exclude=node_modules/node-gyp --exclude=node_modules/.cache --exclude='*.map' --exclude='*.md')
for d in "$ORT_BIN"/*/*; do
  [ "$d" = "$ORT_BIN/linux/x64" ] || excl+=(--exclude="$d")
done
tar "${excl[@]}" -cf - node_modules | xz -T2 -6 > "$G/node_modules.tar.xz.tmp"
mv "$G/node_modules.tar.xz.tmp" "$G/node_modules.tar.xz"

echo "dist -> $G/dist.tar.xz (the compiled TypeScript: the GPU machine has no tsc)"
npx tsc -p tsconfig.json
tar -cf - dist | xz -T2 -6 > "$G/dist.tar.xz.tmp" && mv "$G/dist.tar.xz.tmp" "$G/dist.tar.xz"

CONF="${KILN_CONFORMANCE_DIR:-$ROOT/../shared/onnx-conformance}"
if [ "${1:-}" = --no-conformance ]; then
  rm -f "$G/onnx-conformance.tar.xz"
elif [ -d "$CONF" ]; then
  echo "$CONF -> $G/onnx-conformance.tar.xz"
  tar -C "$(dirname "$CONF")" -cf - "$(basename "$CONF")" | xz -T2 -6 > "$G/onnx-conformance.tar.xz.tmp"
  mv "$G/onnx-conformance.tar.xz.tmp" "$G/onnx-conformance.tar.xz"
else
  echo "gpu-pack: no conformance data at $CONF; test/conformance will skip there" >&2
fi

ls -l "$G"
tree=$(git ls-files -co --exclude-standard -z | du --files0-from=- -cb 2>/dev/null | tail -1 | cut -f1)
carry=$(du -sb "$G" | cut -f1)
total=$((tree + carry))
awk -v t="$tree" -v c="$carry" 'BEGIN { m = 1048576; printf "travels: working tree %.1f MiB + .gpu %.1f MiB = %.1f MiB (limit 64 MiB)\n", t / m, c / m, (t + c) / m }'
[ "$total" -lt $((64 * 1024 * 1024)) ] || { echo "gpu-pack: over the 64 MiB limit" >&2; exit 1; }
