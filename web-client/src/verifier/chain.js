// Chain rules for consumers (PROTOCOL.md §8): what a page keeps per stream so that a relay cannot
// roll it back, replay old state or slip in a second history. Mirrors chain.rs.

import { fail } from "./errors.js";
import { verifySigned } from "./objects.js";

const REMEMBERED = 256; // recent seq -> manifest pairs kept to catch equivocation
const MAX_EVIDENCE = 16;

export class ManifestChain {
  constructor(streamId) {
    this.stream = streamId;
    this.latest = null;          // { body, id, wire } of the latest accepted manifest
    this.recent = new Map();     // seq -> accepted manifest (insertion order = seq order)
    this.evidence = [];          // [{ first, second }] pairs proving equivocation
  }

  /** Verify wire bytes (pinned to this stream) and accept them. Rejects with a VerifyError. */
  async acceptWire(wire) {
    const m = await verifySigned(wire, "manifest_root", this.stream);
    this.accept(m);
    return m;
  }

  /** The §8 rules, in order, for an already verified manifest. */
  accept(m) {
    const { body } = m;
    if (body.stream !== this.stream) fail("wrong_key", "manifest of another stream");
    const seen = this.recent.get(body.seq);
    if (seen && seen.id !== m.id) {
      if (this.evidence.length < MAX_EVIDENCE) this.evidence.push({ first: seen, second: m });
      fail("equivocation", `two different manifests with seq ${body.seq}`);
    }
    const latest = this.latest;
    if (latest) {
      const last = latest.body;
      if (body.seq <= last.seq) fail("replay", `seq ${body.seq}, latest ${last.seq}`);
      if (body.seq === last.seq + 1 && body.prev !== latest.id) fail("chain_break", "prev does not name the previous manifest");
      if (body.log.size < last.log.size) fail("chain_break", `log shrank from ${last.log.size} to ${body.log.size}`);
      if (body.log.size === last.log.size && body.log.root !== last.log.root) fail("chain_break", "log rewritten at the same size");
      if (body.time_ms < last.time_ms) fail("chain_break", "time went backwards");
    }
    this.recent.set(body.seq, m);
    // Accepted seqs only grow, so the first key in insertion order is the smallest.
    while (this.recent.size > REMEMBERED) this.recent.delete(this.recent.keys().next().value);
    this.latest = m;
  }
}

/** The latest STREAM_ANNOUNCE of a stream (§8, AnnounceSlot). */
export class AnnounceSlot {
  constructor(streamId) {
    this.stream = streamId;
    this.latest = null;
  }

  async acceptWire(wire, nowMs) {
    const a = await verifySigned(wire, "stream_announce", this.stream);
    if (nowMs > a.body.expires_ms) fail("expired", `expired at ${a.body.expires_ms}, now ${nowMs}`);
    const latest = this.latest;
    if (latest && a.body.seq <= latest.body.seq) {
      if (a.body.seq === latest.body.seq && a.id !== latest.id) fail("equivocation", `two announces with seq ${a.body.seq}`);
      fail("replay", `seq ${a.body.seq}, latest ${latest.body.seq}`);
    }
    this.latest = a;
    return a;
  }
}
