// Targeted checks beyond the shared vectors: strictness that WebCrypto alone does not give,
// round trips through a freshly generated key, playlist edge cases and chain behaviour the page
// relies on (duplicates are replays, not failures).

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AnnounceSlot, ManifestChain, b64urlEncode, blobSizes, canonicalBytes, codeOf, formatPdt,
  parseStreamId, renderMaster, renderMedia, setForceFallback, verifySegment, verifySigned, verifyStrict,
} from "../src/verifier/index.js";

const utf8 = new TextEncoder();
const HASH = (c) => c.repeat(64);

async function newKey() {
  const kp = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", kp.publicKey));
  return { kp, id: b64urlEncode(raw) };
}
async function sign(key, type, body) {
  const obj = { ...body, v: 1, type };
  const domain = utf8.encode(`hlswarm-v1/${type}\0`);
  const msg = new Uint8Array([...domain, ...canonicalBytes(obj)]);
  const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key.kp.privateKey, msg));
  return canonicalBytes({ ...obj, sig: b64urlEncode(sig) });
}
const err = async (p) => { try { await p; return "ok"; } catch (e) { return codeOf(e); } };

function manifest(id, seq, prev, extra = {}) {
  const segs = [0, 1].map((i) => ({ seq: seq + i, dur_us: 2000000, hash: HASH(String(i)), size: 100 + i, disc: false, init: HASH("e"), pdt_ms: 1795000000000 + i * 2000 }));
  const m = {
    stream: id, seq, time_ms: 1795000000000 + seq, log: { size: seq + 2, root: HASH(String(seq % 10)) },
    renditions: [{ name: "source", container: "fmp4", target_duration: 2, disc_seq: 0, ended: false, segments: segs, init: { hash: HASH("e"), size: 900 } }],
    ...extra,
  };
  if (prev) m.prev = prev;
  return m;
}

test("small-order key and forged signature are refused (WebCrypto alone accepts them)", async () => {
  const pub = new Uint8Array(32); pub[0] = 1;            // identity point, order 1
  const sig = new Uint8Array(64); sig[0] = 1;            // R = identity, S = 0
  for (const fb of [false, true]) {
    setForceFallback(fb);
    assert.equal(await verifyStrict(pub, utf8.encode("x"), sig), false);
  }
  setForceFallback(false);
});

test("non-canonical S (S >= L) is refused", async () => {
  const key = await newKey();
  const msg = utf8.encode("hello");
  const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key.kp.privateKey, msg));
  const pub = parseStreamId(key.id);
  assert.equal(await verifyStrict(pub, msg, sig), true);
  // S + L has the same value mod L; a malleable verifier would accept it.
  let s = 0n; for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]);
  s += 2n ** 252n + 27742317777372353535851937790883648493n;
  const bad = sig.slice();
  for (let i = 32; i < 64; i++) { bad[i] = Number(s & 0xffn); s >>= 8n; }
  if (s === 0n) assert.equal(await verifyStrict(pub, msg, bad), false);
});

test("fallback and WebCrypto agree on random good and bad signatures", async () => {
  for (let i = 0; i < 8; i++) {
    const key = await newKey();
    const msg = crypto.getRandomValues(new Uint8Array(40 + i));
    const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key.kp.privateKey, msg));
    if (i % 2) sig[i] ^= 1;
    const pub = parseStreamId(key.id);
    const a = await verifyStrict(pub, msg, sig);
    setForceFallback(true);
    const b = await verifyStrict(pub, msg, sig);
    setForceFallback(false);
    assert.equal(a, b);
    assert.equal(a, i % 2 === 0);
  }
});

test("stream ids: only the canonical 43-character spelling of a curve point", () => {
  const good = "QrrDCurHBG1eUHCx4vk_epka-QPqFaAqfgDoMhBIN0w";
  assert.equal(parseStreamId(good).length, 32);
  for (const bad of [good + "=", good.slice(0, 42), good.slice(0, 42) + "x", good.replace("_", "/")]) {
    assert.throws(() => parseStreamId(bad), (e) => e.code === "malformed", bad);
  }
});

test("chain: a fresh manifest is accepted, a duplicate is a replay, a fork is equivocation", async () => {
  const key = await newKey();
  const chain = new ManifestChain(key.id);
  const w0 = await sign(key, "manifest_root", manifest(key.id, 0));
  const m0 = await chain.acceptWire(w0);
  assert.equal(await err(chain.acceptWire(w0)), "replay");
  const w1 = await sign(key, "manifest_root", manifest(key.id, 1, m0.id));
  await chain.acceptWire(w1);
  const fork = await sign(key, "manifest_root", manifest(key.id, 1, m0.id, { time_ms: 1 }));
  assert.equal(await err(chain.acceptWire(fork)), "equivocation");
  const other = await newKey();
  assert.equal(await err(verifySigned(w1, "manifest_root", other.id)), "wrong_key");
});

