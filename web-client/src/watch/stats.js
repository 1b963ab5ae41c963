// Playback and verification counters for one page load. Everything the UI shows and
// window.hlswarm.stats() returns comes from here. Verified bytes are kept per source ("http",
// "p2p") and per second, with peers connected and bytes uploaded, so the chart can show where
// the bytes came from.

const HISTORY_S = 60;

export class Stats {
  constructor() {
    this.verifiedSegments = 0;
    this.verifiedInit = 0;
    this.verifiedPlaylists = 0;
    this.segmentFailures = 0;
    this.verifiedParts = 0;     // LL-HLS parts whose bytes matched their verified PART statement
    this.partStatements = 0;    // PART statements verified (signature and chain)
    this.partFailures = 0;      // parts refused: their statement (signature, chain) or their bytes
    this.manifestFailures = 0;
    this.manifestStale = 0;     // older manifests from a lagging server: dropped, not an error
    this.manifestSeq = null;
    this.lastError = null;      // message of the latest verification failure (it names the code)
    this.lastErrorCode = null;  // its §12 code
    this.errors = [];           // recent failures for the UI: { t, what, code, message }
    this.bytes = { http: 0, p2p: 0 };
    this.bytesUploaded = 0;     // bytes this page served to peers
    this.p2pRejected = 0;       // segments from peers refused by the verifier (the peer is dropped)
    this.unverifiedLoaded = 0;  // media segments hls.js loaded that the verifier never passed (must stay 0)
    this.verifiedHashes = new Set(); // recent verified blob hashes, to check what hls.js loads
    this.peers = new Set();     // connected peer ids
    this.perSecond = [];        // [{ t: unix second, http: n, p2p: n }], oldest first
    this.listeners = new Set();
  }

  /** Count `n` verified bytes delivered to the player from `source`. */
  addBytes(source, n) {
    if (!(source in this.bytes)) this.bytes[source] = 0;
    this.bytes[source] += n;
    const bucket = this.bucket(Math.floor(Date.now() / 1000));
    bucket[source] = (bucket[source] || 0) + n;
    this.changed();
  }

  bucket(t) {
    let last = this.perSecond[this.perSecond.length - 1];
    if (!last || last.t !== t) {
      last = { t, http: 0, p2p: 0, up: 0, peers: this.peers.size };
      this.perSecond.push(last);
      while (this.perSecond.length && this.perSecond[0].t <= t - HISTORY_S) this.perSecond.shift();
    }
    return last;
  }

  /** A peer connected (true) or went away (false). */
  peer(id, connected) {
    if (connected) this.peers.add(id); else this.peers.delete(id);
    this.bucket(Math.floor(Date.now() / 1000)).peers = this.peers.size;
    this.changed();
  }

  addUploaded(n) {
    this.bytesUploaded += n;
    this.bucket(Math.floor(Date.now() / 1000)).up += n;
    this.changed();
  }

  /** Remember a blob hash that passed verification (the newest 512). */
  verified(hash) {
    this.verifiedHashes.add(hash);
    if (this.verifiedHashes.size > 512) this.verifiedHashes.delete(this.verifiedHashes.values().next().value);
    this.changed();
  }

  /** The last HISTORY_S seconds, one entry per second, zero-filled, ending now. */
  series(now = Date.now()) {
    const end = Math.floor(now / 1000);
    const byT = new Map(this.perSecond.map((b) => [b.t, b]));
    const out = [];
    let peers = 0;              // carried forward over seconds with no bucket
    for (let t = end - HISTORY_S + 1; t <= end; t++) {
      const b = byT.get(t);
      if (b) peers = b.peers;
      out.push(b || { t, http: 0, p2p: 0, up: 0, peers });
    }
    return out;
  }

  /** Record a verification failure. `what` is "manifest", "segment", "init", "part" or "announce". */
  failure(what, code, message) {
    if (what === "manifest") this.manifestFailures++;
    else if (what === "segment" || what === "init") this.segmentFailures++;
    else if (what === "part") this.partFailures++;
    this.lastError = message;
    this.lastErrorCode = code;
    this.errors.push({ t: Date.now(), what, code, message });
    if (this.errors.length > 20) this.errors.shift();
    this.changed();
  }

  onChange(fn) { this.listeners.add(fn); }
  changed() { for (const fn of this.listeners) fn(this); }
}
