#!/usr/bin/env node
// A stand-in for the hlswarm node's HTTP side, for developing and testing the web client without
// the Rust build: serves dist/ on the node's routes and a data directory's streams/ exactly as
// PROTOCOL.md §11 lays them out, with the §11 headers, CORS and a viewer count from
// X-Hlswarm-Viewer. /api/streams is computed from the files (manifests are not verified here;
// the page does that).
//
//   node test/e2e/serve.mjs --data DATA_DIR [--port 0] [--host 127.0.0.1] [--break-manifest-after-s N]
// Prints {"listening":"http://HOST:PORT"} on stdout once ready. With --break-manifest-after-s,
// manifest.json is served with one signature character changed once N seconds have passed: a
// misbehaving mirror, to check that the page refuses it and keeps playing the last good one.

import { createServer } from "node:http";
import { readFile, readdir, stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { join } from "node:path";


const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const DATA = args.data;
const DIST = fileURLToPath(new URL("../../dist/", import.meta.url));
const ID = "[A-Za-z0-9_-]{43}";
const viewers = new Map();   // stream id -> Map(viewer id -> last seen ms)
const started = Date.now();
let bytesOut = 0;

const TYPES = {
  html: "text/html; charset=utf-8", js: "text/javascript; charset=utf-8", css: "text/css; charset=utf-8",
  txt: "text/plain; charset=utf-8", json: "application/json", m3u8: "application/vnd.apple.mpegurl",
  jsonl: "application/x-ndjson", m4s: "video/iso.segment", ts: "video/mp2t", mp4: "video/mp4",
};
const typeOf = (p) => TYPES[p.split(".").pop()] || "application/octet-stream";

async function send(res, path, cache, method) {
  let body;
  try {
    body = await readFile(path);
    if (path.endsWith("/manifest.json") && args["break-manifest-after-s"] !== undefined &&
        Date.now() - started > Number(args["break-manifest-after-s"]) * 1000) {
      const i = body.indexOf('"sig":"') + 7 + 10;   // a character in the middle of the signature
      body[i] = body[i] === 0x41 ? 0x42 : 0x41;
    }
  } catch {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    return;
  }
  res.writeHead(200, { "content-type": typeOf(path), "cache-control": cache, "content-length": body.length });
  bytesOut += body.length;
  res.end(method === "HEAD" ? undefined : body);
}

function noteViewer(id, req) {
  const v = req.headers["x-hlswarm-viewer"] || req.socket.remoteAddress;
  if (!viewers.has(id)) viewers.set(id, new Map());
  viewers.get(id).set(String(v).slice(0, 64), Date.now());
}
function viewerCount(id) {
  const m = viewers.get(id);
  if (!m) return 0;
  for (const [k, t] of m) if (Date.now() - t > 15000) m.delete(k);
  return m.size;
}

async function apiStreams() {
  const streams = [];
  const dir = join(DATA, "streams");
  for (const id of await readdir(dir).catch(() => [])) {
    let m, a = null, mtime;
    try {
      const p = join(dir, id, "manifest.json");
      m = JSON.parse(await readFile(p, "utf8"));
      mtime = (await stat(p)).mtimeMs;
    } catch { continue; }
    try { a = JSON.parse(await readFile(join(dir, id, "announce.json"), "utf8")); } catch { /* optional */ }
    streams.push({
      id, title: a?.title ?? null, seq: m.seq, ended: m.renditions.length > 0 && m.renditions.every((r) => r.ended),
      updated_ms: Math.round(mtime), viewers: viewerCount(id), bytes_out: 0, watch: `/watch/${id}`, master: `/streams/${id}/master.m3u8`,
      renditions: m.renditions.map((r) => ({
        name: r.name, codecs: r.codecs ?? null, resolution: r.resolution ?? null, bandwidth: r.bandwidth ?? 0,
        container: r.container, segments: r.segments.length,
      })),
    });
  }
  const total = streams.reduce((n, s) => n + s.viewers, 0);
  return {
    node: { version: "0.1.0", rtmp_url: null, stream_key_hint: null, viewers: total, peers: 0, bytes_out: { http: bytesOut, p2p: 0, moq: 0 }, uptime_s: Math.floor((Date.now() - started) / 1000) },
    streams,
  };
}

const server = createServer(async (req, res) => {
  res.setHeader("access-control-allow-origin", "*");
  res.setHeader("x-content-type-options", "nosniff");
  if (req.method === "OPTIONS") {
    res.writeHead(204, { "access-control-allow-methods": "GET, HEAD, OPTIONS", "access-control-allow-headers": "Range, If-None-Match, X-Hlswarm-Viewer", "access-control-max-age": "86400" });
    return res.end();
  }
  const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
  let m;
  if (path === "/") return send(res, DIST + "index.html", "no-cache", req.method);
  if (path === "/selftest") return send(res, DIST + "selftest.html", "no-cache", req.method);
  if (new RegExp(`^/watch/${ID}$`).test(path)) return send(res, DIST + "watch.html", "no-cache", req.method);
  if ((m = /^\/assets\/([A-Za-z0-9_][A-Za-z0-9._-]*)$/.exec(path))) return send(res, DIST + "assets/" + m[1], "no-cache", req.method);
  if (path === "/api/streams") {
    const body = JSON.stringify(await apiStreams());
    return res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" }).end(body);
  }
  if ((m = new RegExp(`^/streams/(${ID})/(seg/[0-9a-f]{64}\\.(?:m4s|ts|mp4))$`).exec(path))) {
    return send(res, join(DATA, "streams", m[1], m[2]), "public, max-age=31536000, immutable", req.method);
  }
  if ((m = new RegExp(`^/streams/(${ID})/(manifest\\.json|announce\\.json|log\\.jsonl|[A-Za-z0-9_-]{1,32}\\.m3u8)$`).exec(path))) {
    if (m[2] === "manifest.json") noteViewer(m[1], req);
    return send(res, join(DATA, "streams", m[1], m[2]), "no-cache", req.method);
  }
  res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
});

server.listen(Number(args.port || 0), args.host || "127.0.0.1", () => {
  const { address, port } = server.address();
  process.stdout.write(JSON.stringify({ listening: `http://${address}:${port}` }) + "\n");
});
