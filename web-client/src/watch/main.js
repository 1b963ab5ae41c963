// The watch page: pins the stream id from the URL, plays it with hls.js through verifying
// loaders, and shows who signed it and what was verified. window.hlswarm.stats() is the
// machine-readable view that the end-to-end tests read.
//
// Three modes, chosen once per page load from the first verified manifest:
// - "ll": LL-HLS with every part verified (ll.js), when the stream signs parts (renditions with
//   part_target_us) and the URL has no ?ll=0. No peers: p2p-media-loader shares whole segments only.
// - "p2p": classic HLS with peers (p2p-media-loader), with ?ll=0 or for a stream without parts.
// - "hls": classic HLS over HTTP only, when peers are also off (?p2p=0).

import Hls from "hls.js";
import { HlsJsP2PEngine } from "p2p-media-loader-hlsjs";
import { parseStreamId } from "../verifier/index.js";
import { makeLoaders, makeSegmentValidator } from "./loaders.js";
import { VerifiedParts, hasParts, makeLlPlaylistLoader, liveSyncOf } from "./ll.js";
import { coreConfig, makePeerId, renditionSwarms, startLatencyControl } from "./p2p.js";
import { Stats } from "./stats.js";
import { StreamSource } from "./stream.js";
import { copyText, shareBundle, watchLink } from "./share.js";
import { setupTip } from "./tip.js";
import * as ui from "./ui.js";

