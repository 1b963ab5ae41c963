// LL-HLS in the page (PROTOCOL.md §10.4, §16): hls.js in low-latency mode, every part verified.
//
// A media playlist request from hls.js (with its _HLS_msn / _HLS_part / _HLS_skip) goes to the
// node's LL playlist with the same parameters, so the node holds it until that part exists (a
// blocking reload), plus `hlswarm_parts=<last verified position>`: the node appends the PART
// statements that follow it, one `#HLSWARM-PART:<base64url>` line each. The page verifies each
// statement against the pinned stream id and the rendition's PartChain (replay, rollback,
// equivocation and forgery are refused with their §12 code, counted and shown), then RENDERS the
// playlist itself (playlist_ll.js) from the latest verified manifest and the verified parts. The
// node's playlist text is never handed to hls.js. Parts are `seg/<hash>.m4s` like segments; the
// fLoader (loaders.js) checks each one's BLAKE3 and exact size against its statement.

import {
  b64urlDecodeCanonical, codeOf, findRendition, lastPosition, PartChain, renderMaster, renderMedia,
  renderMediaLl, verifyPart,
} from "../verifier/index.js";
import { BaseLoader, PLAYLIST_RE } from "./loaders.js";
import { fetchLimited } from "./net.js";
import { HINTS } from "./stream.js";

export const STATEMENT_PREFIX = "#HLSWARM-PART:";
const MAX_PLAYLIST_BYTES = 2 * 1024 * 1024;
const MAX_STATEMENTS = 2000;   // per response (the node holds at most 2000 parts per rendition)
const KEEP_SEGMENTS = 6;       // parts kept per rendition: sequence numbers back from the newest
const MAX_PARTS = 2000;        // parts kept per rendition at most
const DIRECTIVES = ["_HLS_msn", "_HLS_part", "_HLS_skip"];
const MANIFEST_REUSE_MS = 1000;

/** A rendition the page plays as LL-HLS: fMP4 with a signed PART-TARGET (revision 1.5). */
export const isLl = (r) => r.container === "fmp4" && r.part_target_us !== undefined;

/** True when a verified manifest has a rendition with parts. */
export const hasParts = (manifest) => manifest.renditions.some(isLl);

/**
 * hls.js's live sync for LL mode, seconds: the target is PART-HOLD-BACK as rendered (what hls.js
 * takes from the playlist anyway), the limit 2 x PART-HOLD-BACK + the target duration. hls.js
 * catches up by playback rate (maxLiveSyncPlaybackRate) only while the latency is within one
 * target duration of its target, and treats anything further as DVR; past the limit it seeks back
 * to the live edge instead. At this limit the two ranges meet, so a viewer who fell behind (a
 * long stall, a pause) never stays behind. hls.js takes the limit only with an explicit target.
 * Each stall raises hls.js's target for good (until a reload), by 1 s by default, which with
 * 1 s segments parks a viewer 1 s further back after one stall: here by one part target.
 */
export function liveSyncOf(manifest) {
  const r = manifest.renditions.find(isLl);
  const holdBackMs = Math.ceil((3 * r.part_target_us) / 1000);
  return {
    liveSyncDuration: holdBackMs / 1000,
    liveMaxLatencyDuration: (2 * holdBackMs + 1000 * r.target_duration) / 1000,
    liveSyncOnStallIncrease: Math.ceil(r.part_target_us / 1000) / 1000,
  };
}

/**
 * The verified parts of one stream: PART statements checked against the pinned stream id and
 * chained per rendition. Each rendition's list is what the LL renderer takes (LivePart).
 */
export class VerifiedParts {
  constructor(source, stats) {
    this.source = source;
    this.stats = stats;
    this.chain = new PartChain(source.id);
    this.lists = new Map(); // rendition -> [LivePart], in (seq, part) order
  }

  list(rendition) {
    return this.lists.get(rendition) || [];
  }

  /** `<seq>.<part>` of the newest verified part of `rendition`, or `-` when none. */
  position(rendition) {
    const l = this.chain.latest(rendition);
    return l ? `${l.body.seq}.${l.body.part}` : "-";
  }

  /** Verify every statement line of a node's LL playlist response. Resolves to how many passed. */
  async acceptText(text) {
    let passed = 0, seen = 0;
    for (const line of text.split("\n")) {
      if (!line.startsWith(STATEMENT_PREFIX)) continue;
      if (++seen > MAX_STATEMENTS) break;
      if (await this.acceptLine(line.slice(STATEMENT_PREFIX.length))) passed++;
    }
    return passed;
  }

