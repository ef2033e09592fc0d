// `bitnet serve` through OpenAI's official npm client: completions, chat, streaming, stop
// strings, logprobs, seeds and OpenAI-shaped errors.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { Server, cliGreedy, storiesModel } from "./harness.mjs";

let server;
let client;
const alias = "stories";

before(async () => {
  server = await Server.start(["-m", storiesModel, "--alias", alias, "-np", "2"]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
});
after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, "SIGTERM ends the server with exit code 0");
});

const prompt = "Once upon a time";

test("a greedy completion is what `bitnet run --greedy` generates", async () => {
  const reference = await cliGreedy(storiesModel, prompt, 24);
  const r = await client.completions.create({ model: alias, prompt, max_tokens: 24, temperature: 0 });
  assert.equal(r.object, "text_completion");
  assert.equal(r.model, alias);
  assert.match(r.id, /^cmpl-/);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].text, reference.text);
  assert.equal(r.choices[0].finish_reason, "length");
  assert.deepEqual(r.usage, { prompt_tokens: reference.prompt_ids.length, completion_tokens: 24,
    total_tokens: reference.prompt_ids.length + 24 });
});

test("a prompt of token ids gives the same completion as its text", async () => {
  const tokens = (await server.post("/tokenize", { content: prompt, add_special: true })).json.tokens;
  const a = await client.completions.create({ model: alias, prompt: tokens, max_tokens: 12, temperature: 0 });
  const b = await client.completions.create({ model: alias, prompt, max_tokens: 12, temperature: 0 });
  assert.equal(a.choices[0].text, b.choices[0].text);
});

test("streamed completions add up to the whole one, chunk by chunk, with usage last", async () => {
  const whole = await client.completions.create({ model: alias, prompt, max_tokens: 30, temperature: 0 });
  const stream = await client.completions.create({ model: alias, prompt, max_tokens: 30, temperature: 0, stream: true,
    stream_options: { include_usage: true } });
  let text = "";
  let chunks = 0;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) {
      usage = chunk.usage;
      assert.equal(chunk.choices.length, 0);
      continue;
    }
    chunks += 1;
    text += chunk.choices[0].text;
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.equal(text, whole.choices[0].text);
  assert.ok(chunks > 10, `tokens arrive as they are produced (${chunks} chunks)`);
  assert.equal(finish, "length");
  assert.deepEqual(usage, whole.usage);
});

test("chat completions use the chat template; streamed deltas equal the whole message", async () => {
  const messages = [{ role: "system", content: "You tell stories." }, { role: "user", content: "Tell me one." }];
  const whole = await client.chat.completions.create({ model: alias, messages, max_tokens: 20, temperature: 0 });
  assert.equal(whole.object, "chat.completion");
  assert.equal(whole.choices[0].message.role, "assistant");
  assert.ok(whole.choices[0].message.content.length > 0);
  const stream = await client.chat.completions.create({ model: alias, messages, max_tokens: 20, temperature: 0,
    stream: true });
  let text = "";
  let role = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, "chat.completion.chunk");
    const delta = chunk.choices[0].delta;
    if (delta.role) role = delta.role;
    text += delta.content ?? "";
  }
  assert.equal(role, "assistant");
  assert.equal(text, whole.choices[0].message.content);
  // The same conversation rendered by the template and sent as a completion gives the same text.
  const rendered = await client.chat.completions.create({ model: alias, messages, max_completion_tokens: 20,
    temperature: 0 });
  assert.equal(rendered.choices[0].message.content, whole.choices[0].message.content);
});

test("stop strings end the text before them, also when split across tokens and streamed", async () => {
  const full = (await client.completions.create({ model: alias, prompt, max_tokens: 40, temperature: 0 })).choices[0]
    .text;
  // A stop string that starts inside one token and ends inside another.
  const tokens = (await server.post("/tokenize", { content: full, with_pieces: true })).json.tokens;
  const first = tokens[3].piece;
  const second = tokens[4].piece;
  const stop = first.slice(-2) + second.slice(0, 2);
  const cut = full.indexOf(stop);
  assert.ok(cut > 0, `'${stop}' occurs in '${full}'`);
  const r = await client.completions.create({ model: alias, prompt, max_tokens: 40, temperature: 0, stop: [stop, "zzz"] });
  assert.equal(r.choices[0].text, full.slice(0, cut));
  assert.equal(r.choices[0].finish_reason, "stop");
  const stream = await client.completions.create({ model: alias, prompt, max_tokens: 40, temperature: 0, stop, stream: true });
  let text = "";
  for await (const chunk of stream) {
    text += chunk.choices[0].text;
    assert.ok(!text.includes(stop), "no part of the stream shows the stop string");
  }
  assert.equal(text, full.slice(0, cut));
});

