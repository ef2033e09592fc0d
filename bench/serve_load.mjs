// Load test of `bitnet serve` (loopback only, stops by itself): for each client count, that many
// clients each stream `--requests` completions of `--tokens` tokens, one after another;
// reports aggregate tokens/s, time to first token and inter-token latency (p50/p99), errors.
//   node bench/serve_load.mjs --url http://127.0.0.1:8080 --clients 1,4,8,16 --tokens 64
// Prints one JSON object per client count (bench/serve_load.sh turns them into a table).
const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, a, i, all) => {
  if (a.startsWith("--")) pairs.push([a.slice(2), all[i + 1]]);
  return pairs;
}, []));
const url = args.url || "http://127.0.0.1:8080";
const clientCounts = (args.clients || "1,4,8,16").split(",").map(Number);
const tokens = Number(args.tokens || 64);
const requestsPerClient = Number(args.requests || 2);
const apiKey = args["api-key"] || "";
const prompts = ["Write a story about a robot who learns to paint.", "Explain how tides work.",
  "List some facts about the moon.", "Describe a busy market in the morning.",
  "What makes a good cup of tea?", "Tell me about the history of bicycles.",
  "Describe the water cycle.", "Write a poem about autumn leaves."];

// null when nothing was measured (a server that streams no chunk for tokens without text)
const ms = (x) => (x === null ? null : +x.toFixed(1));

function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// One streamed request: its token arrival times (ms since it was sent).
async function streamOnce(prompt) {
  const start = performance.now();
  const headers = { "Content-Type": "application/json" };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  const r = await fetch(`${url}/v1/completions`, {
    method: "POST", headers,
    // ignore_eos: every request produces exactly `tokens` tokens (streamed one chunk per token)
    body: JSON.stringify({ prompt, max_tokens: tokens, temperature: 0.8, seed: 1, stream: true,
      stream_options: { include_usage: true }, ignore_eos: true }),
  });
  if (r.status !== 200) return { error: `HTTP ${r.status}` };
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  const arrivals = [];
  let buffer = "";
  let completion = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
      const chunk = JSON.parse(event.slice(6));
      if (chunk.error) return { error: chunk.error.message };
      if (chunk.usage) completion = chunk.usage.completion_tokens;
      else if (!chunk.choices[0].finish_reason) arrivals.push(performance.now() - start);
    }
  }
  return { arrivals, completion };
}

async function run(clients) {
  const ttft = [];
  const itl = [];
  let generated = 0;
  let errors = 0;
  const start = performance.now();
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    for (let i = 0; i < requestsPerClient; ++i) {
      const r = await streamOnce(prompts[(c + i) % prompts.length]);
      if (r.error) {
        errors += 1;
        continue;
      }
      generated += r.completion;
      if (r.arrivals.length) ttft.push(r.arrivals[0]);
      for (let k = 1; k < r.arrivals.length; ++k) itl.push(r.arrivals[k] - r.arrivals[k - 1]);
    }
  }));
  const seconds = (performance.now() - start) / 1000;
  return { clients, requests: clients * requestsPerClient, tokens_per_request: tokens, generated,
    seconds: +seconds.toFixed(2), aggregate_tok_s: +(generated / seconds).toFixed(2),
    ttft_p50_ms: ms(percentile(ttft, 50)), ttft_p99_ms: ms(percentile(ttft, 99)),
    itl_p50_ms: ms(percentile(itl, 50)), itl_p99_ms: ms(percentile(itl, 99)), errors };
}

await streamOnce(prompts[0]);  // warm-up: first-touch of the weights and buffers is not measured
for (const clients of clientCounts) console.log(JSON.stringify(await run(clients)));
