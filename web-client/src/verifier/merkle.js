// Merkle log (PROTOCOL.md §9): RFC 9162 tree shape with BLAKE3, leaf = canonical log entry.
// Sizes are BigInt because logs can in principle outgrow 2^32 entries.

import { canonicalBytes } from "./canonical.js";
import { concatBytes, hexToBytes, isHashHex } from "./encoding.js";
import { fail } from "./errors.js";
import { blake3Hex } from "./hash.js";

export const EMPTY_ROOT = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
const MAX_PATH = 64;
const ENTRY_FIELDS = { disc: "boolean", dur_us: "number", hash: "hash", independent: "boolean?", init: "hash?", pdt_ms: "number?", rendition: "string", seq: "number", size: "number" };

/** leaf_hash = BLAKE3(0x00 || canonical(entry)), after checking the entry's fields (§9.1). */
export async function leafHash(entry) {
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) fail("malformed", "log entry must be an object");
  for (const k of Object.keys(entry)) if (!Object.hasOwn(ENTRY_FIELDS, k)) fail("malformed", `unknown log entry field ${k}`);
  for (const [k, t] of Object.entries(ENTRY_FIELDS)) {
    const optional = t.endsWith("?"), type = t.replace("?", "");
    if (!Object.hasOwn(entry, k)) { if (optional) continue; fail("malformed", `missing log entry field ${k}`); }
    const v = entry[k];
    const ok = type === "hash" ? isHashHex(v) : type === "number" ? Number.isSafeInteger(v) && v >= 0 : typeof v === type;
    if (!ok) fail("malformed", `log entry field ${k}`);
  }
  return blake3Hex(concatBytes(Uint8Array.of(0), canonicalBytes(entry)));
}

/** node_hash = BLAKE3(0x01 || left || right) over the 32-byte binary hashes. */
export function nodeHash(leftHex, rightHex) {
  return blake3Hex(concatBytes(Uint8Array.of(1), hexToBytes(leftHex), hexToBytes(rightHex)));
}

function checkPath(path) {
  if (!Array.isArray(path)) fail("malformed", "proof path must be an array");
  if (path.length > MAX_PATH) fail("oversize", `proof path of ${path.length} hashes`);
  if (!path.every(isHashHex)) fail("malformed", "proof path holds a bad hash");
}
const big = (n, what) => {
  if (!Number.isSafeInteger(n) || n < 0) fail("malformed", `${what} must be a non-negative integer`);
  return BigInt(n);
};

/** §9.3: `leafHashHex` is leaf `proof.leaf_index` of the log with root `rootHex`. */
export async function verifyInclusion(leafHashHex, proof, rootHex) {
  let fn = big(proof.leaf_index, "leaf_index"), sn = big(proof.tree_size, "tree_size") - 1n;
  if (fn > sn) fail("invalid_proof", "leaf_index >= tree_size");
  checkPath(proof.path);
  let r = leafHashHex;
  for (const p of proof.path) {
    if (sn === 0n) fail("invalid_proof", "path too long");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) fail("invalid_proof", "path too short");
  if (r !== rootHex) fail("invalid_proof", "root mismatch");
}

/** §9.4: the log with root `newRoot` (size new_size) extends the one with `oldRoot` (old_size). */
export async function verifyConsistency(proof, oldRoot, newRoot) {
  const m = big(proof.old_size, "old_size"), n = big(proof.new_size, "new_size");
  checkPath(proof.path);
  if (m > n) fail("invalid_proof", "old_size > new_size");
  if (m === n) {
    if (proof.path.length === 0 && oldRoot === newRoot) return;
    fail("invalid_proof", "equal sizes need an empty path and equal roots");
  }
  if (m === 0n) {
    if (proof.path.length === 0 && oldRoot === EMPTY_ROOT) return;
    fail("invalid_proof", "the empty log needs an empty path");
  }
  if (proof.path.length === 0) fail("invalid_proof", "empty path");
  const path = (m & (m - 1n)) === 0n ? [oldRoot, ...proof.path] : proof.path;
  let fn = m - 1n, sn = n - 1n;
  while ((fn & 1n) === 1n) { fn >>= 1n; sn >>= 1n; }
  let fr = path[0], sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) fail("invalid_proof", "path too long");
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) fail("invalid_proof", "path too short");
  if (fr !== oldRoot || sr !== newRoot) fail("invalid_proof", "root mismatch");
}
