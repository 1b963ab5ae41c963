// /selftest: runs every protocol test vector (bundled at build time from tests/vectors) through
// the same verifier the watch page uses, in this browser. With WebCrypto it runs each vector
// twice: WebCrypto for the Ed25519 equation, then the BigInt fallback that pages outside a
// secure context use. A vector passes only if it passes in every mode.

import vectors from "hlswarm:vectors";
import { runVector, setForceFallback } from "../verifier/index.js";

const state = { done: false, total: vectors.length, passed: 0, failed: 0, modes: [], failures: [] };
window.hlswarmSelftest = state;

const hasSubtle = !!(globalThis.crypto && crypto.subtle);
const modes = hasSubtle ? [["webcrypto", false], ["bigint", true]] : [["bigint", true]];
state.modes = modes.map(([m]) => m);

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = typeof text === "string" ? text : JSON.stringify(text);
  if (cls) td.className = cls;
  return td;
}

async function main() {
  document.getElementById("env").textContent =
    `${vectors.length} vectors · modes: ${state.modes.join(", ")} · secure context: ${isSecureContext} · ${navigator.userAgent}`;
  const body = document.getElementById("results");
  for (const v of vectors) {
    const results = [];
    for (const [mode, fallback] of modes) {
      setForceFallback(fallback);
      try {
        results.push({ mode, ...(await runVector(v)) });
      } catch (e) {
        results.push({ mode, name: v.name, expect: v.expect, got: `threw ${e.message}`, pass: false });
      }
    }
    setForceFallback(false);
    const bad = results.filter((r) => !r.pass);
    if (bad.length) {
      state.failed++;
      for (const r of bad) state.failures.push({ name: v.name, mode: r.mode, expect: r.expect, got: r.got });
    } else {
      state.passed++;
    }
    const shown = bad[0] || results[0];
    body.append(row(v, shown, !bad.length));
  }
  state.done = true;
  const summary = document.getElementById("summary");
  summary.textContent = `${state.passed} of ${state.total} vectors passed, ${state.failed} failed.`;
  summary.className = state.failed ? "fail" : "pass";
}

function row(v, r, ok) {
  const tr = document.createElement("tr");
  tr.append(cell(v.name), cell(v.kind), cell(v.expect), cell(r.got), cell(ok ? "pass" : `FAIL (${r.mode})`, ok ? "pass" : "fail"));
  return tr;
}

main().catch((e) => {
  state.failures.push({ name: "(runner)", got: String(e) });
  state.failed++;
  state.done = true;
  document.getElementById("summary").textContent = `Self-test crashed: ${e.message}`;
});