const params = new URLSearchParams(location.search);
const pathId = /\/watch\/([^/?#]+)\/?$/.exec(location.pathname)?.[1];
const streamId = decodeURIComponent(pathId || params.get("stream") || "");
let origin = null;
try { origin = pickOrigin(params.get("origin")); } catch (e) { console.warn(e.message); }
const stats = new Stats();
const video = document.getElementById("video");
let source = null, hls = null, fatalError = null, fatalErrors = 0, p2pRole = null;
const peerId = makePeerId();
// ?p2p=0: no peers, no WebRTC (other viewers never learn this viewer's address).
const p2pEnabled = params.get("p2p") !== "0";
// ?ll=0: classic HLS even when the stream has parts (with peers unless ?p2p=0).
const llEnabled = params.get("ll") !== "0";
const MODE_LABELS = { ll: "LL-HLS, verified parts", p2p: "HLS + peers", hls: "HLS" };
let mode = null, parts = null;

function pickOrigin(param) {
  if (!param) return location.origin + "/";
  const u = new URL(param, location.href);
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("origin must be an http(s) URL");
  return u.href.endsWith("/") ? u.href : u.href + "/";
}

function snapshot() {
  const level = hls?.levels?.[hls.currentLevel];
  const url = level ? level.uri || level.url?.[0] || "" : "";
  // Only meaningful once frames are showing (readyState >= HAVE_CURRENT_DATA).
  const showing = video.readyState >= 2;
  const latency = showing && hls && Number.isFinite(hls.latency) && hls.latency > 0 ? hls.latency : null;
  const playing = showing ? hls?.playingDate : null;
  return {
    streamId,
    title: source?.announce?.title ?? null,
    currentTime: video.currentTime,
    paused: video.paused,
    verifiedSegments: stats.verifiedSegments,
    verifiedInit: stats.verifiedInit,
    verifiedPlaylists: stats.verifiedPlaylists,
    segmentFailures: stats.segmentFailures,
    mode,
    modeLabel: mode ? MODE_LABELS[mode] : null,
    verifiedParts: stats.verifiedParts,
    partStatements: stats.partStatements,
    partFailures: stats.partFailures,
    manifestFailures: stats.manifestFailures,
    manifestStale: stats.manifestStale,
    lastError: stats.lastError,
    lastErrorCode: stats.lastErrorCode,
    fatalError,
    fatalErrors,
    rendition: /([A-Za-z0-9_-]+)\.m3u8/.exec(url)?.[1] ?? null,
    bitrate: level?.bitrate ?? null,
    latency,
    latencyWall: playing ? (Date.now() - playing.getTime()) / 1000 : null,
    bytesHttp: stats.bytes.http,
    bytesP2p: stats.bytes.p2p,
    bytesUploaded: stats.bytesUploaded,
    peers: stats.peers.size,
    p2pRole,
    p2pRejected: stats.p2pRejected,
    unverifiedLoaded: stats.unverifiedLoaded,
    playbackRate: video.playbackRate,
    manifestSeq: stats.manifestSeq,
    ended: !!source?.chain.latest && source.chain.latest.body.renditions.every((r) => r.ended),
  };
}

window.hlswarm = {
  stats: snapshot, get source() { return source; }, get hls() { return hls; }, get parts() { return parts; }, counters: stats,
};

async function start() {
  try {
    parseStreamId(streamId);
  } catch {
    ui.showBanner(streamId ? `"${streamId}" is not a stream id (43 base64url characters).` : "No stream id: open /watch/<stream id>.");
    return;
  }
  if (!origin) return ui.showBanner("The origin parameter must be an http(s) URL.");
  ui.showIdentity(streamId);
  ui.showTitle(null);
  source = new StreamSource(streamId, origin, stats);
  wireShare();
  // Until a stream has signed its first announce (it signs one with its first segments),
  // ask again every 2 s; after that every 30 s.
  const announceLoop = async () => {
    await refreshAnnounce();
    setTimeout(announceLoop, source.announce ? 30000 : 2000);
  };
  announceLoop();
  const update = () => {
    ui.render(snapshot(), stats);
    // A refused manifest is shown until one verifies again; player errors are shown by onFatal.
    if (hls && !fatalError) ui.showBanner(source.refusing);
  };
  stats.onChange(update);
  setInterval(update, 500);
  setInterval(() => ui.renderChart(stats), 1000);

  if (!Hls.isSupported()) {
    ui.showBanner("This browser has no Media Source Extensions: hls.js cannot play here.");
    return;
  }
  // Wait for a first verified manifest, so that a stream that has not started yet is not a
  // fatal player error, just a wait.
  for (let delay = 1000; ; delay = Math.min(delay * 1.5, 5000)) {
    try {
      await source.manifest();
      break;
    } catch (e) {
      ui.showBanner(stats.lastError ? stats.lastError : `Waiting for the stream… (${e.message})`, stats.lastError ? "error" : "info");
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  ui.showBanner(null);
  // The trackers come from the verified announce; give a first one a moment to arrive.
  if (!source.announce) await Promise.race([refreshAnnounce(), new Promise((r) => setTimeout(r, 3000))]);
  startPlayer();
}

/** WebTorrent trackers for peer discovery: the announce's hints, then this page's node. */
function trackers() {
  const own = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/tracker`;
  const hinted = (source.announce?.hints?.trackers || []).filter((t) => /^wss?:\/\//.test(t));
  return [...new Set([...hinted, own])];
}

function startP2PPlayer(VerifyingLoader) {
  const HlsP2P = HlsJsP2PEngine.injectMixin(Hls);
  hls = new HlsP2P({
    loader: VerifyingLoader,
    backBufferLength: 30,
    // hls.js's default, set explicitly: left unset, the engine raises it to the playlist length
    // (7 segments behind live with our default window), which is not where a lone viewer should be.
    liveSyncDurationCount: 3,
    p2p: {
      core: coreConfig({
        streamId,
        trackers: trackers(),
        peerId,
        validateP2P: makeSegmentValidator(source, stats, "p2p"),
        validateHTTP: makeSegmentValidator(source, stats, "http"),
      }),
      onHlsJsCreated(h) {
        renditionSwarms(h.p2pEngine.core);
        h.p2pEngine.addEventListener("onChunkUploaded", (n) => stats.addUploaded(n));
        h.p2pEngine.addEventListener("onPeerConnect", (p) => stats.peer(`${p.streamType}:${p.peerId}`, true));
        h.p2pEngine.addEventListener("onPeerClose", (p) => stats.peer(`${p.streamType}:${p.peerId}`, false));
      },
    },
  });
  startLatencyControl({
    video, hls, peerId, peers: stats.peers,
    getLatency: () => (Number.isFinite(hls.latency) && hls.latency > 0 ? hls.latency : null),
    onRole: (r) => { p2pRole = r; },
  });
}

function startPlayer() {
  // p2p-media-loader replaces hls.js's fLoader and pLoader: media segments go through its core
  // (HTTP or peers, each checked by a validate hook before hls.js sees them), everything else
  // through `loader`, which is the verifying loader (playlists rendered, init segments checked).
  // p2p.js explains the schedule (who fetches over HTTP, how far behind live each viewer plays).
  const { VerifyingLoader, PlaylistLoader, FragmentLoader } = makeLoaders(source, stats);
  mode = llEnabled && hasParts(source.chain.latest.body) ? "ll" : p2pEnabled ? "p2p" : "hls";
  if (mode === "ll") {
    // Starts PART-HOLD-BACK (3 part targets) behind live; after a stall, up to 1.5x until back,
    // or a seek to live when further behind than hls.js catches up from (liveSyncOf).
    parts = new VerifiedParts(source, stats);
    hls = new Hls({
      pLoader: makeLlPlaylistLoader(source, parts, stats),
      fLoader: FragmentLoader,
      lowLatencyMode: true,
      backBufferLength: 30,
      maxLiveSyncPlaybackRate: 1.5,
      ...liveSyncOf(source.chain.latest.body),
    });
    p2pRole = "off";
  } else if (mode === "hls") {
    // maxLiveSyncPlaybackRate: after a late start or a stall, play up to 1.5x until back at the
    // target latency (hls.js does not catch up by default).
    hls = new Hls({ pLoader: PlaylistLoader, fLoader: FragmentLoader, backBufferLength: 30, maxLiveSyncPlaybackRate: 1.5 });
    p2pRole = "off";
  } else {
    startP2PPlayer(VerifyingLoader);
  }

  // Every media segment and part hls.js loads must be one the verifier passed (checked, not assumed).
  hls.on(Hls.Events.FRAG_LOADED, (_ev, { frag, part }) => {
    const hash = /seg\/([0-9a-f]{64})\.(?:m4s|ts)/.exec(part?.url || frag?.url || "")?.[1];
    if (frag?.sn !== "initSegment" && hash && !stats.verifiedHashes.has(hash)) stats.unverifiedLoaded++;
  });
  video.muted = true; // autoplay is only allowed muted; the viewer unmutes with the controls
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
  hls.on(Hls.Events.FRAG_BUFFERED, () => { if (fatalError) { fatalError = null; ui.showBanner(null); } });
  hls.on(Hls.Events.ERROR, (_ev, data) => {
    const text = `${data.type}/${data.details}${data.error?.message ? ": " + data.error.message : ""}`;
    if (!data.fatal) return console.debug("hls.js:", text);
    // Standard hls.js recovery: media errors by re-creating the MSE pipeline, network errors by
    // restarting loading a little later. Refused bytes never reach hls.js either way.
    fatalError = text;
    fatalErrors++;
    ui.showBanner(`Player error: ${text}. Retrying…`);
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
    else setTimeout(() => hls.startLoad(), 2000);
  });
  hls.loadSource(source.base + "master.m3u8");
  hls.attachMedia(video);
  setInterval(watchForRestart, 5000);
}

// hls.js stops reloading after EXT-X-ENDLIST. If the broadcaster goes live again with the same
// key, the next verified manifest is not ended: load the stream again to follow it.
let wasEnded = false;
async function watchForRestart() {
  const latest = source.chain.latest;
  if (!latest || !latest.body.renditions.every((r) => r.ended)) return;
  wasEnded = true;
  const m = await source.manifest().catch(() => null);
  if (m && wasEnded && !m.body.renditions.every((r) => r.ended)) {
    wasEnded = false;
    hls.loadSource(source.base + "master.m3u8");
  }
}

async function refreshAnnounce() {
  try {
    const a = await source.refreshAnnounce();
    ui.showTitle(a?.title ?? null);
    setupTip(document.getElementById("tip-card"), a?.tip);
  } catch (e) {
    console.debug("announce:", e.message);
  }
}

function wireShare() {
  const out = document.getElementById("share-out");
  const flash = (btn, ok) => { const t = btn.textContent; btn.textContent = ok ? "copied ✓" : "select and copy below"; setTimeout(() => { btn.textContent = t; }, 1500); };
  document.getElementById("copy-link").onclick = async (e) => flash(e.target, await copyText(watchLink(streamId, origin), out));
  document.getElementById("copy-bundle").onclick = async (e) => flash(e.target, await copyText(shareBundle(streamId, source.announce, origin), out));
}

start().catch((e) => ui.showBanner(`Cannot start: ${e.message}`));
