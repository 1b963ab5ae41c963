// LL mode with a stubbed fetch and a fresh key: the LL pLoader carries hls.js's delivery
// directives to the node with the page's part position, verifies the PART statements that come
// back, and renders the playlist from verified state only; forged, replayed and unchained
// statements are refused and counted; the fLoader checks each part against its statement.

import { test } from "node:test";
import assert from "node:assert/strict";
import { b64urlEncode, blake3Hex, canonicalBytes, hexToBytes, renderMediaLl } from "../src/verifier/index.js";
import { VerifiedParts, hasParts, liveSyncOf, lowLatencyOf, makeLlPlaylistLoader, upstreamUrl } from "../src/watch/ll.js";
import { makeLoaders } from "../src/watch/loaders.js";
import { Stats } from "../src/watch/stats.js";
import { StreamSource } from "../src/watch/stream.js";

const ORIGIN = "http://127.0.0.1:9/";
const utf8 = new TextEncoder();
const HASH = (c) => c.repeat(64);

async function newKey() {
  const kp = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", kp.publicKey));
  return { kp, raw, id: b64urlEncode(raw) };
}
const ed25519 = async (key, msg) => new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key.kp.privateKey, msg));

async function signManifest(key, seq, segments) {
  const body = {
    stream: key.id, seq, time_ms: 1795000000000 + seq, log: { size: segments, root: HASH("a") }, v: 1, type: "manifest_root",
    renditions: [{
      name: "source", container: "fmp4", target_duration: 1, disc_seq: 0, ended: false, part_target_us: 220000,
      segments: Array.from({ length: segments }, (_, i) => ({ seq: i, dur_us: 1000000, hash: HASH(String(i)), size: 100, disc: false, init: HASH("e") })),
    }],
  };
  if (seq > 0) body.prev = HASH("b");
  const sig = await ed25519(key, new Uint8Array([...utf8.encode("hlswarm-v1/manifest_root\0"), ...canonicalBytes(body)]));
  return canonicalBytes({ ...body, sig: b64urlEncode(sig) });
}

/** PROTOCOL.md §16.1: the wire bytes of a PART statement, and its id. */
async function signPart(key, { rendition = "source", seq, part, dur_us = 200000, size, time_ms = 1795000000000, hash, independent, prev }) {
  const name = utf8.encode(rendition);
  const head = new Uint8Array(30 + name.length);
  const v = new DataView(head.buffer);
  head.set([0x01, 1, (independent ? 1 : 0) | (prev ? 2 : 0), name.length]);
  head.set(name, 4);
  v.setBigUint64(4 + name.length, BigInt(seq));
  v.setUint16(12 + name.length, part);
  v.setUint32(14 + name.length, dur_us);
  v.setUint32(18 + name.length, size);
  v.setBigUint64(22 + name.length, BigInt(time_ms));
  const signed = new Uint8Array([...head, ...hexToBytes(hash), ...(prev ? hexToBytes(prev) : [])]);
  const input = new Uint8Array([...utf8.encode("hlswarm-v1/part\0"), ...key.raw, ...signed]);
  return { wire: new Uint8Array([...signed, ...(await ed25519(key, input))]), id: await blake3Hex(input) };
}

/** Parts of segment `seq` (part 0 independent), chained from `prev`: { wires, bytes, ids }. */
async function partsOf(key, seq, count, prev) {
  const out = [];
  for (let part = 0; part < count; part++) {
    const bytes = utf8.encode(`part ${seq}.${part}`);
    const s = await signPart(key, { seq, part, size: bytes.length, hash: await blake3Hex(bytes), independent: part === 0, prev });
    out.push({ ...s, bytes, hash: await blake3Hex(bytes) });
    prev = s.id;
  }
  return out;
}

const line = (p) => `#HLSWARM-PART:${b64urlEncode(p.wire)}\n`;

/** Routes by path (query ignored); records every URL asked. */
function stubFetch(routes) {
  const calls = [];
  globalThis.fetch = async (url) => {
    calls.push(url);
    const path = new URL(url).pathname;
    const r = routes[path.slice(path.indexOf("/streams/"))];
    const body = typeof r === "function" ? r(url) : r;
    return body ? new Response(body, { status: 200 }) : new Response("nope", { status: 404 });
  };
  return calls;
}