  async acceptLine(b64) {
    let p;
    try {
      const wire = b64urlDecodeCanonical(b64, Math.floor((b64.length * 3) / 4), "PART statement");
      p = await verifyPart(wire, this.source.id);
      // The same statement again (overlapping reloads) is not news, and not an attack.
      const b = p.body;
      if (this.chain.tracks.get(b.rendition)?.recent.get(`${b.seq}.${b.part}`)?.id === p.id) return false;
      this.chain.accept(p);
    } catch (e) {
      const code = codeOf(e);
      const at = p ? ` ${p.body.rendition} ${p.body.seq}.${p.body.part}` : "";
      this.stats.failure("part", code, `PART statement${at} refused: ${code} — ${HINTS[code] || e.message}`);
      return false;
    }
    this.add(p.body);
    return true;
  }

  add(b) {
    if (!this.lists.has(b.rendition)) this.lists.set(b.rendition, []);
    const list = this.lists.get(b.rendition);
    list.push({ seq: b.seq, part: b.part, dur_us: b.dur_us, hash: b.hash, independent: b.independent, chained: b.prev !== undefined });
    while (list.length > MAX_PARTS || list[0].seq + KEEP_SEGMENTS < b.seq) list.shift();
    this.source.rememberPart(b.hash, b.size);
    this.stats.partStatements++;
    this.stats.changed();
  }
}

/**
 * The low-latency inputs of rendition `r` from verified state only: its PART-TARGET as signed,
 * its verified parts, where every other fMP4 rendition stands (EXT-X-RENDITION-REPORT).
 */
export function lowLatencyOf(manifest, r, parts, skip) {
  const reports = [];
  for (const o of manifest.renditions) {
    if (o.name === r.name || o.container !== "fmp4") continue;
    const pos = lastPosition(o, parts.list(o.name));
    if (pos) reports.push({ name: o.name, last_msn: pos[0], last_part: pos[1] });
  }
  return { part_target_us: r.part_target_us, parts: parts.list(r.name), reports, skip };
}

/** The node's LL playlist URL for a request of hls.js: its delivery directives, and our position. */
export function upstreamUrl(base, name, requested, position) {
  const asked = new URL(requested).searchParams;
  const q = new URLSearchParams();
  for (const k of DIRECTIVES) if (asked.has(k)) q.set(k, asked.get(k));
  q.set("hlswarm_parts", position);
  return `${base}${name}.m3u8?${q}`;
}

/** The pLoader of LL mode for one StreamSource and its VerifiedParts. */
export function makeLlPlaylistLoader(source, parts, stats) {
  return class LlPlaylistLoader extends BaseLoader {
    get source() { return source; }

    async run(context) {
      const rel = this.relative(context.url);
      const match = rel !== null && PLAYLIST_RE.exec(rel);
      if (!match) throw Object.assign(new Error(`refusing playlist outside the stream: ${context.url}`), { status: 403 });
      const name = match[1];
      const known = source.chain.latest && name !== "master" ? findRendition(source.chain.latest.body, name) : undefined;
      let served = false;
      if (known && isLl(known)) {
        // Blocks at the node until the part hls.js asks for exists.
        const url = upstreamUrl(source.base, name, context.url, parts.position(name));
        const res = await fetchLimited(url, { limit: MAX_PLAYLIST_BYTES, cache: "no-store", signal: this.controller.signal });
        if (res.bytes.length > MAX_PLAYLIST_BYTES) throw Object.assign(new Error(`${name}.m3u8 over ${MAX_PLAYLIST_BYTES} bytes`), { status: 502 });
        const text = new TextDecoder().decode(res.bytes);
        // A node that serves no parts (a plain mirror) answers classic HLS: so does the page.
        served = text.includes("\n#EXT-X-PART-INF:");
        await parts.acceptText(text);
      }
      this.stats.loading.first = performance.now();
      // Parts of a number past the one after the manifest's last segment: a segment completed
      // that this manifest does not list yet; fetch the newer one rather than wait for it.
      const newest = parts.list(name).at(-1);
      const last = known?.segments.at(-1)?.seq;
      const fresh = served && newest !== undefined && (last === undefined || newest.seq > last + 1);
      // Otherwise the manifest changes only with a segment: every few reloads is enough to see
      // anything else (the end of the stream).
      const m = await source.manifest({ fresh, reuseMs: MANIFEST_REUSE_MS }).catch((e) => {
        throw Object.assign(new Error(`no verified manifest: ${e.message}`), { status: e.status || 503 });
      });
      let text;
      if (name === "master") text = renderMaster(m.body);
      else {
        const r = findRendition(m.body, name);
        if (!r) throw Object.assign(new Error(`rendition ${name} is not in the verified manifest`), { status: 404 });
        const skip = /[?&]_HLS_skip=(YES|v2)(&|$)/.test(context.url);
        text = served && isLl(r) ? renderMediaLl(r, lowLatencyOf(m.body, r, parts, skip)) : renderMedia(r);
      }
      stats.verifiedPlaylists++;
      stats.changed();
      return text;
    }
  };
}
