// Continuous batching seen from clients: results that do not depend on load, disconnects that
// free their slot, a full queue, a burst of clients, and shutdown on SIGTERM.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Server, sharedModel, storiesModel } from "./harness.mjs";

const prompts = ["Once upon a time", "The cat", "Lily and Tom went to the park.", "One day", "A big red ball",
  "The sun was shining", "Tim had a dog", "In the forest there was"];

async function complete(server, body) {
  const r = await server.post("/v1/completions", body);
  assert.equal(r.status, 200, r.text);
  return r.json.choices[0].text;
}

// A greedy and a seeded request give the same text alone and among 16 concurrent ones.
async function checkLoadIndependence(server, maxTokens) {
  const greedy = { prompt: prompts[0], max_tokens: maxTokens, temperature: 0 };
  const seeded = { prompt: prompts[1], max_tokens: maxTokens, temperature: 0.9, seed: 1234 };
  const aloneGreedy = await complete(server, greedy);
  const aloneSeeded = await complete(server, seeded);
  const others = [];
  for (let i = 0; i < 14; ++i) {
    others.push(complete(server, { prompt: prompts[i % prompts.length], max_tokens: 8 + (i % 5) * 7,
      temperature: i % 2 ? 0 : 0.7, seed: i }));
  }
  const [busyGreedy, busySeeded] = await Promise.all([complete(server, greedy), complete(server, seeded), ...others]);
  assert.equal(busyGreedy, aloneGreedy);
  assert.equal(busySeeded, aloneSeeded);
}

test("results do not depend on load (llama model)", async () => {
  const server = await Server.start(["-m", storiesModel, "-np", "8"]);
  try {
    await checkLoadIndependence(server, 40);
  } finally {
    assert.equal((await server.stop()).code, 0);
  }
});

test("results do not depend on load (BitNet I2_S model)", async (t) => {
  const model = sharedModel(t, "bitnet-i2s/bitnet-tiny-mha.i2_s.gguf");
  if (!model) return;
  const server = await Server.start(["-m", model, "-np", "8"]);
  try {
    await checkLoadIndependence(server, 24);
  } finally {
    assert.equal((await server.stop()).code, 0);
  }
});

test("a client that disconnects mid-stream frees its slot", async () => {
  const server = await Server.start(["-m", storiesModel, "-np", "1", "--metrics"]);
  try {
    const controller = new AbortController();
    const r = await fetch(`${server.url}/v1/completions`, {
      method: "POST", signal: controller.signal,
      body: JSON.stringify({ prompt: prompts[0], max_tokens: -1, stream: true, temperature: 0.8, min_p: 0, top_k: 0,
        seed: 3 }),
    });
    const reader = r.body.getReader();
    await reader.read();  // the stream has started
    controller.abort();
    // With one slot, the next request can only run once the abandoned one is gone.
    const start = Date.now();
    const text = await complete(server, { prompt: prompts[1], max_tokens: 8, temperature: 0 });
    assert.ok(text.length > 0);
    assert.ok(Date.now() - start < 5000);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /^bitnet:requests_processing 0$/m);
  } finally {
    assert.equal((await server.stop()).code, 0);
  }
});

test("a client that gives up on a whole (non-streamed) response frees its slot too", async () => {
  const server = await Server.start(["-m", storiesModel, "-np", "1", "--metrics"]);
  try {
    const controller = new AbortController();
    const abandoned = fetch(`${server.url}/v1/completions`, {
      method: "POST", signal: controller.signal,
      body: JSON.stringify({ prompt: prompts[0], max_tokens: -1, ignore_eos: true, temperature: 0 }),
    }).catch(() => "aborted");
    await new Promise((r) => setTimeout(r, 100));
    controller.abort();
    assert.equal(await abandoned, "aborted");
    const text = await complete(server, { prompt: prompts[1], max_tokens: 8, temperature: 0 });
    assert.ok(text.length > 0);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /^bitnet:requests_processing 0$/m);
    assert.match(metrics, /^bitnet:requests_finished_total 2$/m);
  } finally {
    assert.equal((await server.stop()).code, 0);
  }
});

test("a full queue answers 503 with Retry-After; a burst of 64 clients is all answered", async () => {
  const server = await Server.start(["-m", storiesModel, "-np", "2", "--max-queue", "4"]);
  try {
    const rssBefore = server.rss();
    const burst = [];
    for (let i = 0; i < 64; ++i) {
      burst.push(server.post("/v1/completions", { prompt: prompts[i % prompts.length], max_tokens: 48, temperature: 0,
        stream: i % 2 === 1 }));
    }
    const results = await Promise.all(burst);
    const statuses = results.map((r) => r.status);
    assert.ok(statuses.every((s) => s === 200 || s === 503), statuses.join(","));
    const busy = results.filter((r) => r.status === 503);
    assert.ok(busy.length > 0, "2 slots + 4 queued cannot take 64 requests at once");
    assert.ok(statuses.filter((s) => s === 200).length >= 6);
    for (const r of busy) {
      assert.equal(r.headers.get("retry-after"), "1");
      assert.equal(r.json.error.type, "unavailable_error");
    }
    for (const r of results.filter((x) => x.status === 200)) {
      if (r.json) assert.ok(r.json.choices[0].text.length > 0);
      else assert.match(r.text, /data: \[DONE\]\n\n$/);
    }
    // Still serving, and memory did not run away.
    assert.ok((await complete(server, { prompt: prompts[2], max_tokens: 4, temperature: 0 })).length > 0);
    const grown = server.rss() - rssBefore;
    assert.ok(grown < 64 << 20, `RSS grew by ${grown} bytes`);
  } finally {
    assert.equal((await server.stop()).code, 0);
  }
});

test("SIGTERM lets running requests finish within the grace period, then exits 0", async () => {
  const server = await Server.start(["-m", storiesModel, "-np", "2"]);
  // fetch resolves when the stream's header arrives: the request is running, not still on its way.
  const response = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    body: JSON.stringify({ prompt: prompts[0], max_tokens: 200, temperature: 0, stream: true }),
  });
  assert.equal(response.status, 200);
  const body = response.text();
  const { code } = await server.stop("SIGTERM");
  assert.equal(code, 0);
  const text = await body;
  assert.match(text, /"finish_reason":"length"/);
  assert.match(text, /data: \[DONE\]\n\n$/);
  assert.match(server.stderr, /SIGTERM received/);
});

test("SIGTERM cancels what outlasts the grace period and still exits 0", async () => {
  const server = await Server.start(["-m", storiesModel, "-np", "1", "--shutdown-grace", "0.2"]);
  const controller = new AbortController();
  const running = fetch(`${server.url}/v1/completions`, {
    method: "POST", signal: controller.signal,
    body: JSON.stringify({ prompt: prompts[0], max_tokens: -1, stream: true, temperature: 0.8, seed: 1, min_p: 0,
      top_k: 0 }),
  }).then((r) => r.text()).catch((e) => `aborted: ${e}`);
  await new Promise((r) => setTimeout(r, 100));
  const start = Date.now();
  const { code } = await server.stop("SIGTERM");
  assert.equal(code, 0);
  assert.ok(Date.now() - start < 4000);
  assert.match(server.stderr, /grace period over/);
  controller.abort();
  await running;
});
