// The HTTP surface of `bitnet serve` with curl and raw sockets: the small endpoints, API keys,
// size and time limits, slow and surplus clients, malformed requests, the loading state.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Server, execFileP, sharedModel, storiesModel } from "./harness.mjs";

let server;
const key = "s3cret-key";

before(async () => {
  server = await Server.start(["-m", storiesModel, "--api-key", key, "--metrics", "--timeout", "1",
    "--max-body", "65536", "--max-connections", "8", "-np", "2"]);
});
after(async () => {
  assert.equal((await server.stop()).code, 0);
});

// curl's status code and body.
async function curl(args) {
  const { stdout } = await execFileP("curl", ["-s", "-w", "\n%{http_code}", ...args], { maxBuffer: 1 << 24 });
  const cut = stdout.lastIndexOf("\n");
  const body = stdout.slice(0, cut);
  let json = null;
  try {
    json = JSON.parse(body);
  } catch (e) {
    /* not JSON */
  }
  return { status: Number(stdout.slice(cut + 1)), body, json };
}
const auth = ["-H", `Authorization: Bearer ${key}`];

// Sends raw bytes, returns everything the server writes until it closes (or `waitMs` passes).
function raw(bytes, { waitMs = 5000, trickle = null } = {}) {
  return new Promise((resolve) => {
    const socket = net.connect(server.port, server.host);
    let data = "";
    const started = Date.now();
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ data, closed: false, ms: Date.now() - started });
    }, waitMs);
    socket.on("data", (d) => (data += d.toString()));
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ data, closed: true, ms: Date.now() - started });
    });
    socket.on("error", () => {});
    socket.on("connect", async () => {
      if (!trickle) return socket.write(bytes);
      for (const ch of bytes) {  // one byte every `trickle` ms
        if (socket.destroyed) return;
        socket.write(ch);
        await new Promise((r) => setTimeout(r, trickle));
      }
    });
  });
}

test("health, models, tokenize, detokenize, metrics with curl", async () => {
  const health = await curl([`${server.url}/health`]);
  assert.equal(health.status, 200);
  assert.deepEqual(health.json, { status: "ok" });
  const models = await curl([...auth, `${server.url}/v1/models`]);
  assert.equal(models.status, 200);
  assert.equal(models.json.object, "list");
  assert.equal(models.json.data[0].id, "stories260K");
  assert.equal(models.json.data[0].object, "model");
  const tok = await curl([...auth, `${server.url}/tokenize`, "-d", '{"content":"Once upon a time","add_special":true}']);
  assert.equal(tok.status, 200);
  assert.ok(tok.json.tokens.length >= 4);
  assert.ok(tok.json.tokens.every(Number.isInteger));
  const pieces = await curl([...auth, `${server.url}/tokenize`, "-d", '{"content":"Once upon","with_pieces":true}']);
  assert.equal(pieces.json.tokens.map((t) => t.piece).join(""), " Once upon");
  const detok = await curl([...auth, `${server.url}/detokenize`, "-d",
    JSON.stringify({ tokens: tok.json.tokens.slice(1) })]);
  assert.equal(detok.status, 200);
  assert.equal(detok.json.content.trim(), "Once upon a time");
  const badDetok = await curl([...auth, `${server.url}/detokenize`, "-d", '{"tokens":[1,-4]}']);
  assert.equal(badDetok.status, 400);
  await curl([...auth, `${server.url}/v1/completions`, "-d", '{"prompt":"The dog","max_tokens":5}']);
  const metrics = await curl([...auth, `${server.url}/metrics`]);
  assert.equal(metrics.status, 200);
  for (const name of ["requests_total", "prompt_tokens_total", "tokens_predicted_total", "predicted_tokens_seconds",
    "requests_processing", "requests_deferred", "kv_cache_tokens"]) {
    assert.match(metrics.body, new RegExp(`^# TYPE bitnet:${name} (counter|gauge)$`, "m"));
    assert.match(metrics.body, new RegExp(`^bitnet:${name} [0-9.e+-]+$`, "m"));
  }
  assert.match(metrics.body, /^bitnet:tokens_predicted_total [1-9]/m);
});

test("the API key: missing or wrong is 401, Bearer or X-Api-Key works, /health is public", async () => {
  const none = await curl([`${server.url}/v1/models`]);
  assert.equal(none.status, 401);
  assert.equal(none.json.error.type, "authentication_error");
  const wrong = await curl(["-H", "Authorization: Bearer s3cret-kez", `${server.url}/v1/models`]);
  assert.equal(wrong.status, 401);
  const prefix = await curl(["-H", "Authorization: Bearer s3cret", `${server.url}/v1/models`]);
  assert.equal(prefix.status, 401);
  assert.equal((await curl(["-H", `X-Api-Key: ${key}`, `${server.url}/v1/models`])).status, 200);
  assert.equal((await curl([`${server.url}/health`])).status, 200);
});

