// Peer-assisted playback policy: which swarm a viewer joins, who fetches new segments over HTTP,
// and how far behind live each viewer plays.
//
// p2p-media-loader's scheduler fetches a segment over HTTP when it falls inside the "high demand"
// window (close to the playhead) and over P2P only before that, from a peer that already holds it.
// So peers only help if some viewer has a segment before the others need it. Viewers of a live
// stream all sit near the live edge, so that gap has to be made on purpose:
//
// - A lone viewer (no peers) fetches over HTTP whatever it can reach and plays near live
//   (FRONT_LATENCY target durations behind at most; hls.js itself starts 3 behind).
// - With peers connected, the viewer whose peer id sorts first is the leader: it stays at the
//   front and fetches each new segment over HTTP as soon as it appears. The others ("followers")
//   play FOLLOWER_LATENCY target durations behind live (issue 4 allows 3), fetch over HTTP only
//   what they need within their next ~second, and so find each new segment already held by the
//   leader, or by another follower.
// - Peer ids start with the time the page started, so the leader is the viewer that has been
//   there longest: a new viewer never displaces it, and when it leaves the next oldest takes over.
//   Every viewer computes this from its own peer list; there is no extra message.
// - Latency moves by playback rate (0.8x to fall back, 1.1x to catch up), never by seeking.

/**
 * Latency targets in target durations: front (lone viewer, leader) and followers. A viewer drifts
 * back after any wait for data, and hls.js does not catch up by itself here (it only would in
 * low-latency mode), so the targets are also ceilings: above target + slack it plays at 1.1x.
 */
export const FRONT_LATENCY = 1.2;
export const FOLLOWER_LATENCY = 2.5;
const SLOW_RATE = 0.8;
const FAST_RATE = 1.1;
const ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

/**
 * A 20-character WebTorrent peer id that sorts by page start time: "-HW" + 9 base-36 digits of
 * the start time in ms + 8 random characters.
 */
export function makePeerId(now = Date.now(), random = Math.random) {
  let tail = "";
  for (let i = 0; i < 8; i++) tail += ID_ALPHABET[Math.floor(random() * ID_ALPHABET.length)];
  return `-HW${now.toString(36).padStart(9, "0").slice(-9)}${tail}`;
}

/** True when `self` leads among `peers` (ids of the connected peers): it sorts first. */
export function isLeader(self, peers) {
  for (const p of peers) if (p < self) return false;
  return true;
}

/**
 * The playback rate for `role` at `latency` seconds behind the live edge, with `ahead` seconds
 * buffered in front of the playhead and target duration `td`. Followers are held at their lag
 * both ways; the leader and a lone viewer are only hurried when they are clearly behind (a late
 * joiner, a former follower, after a stall), never slowed down.
 */
export function rateFor(role, latency, ahead, td) {
  if (latency === null || !Number.isFinite(latency)) return 1;
  const target = (role === "follower" ? FOLLOWER_LATENCY : FRONT_LATENCY) * td;
  if (role === "follower" && latency < target - 0.1 * td) return SLOW_RATE;
  const slack = role === "follower" ? 0.15 : 0.3;
  if (latency > target + slack * td && ahead > 0.5 * td) return FAST_RATE;
  return 1;
}

/**
 * p2p-media-loader's windows for a role, in seconds ahead of the playhead: within the high-demand
 * window a segment is fetched over HTTP right away; beyond it, only from peers. A lone viewer or
 * the leader fetches everything it can reach over HTTP at once (as plain hls.js would); a
 * follower only what it needs within the next 0.75 target durations (1.2 s at least), and waits
 * for peers for the rest.
 */
export function windowsFor(role, td) {
  const h = role === "follower" ? Math.max(1.2, 0.75 * td) : 60;
  return { highDemandTimeWindow: h, httpDownloadTimeWindow: h };
}

/** The p2p-media-loader core config for one stream. */
export function coreConfig({ streamId, trackers, peerId, validateP2P, validateHTTP }) {
  return {
    // One swarm per stream id whichever node served the page; p2p-media-loader adds the
    // stream type and index, which renditionSwarms() below makes the rendition's name.
    swarmId: `hlswarm:${streamId}`,
    announceTrackers: trackers,
    rtcConfig: { iceServers: [] },
    // A full 20-character prefix is used as the peer id as is (see makePeerId).
    trackerClientVersionPrefix: peerId,
    // Starts as a lone viewer; startLatencyControl() moves the windows with the role.
    ...windowsFor("front", 2),
    p2pDownloadTimeWindow: 30,
    simultaneousP2PDownloads: 3,
    validateP2PSegment: validateP2P,
    validateHTTPSegment: validateHTTP,
  };
}

/**
 * p2p-media-loader names a rendition's swarm after a hash of its BANDWIDTH, CODECS, RESOLUTION
 * and FRAME-RATE. Our BANDWIDTH is the signed running peak, which grows while the stream runs,
 * so viewers who loaded the master playlist at different times would land in different swarms.
 * Name each main stream after its rendition instead (the playlist URL is `<rendition>.m3u8`).
 * `core` is the engine's p2p-media-loader Core (pinned 2.3.1).
 */
export function renditionSwarms(core) {
  if (!core || typeof core.addStreamIfNoneExists !== "function") {
    console.warn("p2p: cannot name swarms by rendition; peers may not meet");
    return;
  }
  const add = core.addStreamIfNoneExists.bind(core);
  core.addStreamIfNoneExists = (stream) => {
    const name = /([A-Za-z0-9_-]{1,32})\.m3u8(?:[?#].*)?$/.exec(stream.runtimeId)?.[1];
    return add(stream.type === "main" && name ? { ...stream, index: name } : stream);
  };
}

/**
 * Every 250 ms: leader or follower from the connected peers, and the playback rate toward that
 * role's latency. `getLatency` returns seconds behind the live edge or null.
 */
export function startLatencyControl({ video, hls, peerId, peers, getLatency, onRole }) {
  let role = "front";
  let applied = "";
  onRole?.(role);
  const tick = () => {
    const td = hls.latestLevelDetails?.targetduration || hls.levels?.[0]?.details?.targetduration;
    if (!td || video.paused) return;
    const ids = [...peers].filter((k) => k.startsWith("main:")).map((k) => k.slice(5));
    const next = ids.length === 0 ? "front" : isLeader(peerId, ids) ? "leader" : "follower";
    if (next !== role) { role = next; onRole?.(role); }
    const key = `${role === "follower"}:${td}`;
    if (key !== applied && hls.p2pEngine) {
      const w = windowsFor(role, td);
      hls.p2pEngine.applyDynamicConfig({ core: { mainStream: w, secondaryStream: w } });
      applied = key;
    }
    let ahead = 0;
    const b = video.buffered;
    for (let i = 0; i < b.length; i++) if (b.start(i) <= video.currentTime + 0.1) ahead = Math.max(ahead, b.end(i) - video.currentTime);
    const rate = rateFor(role, getLatency(), ahead, td);
    if (video.playbackRate !== rate) video.playbackRate = rate;
  };
  return setInterval(tick, 250);
}
