// The JS LL-HLS renderer against the Rust one: every case of test/fixtures/playlist_ll.json
// (written by `cargo run -p manifest-signer --example ll_fixture`) must come out byte-identical,
// and lastPosition must agree.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { lastPosition, renderMediaLl } from "../src/verifier/playlist_ll.js";
import { renderMedia } from "../src/verifier/playlist.js";

const fixture = JSON.parse(readFileSync(new URL("./fixtures/playlist_ll.json", import.meta.url), "utf8"));

test("the fixture has the cases the port must cover", () => {
  const names = fixture.cases.map((c) => c.name);
  for (const n of ["live", "new-publish-in-progress", "delta-update", "ended", "empty-window", "incomplete-run", "odd-durations"]) {
    assert.ok(names.includes(n), `${n} in ${names}`);
  }
});

for (const c of fixture.cases) {
  test(`render_media_ll: ${c.name}`, () => {
    assert.equal(renderMediaLl(c.rendition, c.ll), c.text);
    assert.deepEqual(lastPosition(c.rendition, c.ll.parts), c.last_position);
  });
}

test("without LL tags and what follows the last segment, the LL playlist is the classic one", () => {
  const LL = ["#EXT-X-SERVER-CONTROL:", "#EXT-X-PART-INF:", "#EXT-X-PART:", "#EXT-X-PRELOAD-HINT:", "#EXT-X-RENDITION-REPORT:"];
  for (const c of fixture.cases.filter((c) => !c.ll.skip)) {
    const lines = renderMediaLl(c.rendition, c.ll).split("\n").filter((l) => l && !LL.some((t) => l.startsWith(t)));
    assert.equal(lines.join("\n") + "\n", renderMedia(c.rendition), c.name);
  }
});