test("announce slot: expiry and replay", async () => {
  const key = await newKey();
  const body = { stream: key.id, seq: 3, time_ms: 10, expires_ms: 20, title: "t", renditions: [], hints: { http: [], libp2p: [], trackers: [], moq: [] } };
  const wire = await sign(key, "stream_announce", body);
  const slot = new AnnounceSlot(key.id);
  assert.equal(await err(slot.acceptWire(wire, 21)), "expired");
  assert.equal(await err(slot.acceptWire(wire, 20)), "ok");
  assert.equal(await err(slot.acceptWire(wire, 20)), "replay");
});

test("blob sizes: exact for window segments and rendition init, 1 MiB for other inits", async () => {
  const m = manifest("x", 0);
  m.renditions[0].segments[1].init = HASH("f");
  const sizes = blobSizes(m);
  assert.deepEqual(sizes.get(HASH("1")), { size: 101, exact: true });
  assert.deepEqual(sizes.get(HASH("e")), { size: 900, exact: true });
  assert.deepEqual(sizes.get(HASH("f")), { size: 1048576, exact: false });
});

test("segment check is a pure hash comparison", async () => {
  const abc = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85";
  assert.equal(await verifySegment(abc, utf8.encode("abc")), true);
  assert.equal(await verifySegment(abc, utf8.encode("abd")), false);
  assert.equal(await verifySegment(abc.toUpperCase(), utf8.encode("abc")), false);
});

test("program date time matches playlist.rs, including years Date cannot print", () => {
  assert.equal(formatPdt(0), "1970-01-01T00:00:00.000Z");
  assert.equal(formatPdt(951782400123), "2000-02-29T00:00:00.123Z");
  assert.equal(formatPdt(1795225323456), "2026-11-21T01:42:03.456Z");
  assert.equal(formatPdt(253402300799999), "9999-12-31T23:59:59.999Z");
  assert.equal(formatPdt(253402300800000), "10000-01-01T00:00:00.000Z");
  assert.equal(formatPdt(Number.MAX_SAFE_INTEGER), "287396-10-12T08:59:00.991Z"); // checked with Python datetime, 400-year shifted
  for (let i = 0; i < 2000; i++) {
    const ms = Math.floor(Math.random() * 253402300799999);
    assert.equal(formatPdt(ms), new Date(ms).toISOString());
  }
});

test("media playlist: MPEG-TS, empty window, ended", () => {
  const r = { name: "a", container: "ts", target_duration: 6, disc_seq: 4, ended: true, segments: [] };
  assert.equal(renderMedia(r), "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:4\n#EXT-X-ENDLIST\n");
  r.segments = [{ seq: 117, dur_us: 6006000, hash: HASH("a"), size: 1, disc: true }];
  assert.equal(renderMedia(r), `#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:117\n#EXT-X-DISCONTINUITY-SEQUENCE:4\n#EXT-X-DISCONTINUITY\n#EXTINF:6.006000,\nseg/${HASH("a")}.ts\n#EXT-X-ENDLIST\n`);
});

// The same cases and expected bytes as playlist.rs `audio_group_rendering`.
test("master playlist: the audio group (revision 1.4)", () => {
  const r = (name, extra) => ({ name, container: "ts", target_duration: 2, disc_seq: 0, ended: false, segments: [], ...extra });
  const a1 = r("a1", { kind: "audio", codecs: "mp4a.40.2", bandwidth: 100, average_bandwidth: 90 });
  const v1 = r("v1", { codecs: "avc1.64001f", bandwidth: 1000, average_bandwidth: 900, resolution: "1280x720", frame_rate_milli: 29970 });
  const a2 = r("a2", { kind: "audio", codecs: "mp4a.40.2", channels: 6, segments: [{ seq: 0, dur_us: 2000000, hash: HASH("a"), size: 250, disc: false }] });
  const v2 = r("v2");
  const a3 = r("a3", { kind: "audio", codecs: "ec-3", bandwidth: 50, average_bandwidth: 40 });
  assert.equal(renderMaster({ renditions: [a1, v1, a2, v2, a3] }),
    "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n" +
    '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="a1",DEFAULT=YES,AUTOSELECT=YES,URI="a1.m3u8"\n' +
    '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="a2",DEFAULT=NO,AUTOSELECT=YES,CHANNELS="6",URI="a2.m3u8"\n' +
    '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="a3",DEFAULT=NO,AUTOSELECT=YES,URI="a3.m3u8"\n' +
    '#EXT-X-STREAM-INF:BANDWIDTH=2000,AVERAGE-BANDWIDTH=990,CODECS="avc1.64001f,mp4a.40.2,ec-3",' +
    'RESOLUTION=1280x720,FRAME-RATE=29.970,AUDIO="audio"\nv1.m3u8\n' +
    '#EXT-X-STREAM-INF:BANDWIDTH=1001,AUDIO="audio"\nv2.m3u8\n');
  // Only audio renditions: no group, each a variant as before 1.4.
  assert.equal(renderMaster({ renditions: [a1] }),
    '#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=100,AVERAGE-BANDWIDTH=90,CODECS="mp4a.40.2"\na1.m3u8\n');
  // Sums above 2^53 stay exact.
  const big = Number.MAX_SAFE_INTEGER;
  const sum = renderMaster({ renditions: [r("v", { bandwidth: big, average_bandwidth: big }), r("a", { kind: "audio", bandwidth: big, average_bandwidth: big })] });
  assert.ok(sum.includes("BANDWIDTH=18014398509481982,AVERAGE-BANDWIDTH=18014398509481982,AUDIO="), sum);
});

