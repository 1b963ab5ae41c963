// The hls.js loaders with a stubbed fetch: verified data goes to hls.js through onProgress +
// onSuccess; refused data never does, whatever the server sends.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { makeLoaders, makeSegmentValidator } from "../src/watch/loaders.js";
import { Stats } from "../src/watch/stats.js";
import { StreamSource } from "../src/watch/stream.js";

const DIR = fileURLToPath(new URL("../../tests/vectors/", import.meta.url));
const vec = (n) => JSON.parse(readFileSync(DIR + n, "utf8"));
const playlist = vec("playlist-render.json");
const second = vec("manifest-ok-second.json");
const segment = vec("segment-ok.json");
const ORIGIN = "http://127.0.0.1:9/";
const enc = new TextEncoder();
const hexBytes = (h) => Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16));

/** Route table -> fetch stub that records calls. Values: bytes, or a function returning bytes. */
function stubFetch(routes) {
  const calls = [];
  globalThis.fetch = async (url, init = {}) => {
    calls.push({ url, cache: init.cache, headers: init.headers });
    const r = routes[url.slice(url.indexOf("/streams/"))];
    const body = typeof r === "function" ? r() : r;
    return body ? new Response(body, { status: 200 }) : new Response("nope", { status: 404 });
  };
  return calls;
}

function load(Loader, url, type = "level") {
  return new Promise((resolve) => {
    const events = [];
    const loader = new Loader({});
    const done = (kind) => (...a) => { events.push(kind); if (kind !== "progress") resolve({ kind, a, events }); };
    loader.load({ url, type, responseType: type === "media-fragment" ? "arraybuffer" : "text" },
      { loadPolicy: { maxLoadTimeMs: 10000 } },
      { onSuccess: done("success"), onError: done("error"), onTimeout: done("timeout"), onProgress: done("progress") });
  });
}

function setup(stream) {
  const stats = new Stats();
  const source = new StreamSource(stream, ORIGIN, stats);
  return { stats, source, ...makeLoaders(source, stats) };
}

test("playlists are rendered from the verified manifest, byte for byte as §10", async () => {
  const { stats, source, PlaylistLoader } = setup(playlist.stream);
  const calls = stubFetch({ [`/streams/${playlist.stream}/manifest.json`]: enc.encode(playlist.wire) });
  const master = await load(PlaylistLoader, source.base + "master.m3u8", "manifest");
  assert.equal(master.kind, "success");
  assert.equal(master.a[0].data, playlist.master);
  const media = await load(PlaylistLoader, source.base + "source.m3u8");
  assert.equal(media.a[0].data, playlist.media.source);
  assert.equal(stats.verifiedPlaylists, 2);
  assert.ok(calls.every((c) => !c.url.endsWith(".m3u8")), "never fetches the server's playlists");
  assert.ok(calls.every((c) => c.cache === "no-store" && c.headers["X-Hlswarm-Viewer"] === source.viewerId));
});

