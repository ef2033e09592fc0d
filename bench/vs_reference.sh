#!/usr/bin/env bash
# Our `bitnet bench` against the C++ reference's `llama-bench` (bitnet.cpp, I2_S; prebuilt in
# ../shared/reference) on the same files, in one run: the two alternate, ROUNDS rounds, and the
# table gives medians over every repetition of every round, with the ratio ours / reference and
# the CPU's name. The reference variant is x86-64-v4 where the CPU has AVX-512 + VNNI, else v3;
# `--target x86-64-v3` forces our AVX2 path and the v3 reference on an AVX-512 machine.
#
# Usage: bench/vs_reference.sh [--build DIR] [--target host|x86-64-v3|x86-64-v4] [--rounds N]
#                              [-p 128] [-n 64] [-t 1,2] [-r 5] [--2b4t] [MODEL.gguf ...]
# Without models: the shared I2_S models and stories260K. --2b4t adds the 2B4T-shape model
# (generated once into $BITNET_BENCH_DIR, default /tmp: 1.18 GB, never committed).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build target=host rounds=3 pp=128 tg=64 threads=1,2 reps=5 with_2b4t=0
models=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --target) target="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    -p) pp="$2"; shift 2 ;;
    -n) tg="$2"; shift 2 ;;
    -t) threads="$2"; shift 2 ;;
    -r) reps="$2"; shift 2 ;;
    --2b4t) with_2b4t=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "vs_reference.sh: unknown option $1" >&2; exit 2 ;;
    *) models+=("$1"); shift ;;
  esac
done
shared="${BITNET_SHARED_DIR:-../shared}"
bitnet="$build/bin/bitnet"
[ -x "$bitnet" ] || { echo "vs_reference.sh: $bitnet not built" >&2; exit 1; }
if [ ${#models[@]} -eq 0 ]; then
  models=("$shared"/models/bitnet-i2s/*.gguf models/stories260K.gguf)
fi
if [ "$with_2b4t" = 1 ]; then
  model="${BITNET_BENCH_DIR:-/tmp}/bitnet-2b4t-seed4.gguf"
  [ -f "$model" ] || "$bitnet" gen-model --preset 2b4t --seed 4 -o "$model" >/dev/null
  models=("$model" "${models[@]}")
fi

flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { [[ " $flags " == *" $1 "* ]]; }
variant=x86-64-v3
if [ "$target" != x86-64-v3 ] && has avx512f && has avx512bw && has avx512vl && has avx512_vnni; then
  variant=x86-64-v4
fi
ref="$shared/reference/$variant/llama-bench"
[ -x "$ref" ] || { echo "vs_reference.sh: no reference binary at $ref" >&2; exit 1; }
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export BITNET_CACHE_DIR="$work/cache"
for m in "${models[@]}"; do
  cat "$m" >/dev/null  # both engines map the file from the page cache
  # Compile (and cache) the plan before timing anything.
  "$bitnet" run -m "$m" --target "$target" -p "Hi" -n 1 -t 1 >/dev/null 2>&1 || true
done
for round in $(seq 1 "$rounds"); do
  for m in "${models[@]}"; do
    name=$(basename "$m")
    echo "round $round/$rounds: $name" >&2
    "$bitnet" bench -m "$m" --target "$target" -p "$pp" -n "$tg" -t "$threads" -r "$reps" --json --no-membw \
      >"$work/ours.$round.$name.json"
    "$ref" -m "$m" -p "$pp" -n "$tg" -t "$threads" -r "$reps" -o json >"$work/ref.$round.$name.json" 2>/dev/null
  done
done

python3 - "$work" "$cpu" "$variant" "$target" "$pp" "$tg" "$threads" "${models[@]}" <<'EOF'
import glob, json, os, statistics, sys
work, cpu, variant, target, pp, tg, threads = sys.argv[1:8]
models = [os.path.basename(m) for m in sys.argv[8:]]
threads = [int(t) for t in threads.split(",")]
tests = [t for t in ((f"pp{pp}", int(pp) > 0), (f"tg{tg}", int(tg) > 0)) if t[1]]

def samples(kind, name):
    out = {}
    for path in glob.glob(f"{work}/{kind}.*.{name}.json"):
        for row in json.load(open(path)):
            if kind == "ours":
                key, values = (row["test"], row["threads"]), row["samples_tokens_per_s"]
            else:
                test = f"pp{row['n_prompt']}" if row["n_prompt"] > 0 else f"tg{row['n_gen']}"
                key, values = (test, row["n_threads"]), row["samples_ts"]
            out.setdefault(key, []).extend(values)
    return out

print(f"CPU: {cpu}; ours: --target {target}; reference: bitnet.cpp llama-bench {variant}")
print("tokens/s, medians over every repetition of every round: reference / ours (ours / reference)\n")
cols = [(t, n) for t, _ in tests for n in threads]
print("| model | " + " | ".join(f"{t} {n}t" for t, n in cols) + " |")
print("|---|" + "---|" * len(cols))
for name in models:
    ours, ref = samples("ours", name), samples("ref", name)
    cells = []
    for key in cols:
        if key in ours and key in ref:
            o, r = statistics.median(ours[key]), statistics.median(ref[key])
            cells.append(f"{r:.1f} / {o:.1f} ({o / r:.2f}x)")
        else:
            cells.append("n/a")
    print(f"| {name} | " + " | ".join(cells) + " |")
EOF