test("--api-key-file reads the key from a file", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "bitnet-key-"));
  const file = path.join(dir, "key");
  writeFileSync(file, "from-file\n");
  const s = await Server.start(["-m", storiesModel, "--api-key-file", file]);
  try {
    assert.equal((await curl([`${s.url}/v1/models`])).status, 401);
    assert.equal((await curl(["-H", "Authorization: Bearer from-file", `${s.url}/v1/models`])).status, 200);
  } finally {
    await s.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("unknown paths are 404, wrong methods 405, CORS preflight 204, the chat page is served", async () => {
  assert.equal((await curl([...auth, `${server.url}/v2/nothing`])).status, 404);
  const wrongMethod = await curl([...auth, `${server.url}/v1/completions`]);
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.json.error.code, "method_not_allowed");
  const preflight = await curl(["-X", "OPTIONS", "-i", `${server.url}/v1/chat/completions`]);
  assert.equal(preflight.status, 204);
  assert.match(preflight.body, /access-control-allow-origin: \*/i);
  const page = await curl([`${server.url}/`]);
  assert.equal(page.status, 200);
  assert.match(page.body, /<title>bitnet chat<\/title>/);
});

test("--no-webui turns the page off", async () => {
  const s = await Server.start(["-m", storiesModel, "--no-webui"]);
  try {
    assert.equal((await curl([`${s.url}/`])).status, 404);
  } finally {
    await s.stop();
  }
});

test("a body over --max-body is 413 (with and without Expect: 100-continue)", async () => {
  const big = JSON.stringify({ prompt: "x".repeat(70000) });
  const dir = mkdtempSync(path.join(os.tmpdir(), "bitnet-body-"));
  const file = path.join(dir, "body.json");
  writeFileSync(file, big);
  try {
    const r = await curl([...auth, `${server.url}/v1/completions`, "--data-binary", `@${file}`]);
    assert.equal(r.status, 413);
    assert.match(r.json.error.message, /larger than 65536 bytes/);
    const noExpect = await curl([...auth, "-H", "Expect:", `${server.url}/v1/completions`, "--data-binary", `@${file}`]);
    assert.equal(noExpect.status, 413);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("malformed HTTP is 400 and the connection closes", async () => {
  const r = await raw("GARBAGE\r\n\r\n");
  assert.ok(r.closed);
  assert.match(r.data, /^HTTP\/1\.1 400 /);
  const smuggle = await raw("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n" +
    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  assert.ok(smuggle.closed);
  assert.match(smuggle.data, /^HTTP\/1\.1 400 /);
  const hugeHeader = await raw(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20000)}\r\n\r\n`);
  assert.match(hugeHeader.data, /^HTTP\/1\.1 431 /);
});

test("slow clients time out: headers or body trickled past --timeout", async () => {
  // The whole request must arrive within 1 s; a byte every 100 ms for a 40-byte header does not.
  const headers = await raw("GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: yes\r\n\r\n", { trickle: 100 });
  assert.ok(headers.closed, "the server closed the connection");
  assert.ok(headers.ms < 2500, `closed after ${headers.ms} ms`);
  assert.equal(headers.data, "");
  const body = await raw(`POST /tokenize HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${key}\r\n` +
    "Content-Length: 100\r\n\r\n{\"content\":", { waitMs: 4000 });
  assert.ok(body.closed, "a stalled body is dropped");
  assert.ok(body.ms < 2500);
});

test("connections beyond --max-connections are refused with 503, then served again", async () => {
  const idle = [];
  for (let i = 0; i < 8; ++i) {
    const s = net.connect(server.port, server.host);
    s.on("error", () => {});
    await new Promise((r) => s.on("connect", r));
    idle.push(s);
  }
  await new Promise((r) => setTimeout(r, 50));
  const refused = await raw("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  assert.ok(refused.closed);
  assert.match(refused.data, /^HTTP\/1\.1 503 /);
  assert.match(refused.data, /too many connections/);
  for (const s of idle) s.destroy();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await curl([`${server.url}/health`])).status, 200);
});

test("/health is 503 while the model loads, then 200", async (t) => {
  // A BitNet model compiled without the plan cache takes long enough to see the loading state.
  const model = sharedModel(t, "bitnet-i2s/b158-small-gqa.i2_s.gguf");
  if (!model) return;
  const s = await Server.start(["-m", model, "--no-cache"], { waitReady: false });
  try {
    const early = await curl([`${s.url}/health`]);
    assert.equal(early.status, 503);
    assert.equal(early.json.error.message, "Loading model");
    const completion = await curl([`${s.url}/v1/completions`, "-d", '{"prompt":"a"}']);
    assert.equal(completion.status, 503);
    await s.ready();
    assert.equal((await curl([`${s.url}/health`])).status, 200);
  } finally {
    assert.equal((await s.stop()).code, 0);
  }
});

test("bad command lines and unusable models fail with the documented exit codes", async () => {
  const run = (args) => execFileP(server.proc.spawnfile, ["serve", ...args]).then(() => 0, (e) => e.code);
  assert.equal(await run(["-m", storiesModel, "--port", "70000"]), 2);
  assert.equal(await run(["-m", storiesModel, "-np", "0"]), 2);
  assert.equal(await run(["-m", storiesModel, "--timeout", "-1"]), 2);
  assert.equal(await run(["-m", storiesModel, "--port", "0", "--host", "not-an-ip"]), 1);
  assert.equal(await run(["-m", "/nonexistent.gguf", "--port", "0"]), 1);
  assert.equal(await run(["-m", storiesModel, "--port", String(server.port)]), 1);  // in use
});