test("a manifest that fails verification is refused, counted, and the last good one kept", async () => {
  const { stats, source, PlaylistLoader } = setup(second.stream);
  const bad = second.wire.replace(/"sig":"(.)/, (m, c) => `"sig":"${c === "A" ? "B" : "A"}`);
  let wire = bad;
  stubFetch({ [`/streams/${second.stream}/manifest.json`]: () => enc.encode(wire) });
  const first = await load(PlaylistLoader, source.base + "source.m3u8");
  assert.equal(first.kind, "error", "no verified manifest yet: an error, never unverified text");
  assert.equal(stats.manifestFailures, 1);
  assert.match(stats.lastError, /^manifest refused: bad_signature/);
  wire = second.wire;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await load(PlaylistLoader, source.base + "source.m3u8")).kind, "success");
  wire = bad;
  await new Promise((r) => setTimeout(r, 300));
  const kept = await load(PlaylistLoader, source.base + "source.m3u8");
  assert.equal(kept.kind, "success");
  assert.match(kept.a[0].data, /#EXT-X-MEDIA-SEQUENCE:0\n/);
  assert.equal(stats.manifestFailures, 2);
  assert.equal(stats.manifestSeq, 1);
});

test("playlists outside the stream directory are refused without a fetch", async () => {
  const { PlaylistLoader } = setup(second.stream);
  const calls = stubFetch({});
  const r = await load(PlaylistLoader, "http://evil.example/streams/x/master.m3u8");
  assert.equal(r.kind, "error");
  assert.equal(calls.length, 0);
});

test("a verified segment reaches hls.js once, through onProgress then onSuccess", async () => {
  const { stats, source, PlaylistLoader, FragmentLoader } = setup(second.stream);
  const seg = `/streams/${second.stream}/seg/${segment.hash}.m4s`;
  stubFetch({ [`/streams/${second.stream}/manifest.json`]: enc.encode(second.wire), [seg]: hexBytes(segment.data_hex) });
  await load(PlaylistLoader, source.base + "source.m3u8");
  const r = await load(FragmentLoader, ORIGIN.slice(0, -1) + seg, "media-fragment");
  assert.deepEqual(r.events, ["progress", "success"]);
  assert.deepEqual(new Uint8Array(r.a[0].data), hexBytes(segment.data_hex));
  assert.equal(stats.verifiedSegments, 1);
  assert.equal(stats.bytes.http, 200);
});

test("tampered or oversized segments never reach hls.js; refetched from the network 3 times", async () => {
  for (const [what, mutate, code] of [
    ["flipped", (b) => { b[7] ^= 1; return b; }, "hash_mismatch"],
    ["longer", (b) => new Uint8Array([...b, 0]), "oversize"],
    ["shorter", (b) => b.slice(1), "hash_mismatch"],
  ]) {
    const { stats, source, PlaylistLoader, FragmentLoader } = setup(second.stream);
    const seg = `/streams/${second.stream}/seg/${segment.hash}.m4s`;
    const calls = stubFetch({ [`/streams/${second.stream}/manifest.json`]: enc.encode(second.wire), [seg]: () => mutate(hexBytes(segment.data_hex)) });
    await load(PlaylistLoader, source.base + "source.m3u8");
    const r = await load(FragmentLoader, ORIGIN.slice(0, -1) + seg, "media-fragment");
    assert.deepEqual(r.events, ["error"], what);
    assert.equal(r.a[0].code, 502);
    assert.equal(stats.segmentFailures, 4, what);
    assert.equal(stats.lastErrorCode, code, what);
    assert.equal(stats.verifiedSegments, 0);
    assert.equal(stats.bytes.http, 0);
    assert.deepEqual(calls.filter((c) => c.url.endsWith(".m4s")).map((c) => c.cache), ["default", "reload", "reload", "reload"]);
  }
});

test("p2p validate hooks: the named blob passes, anything else is refused and counted", async () => {
  const { stats, source } = setup(second.stream);
  const validate = makeSegmentValidator(source, stats, "p2p");
  const url = `${source.base}seg/${segment.hash}.m4s`;
  const good = hexBytes(segment.data_hex);
  assert.equal(await validate(url, undefined, good.slice().buffer), true);
  assert.equal(stats.verifiedSegments, 1);
  const bad = good.slice();
  bad[0] ^= 1;
  assert.equal(await validate(url, undefined, bad.buffer), false);
  assert.equal(await validate(url, { start: 0, end: 9 }, good.slice().buffer), false, "no partial blobs");
  assert.equal(await validate(`http://elsewhere/seg/${segment.hash}.m4s`, undefined, good.slice().buffer), false);
  assert.equal(stats.segmentFailures, 3);
  assert.equal(stats.p2pRejected, 3, "refusals of peers' bytes are counted apart");
  assert.equal(stats.verifiedSegments, 1);
  assert.equal(stats.bytes.p2p, good.length, "only verified bytes count as bytes from peers");
  assert.ok(stats.verifiedHashes.has(segment.hash));
  assert.equal(stats.lastErrorCode, "hash_mismatch");
});

test("peer and upload counters feed the stats and the chart series", () => {
  const stats = new Stats();
  stats.peer("main:a", true);
  stats.peer("main:b", true);
  stats.peer("main:a", false);
  stats.addUploaded(100);
  stats.addBytes("p2p", 50);
  assert.equal(stats.peers.size, 1);
  assert.equal(stats.bytesUploaded, 100);
  const s = stats.series();
  assert.equal(s.length, 60);
  assert.equal(s[s.length - 1].peers, 1);
  assert.equal(s[s.length - 1].p2p, 50);
});
