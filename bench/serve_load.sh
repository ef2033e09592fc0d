#!/usr/bin/env bash
# The load test of `bitnet serve` (README "bitnet serve" table), loopback only, ends by itself:
#   bench/serve_load.sh [MODEL] [THREADS]
# MODEL defaults to a 2B4T-shape model generated on the spot (bitnet gen-model --preset 2b4t).
# In one run: `bitnet bench` pp128 (the compute ceiling), then a server with 16 slots and 1, 4,
# 8, 16 concurrent streaming clients generating 64 tokens each, 3 requests per client (bench/serve_load.mjs), the
# server's peak RSS against model + KV cache + 200 MB, and the issue's targets checked.
set -euo pipefail
cd "$(dirname "$0")/.."
bitnet="${BITNET_BIN:-build/bin/bitnet}"
threads="${2:-2}"
model="${1:-}"
work="$(mktemp -d)"
trap 'kill "$server_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
server_pid=""
if [ -z "$model" ]; then
  model="$work/2b4t.gguf"
  "$bitnet" gen-model --preset 2b4t --seed 4 -o "$model" >/dev/null
fi
slots=16
ctx_per_slot=256
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

pp128=$("$bitnet" bench -m "$model" -p 128 -n 0 -t "$threads" -r 3 --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["tokens_per_s"])')
# The engine's own batched decode (llama-batched-bench's test) at 1 and 8 sequences: the ceiling
# of what 1 and 8 clients can get, without HTTP, sampling or prompts arriving.
engine=$("$bitnet" bench -m "$model" --batch 1,8 -p 16 -n 32 -t "$threads" -r 2 --json |
  python3 -c 'import json,sys; r=[x for x in json.load(sys.stdin) if x["test"].startswith("tg")]; print(" ".join(str(x["tokens_per_s"]) for x in r))')

"$bitnet" serve -m "$model" -t "$threads" -np "$slots" -c $((slots * ctx_per_slot)) --port 0 --metrics \
  2>"$work/server.log" &
server_pid=$!
url=""
for _ in $(seq 600); do
  url="$(grep -o 'http://[0-9.:]*' "$work/server.log" | head -1 || true)"
  [ -n "$url" ] && curl -sf "$url/health" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -sf "$url/health" >/dev/null || { cat "$work/server.log"; exit 1; }

node bench/serve_load.mjs --url "$url" --clients 1,4,8,16 --tokens 64 --requests 3 | tee "$work/load.jsonl"
rss_kb=$(grep VmHWM "/proc/$server_pid/status" | awk '{print $2}')
kv_cells=$(curl -s "$url/v1/models" | python3 -c 'import json,sys; m=json.load(sys.stdin)["data"][0]["meta"]; print(m["n_ctx_slot"]*m["slots"])')
kill -TERM "$server_pid"
wait "$server_pid" || true
server_pid=""

python3 - "$work/load.jsonl" "$pp128" "$rss_kb" "$kv_cells" "$model" "$cpu" "$threads" "$engine" <<'EOF'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
pp128, rss = float(sys.argv[2]), int(sys.argv[3]) * 1024
kv_cells, model, cpu, threads = int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7]
engine_b1, engine_b8 = (float(x) for x in sys.argv[8].split())
print(f"\nbitnet serve load test: {os.path.basename(model)}, {threads} threads, CPU: {cpu}")
print("| clients | requests | aggregate tok/s | TTFT p50 / p99 (ms) | inter-token p50 / p99 (ms) | errors |")
print("|---|---|---|---|---|---|")
for r in rows:
    f = lambda x: "-" if x is None else f"{x:.0f}"
    print(f"| {r['clients']} | {r['requests']} | {r['aggregate_tok_s']:.1f} | {f(r['ttft_p50_ms'])} / {f(r['ttft_p99_ms'])} "
          f"| {f(r['itl_p50_ms'])} / {f(r['itl_p99_ms'])} | {r['errors']} |")
one = next(r for r in rows if r["clients"] == 1)["aggregate_tok_s"]
eight = next(r for r in rows if r["clients"] == 8)["aggregate_tok_s"]
target = min(4 * one, 0.7 * pp128)
print(f"\npp128 (bitnet bench, same run): {pp128:.1f} tok/s; the engine's batched decode (bitnet bench --batch): "
      f"{engine_b1:.1f} tok/s at 1 sequence, {engine_b8:.1f} at 8 ({engine_b8 / engine_b1:.2f}x)")
print(f"server / engine: 1 client {one / engine_b1:.0%}, 8 clients {eight / engine_b8:.0%}")
print(f"8 clients: {eight:.1f} tok/s; target min(4 x {one:.1f}, 0.7 x {pp128:.1f}) = {target:.1f}: "
      f"{'met' if eight >= target else 'NOT met'} ({eight / target:.2f}x)")
errors = sum(r["errors"] for r in rows)
print(f"errors: {errors}")
# The KV cache: F16 K and V of every layer for every cell of every slot.
import subprocess
hp = json.loads(subprocess.run([os.environ.get("BITNET_BIN", "build/bin/bitnet"), "inspect", model, "--json"],
                               capture_output=True, text=True, check=True).stdout)["hparams"]
kv_bytes = kv_cells * hp["n_layer"] * 2 * hp["n_embd_kv"] * 2
model_bytes = os.path.getsize(model)
limit = model_bytes + kv_bytes + 200 * 2**20
print(f"server peak RSS {rss / 2**20:.0f} MiB; model {model_bytes / 2**20:.0f} MiB + KV {kv_bytes / 2**20:.0f} MiB "
      f"+ 200 MiB = {limit / 2**20:.0f} MiB: {'within' if rss <= limit else 'OVER'}")
EOF
