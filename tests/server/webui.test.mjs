// The chat page at / in headless Chromium (Debian's chromium, driven by playwright-core): load
// it, send a message, see the reply stream in, equal to the same greedy request through the API.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";
import { Server, storiesModel } from "./harness.mjs";

const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";

test("the chat page streams a reply from /v1/chat/completions", async (t) => {
  if (!existsSync(browserPath)) {
    if (process.env.CI) throw new Error(`${browserPath} is missing (scripts/install-deps.sh installs chromium)`);
    t.skip(`${browserPath} is absent`);
    return;
  }
  const server = await Server.start(["-m", storiesModel, "-n", "40", "--api-key", "page-key"]);
  const browser = await chromium.launch({ executablePath: browserPath, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(server.url);
    await page.fill("#apikey", "page-key");
    await page.dispatchEvent("#apikey", "change");
    await page.fill("#temperature", "0");
    await page.fill("#input", "Tell me a story.");
    await page.click("#send");
    const reply = page.locator(".msg.assistant").last();
    await reply.waitFor();
    await page.waitForFunction(() => {
      const all = document.querySelectorAll(".msg.assistant, .msg.error");
      const last = all[all.length - 1];
      return last && last.dataset.state && last.dataset.state !== "streaming";
    }, null, { timeout: 30000 });
    assert.equal(await reply.getAttribute("data-state"), "done");
    const text = await reply.textContent();
    const chunks = Number(await reply.getAttribute("data-chunks"));
    assert.ok(chunks > 5, `the reply arrived in ${chunks} pieces`);
    // The same conversation through the API, greedy: the same text.
    const r = await server.post("/v1/chat/completions",
      { messages: [{ role: "user", content: "Tell me a story." }], temperature: 0 },
      { Authorization: "Bearer page-key" });
    assert.equal(r.status, 200);
    assert.equal(text, r.json.choices[0].message.content);
    assert.deepEqual(errors, []);
    // The model's name is shown (the page read /v1/models with the key).
    await page.waitForFunction(() => document.getElementById("model").textContent === "stories260K");
  } finally {
    await browser.close();
    assert.equal((await server.stop()).code, 0);
  }
});
