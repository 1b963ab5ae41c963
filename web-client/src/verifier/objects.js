// The signed objects (PROTOCOL.md §5–§7): envelope verification in the exact step order of §5.4,
// the field shapes (unknown fields rejected at every level, like serde deny_unknown_fields) and
// the invariants of §6.3 / §7.2, in the reference order so the first failure gets the same code.

import { canonicalBytes, parseCanonical } from "./canonical.js";
import { b64urlDecodeCanonical, concatBytes, isHashHex } from "./encoding.js";
import { fail } from "./errors.js";
import { blake3Hex } from "./hash.js";
import { isValidPublicKey, verifyStrict } from "./ed25519.js";

export const LIMITS = Object.freeze({
  MAX_MANIFEST_BYTES: 262144, MAX_ANNOUNCE_BYTES: 32768, MAX_RENDITIONS: 16,
  MAX_WINDOW_SEGMENTS: 256, MAX_NAME_BYTES: 32, MAX_TITLE_BYTES: 256, MAX_CODECS_BYTES: 128,
  MAX_HINTS_PER_KIND: 16, MAX_HINT_BYTES: 512, MAX_TIP_BYTES: 320,
  MAX_SEGMENT_BYTES: 67108864, MAX_INIT_BYTES: 1048576, MAX_TARGET_DURATION_S: 60, MAX_CHANNELS: 64,
  MAX_PART_TARGET_US: 10000000,
});

const utf8 = new TextEncoder();
const byteLen = (s) => utf8.encode(s).length;

// Field shapes. A trailing "?" marks an optional field; [x] is an array of x.
const BLOBREF = { hash: "hash", size: "u64" };
const SEGMENT = {
  seq: "u64", dur_us: "u64", hash: "hash", size: "u64", disc: "bool", "pdt_ms?": "u64", "init?": "hash",
  "independent?": "bool",
};
const RENDITION = {
  name: "string", container: "container", target_duration: "u64", disc_seq: "u64", "init?": BLOBREF,
  segments: [SEGMENT], ended: "bool", "codecs?": "string", "bandwidth?": "u64", "average_bandwidth?": "u64",
  "resolution?": "string", "frame_rate_milli?": "u64", "kind?": "kind", "channels?": "u64",
  "part_target_us?": "u64",
};
const MANIFEST = {
  stream: "stream", seq: "u64", time_ms: "u64", "prev?": "hash", renditions: [RENDITION],
  log: { size: "u64", root: "hash" },
};
const ANNOUNCE_RENDITION = { name: "string", codecs: "string", "bandwidth?": "u64", "resolution?": "string", "frame_rate_milli?": "u64" };
const ANNOUNCE = {
  stream: "stream", seq: "u64", time_ms: "u64", expires_ms: "u64", title: "string",
  renditions: [ANNOUNCE_RENDITION], hints: { http: ["string"], libp2p: ["string"], trackers: ["string"], moq: ["string"] },
  "tip?": "string",
};

export const TYPES = Object.freeze({
  manifest_root: { domain: "hlswarm-v1/manifest_root\0", max: LIMITS.MAX_MANIFEST_BYTES, shape: MANIFEST, validate: validateManifest },
  stream_announce: { domain: "hlswarm-v1/stream_announce\0", max: LIMITS.MAX_ANNOUNCE_BYTES, shape: ANNOUNCE, validate: validateAnnounce },
});

const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);

/** §2: a stream id is canonical unpadded base64url of 32 bytes that are a curve point. */
export function parseStreamId(s) {
  const key = b64urlDecodeCanonical(s, 32, "stream id");
  if (!isValidPublicKey(key)) fail("malformed", "stream id is not a valid Ed25519 public key");
  return key;
}

