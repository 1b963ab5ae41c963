// The peer-assisted playback policy (src/watch/p2p.js): peer ids that sort by start time, the
// leader among connected peers, and the playback rate each role gets.

import { test } from "node:test";
import assert from "node:assert/strict";
import { FOLLOWER_LATENCY, FRONT_LATENCY, isLeader, makePeerId, rateFor, renditionSwarms, windowsFor } from "../src/watch/p2p.js";

test("peer ids are 20 characters and sort by page start time", () => {
  const a = makePeerId(1_790_000_000_000, () => 0.99);
  const b = makePeerId(1_790_000_000_001, () => 0);
  assert.equal(a.length, 20);
  assert.equal(b.length, 20);
  assert.ok(a < b, `${a} < ${b}`);
  assert.match(makePeerId(), /^-HW[0-9a-z]{17}$/);
});

test("the leader is the viewer whose id sorts first among its connected peers", () => {
  assert.equal(isLeader("-HW2", []), true, "alone");
  assert.equal(isLeader("-HW2", ["-HW3", "-HW4"]), true);
  assert.equal(isLeader("-HW3", ["-HW2", "-HW4"]), false);
});

test("followers are held at their lag; leaders are hurried back but never slowed", () => {
  const td = 2;
  const follower = FOLLOWER_LATENCY * td, front = FRONT_LATENCY * td;
  assert.equal(rateFor("follower", front, 3, td), 0.8, "too close to live: fall back");
  assert.equal(rateFor("follower", follower, 3, td), 1);
  assert.equal(rateFor("follower", follower + 1, 3, td), 1.1, "too far: catch up");
  assert.equal(rateFor("follower", follower + 1, 0.2, td), 1, "never hurry into a stall");
  assert.equal(rateFor("leader", 0.5, 3, td), 1, "a leader ahead of target stays at 1x");
  assert.equal(rateFor("front", follower, 3, td), 1.1, "a former follower returns to the front");
  assert.equal(rateFor("front", null, 3, td), 1);
});

test("main streams are named by rendition, so swarms do not depend on the running peak bandwidth", () => {
  const added = [];
  const core = { addStreamIfNoneExists(s) { added.push(s); } };
  renditionSwarms(core);
  core.addStreamIfNoneExists({ runtimeId: "http://n/streams/x/source.m3u8", type: "main", index: "hash1" });
  core.addStreamIfNoneExists({ runtimeId: "http://n/streams/x/audio.m3u8", type: "secondary", index: "hash2" });
  assert.deepEqual(added.map((s) => s.index), ["source", "hash2"]);
});

test("leaders fetch over HTTP whatever they can reach; followers only the next moment", () => {
  assert.ok(windowsFor("front", 2).highDemandTimeWindow >= 30);
  assert.ok(windowsFor("leader", 2).highDemandTimeWindow >= 30);
  assert.equal(windowsFor("follower", 1).highDemandTimeWindow, 1.2);
  assert.equal(windowsFor("follower", 2).highDemandTimeWindow, 1.5);
  // A follower's high-demand window ends well before the leader's lead over it runs out.
  for (const td of [1, 2, 4, 6]) {
    assert.ok(windowsFor("follower", td).highDemandTimeWindow < (FOLLOWER_LATENCY - 1) * td);
  }
});
