// Starts `bitnet serve` on a free loopback port for a test and stops it. The binary comes from
// BITNET_BIN (CMake sets it), the models from the repository (models/stories260K.gguf) or
// BITNET_SHARED_DIR (../shared).
import { spawn, execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export const execFileP = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
export const sourceDir = path.resolve(here, "../..");
export const bitnet = process.env.BITNET_BIN || path.join(sourceDir, "build/bin/bitnet");
export const storiesModel = path.join(sourceDir, "models/stories260K.gguf");
export const sharedDir = process.env.BITNET_SHARED_DIR || path.resolve(sourceDir, "../shared");

// A shared model's path, or a skip reason: skipped only where ../shared is absent and CI is not set.
export function sharedModel(t, relative) {
  const file = path.join(sharedDir, "models", relative);
  if (existsSync(file)) return file;
  if (process.env.CI) throw new Error(`${file} is missing (CI is set, so this is a failure, not a skip)`);
  t.skip(`${file} is absent (no ../shared checkout)`);
  return null;
}

export class Server {
  // args: extra command-line arguments; waitReady: wait for /health to say ok.
  static async start(args, { waitReady = true, env = {} } = {}) {
    const server = new Server();
    server.stderr = "";
    server.proc = spawn(bitnet, ["serve", "--port", "0", ...args], {
      env: { ...process.env, BITNET_CACHE_DIR: process.env.BITNET_CACHE_DIR || path.join(sourceDir, "build/test-plan-cache"), ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    server.exited = new Promise((resolve) => server.proc.on("exit", (code, signal) => resolve({ code, signal })));
    server.url = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no 'listening' line in 60 s:\n${server.stderr}`)), 60000);
      server.proc.stderr.on("data", (chunk) => {
        server.stderr += chunk.toString();
        const m = server.stderr.match(/listening on (http:\/\/[^\s]+)/);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      server.exited.then(({ code }) => reject(new Error(`bitnet serve exited with ${code}:\n${server.stderr}`)));
    });
    const u = new URL(server.url);
    server.host = u.hostname;
    server.port = Number(u.port);
    if (waitReady) await server.ready();
    return server;
  }

  async ready(timeoutMs = 120000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const r = await fetch(`${this.url}/health`);
        if (r.status === 200) return;
      } catch (e) {
        /* not yet */
      }
      if (Date.now() > deadline) throw new Error(`not ready in time:\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  pid() {
    return this.proc.pid;
  }

  // Resident memory in bytes (Linux).
  rss() {
    const status = readFileSync(`/proc/${this.proc.pid}/status`, "utf8");
    return Number(status.match(/VmRSS:\s+(\d+) kB/)[1]) * 1024;
  }

  async stop(signal = "SIGTERM") {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.exited;
    this.proc.kill(signal);
    return this.exited;
  }

  async post(pathname, body, headers = {}) {
    const r = await fetch(`${this.url}${pathname}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await r.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch (e) {
      /* not JSON */
    }
    return { status: r.status, headers: r.headers, text, json };
  }
}

// `bitnet run --greedy` on the same prompt: the reference text a greedy request must produce.
export async function cliGreedy(model, prompt, n) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "bitnet-serve-test-"));
  const out = path.join(dir, "run.json");
  try {
    await execFileP(bitnet, ["run", "-m", model, "-p", prompt, "-n", String(n), "--greedy", "--json-out", out],
      { maxBuffer: 1 << 24, env: { ...process.env, BITNET_CACHE_DIR: process.env.BITNET_CACHE_DIR || path.join(sourceDir, "build/test-plan-cache") } });
    return JSON.parse(readFileSync(out, "utf8"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Reads an SSE response body into its data payloads.
export async function readSse(response) {
  const text = await response.text();
  return text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
}
