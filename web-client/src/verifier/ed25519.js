// Ed25519 for hlswarm: strict verification as PROTOCOL.md §5.4 step 9 defines it
// (ed25519-dalek verify_strict), and the stream id point check of §2.
//
// WebCrypto's Ed25519 (Chromium, Node 20) does the cofactorless check with S < L, but it does not
// promise to reject small-order R or A, and it cannot tell us whether 32 bytes are a curve point.
// So the point decoding and small-order checks are done here with BigInt, then the signature
// equation is left to WebCrypto. Where crypto.subtle is missing (a page served over plain http
// from a non-loopback address is not a secure context) the equation is computed here too; that
// is slower (~tens of ms) but gives the same answers.

import { sha512 } from "hash-wasm";
import { concatBytes as concat, hexToBytes } from "./encoding.js";

const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const D = 37095705934669439343138083508754565189542113879843219016388785533085940283555n;
const D2 = (2n * D) % P;
const SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752n;
const BASE = {
  X: 15112221349535400772501151409588531511454012693041857206046113283949847762202n,
  Y: 46316835694926478169428394003475163141307993866256225615783033603165251855960n,
  Z: 1n,
};
BASE.T = (BASE.X * BASE.Y) % P;
const IDENTITY = { X: 0n, Y: 1n, Z: 1n, T: 0n };

let forceFallback = false;
/** Tests use this to run the pure-BigInt equation even where WebCrypto exists. */
export function setForceFallback(on) { forceFallback = !!on; }

const mod = (a) => { const r = a % P; return r >= 0n ? r : r + P; };
function pow(b, e) {
  let r = 1n;
  b = mod(b);
  while (e > 0n) { if (e & 1n) r = (r * b) % P; b = (b * b) % P; e >>= 1n; }
  return r;
}
const inv = (a) => pow(a, P - 2n);

function leToBig(bytes) {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}
function bigToLe(n, len) {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) { out[i] = Number(n & 0xffn); n >>= 8n; }
  return out;
}

// Extended twisted Edwards coordinates, a = -1: unified (complete) addition and doubling.
function add(p, q) {
  const a = mod((p.Y - p.X) * (q.Y - q.X)), b = mod((p.Y + p.X) * (q.Y + q.X));
  const c = mod(p.T * D2 * q.T), d = mod(2n * p.Z * q.Z);
  const e = b - a, f = d - c, g = d + c, h = b + a;
  return { X: mod(e * f), Y: mod(g * h), Z: mod(f * g), T: mod(e * h) };
}
function dbl(p) {
  const a = mod(p.X * p.X), b = mod(p.Y * p.Y), c = mod(2n * p.Z * p.Z);
  const e = mod((p.X + p.Y) * (p.X + p.Y) - a - b), g = b - a, f = g - c, h = -a - b;
  return { X: mod(e * f), Y: mod(g * h), Z: mod(f * g), T: mod(e * h) };
}
function mul(p, n) {
  let r = IDENTITY;
  for (let i = BigInt(n.toString(2).length) - 1n; i >= 0n; i--) {
    r = dbl(r);
    if ((n >> i) & 1n) r = add(r, p);
  }
  return r;
}
const neg = (p) => ({ X: mod(-p.X), Y: p.Y, Z: p.Z, T: mod(-p.T) });

function encode(p) {
  const zi = inv(p.Z), x = mod(p.X * zi), y = mod(p.Y * zi);
  const out = bigToLe(y, 32);
  if (x & 1n) out[31] |= 0x80;
  return out;
}

/**
 * Decode a point as curve25519-dalek's decompress() does: the y coordinate is taken mod p and
 * the sign bit selects x. Returns null when the bytes are not on the curve.
 */
export function decodePoint(bytes) {
  if (bytes.length !== 32) return null;
  const sign = bytes[31] >> 7;
  const y = mod(leToBig(bytes) & (2n ** 255n - 1n));
  const u = mod(y * y - 1n), v = mod(D * y * y + 1n);
  const v3 = mod(v * v * v);
  let x = mod(u * v3 * pow(u * v3 * v3 * v, (P - 5n) / 8n));
  const vx2 = mod(v * x * x);
  if (vx2 === u) { /* x is a root */ } else if (vx2 === mod(-u)) x = mod(x * SQRT_M1);
  else return null;
  if (Number(x & 1n) !== sign) x = mod(-x);
  return { X: x, Y: y, Z: 1n, T: mod(x * y) };
}

/** A point of order dividing 8: [8]P is the identity. */
export function isSmallOrder(p) {
  const q = dbl(dbl(dbl(p)));
  return q.X === 0n && q.Y === q.Z;
}

/** §2: 32 bytes that decode to a curve point (small order is checked at signature time). */
export function isValidPublicKey(bytes) {
  return decodePoint(bytes) !== null;
}

function subtle() {
  return !forceFallback && globalThis.crypto && globalThis.crypto.subtle ? globalThis.crypto.subtle : null;
}

/** Strict Ed25519 verification (§5.4 step 9). Resolves to true or false, never throws. */
export async function verifyStrict(publicKey, message, signature) {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  const rBytes = signature.subarray(0, 32);
  const s = leToBig(signature.subarray(32));
  if (s >= L) return false;
  const r = decodePoint(rBytes), a = decodePoint(publicKey);
  if (!r || !a || isSmallOrder(r) || isSmallOrder(a)) return false;
  const sc = subtle();
  if (sc) {
    try {
      const key = await sc.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
      return await sc.verify({ name: "Ed25519" }, key, signature, message);
    } catch {
      return false;
    }
  }
  // Fallback: encode([S]B - [k]A) == R, k = SHA-512(R || A || M) mod L, compared as bytes.
  const h = hexToBytes(await sha512(concat(rBytes, publicKey, message)));
  const k = leToBig(h) % L;
  const check = encode(add(mul(BASE, s), mul(neg(a), k)));
  return check.every((b, i) => b === rBytes[i]);
}

/** Public key of an RFC 8032 seed (key vectors, §14). */
export async function publicKeyFromSeed(seed) {
  const sc = subtle();
  if (sc) {
    const pkcs8 = concat(hexToBytes("302e020100300506032b657004220420"), seed);
    const key = await sc.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
    const jwk = await sc.exportKey("jwk", key);
    return Uint8Array.from(atob(jwk.x.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  }
  const h = hexToBytes(await sha512(seed));
  h[0] &= 248; h[31] &= 127; h[31] |= 64;
  return encode(mul(BASE, leToBig(h.subarray(0, 32))));
}
