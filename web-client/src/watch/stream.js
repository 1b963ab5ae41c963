// One followed stream as the page sees it: the pinned stream id (from the page URL, never from a
// server), the origin it is fetched from, the manifest chain and the latest announce. The
// playlist loader asks it for the latest verified manifest; the fragment loader asks it for the
// signed size of a blob.

import { AnnounceSlot, LIMITS, ManifestChain, blobSizes, codeOf } from "../verifier/index.js";
import { HttpError, fetchLimited } from "./net.js";

const REUSE_MS = 250;        // a manifest fetched this recently answers the next request too
const MAX_KNOWN_BLOBS = 4096;

/** Short human explanation for a §12 code, shown next to the code. */
export const HINTS = {
  bad_signature: "tampered, or signed by a different key?",
  wrong_key: "this is another stream's object",
  chain_break: "the broadcaster's key signed an inconsistent history",
  equivocation: "the broadcaster's key signed two different manifests with one seq",
  unknown_version: "a newer protocol version: update the player",
  non_canonical: "not the exact signed bytes",
  malformed: "not a valid hlswarm object",
  oversize: "over a protocol limit",
  wrong_type: "not the expected object type",
  hash_mismatch: "the bytes do not match the signed hash",
  expired: "the announce is past its expiry",
  replay: "an older object than the one already accepted",
};

export class StreamSource {
  /** `streamId` is already checked with parseStreamId; `origin` is a base URL. */
  constructor(streamId, origin, stats) {
    this.id = streamId;
    this.base = new URL(`streams/${streamId}/`, origin.endsWith("/") ? origin : origin + "/").href;
    this.stats = stats;
    this.chain = new ManifestChain(streamId);
    this.announceSlot = new AnnounceSlot(streamId);
    this.announce = null;
    this.sizes = new Map();          // blob hash -> { size, exact } from verified manifests
    this.partSizes = new Map();      // part hash -> signed size, from verified PART statements
    this.inflight = null;
    this.fetchedAt = 0;
    // One random id per page load: the node counts viewers by it. Not a secret, not a tracker.
    this.viewerId = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");
    this.sendViewerHeader = true;
    this.refusing = null;            // why the newest manifest was refused, until one verifies
  }

  /**
   * The latest verified manifest ({ body, id, wire }), refreshed from the origin first unless
   * one was fetched within `reuseMs`. `fresh`: from a fetch that starts now, not one reused or
   * already under way (the LL loader asks so when verified parts show that a segment completed
   * which the manifest it has does not list).
   */
  async manifest({ fresh = false, reuseMs = REUSE_MS } = {}) {
    const asked = performance.now();
    if (!fresh && this.chain.latest && asked - this.fetchedAt < reuseMs) return this.chain.latest;
    if (fresh && this.inflight && this.inflightAt < asked) await this.inflight;
    // Coalesce: master, video and audio playlist reloads share one manifest fetch.
    if (!this.inflight) {
      this.inflightAt = performance.now();
      this.inflight = this.refresh().finally(() => { this.inflight = null; });
    }
    await this.inflight;
    if (!this.chain.latest) throw this.lastFetchError || new Error("no verified manifest yet");
    return this.chain.latest;
  }

  async refresh() {
    let bytes;
    try {
      bytes = await this.fetchManifestBytes();
      this.lastFetchError = null;
    } catch (e) {
      this.lastFetchError = e;   // network trouble: not a verification failure, keep the latest
      return;
    }
    this.fetchedAt = performance.now();
    // The bytes already verified and accepted: nothing to check again (a replay of the same).
    if (this.isSame(bytes)) {
      this.refusing = null;
      return;
    }
    try {
      const m = await this.chain.acceptWire(bytes);
      this.stats.manifestSeq = m.body.seq;
      this.refusing = null;
      this.remember(m.body);
    } catch (e) {
      const code = codeOf(e);
      if (code === "replay") {
        // The same manifest again is the normal case between updates; an older one means a
        // lagging server. Neither replaces the latest and neither is the server forging data.
        if (!this.isSame(bytes)) this.stats.manifestStale++;
        else this.refusing = null;
        return;
      }
      this.refusing = `manifest refused: ${code} — ${HINTS[code] || e.message}`;
      if (this.chain.latest) this.refusing += ` Still playing the last verified manifest (seq ${this.chain.latest.body.seq}).`;
      this.stats.failure("manifest", code, this.refusing);
      console.warn("hlswarm: manifest refused", e.message);
    }
  }

  isSame(bytes) {
    const w = this.chain.latest?.wire;
    return !!w && w.length === bytes.length && w.every((b, i) => b === bytes[i]);
  }

  async fetchManifestBytes() {
    const url = this.base + "manifest.json";
    const headers = this.sendViewerHeader ? { "X-Hlswarm-Viewer": this.viewerId } : undefined;
    try {
      return (await fetchLimited(url, { limit: LIMITS.MAX_MANIFEST_BYTES, cache: "no-store", headers })).bytes;
    } catch (e) {
      // A custom header makes cross-origin requests preflighted; a plain static mirror may not
      // answer OPTIONS. Then fetch without it (the mirror is not counting viewers anyway).
      if (headers && e instanceof TypeError && new URL(url).origin !== location.origin) {
        this.sendViewerHeader = false;
        return (await fetchLimited(url, { limit: LIMITS.MAX_MANIFEST_BYTES, cache: "no-store" })).bytes;
      }
      throw e;
    }
  }

  remember(body) {
    for (const [hash, info] of blobSizes(body)) {
      const old = this.sizes.get(hash);
      if (!old || (info.exact && !old.exact)) this.sizes.set(hash, info);
    }
    // Forget the oldest entries (Map keeps insertion order); window segments are re-added.
    for (const k of this.sizes.keys()) {
      if (this.sizes.size <= MAX_KNOWN_BLOBS) break;
      this.sizes.delete(k);
    }
  }

  /** A part whose PART statement verified (ll.js): its bytes must be exactly `size`. */
  rememberPart(hash, size) {
    this.partSizes.delete(hash);
    this.partSizes.set(hash, size);
    if (this.partSizes.size > MAX_KNOWN_BLOBS) this.partSizes.delete(this.partSizes.keys().next().value);
  }

  /** True for the hash of a part a verified PART statement names. */
  isPart(hash) {
    return this.partSizes.has(hash);
  }

  /** Byte limit and whether it is the exact signed size, for a blob named `<hash>.<ext>`. */
  blobLimit(hash, ext) {
    const known = this.sizes.get(hash);
    if (known) return known;
    if (this.partSizes.has(hash)) return { size: this.partSizes.get(hash), exact: true };
    return { size: ext === "mp4" ? LIMITS.MAX_INIT_BYTES : LIMITS.MAX_SEGMENT_BYTES, exact: false };
  }

  /** Fetch and verify announce.json. Resolves to the verified announce body or null (404). */
  async refreshAnnounce() {
    let bytes;
    try {
      ({ bytes } = await fetchLimited(this.base + "announce.json", { limit: LIMITS.MAX_ANNOUNCE_BYTES, cache: "no-store" }));
    } catch (e) {
      if (e instanceof HttpError && e.status === 404) return this.announce;
      throw e;
    }
    try {
      this.announce = (await this.announceSlot.acceptWire(bytes, Date.now())).body;
    } catch (e) {
      const code = codeOf(e);
      if (code !== "replay") {
        this.stats.failure("announce", code, `announce refused: ${code} — ${HINTS[code] || e.message}`);
        if (code === "expired" && this.announce && Date.now() > this.announce.expires_ms) this.announce = null;
      }
    }
    return this.announce;
  }
}