function checkShape(value, shape, path) {
  if (Array.isArray(shape)) {
    if (!Array.isArray(value)) fail("malformed", `${path} must be an array`);
    value.forEach((v, i) => checkShape(v, shape[0], `${path}[${i}]`));
    return;
  }
  if (typeof shape === "object") {
    if (!isObject(value)) fail("malformed", `${path} must be an object`);
    const fields = new Map(Object.keys(shape).map((k) => [k.replace(/\?$/, ""), k]));
    for (const key of Object.keys(value)) if (!fields.has(key)) fail("malformed", `unknown field ${path}.${key}`);
    for (const [name, spec] of fields) {
      if (Object.hasOwn(value, name)) checkShape(value[name], shape[spec], `${path}.${name}`);
      else if (!spec.endsWith("?")) fail("malformed", `missing field ${path}.${name}`);
    }
    return;
  }
  const ok = {
    u64: () => Number.isSafeInteger(value) && value >= 0,
    bool: () => typeof value === "boolean",
    string: () => typeof value === "string",
    hash: () => isHashHex(value),
    container: () => value === "fmp4" || value === "ts",
    // Revision 1.4: "audio" is the only kind. Checked with the field types, as serde decodes the
    // Rust enum, so an unknown kind fails before the expected key and the invariants.
    kind: () => value === "audio",
    stream: () => typeof value === "string" && (parseStreamId(value), true),
  }[shape]();
  if (!ok) fail("malformed", `${path} is not a valid ${shape}`);
}

