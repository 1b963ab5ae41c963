// Every PROTOCOL.md §14 vector in ../tests/vectors through the JS verifier, twice: once with
// WebCrypto doing the Ed25519 equation, once with the pure-BigInt fallback that pages outside a
// secure context use. Fails on any mismatch and on any vector kind the verifier does not handle.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runVector, setForceFallback } from "../src/verifier/index.js";

const DIR = fileURLToPath(new URL("../../tests/vectors/", import.meta.url));
const names = JSON.parse(readFileSync(DIR + "index.json", "utf8"));
const vectors = names.map((n) => JSON.parse(readFileSync(DIR + n, "utf8")));

test("vector index is not empty and names unique", () => {
  assert.ok(vectors.length >= 40, `only ${vectors.length} vectors`);
  assert.equal(new Set(names).size, names.length);
});

for (const [mode, fallback] of [["webcrypto", false], ["bigint-fallback", true]]) {
  test(`all vectors (${mode})`, async (t) => {
    setForceFallback(fallback);
    try {
      let passed = 0;
      for (const v of vectors) {
        const r = await runVector(v);
        await t.test(v.name, () => assert.deepEqual(r.got, v.expect, `${v.name}: ${v.description}`));
        if (r.pass) passed++;
      }
      t.diagnostic(`${passed}/${vectors.length} vectors passed (${mode})`);
    } finally {
      setForceFallback(false);
    }
  });
}
