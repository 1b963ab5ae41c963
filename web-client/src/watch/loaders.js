// hls.js loaders that only ever hand hls.js verified data.
//
// pLoader: a playlist request is answered by RENDERING the playlist (PROTOCOL.md §10) from the
// latest manifest that verified against the pinned stream id. The server's .m3u8 bytes are
// never fetched. fLoader: media and init segments (hls.js loads EXT-X-MAP through fLoader too)
// are fetched, BLAKE3-checked against the hash in their URL (which came from the verified
// manifest) and size-checked; bytes that fail are dropped and refetched, never passed on. LL-HLS
// parts go through the same fLoader, checked against their verified PART statements (ll.js).

import { renderMaster, renderMedia, findRendition, verifySegment, LIMITS } from "../verifier/index.js";
import { HttpError, fetchLimited, sleep } from "./net.js";
import { HINTS } from "./stream.js";

export const PLAYLIST_RE = /^(master|[A-Za-z0-9_-]{1,32})\.m3u8(?:[?#].*)?$/;
const SEGMENT_RE = /^seg\/([0-9a-f]{64})\.(m4s|ts|mp4)(?:[?#].*)?$/;
const REFETCHES = 3;                  // after a hash mismatch, from the network, not the cache
const BACKOFF_MS = [250, 500, 1000];
// hls.js retries a fragment only for 5xx-like codes; a hash mismatch must be retried, so it is
// reported as 502 ("the upstream gave us bad bytes"). The text carries the real §12 code.
const MISMATCH_STATUS = 502;

function newLoadStats() {
  return {
    aborted: false, loaded: 0, retry: 0, total: 0, chunkCount: 0, bwEstimate: 0,
    loading: { start: 0, first: 0, end: 0 }, parsing: { start: 0, end: 0 }, buffering: { start: 0, first: 0, end: 0 },
  };
}

/** Shared plumbing: one load per instance, abort, timeout, and the hls.js callback contract. */
export class BaseLoader {
  constructor() {
    this.context = null;
    this.stats = newLoadStats();
    this.callbacks = null;
    this.controller = null;
    this.timer = null;
    this.done = false;
  }

  load(context, config, callbacks) {
    this.context = context;
    this.callbacks = callbacks;
    this.controller = new AbortController();
    this.stats.loading.start = performance.now();
    const timeout = config.loadPolicy?.maxLoadTimeMs || config.timeout || 20000;
    this.timer = setTimeout(() => this.finish("timeout"), timeout);
    this.run(context).then(
      (data) => this.finish("success", data),
      (err) => this.finish("error", err),
    );
  }

  finish(kind, value) {
    if (this.done || !this.callbacks) return;
    this.done = true;
    clearTimeout(this.timer);
    const { callbacks, context, stats } = this;
    if (kind === "timeout") {
      this.controller?.abort();
      callbacks.onTimeout(stats, context, null);
    } else if (kind === "error") {
      if (stats.aborted) return;
      const code = value instanceof HttpError ? value.status : value.status || 0;
      callbacks.onError({ code, text: value.message }, context, null, stats);
    } else {
      stats.loading.end = stats.loading.end || performance.now();
      const size = typeof value === "string" ? value.length : value.byteLength;
      stats.loaded = stats.total = size;
      // hls.js's stream controller takes non-progressive data through onProgress, then
      // onSuccess completes the load (as its own FetchLoader does).
      callbacks.onProgress?.(stats, context, value, null);
      callbacks.onSuccess({ url: context.url, data: value, code: 200 }, stats, context, this.networkDetails ?? null);
    }
  }

  abort() {
    if (this.done) return;
    this.stats.aborted = true;
    this.done = true;
    clearTimeout(this.timer);
    this.controller?.abort();
    this.callbacks?.onAbort?.(this.stats, this.context, null);
  }

  destroy() {
    if (!this.done) { this.stats.aborted = true; this.done = true; clearTimeout(this.timer); this.controller?.abort(); }
    this.callbacks = null;
  }

  /** The part of the URL under the stream directory, or null if it is elsewhere. */
  relative(url) {
    return url.startsWith(this.source.base) ? url.slice(this.source.base.length) : null;
  }
}

/** Build the two loader classes for one StreamSource (hls.js instantiates them per request). */
export function makeLoaders(source, stats) {
  class PlaylistLoader extends BaseLoader {
    get source() { return source; }

    async run(context) {
      const rel = this.relative(context.url);
      const match = rel !== null && PLAYLIST_RE.exec(rel);
      if (!match) throw Object.assign(new Error(`refusing playlist outside the stream: ${context.url}`), { status: 403 });
      const m = await source.manifest().catch((e) => {
        throw Object.assign(new Error(`no verified manifest: ${e.message}`), { status: e.status || 503 });
      });
      this.stats.loading.first = performance.now();
      let text;
      if (match[1] === "master") {
        text = renderMaster(m.body);
        // p2p-media-loader takes the manifest URL from hls.js's networkDetails (a fetch Response
        // or an XHR) and loads no segment without one. The playlist is rendered, not fetched:
        // hand it a bodiless Response that carries the URL.
        if (typeof Response === "function") {
          this.networkDetails = Object.defineProperty(new Response(null), "url", { value: context.url });
        }
      } else {
        const r = findRendition(m.body, match[1]);
        if (!r) throw Object.assign(new Error(`rendition ${match[1]} is not in the verified manifest`), { status: 404 });
        text = renderMedia(r);
      }
      stats.verifiedPlaylists++;
      stats.changed();
      return text;
    }
  }

  class FragmentLoader extends BaseLoader {
    get source() { return source; }

    async run(context) {
      const rel = this.relative(context.url);
      const match = rel !== null && SEGMENT_RE.exec(rel);
      if (!match || context.rangeEnd) {
        throw Object.assign(new Error(`refusing segment not named by hash: ${context.url}`), { status: 403 });
      }
      const [, hash, ext] = match;
      // LL-HLS parts (ll.js) are named by hash like segments; their size is the signed PART's.
      const what = ext === "mp4" ? "init" : source.isPart(hash) ? "part" : "segment";
      const limit = source.blobLimit(hash, ext);
      for (let attempt = 0; attempt <= REFETCHES; attempt++) {
        if (attempt > 0) await sleep(BACKOFF_MS[attempt - 1]);
        if (this.done) throw new Error("aborted");
        const res = await fetchLimited(context.url, {
          limit: limit.size,
          // Segments are immutable, so the cache is fine at first; after a mismatch, go around it.
          cache: attempt === 0 ? "default" : "reload",
          signal: this.controller.signal,
        });
        this.stats.loading.first = this.stats.loading.first || res.firstByteAt;
        this.stats.loading.end = res.endAt;
        const code = await check(hash, res.bytes, limit);
        if (!code) {
          if (what === "init") stats.verifiedInit++;
          else if (what === "part") stats.verifiedParts++;
          else stats.verifiedSegments++;
          stats.verified(hash);
          stats.addBytes("http", res.bytes.length);
          // Copy out exactly the verified bytes: hls.js may transfer the buffer to its worker.
          return res.bytes.buffer.byteLength === res.bytes.length ? res.bytes.buffer : res.bytes.slice().buffer;
        }
        stats.failure(what, code, `${what} ${hash.slice(0, 12)}… refused: ${code} — ${HINTS[code]} (attempt ${attempt + 1}/${REFETCHES + 1})`);
      }
      throw Object.assign(new Error(`hash_mismatch: ${what} ${hash} failed verification ${REFETCHES + 1} times`), { status: MISMATCH_STATUS });
    }
  }

  // With p2p-media-loader, hls.js's fLoader and pLoader are the engine's: it hands the media
  // segments it tracks to its core (validated by makeSegmentValidator below) and everything else
  // (playlists, init segments) to `config.loader`. This loader is that `config.loader`: it routes
  // by URL to the two verifying loaders above, so nothing reaches hls.js unverified.
  class VerifyingLoader extends BaseLoader {
    get source() { return source; }

    run(context) {
      const rel = this.relative(context.url);
      if (rel !== null && PLAYLIST_RE.test(rel)) return PlaylistLoader.prototype.run.call(this, context);
      return FragmentLoader.prototype.run.call(this, context);
    }
  }

  return { PlaylistLoader, FragmentLoader, VerifyingLoader };
}

/**
 * p2p-media-loader's validateHTTPSegment / validateP2PSegment: `(url, byteRange, data)` -> true
 * only when `data` is the blob the verified manifest names (BLAKE3 and size). A failure drops the
 * peer (P2P) or retries (HTTP); either way it is counted as a segment failure, and a refusal of
 * a peer's bytes also in `p2pRejected`. Verified bytes are counted by source here, so bytes from
 * peers are counted only once they verified. `via` is "http" or "p2p".
 */
export function makeSegmentValidator(source, stats, via) {
  return async (url, byteRange, data) => {
    const rel = url.startsWith(source.base) ? url.slice(source.base.length) : null;
    const match = rel !== null && SEGMENT_RE.exec(rel);
    let code = "hash_mismatch";
    if (match && !byteRange) {
      const [, hash, ext] = match;
      code = await check(hash, new Uint8Array(data), source.blobLimit(hash, ext));
      if (!code) {
        if (ext === "mp4") stats.verifiedInit++; else stats.verifiedSegments++;
        stats.verified(hash);
        stats.addBytes(via, data.byteLength);
        return true;
      }
    }
    const name = match ? `${match[1].slice(0, 12)}…` : url;
    if (via === "p2p") stats.p2pRejected++;
    stats.failure("segment", code, `segment ${name} from ${via === "p2p" ? "a peer" : "HTTP"} refused: ${code} — ${HINTS[code]}`);
    return false;
  };
}

/** §3: null when `bytes` are the blob; "oversize" past the limit, else "hash_mismatch". */
async function check(hash, bytes, limit) {
  if (bytes.length > limit.size) return "oversize";
  if (limit.exact && bytes.length !== limit.size) return "hash_mismatch";
  if (bytes.length > LIMITS.MAX_SEGMENT_BYTES) return "oversize";
  return (await verifySegment(hash, bytes)) ? null : "hash_mismatch";
}