function load(Loader, url, type = "level") {
  return new Promise((resolve) => {
    const loader = new Loader({});
    const done = (kind) => (...a) => { if (kind !== "progress") resolve({ kind, a }); };
    loader.load({ url, type, responseType: type === "media-fragment" ? "arraybuffer" : "text" },
      { loadPolicy: { maxLoadTimeMs: 10000 } },
      { onSuccess: done("success"), onError: done("error"), onTimeout: done("timeout"), onProgress: done("progress") });
  });
}

async function setup() {
  const key = await newKey();
  const stats = new Stats();
  const source = new StreamSource(key.id, ORIGIN, stats);
  const parts = new VerifiedParts(source, stats);
  return { key, stats, source, parts, Ll: makeLlPlaylistLoader(source, parts, stats), ...makeLoaders(source, stats) };
}

test("the node's URL carries hls.js's delivery directives and the page's part position", () => {
  const url = upstreamUrl("http://n/streams/x/", "source", "http://n/streams/x/source.m3u8?_HLS_msn=7&_HLS_part=2&_HLS_skip=YES&evil=1", "7.1");
  assert.equal(url, "http://n/streams/x/source.m3u8?_HLS_msn=7&_HLS_part=2&_HLS_skip=YES&hlswarm_parts=7.1");
  assert.equal(upstreamUrl("http://n/s/", "audio", "http://n/s/audio.m3u8", "-"), "http://n/s/audio.m3u8?hlswarm_parts=-");
});

test("hls.js targets PART-HOLD-BACK and seeks to live where its rate catch-up stops", () => {
  const r = (extra) => ({ name: "v", container: "fmp4", target_duration: 1, disc_seq: 0, ended: false, segments: [], ...extra });
  assert.deepEqual(liveSyncOf({ renditions: [r({ container: "ts" }), r({ part_target_us: 220000 })] }), { liveSyncDuration: 0.66, liveMaxLatencyDuration: 2.32, liveSyncOnStallIncrease: 0.22 });
  assert.deepEqual(liveSyncOf({ renditions: [r({ part_target_us: 333334, target_duration: 2 })] }), { liveSyncDuration: 1.001, liveMaxLatencyDuration: 4.002, liveSyncOnStallIncrease: 0.334 });
  assert.ok(!hasParts({ renditions: [r({})] }));
});