test("chat logprobs: one entry per token, the greedy token is the most likely", async () => {
  const r = await client.chat.completions.create({ model: alias, messages: [{ role: "user", content: "Hi" }],
    max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  for (const entry of content) {
    assert.equal(entry.top_logprobs.length, 3);
    assert.ok(entry.logprob <= 0);
    assert.equal(entry.token, entry.top_logprobs[0].token);
    assert.ok(Math.abs(entry.logprob - entry.top_logprobs[0].logprob) < 1e-6);
    assert.ok(entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob);
    assert.ok(Array.isArray(entry.bytes));
  }
  assert.equal(content.map((e) => e.token).join(""), r.choices[0].message.content);
});

test("completion logprobs (legacy shape) with text offsets", async () => {
  const r = await client.completions.create({ model: alias, prompt, max_tokens: 5, temperature: 0, logprobs: 2 });
  const lp = r.choices[0].logprobs;
  assert.equal(lp.tokens.length, 5);
  assert.equal(lp.token_logprobs.length, 5);
  assert.equal(lp.top_logprobs.length, 5);
  assert.equal(Object.keys(lp.top_logprobs[0]).length, 2);
  assert.equal(lp.text_offset[0], 0);
  assert.equal(lp.tokens.join(""), r.choices[0].text);
});

test("a seed makes a sampled request reproducible", async () => {
  const ask = (seed) => client.completions.create({ model: alias, prompt, max_tokens: 24, temperature: 1.0, top_k: 0,
    top_p: 1, min_p: 0, seed });
  const [a, b, c] = await Promise.all([ask(7), ask(7), ask(8)]);
  assert.equal(a.choices[0].text, b.choices[0].text);
  assert.notEqual(a.choices[0].text, c.choices[0].text);
});

test("errors are OpenAI-shaped with the right status", async () => {
  const expectError = async (promise, status, pattern) => {
    await assert.rejects(promise, (e) => {
      assert.ok(e instanceof OpenAI.APIError, String(e));
      assert.equal(e.status, status);
      assert.match(e.message, pattern);
      return true;
    });
  };
  await expectError(client.completions.create({ model: alias, prompt, temperature: 5 }), 400, /temperature/);
  await expectError(client.completions.create({ model: alias, prompt, max_tokens: -5 }), 400, /max_tokens/);
  await expectError(client.completions.create({ model: alias, prompt, max_tokens: 1e12 }), 400, /max_tokens/);
  await expectError(client.completions.create({ model: alias, prompt, top_k: -1 }), 400, /top_k/);
  await expectError(client.completions.create({ model: alias, prompt, top_k: 1e9 }), 400, /top_k/);
  await expectError(client.completions.create({ model: alias, prompt, n: 2 }), 400, /'n'/);
  await expectError(client.completions.create({ model: alias, prompt: ["a", "b"] }), 400, /several prompts/);
  await expectError(client.completions.create({ model: alias, prompt, top_p: 1.5 }), 400, /top_p/);
  await expectError(client.completions.create({ model: alias, prompt, frequency_penalty: 3 }), 400, /frequency/);
  await expectError(client.completions.create({ model: alias, prompt: [1, 2, 99999] }), 400, /vocabulary/);
  await expectError(client.completions.create({ model: "gpt-4", prompt }), 404, /does not exist/);
  await expectError(client.chat.completions.create({ model: alias, messages: [] }), 400, /messages/);
  await expectError(client.chat.completions.create({ model: alias, messages: [{ role: "wizard", content: "x" }] }), 400,
    /role/);
  await expectError(client.chat.completions.create({ model: alias, messages: [{ role: "user", content: "x" }],
    top_logprobs: 50, logprobs: true }), 400, /top_logprobs/);
  const long = "Once upon a time ".repeat(2000);
  await assert.rejects(client.completions.create({ model: alias, prompt: long }), (e) => {
    assert.equal(e.status, 400);
    assert.equal(e.code, "context_length_exceeded");
    assert.match(e.message, /context/);
    return true;
  });
  // Malformed JSON and wrong types, sent by hand.
  for (const [body, pattern] of [["{not json", /not valid JSON/], ['{"prompt": 5}', /prompt/],
    ['{"prompt": "x", "stream": "yes"}', /stream/], ['{"prompt": "x", "stop": [1]}', /stop/], ["[]", /object/]]) {
    const r = await server.post("/v1/completions", body);
    assert.equal(r.status, 400, body);
    assert.equal(r.json.error.type, "invalid_request_error");
    assert.match(r.json.error.message, pattern);
  }
});