function checkLen(what, s, limit) {
  const n = byteLen(s);
  if (n > limit) fail("oversize", `${what} is ${n} bytes, limit ${limit}`);
}
function checkCount(what, n, limit) {
  if (n > limit) fail("oversize", `${n} ${what}, limit ${limit}`);
}
/** Rendition names (§6.1): shared with PART (§16). */
export function checkName(name) {
  checkLen("rendition name", name, LIMITS.MAX_NAME_BYTES);
  if (!/^[A-Za-z0-9_-]+$/.test(name)) fail("malformed", `rendition name ${JSON.stringify(name)} must be 1-32 of [A-Za-z0-9_-]`);
  if (name === "master") fail("malformed", 'rendition name "master" is reserved');
}
function checkAttr(what, s, limit) {
  checkLen(what, s, limit);
  if (/["\u0000-\u001f\u007f]/.test(s)) fail("malformed", `${what} has a quote or control character`);
}
function checkResolution(r) {
  if (r !== undefined && !/^[0-9]{1,5}x[0-9]{1,5}$/.test(r)) fail("malformed", `resolution ${JSON.stringify(r)} is not WIDTHxHEIGHT`);
}

/** §6.3, in the reference order. */
export function validateManifest(m) {
  checkCount("renditions", m.renditions.length, LIMITS.MAX_RENDITIONS);
  if ((m.seq === 0) !== (m.prev === undefined)) fail("malformed", "prev must be absent exactly when seq is 0");
  const names = new Set();
  for (const r of m.renditions) {
    checkName(r.name);
    if (names.has(r.name)) fail("malformed", `rendition ${r.name} listed twice`);
    names.add(r.name);
    checkCount("window segments", r.segments.length, LIMITS.MAX_WINDOW_SEGMENTS);
    if (r.target_duration === 0 || r.target_duration > LIMITS.MAX_TARGET_DURATION_S) fail("malformed", "target_duration outside 1..=60");
    if (r.codecs !== undefined) checkAttr("codecs", r.codecs, LIMITS.MAX_CODECS_BYTES);
    checkResolution(r.resolution);
    if (r.channels !== undefined) {
      if (r.kind !== "audio") fail("malformed", `rendition ${r.name}: channels without kind audio`);
      if (r.channels === 0 || r.channels > LIMITS.MAX_CHANNELS) fail("malformed", `rendition ${r.name}: channels outside 1..=64`);
    }
    // Revision 1.5: PART-TARGET of an fMP4 rendition whose parts the signer signs (§16).
    if (r.part_target_us !== undefined) {
      if (r.container !== "fmp4") fail("malformed", `rendition ${r.name}: part_target_us in a rendition that is not fmp4`);
      if (r.part_target_us === 0 || r.part_target_us > LIMITS.MAX_PART_TARGET_US) {
        fail("malformed", `rendition ${r.name}: part_target_us outside 1..=${LIMITS.MAX_PART_TARGET_US}`);
      }
    }
    if (r.init && r.init.size > LIMITS.MAX_INIT_BYTES) fail("oversize", "init segment over 1 MiB");
    if (r.container === "ts" && r.init) fail("malformed", "an MPEG-TS rendition has no init segment");
    const maxDur = r.target_duration * 1000000 + 500000;
    r.segments.forEach((s, i) => {
      if (i > 0 && s.seq !== r.segments[i - 1].seq + 1) fail("malformed", `rendition ${r.name}: window seq not consecutive`);
      if (s.dur_us === 0 || s.dur_us >= maxDur) fail("malformed", `segment ${s.seq}: duration does not fit target duration`);
      if (s.size > LIMITS.MAX_SEGMENT_BYTES) fail("oversize", `segment ${s.seq} over 64 MiB`);
      if ((r.container === "fmp4") !== (s.init !== undefined)) fail("malformed", `segment ${s.seq}: init required for fmp4, absent for ts`);
    });
  }
}

/** §7.2, in the reference order. */
export function validateAnnounce(a) {
  checkLen("title", a.title, LIMITS.MAX_TITLE_BYTES);
  checkCount("renditions", a.renditions.length, LIMITS.MAX_RENDITIONS);
  for (const r of a.renditions) {
    checkName(r.name);
    checkAttr("codecs", r.codecs, LIMITS.MAX_CODECS_BYTES);
    checkResolution(r.resolution);
  }
  for (const kind of ["http", "libp2p", "trackers", "moq"]) {
    checkCount(`${kind} hints`, a.hints[kind].length, LIMITS.MAX_HINTS_PER_KIND);
    for (const h of a.hints[kind]) checkLen(`${kind} hint`, h, LIMITS.MAX_HINT_BYTES);
  }
  if (a.tip !== undefined) checkLen("tip", a.tip, LIMITS.MAX_TIP_BYTES);
  if (a.expires_ms < a.time_ms) fail("malformed", "expires_ms is before time_ms");
}

/**
 * §5.4: verify wire bytes as `type` ("manifest_root" | "stream_announce") signed by the pinned
 * `expectedStream` (a stream id string). Resolves to { type, body, id, wire } or rejects with a
 * VerifyError. `body` is the object without v, type and sig; `id` is BLAKE3 of the signing input.
 */
export async function verifySigned(wire, type, expectedStream) {
  const t = TYPES[type];
  if (!t) throw new Error(`internal: unknown object type ${type}`);
  if (!(wire instanceof Uint8Array)) wire = new Uint8Array(wire);
  if (wire.length > t.max) fail("oversize", `${type} is ${wire.length} bytes, limit ${t.max}`);   // 1
  const obj = parseCanonical(wire);                                                                // 2
  if (!isObject(obj)) fail("malformed", "not a JSON object");
  if (!Object.hasOwn(obj, "v") || typeof obj.v !== "number") fail("malformed", "missing version v"); // 3
  if (obj.v !== 1) fail("unknown_version", `v = ${obj.v}`);
  if (!Object.hasOwn(obj, "type") || obj.type !== type) fail("wrong_type", `expected ${type}`);    // 4
  if (!Object.hasOwn(obj, "sig") || typeof obj.sig !== "string") fail("malformed", "missing signature sig"); // 5
  const sig = b64urlDecodeCanonical(obj.sig, 64, "signature");
  const unsigned = { ...obj };
  delete unsigned.sig;
  const signingInput = concatBytes(utf8.encode(t.domain), canonicalBytes(unsigned));
  const body = { ...unsigned };
  delete body.v;
  delete body.type;
  checkShape(body, t.shape, type);                                                                 // 6
  if (body.stream !== expectedStream) fail("wrong_key", `signed for ${body.stream}, expected ${expectedStream}`); // 7
  t.validate(body);                                                                                // 8
  if (!(await verifyStrict(parseStreamId(body.stream), signingInput, sig))) fail("bad_signature", type); // 9
  return { type, body, id: await blake3Hex(signingInput), wire };
}

/**
 * What a verified manifest says about each blob: hash -> { size, exact }. Media segments and
 * rendition-level inits have an exact signed size; an init known only through a segment's
 * `init` hash gets the 1 MiB limit (§3) and exact = false.
 */
export function blobSizes(manifest) {
  const out = new Map();
  for (const r of manifest.renditions) {
    if (r.init) out.set(r.init.hash, { size: r.init.size, exact: true });
    for (const s of r.segments) {
      out.set(s.hash, { size: s.size, exact: true });
      if (s.init && !out.has(s.init)) out.set(s.init, { size: LIMITS.MAX_INIT_BYTES, exact: false });
    }
  }
  return out;
}
