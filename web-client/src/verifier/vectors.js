// Runs one PROTOCOL.md §14 test vector through this verifier. Shared by `npm test` (Node) and
// the /selftest page (browser), so both check the exact same code paths.

import { parseCanonical } from "./canonical.js";
import { ManifestChain, AnnounceSlot } from "./chain.js";
import { b64urlEncode, hexToBytes } from "./encoding.js";
import { VerifyError, codeOf } from "./errors.js";
import { publicKeyFromSeed } from "./ed25519.js";
import { verifySegment } from "./hash.js";
import { leafHash, verifyConsistency, verifyInclusion } from "./merkle.js";
import { verifySigned } from "./objects.js";
import { PartChain, verifyPart } from "./part.js";
import { findRendition, renderMaster, renderMedia } from "./playlist.js";

const utf8 = new TextEncoder();

/** "ok" when `fn` resolves, else the §12 code it failed with. */
async function outcome(fn) {
  try {
    await fn();
    return "ok";
  } catch (e) {
    return codeOf(e);
  }
}

const RUNNERS = {
  async key(v) {
    return outcome(async () => {
      const id = b64urlEncode(await publicKeyFromSeed(hexToBytes(v.seed_hex)));
      if (id !== v.stream_id) throw new Error(`derived ${id}`);
    });
  },
  canonical: (v) => outcome(() => parseCanonical(utf8.encode(v.input))),
  manifest: (v) => outcome(async () => {
    const m = await verifySigned(utf8.encode(v.wire), "manifest_root", v.stream);
    if (v.id !== undefined && m.id !== v.id) throw new Error(`id ${m.id} != ${v.id}`);
  }),
  async manifest_chain(v) {
    const chain = new ManifestChain(v.stream);
    const out = [];
    for (const w of v.wires) out.push(await outcome(() => chain.acceptWire(utf8.encode(w))));
    // §14: for equivocation both manifests are kept as evidence.
    if (out.includes("equivocation") && chain.evidence.length === 0) out.push("no evidence kept");
    return out;
  },
  part: (v) => outcome(async () => {
    const p = await verifyPart(hexToBytes(v.wire_hex), v.stream);
    if (v.id !== undefined && p.id !== v.id) throw new Error(`id ${p.id} != ${v.id}`);
    if (v.data_hex !== undefined) {
      const data = hexToBytes(v.data_hex);
      if (data.length !== p.body.size || !(await verifySegment(p.body.hash, data))) throw new VerifyError("hash_mismatch", "part bytes");
    }
  }),
  async part_chain(v) {
    const chain = new PartChain(v.stream);
    const out = [];
    for (const w of v.wires_hex) out.push(await outcome(() => chain.acceptWire(hexToBytes(w))));
    if (out.includes("equivocation") && chain.evidence.length === 0) out.push("no evidence kept");
    return out;
  },
  announce: (v) => outcome(() => new AnnounceSlot(v.stream).acceptWire(utf8.encode(v.wire), v.now_ms)),
  segment: (v) => outcome(async () => {
    if (!(await verifySegment(v.hash, hexToBytes(v.data_hex)))) throw new VerifyError("hash_mismatch", v.hash);
  }),
  inclusion: (v) => outcome(async () => verifyInclusion(await leafHash(v.entry), v.proof, v.root)),
  consistency: (v) => outcome(() => verifyConsistency(v.proof, v.old_root, v.new_root)),
  playlist: (v) => outcome(async () => {
    const m = await verifySigned(utf8.encode(v.wire), "manifest_root", v.stream);
    const master = renderMaster(m.body);
    if (master !== v.master) throw new Error(`master differs:\n${master}`);
    for (const [name, text] of Object.entries(v.media)) {
      const r = findRendition(m.body, name);
      const got = r ? renderMedia(r) : "(no such rendition)";
      if (got !== text) throw new Error(`${name}.m3u8 differs:\n${got}`);
    }
  }),
};

/**
 * Run one vector. Resolves to { name, kind, expect, got, pass }. A kind this verifier does not
 * know is a failure (got "unhandled kind"), so new vector kinds cannot pass silently.
 */
export async function runVector(v) {
  const run = RUNNERS[v.kind];
  const got = run ? await run(v) : `unhandled kind ${v.kind}`;
  const pass = JSON.stringify(got) === JSON.stringify(v.expect);
  return { name: v.name, kind: v.kind, expect: v.expect, got, pass };
}
