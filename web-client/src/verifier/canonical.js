// Canonical JSON (PROTOCOL.md §4). This is the §4.1 reference code, with errors turned into
// VerifyErrors so that callers get the exact §12 code.

import { fail } from "./errors.js";

const utf8 = new TextEncoder();
const MAX_DEPTH = 16;

/** Compare keys by their UTF-8 bytes (equivalently by code point, not by UTF-16 unit). */
function byteOrder(a, b) {
  const x = utf8.encode(a), y = utf8.encode(b);
  for (let i = 0; i < x.length && i < y.length; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

// JSON.stringify escapes strings exactly as canonical.rs does; lone surrogates are not UTF-8.
function str(s) {
  if (/\p{Surrogate}/u.test(s)) fail("malformed", "lone surrogate");
  return JSON.stringify(s);
}

/** Canonical JSON text of a value; throws `non_canonical` / `oversize` like canonical.rs. */
export function canonicalize(value, depth = 0) {
  if (depth > MAX_DEPTH) fail("oversize", "nesting depth over 16");
  if (value === null || value === undefined) fail("non_canonical", "null");
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) fail("non_canonical", `number ${value}`);
    return String(value); // shortest decimal; -0 becomes "0" and then differs from the input
  }
  if (typeof value === "string") return str(value);
  if (Array.isArray(value)) return "[" + value.map((v) => canonicalize(v, depth + 1)).join(",") + "]";
  if (typeof value === "object") {
    return "{" + Object.keys(value).sort(byteOrder)
      .map((k) => str(k) + ":" + canonicalize(value[k], depth + 1)).join(",") + "}";
  }
  return fail("non_canonical", typeof value);
}

/** Canonical bytes of a value. */
export function canonicalBytes(value) {
  return utf8.encode(canonicalize(value));
}

/**
 * Parse bytes that must already be canonical JSON: parse, re-encode, compare byte for byte.
 * That one comparison catches white space, key order, duplicate keys, `1.0`, `\/` and so on.
 */
export function parseCanonical(bytes) {
  let value;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes));
  } catch (e) {
    fail("malformed", e.message);
  }
  const again = canonicalBytes(value);
  if (!bytesEqual(again, bytes)) fail("non_canonical", "re-encoding differs from the bytes received");
  return value;
}

export function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
