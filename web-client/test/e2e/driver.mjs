#!/usr/bin/env node
// End-to-end driver for the Rust integration tests. Opens a page in headless Chromium
// (/usr/bin/chromium through playwright-core; nothing is ever downloaded) and prints one JSON
// line every 250 ms on stdout, nothing else:
//   {"t_ms":..,"stats":<window.hlswarm.stats() | window.hlswarmSelftest>,"console_errors":[..new..]}
// It stops when stdin closes or --timeout-s passes, closes the browser and exits 0.
// A browser that does not start: {"error":"..."} and exit 2. Bad arguments: exit 64.
//
//   node test/e2e/driver.mjs --url URL [--timeout-s N] [--selftest] [--tamper-uploads]
//
// --tamper-uploads makes this browser a bad peer: an init script (test-only, injected here, not
// in the page) flips one byte in every large binary message the page sends on a WebRTC data
// channel, so every segment it uploads to peers is corrupted. Its own playback is unaffected.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const { chromium } = await import("playwright-core");

const CHROMIUM = process.env.HLSWARM_CHROMIUM || "/usr/bin/chromium";
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required",
];
const TICK_MS = 250;

let stdoutGone = false;
const out = (obj) => { if (!stdoutGone) process.stdout.write(JSON.stringify(obj) + "\n"); };

function parseArgs(argv) {
  const opts = { url: null, timeoutS: null, selftest: false, tamperUploads: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--url") opts.url = argv[++i];
    else if (a === "--timeout-s") opts.timeoutS = Number(argv[++i]);
    else if (a === "--selftest") opts.selftest = true;
    else if (a === "--tamper-uploads") opts.tamperUploads = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!opts.url) throw new Error("--url is required");
  if (opts.timeoutS !== null && !(opts.timeoutS > 0)) throw new Error("--timeout-s must be a positive number");
  return opts;
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (e) {
  out({ error: `usage: driver.mjs --url URL [--timeout-s N] [--selftest]: ${e.message}` });
  process.exit(64);
}

const userDataDir = mkdtempSync(join(tmpdir(), "hlswarm-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    timeout: 30000,
  });
} catch (e) {
  rmSync(userDataDir, { recursive: true, force: true });
  out({ error: `browser launch failed: ${e.message.split("\n")[0]}` });
  process.exit(2);
}

// p2p-media-loader sends segment data as raw chunks of up to 64 KiB and its commands as small
// framed messages; only the former are this large.
const TAMPER_SCRIPT = `(() => {
  const send = RTCDataChannel.prototype.send;
  RTCDataChannel.prototype.send = function (data) {
    const view = data instanceof ArrayBuffer ? new Uint8Array(data)
      : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
    if (view && view.length >= 4096) {
      const copy = view.slice();
      copy[copy.length >> 1] ^= 0x5a;
      window.__hlswarmTampered = (window.__hlswarmTampered || 0) + 1;
      return send.call(this, copy);
    }
    return send.call(this, data);
  };
})();`;
if (opts.tamperUploads) await context.addInitScript({ content: TAMPER_SCRIPT });

const consoleErrors = [];
const page = context.pages()[0] || (await context.newPage());
page.on("console", (msg) => { if (msg.type() === "error") consoleErrors.push(msg.text()); });
page.on("pageerror", (err) => consoleErrors.push(`pageerror: ${err.message}`));

let stopping = false;
const stop = () => { stopping = true; };
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.on("error", stop);
// The reader went away (EPIPE): stop as if stdin had closed, and still close the browser.
process.stdout.on("error", () => { stdoutGone = true; stop(); });
process.stdin.resume();               // read (and discard) stdin so that "end" fires
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

const started = Date.now();
page.goto(opts.url, { waitUntil: "domcontentloaded", timeout: 30000 })
  .catch((e) => consoleErrors.push(`navigation failed: ${e.message.split("\n")[0]}`));

const expr = opts.selftest
  ? "window.hlswarmSelftest ? JSON.parse(JSON.stringify(window.hlswarmSelftest)) : null"
  : "window.hlswarm ? { ...window.hlswarm.stats(), tamperedSends: window.__hlswarmTampered || 0 } : null";

while (!stopping && (opts.timeoutS === null || Date.now() - started < opts.timeoutS * 1000)) {
  const tickStart = Date.now();
  let stats = null;
  try {
    stats = await page.evaluate(expr);
  } catch (e) {
    // Mid-navigation the context is replaced; the next tick reads the new page.
    stats = null;
  }
  out({ t_ms: Date.now() - started, stats, console_errors: consoleErrors.splice(0) });
  await new Promise((r) => setTimeout(r, Math.max(0, TICK_MS - (Date.now() - tickStart))));
}

await context.close().catch(() => {});
rmSync(userDataDir, { recursive: true, force: true });
process.exit(0);