test("LL playlists are rendered from verified parts, never from the node's text; bad statements refused", async () => {
  const { key, stats, source, parts, Ll, PlaylistLoader, FragmentLoader } = await setup();
  const manifest = await signManifest(key, 0, 3);
  const seg2 = await partsOf(key, 2, 5);
  const seg3 = await partsOf(key, 3, 2, seg2.at(-1).id);
  let served = "";
  const calls = stubFetch({
    [`/streams/${key.id}/manifest.json`]: manifest,
    [`/streams/${key.id}/source.m3u8`]: () => utf8.encode(served),
    ...Object.fromEntries([...seg2, ...seg3].map((p) => [`/streams/${key.id}/seg/${p.hash}.m4s`, p.bytes])),
  });
  // The first playlist: the page has no manifest yet, so it renders from the one it fetches.
  assert.equal((await load(PlaylistLoader, source.base + "master.m3u8", "manifest")).kind, "success");
  assert.ok(hasParts(source.chain.latest.body));
  const bogus = "#EXTM3U\n#EXT-X-PART-INF:PART-TARGET=0.220\n#EXTINF:1.0,\nseg/" + HASH("f") + ".m4s\n";
  served = bogus + seg2.map(line).join("") + line(seg3[0]);
  const first = await load(Ll, source.base + "source.m3u8?_HLS_msn=3&_HLS_part=0");
  assert.equal(first.kind, "success");
  assert.match(calls.filter((u) => u.includes(".m3u8")).at(-1), /source\.m3u8\?_HLS_msn=3&_HLS_part=0&hlswarm_parts=-$/);
  const r = source.chain.latest.body.renditions[0];
  assert.equal(first.a[0].data, renderMediaLl(r, lowLatencyOf(source.chain.latest.body, r, parts, false)));
  assert.ok(!first.a[0].data.includes(HASH("f")), "nothing of the node's text");
  for (const p of [...seg2, seg3[0]]) assert.ok(first.a[0].data.includes(`seg/${p.hash}.m4s`));
  assert.match(first.a[0].data, /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part\/source\/3\.1\.m4s"\n$/);
  assert.equal(stats.partStatements, 6);
  assert.equal(stats.partFailures, 0);

  // Next: the position asked is the newest verified part. Statements already taken (ignored), a
  // forged one, another statement for a position taken and an older one come with the new part:
  // only the new part is taken.
  const forged = { wire: seg3[1].wire.slice() };
  forged.wire[40] ^= 1;
  const equivocal = await signPart(key, { seq: 2, part: 1, size: 3, hash: HASH("9"), independent: false });
  const [old] = await partsOf(key, 1, 1);
  served = bogus + line(seg3[0]) + line(forged) + line(seg2[1]) + line(equivocal) + line(seg3[1]) + line(old);
  const next = await load(Ll, source.base + "source.m3u8?_HLS_msn=3&_HLS_part=1");
  assert.equal(next.kind, "success");
  assert.match(calls.filter((u) => u.includes(".m3u8")).at(-1), /hlswarm_parts=3\.0$/);
  assert.ok(next.a[0].data.includes(`seg/${seg3[1].hash}.m4s`));
  assert.equal(stats.partStatements, 7);
  // The master through the LL loader, once a manifest is known: rendered, nothing fetched but it.
  const before = calls.length;
  const master = await load(Ll, source.base + "master.m3u8", "manifest");
  assert.equal(master.kind, "success");
  assert.match(master.a[0].data, /^#EXTM3U\n#EXT-X-VERSION:6\n/);
  assert.ok(calls.slice(before).every((u) => u.endsWith("/manifest.json")));
  assert.equal(stats.partFailures, 3, "the forged, the equivocal and the older one (a rollback)");
  assert.deepEqual(stats.errors.filter((e) => e.what === "part").map((e) => e.code), ["bad_signature", "equivocation", "replay"]);
  assert.ok(!next.a[0].data.includes(HASH("9")));

  // Parts reach hls.js only as the bytes their statements sign.
  const ok = await load(FragmentLoader, `${source.base}seg/${seg3[1].hash}.m4s`, "media-fragment");
  assert.equal(ok.kind, "success");
  assert.equal(stats.verifiedParts, 1);
  assert.equal(stats.verifiedSegments, 0);
});

test("a tampered part is refused, refetched and counted as a part failure", async () => {
  const { key, stats, source, parts, FragmentLoader } = await setup();
  const [p] = await partsOf(key, 0, 1);
  let n = 0;
  const calls = stubFetch({ [`/streams/${key.id}/seg/${p.hash}.m4s`]: () => { const b = p.bytes.slice(); if (n++ === 0) b[0] ^= 1; return b; } });
  assert.equal(await parts.acceptLine(line(p).slice(14, -1)), true);
  const r = await load(FragmentLoader, `${source.base}seg/${p.hash}.m4s`, "media-fragment");
  assert.equal(r.kind, "success");
  assert.deepEqual(new Uint8Array(r.a[0].data), p.bytes);
  assert.equal(stats.partFailures, 1);
  assert.equal(stats.lastErrorCode, "hash_mismatch");
  assert.equal(stats.verifiedParts, 1);
  assert.equal(calls.length, 2, "refetched once");
  assert.deepEqual(source.blobLimit(p.hash, "m4s"), { size: p.bytes.length, exact: true }, "the signed size, exactly");
});

test("a node that serves no parts gets classic playlists rendered", async () => {
  const { key, source, Ll, PlaylistLoader } = await setup();
  const manifest = await signManifest(key, 0, 2);
  stubFetch({ [`/streams/${key.id}/manifest.json`]: manifest, [`/streams/${key.id}/source.m3u8`]: utf8.encode("#EXTM3U\n") });
  await load(PlaylistLoader, source.base + "master.m3u8", "manifest");
  const r = await load(Ll, source.base + "source.m3u8");
  assert.equal(r.kind, "success");
  assert.ok(!r.a[0].data.includes("#EXT-X-PART-INF") && r.a[0].data.includes("#EXTINF:1.000000,"), r.a[0].data);
});
