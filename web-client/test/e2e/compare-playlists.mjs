#!/usr/bin/env node
// Cross-check §10 against a live origin: fetch manifest.json and the served playlists, verify
// the manifest against the stream id, render the playlists here and compare byte for byte.
// The publisher writes playlists before manifest.json (§11), so a mismatch is retried a few
// times before it counts.   node test/e2e/compare-playlists.mjs http://HOST:PORT STREAM_ID

import { findRendition, renderMaster, renderMedia, verifySigned } from "../../src/verifier/index.js";


const [origin, id] = process.argv.slice(2);
const base = `${origin.replace(/\/$/, "")}/streams/${id}/`;
const get = async (f) => {
  const r = await fetch(base + f, { cache: "no-store" });
  if (!r.ok) throw new Error(`HTTP ${r.status} for ${f}`);
  return new Uint8Array(await r.arrayBuffer());
};

let last;
for (let attempt = 0; attempt < 10; attempt++) {
  const m = await verifySigned(await get("manifest.json"), "manifest_root", id);
  const files = { "master.m3u8": renderMaster(m.body) };
  for (const r of m.body.renditions) files[`${r.name}.m3u8`] = renderMedia(findRendition(m.body, r.name));
  const diffs = [];
  for (const [f, mine] of Object.entries(files)) {
    const served = new TextDecoder().decode(await get(f));
    if (served !== mine) diffs.push(f);
  }
  const again = await verifySigned(await get("manifest.json"), "manifest_root", id);
  last = { seq: m.body.seq, files: Object.keys(files), diffs };
  if (!diffs.length) break;
  if (again.id === m.id) break;          // the manifest did not move: a real difference
  await new Promise((r) => setTimeout(r, 300));
}
console.log(JSON.stringify({ identical: last.diffs.length === 0, ...last }));
process.exit(last.diffs.length ? 1 : 0);
