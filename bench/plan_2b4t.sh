#!/usr/bin/env bash
# Plans on the 2B4T-shape model: plan size, load+verify time, warm start (plan hit) to the first
# token against a cold start (cache miss: hash, compile, link, store), the first token's compute
# with the weights already mapped (what the warm start costs beyond weight page-in), and decode
# throughput from a plan against the JIT path.
# Usage: bench/plan_2b4t.sh [BUILD_DIR] [THREADS]
# Generates the model (about 1.18 GB, never committed) into $BITNET_BENCH_DIR (default /tmp) once.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
threads="${2:-2}"
dir="${BITNET_BENCH_DIR:-/tmp}"
model="$dir/bitnet-2b4t-seed4.gguf"
[ -f "$model" ] || "$build/bin/bitnet" gen-model --preset 2b4t --seed 4 -o "$model"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export BITNET_CACHE_DIR="$work/cache"
run=(run -p "Hi" -n 1 --greedy -t "$threads" --no-display-prompt -v)
cat "$model" >/dev/null  # the file in the page cache: every start below maps, none reads the disk
summary() { grep -E "plan cache|^plan:|backend|wall" | sed 's/^/  /'; }
wall() { /usr/bin/time -f "  wall %e s" "$@" 2>&1 >/dev/null; }

echo "== cold start: cache miss (hash the model, compile, link, store), to the first token"
wall "$build/bin/bitnet" "${run[@]}" -m "$model" | summary
echo "== warm start: plan cache hit, to the first token (3 runs)"
for i in 1 2 3; do wall "$build/bin/bitnet" "${run[@]}" -m "$model" | summary; done
echo "== ahead of time: bitnet compile, then bitnet-rt (3 runs)"
"$build/bin/bitnet" compile -m "$model" -o "$work/2b4t.bnplan" | sed 's/^/  /'
for i in 1 2 3; do wall "$build/bin/bitnet-rt" "${run[@]}" --plan "$work/2b4t.bnplan" | summary; done
n=$("$build/bin/bitnet-rt" "${run[@]}" --plan "$work/2b4t.bnplan" --json-out "$work/t.json" >/dev/null 2>&1 &&
    python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['timings']['prompt_tokens'])" "$work/t.json")
echo "== the first token's compute with the weights mapped: pp$n from the plan after a warm-up"
"$build/bin/bitnet-rt" bench --plan "$work/2b4t.bnplan" -p "$n" -n 0 -r 5 -t "$threads" --no-membw | tail -1
echo "== decode throughput: plan (bitnet-rt) against the JIT (bitnet --no-cache)"
"$build/bin/bitnet-rt" bench --plan "$work/2b4t.bnplan" -p 0 -n 32 -r 3 -t "$threads" --no-membw | tail -1
"$build/bin/bitnet" bench -m "$model" --no-cache -p 0 -n 32 -r 3 -t "$threads" --no-membw | tail -1