test("rendition kind and channels (revision 1.4): shape first, as serde decodes, then the invariants", async () => {
  const key = await newKey();
  const other = await newKey();
  const withFields = (fields, id = key.id) => {
    const m = manifest(id, 0);
    Object.assign(m.renditions[0], fields);
    return m;
  };
  const code = async (body) => err(verifySigned(await sign(key, "manifest_root", body), "manifest_root", key.id));
  assert.equal(await code(withFields({ kind: "audio", channels: 2 })), "ok");
  assert.equal(await code(withFields({ kind: "audio" })), "ok");
  assert.equal(await code(withFields({ kind: "video" })), "malformed");
  assert.equal(await code(withFields({ kind: "Audio" })), "malformed");
  assert.equal(await code(withFields({ channels: 2 })), "malformed");
  assert.equal(await code(withFields({ kind: "audio", channels: 0 })), "malformed");
  assert.equal(await code(withFields({ kind: "audio", channels: 64 })), "ok");
  assert.equal(await code(withFields({ kind: "audio", channels: 65 })), "malformed");
  // An unknown kind is a field error (step 6), before the expected key (step 7)...
  assert.equal(await code(withFields({ kind: "video" }, other.id)), "malformed");
  assert.equal(await code(withFields({ kind: "audio", channels: 65 }, other.id)), "wrong_key");
  // ...and before the rendition count (step 8); a bad channel count is an invariant after it.
  const many = (fields) => {
    const m = withFields(fields);
    const plain = manifest(key.id, 0).renditions[0];
    for (let i = 0; i < 16; i++) m.renditions.push({ ...plain, name: `r${i}` });
    return m;
  };
  assert.equal(await code(many({ kind: "video" })), "malformed");
  assert.equal(await code(many({ kind: "audio", channels: 65 })), "oversize");
});

test("part_target_us (revision 1.5): fMP4 only, 1..=10 s, after channels and before the init size", async () => {
  const key = await newKey();
  const withFields = (fields, init) => {
    const m = manifest(key.id, 0);
    Object.assign(m.renditions[0], fields);
    if (init) m.renditions[0].init = init;
    return m;
  };
  const code = async (body) => err(verifySigned(await sign(key, "manifest_root", body), "manifest_root", key.id));
  assert.equal(await code(withFields({ part_target_us: 220000 })), "ok");
  assert.equal(await code(withFields({ part_target_us: 1 })), "ok");
  assert.equal(await code(withFields({ part_target_us: 10000000 })), "ok");
  assert.equal(await code(withFields({ part_target_us: 0 })), "malformed");
  assert.equal(await code(withFields({ part_target_us: 10000001 })), "malformed");
  assert.equal(await code(withFields({ part_target_us: "220000" })), "malformed");
  // After the channels check, before the init size check (an oversize init would say oversize).
  assert.equal(await code(withFields({ part_target_us: 0 }, { hash: HASH("e"), size: 2 * 1048576 })), "malformed");
  assert.equal(await code(withFields({ part_target_us: 220000 }, { hash: HASH("e"), size: 2 * 1048576 })), "oversize");
  assert.equal(await code(withFields({ part_target_us: 0, channels: 2 })), "malformed");
  // A TS rendition never carries it.
  const ts = manifest(key.id, 0);
  ts.renditions[0].container = "ts";
  ts.renditions[0].segments.forEach((s) => delete s.init);
  delete ts.renditions[0].init;
  assert.equal(await code(ts), "ok");
  ts.renditions[0].part_target_us = 220000;
  assert.equal(await code(ts), "malformed");
});
