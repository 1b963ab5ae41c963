// Byte spellings used by the protocol: lower-case hex (§3) and canonical unpadded base64url (§2).
// Only the canonical spelling is accepted, so one key / hash / signature has one string.

import { fail } from "./errors.js";

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64_INDEX = new Map([...B64].map((c, i) => [c, i]));
const HEX_RE = /^[0-9a-f]{64}$/;

export function b64urlEncode(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let k = 0; k < chars; k++) out += B64[(n >> (18 - 6 * k)) & 63];
  }
  return out;
}

/**
 * Decode unpadded base64url of exactly `expectLen` bytes. Rejects padding, other alphabets and
 * non-zero unused bits in the last character (re-encoding must give the input back).
 */
export function b64urlDecodeCanonical(s, expectLen, what) {
  const chars = Math.ceil((expectLen * 8) / 6);
  if (typeof s !== "string" || s.length !== chars) fail("malformed", `${what} must be ${chars} base64url characters`);
  const out = new Uint8Array(expectLen);
  let acc = 0, bits = 0, j = 0;
  for (const c of s) {
    const v = B64_INDEX.get(c);
    if (v === undefined) fail("malformed", `${what} is not base64url`);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (j < expectLen) out[j++] = (acc >> bits) & 0xff;
      acc &= (1 << bits) - 1;
    }
  }
  if (b64urlEncode(out) !== s) fail("malformed", `${what} is not in canonical base64url form`);
  return out;
}

/** True when `s` is a canonical hash spelling: 64 lower-case hex characters. */
export function isHashHex(s) {
  return typeof s === "string" && HEX_RE.test(s);
}

export function hexToBytes(hex) {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

export function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}
