// PART (PROTOCOL.md §16, docs/design/parts.md): the binary signed statement of one LL-HLS part of
// one rendition, and PartChain, the per-rendition replay / rollback / equivocation rules. Mirrors
// manifest-signer's part.rs step for step, so the first failure gets the same code.

import { bytesToHex, concatBytes } from "./encoding.js";
import { fail } from "./errors.js";
import { blake3Hex } from "./hash.js";
import { verifyStrict } from "./ed25519.js";
import { LIMITS, checkName, parseStreamId } from "./objects.js";

export const PART_LIMITS = Object.freeze({
  MAX_PART_BYTES: 16777216, MAX_PART_DUR_US: 10000000, MAX_WIRE_BYTES: 190,
});
const TYPE = 0x01;
const VERSION = 1;
const FLAG_INDEPENDENT = 0b01;
const FLAG_PREV = 0b10;
const DOMAIN = new TextEncoder().encode("hlswarm-v1/part\0");
const NAME_UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Verify the wire bytes of a PART signed by the pinned `expectedStream` (a stream id string).
 * Resolves to { body, id, wire }: body = { rendition, seq, part, dur_us, size, time_ms, hash,
 * independent, prev? } (hashes as hex), id = BLAKE3 of the signing input. Rejects with a VerifyError.
 */
export async function verifyPart(wire, expectedStream) {
  if (!(wire instanceof Uint8Array)) wire = new Uint8Array(wire);
  if (wire.length > PART_LIMITS.MAX_WIRE_BYTES) fail("oversize", `part is ${wire.length} bytes, limit ${PART_LIMITS.MAX_WIRE_BYTES}`);
  const view = new DataView(wire.buffer, wire.byteOffset, wire.byteLength);
  let at = 0;
  const take = (n) => {
    if (at + n > wire.length) fail("malformed", `part truncated at byte ${wire.length}`);
    at += n;
    return at - n;
  };
  const u8 = () => wire[take(1)];
  const type = u8(), version = u8(), flags = u8();
  if (type !== TYPE) fail("wrong_type", `expected part, found 0x${type.toString(16).padStart(2, "0")}`);
  if (version !== VERSION) fail("unknown_version", `version ${version}`);
  if (flags & ~(FLAG_INDEPENDENT | FLAG_PREV)) fail("malformed", "part flags: reserved bits set");
  const nameLen = u8();
  const nameAt = take(nameLen);
  let rendition;
  try {
    rendition = NAME_UTF8.decode(wire.subarray(nameAt, nameAt + nameLen));
  } catch {
    rendition = null;
  }
  if (rendition === null) fail("malformed", "part rendition name is not UTF-8");
  const u64 = () => view.getBigUint64(take(8));
  const seq = u64();
  const part = view.getUint16(take(2));
  const dur_us = view.getUint32(take(4));
  const size = view.getUint32(take(4));
  const time = u64();
  const hashAt = take(32);
  const hash = bytesToHex(wire.subarray(hashAt, hashAt + 32));
  let prev;
  if (flags & FLAG_PREV) {
    const p = take(32);
    prev = bytesToHex(wire.subarray(p, p + 32));
  }
  const signedLen = at;
  const sigAt = take(64);
  if (at !== wire.length) fail("malformed", `${wire.length - at} bytes after the part's signature`);
  // part.rs validate(), in its order.
  checkName(rendition);
  if (size === 0 || dur_us === 0) fail("malformed", "part size and duration must be above 0");
  if (size > PART_LIMITS.MAX_PART_BYTES) fail("oversize", `part size ${size}, limit ${PART_LIMITS.MAX_PART_BYTES}`);
  if (dur_us > PART_LIMITS.MAX_PART_DUR_US) fail("malformed", `part duration ${dur_us} us above ${PART_LIMITS.MAX_PART_DUR_US}`);
  const safe = BigInt(Number.MAX_SAFE_INTEGER);
  if (seq > safe || time > safe) fail("malformed", "part seq or time_ms above 2^53 - 1");
  const key = parseStreamId(expectedStream);
  const input = concatBytes(DOMAIN, key, wire.subarray(0, signedLen));
  if (!(await verifyStrict(key, input, wire.subarray(sigAt, sigAt + 64)))) fail("bad_signature", "part");
  const body = {
    rendition, seq: Number(seq), part, dur_us, size, time_ms: Number(time), hash,
    independent: (flags & FLAG_INDEPENDENT) !== 0,
  };
  if (prev !== undefined) body.prev = prev;
  return { body, id: await blake3Hex(input), wire };
}

const REMEMBERED = 256; // recent parts kept per rendition to catch equivocation
const MAX_EVIDENCE = 16;
const before = (a, b) => a.seq < b.seq || (a.seq === b.seq && a.part < b.part);

/** The PARTs of one stream accepted so far, per rendition (part.rs PartChain). */
export class PartChain {
  constructor(streamId) {
    this.stream = streamId;
    this.tracks = new Map(); // rendition -> { latest, recent: Map("seq.part" -> part) }
    this.evidence = [];
  }

  latest(rendition) {
    return this.tracks.get(rendition)?.latest ?? null;
  }

  async acceptWire(wire) {
    const p = await verifyPart(wire, this.stream);
    this.accept(p);
    return p;
  }

  accept(p) {
    const b = p.body;
    if (!this.tracks.has(b.rendition) && this.tracks.size >= LIMITS.MAX_RENDITIONS) {
      fail("oversize", `${this.tracks.size + 1} renditions with parts, limit ${LIMITS.MAX_RENDITIONS}`);
    }
    if (!this.tracks.has(b.rendition)) this.tracks.set(b.rendition, { latest: null, recent: new Map() });
    const t = this.tracks.get(b.rendition);
    const key = `${b.seq}.${b.part}`;
    const seen = t.recent.get(key);
    if (seen && seen.id !== p.id) {
      if (this.evidence.length < MAX_EVIDENCE) this.evidence.push({ first: seen, second: p });
      fail("equivocation", `two different statements for part ${b.part} of segment ${b.seq}`);
    }
    const l = t.latest;
    if (l) {
      const lb = l.body;
      if (!before(lb, b)) fail("replay", `part ${b.seq}.${b.part}, latest ${lb.seq}.${lb.part}`);
      // The next part of the same segment must name the latest. Part 0 of the next segment
      // follows the segment's last part, which may not be the latest accepted (parts are
      // missed): it breaks the chain only by naming another part this chain accepted (1.5).
      const sameSegment = b.seq === lb.seq && b.part === lb.part + 1;
      const nextSegment = b.seq === lb.seq + 1 && b.part === 0;
      const namesOlder = b.prev !== undefined && [...t.recent.values()].some((r) => r.id === b.prev);
      if (b.prev !== undefined && b.prev !== l.id && (sameSegment || (nextSegment && namesOlder))) {
        fail("chain_break", "prev does not name the previous part");
      }
      if (b.time_ms < lb.time_ms) fail("chain_break", "part signing time went backwards");
    }
    t.recent.set(key, p);
    // Accepted positions only grow, so the first key in insertion order is the oldest.
    while (t.recent.size > REMEMBERED) t.recent.delete(t.recent.keys().next().value);
    t.latest = p;
  }
}
