// DOM updates for the watch page. Everything that comes from the network (title, errors) is set
// with textContent: the title is signed by the broadcaster but still untrusted text (§7.1).

import { drawChart, formatBitrate, formatBytes } from "./chart.js";

const $ = (id) => document.getElementById(id);
const set = (id, text) => { const el = $(id); if (el && el.textContent !== String(text)) el.textContent = String(text); };

export function showIdentity(streamId) {
  set("stream-id", streamId);
  set("fingerprint", `${streamId.slice(0, 4)}-${streamId.slice(4, 8)}`);
}

export function showTitle(title) {
  set("title", title || "Untitled stream");
  document.title = `${title || "Untitled stream"} — hlswarm`;
}

/** A visible banner for problems the viewer should know about (refused data, no stream). */
export function showBanner(text, kind = "error") {
  const el = $("banner");
  el.hidden = !text;
  el.className = `banner ${kind}`;
  el.textContent = text || "";
}

export function render(s, stats) {
  set("v-segments", s.verifiedSegments);
  set("v-init", s.verifiedInit);
  set("v-playlists", s.verifiedPlaylists);
  set("v-seg-fail", s.segmentFailures);
  set("v-parts", s.verifiedParts);
  set("v-part-fail", s.partFailures);
  set("mode", s.modeLabel || "–");
  set("v-man-fail", s.manifestFailures);
  set("v-seq", s.manifestSeq ?? "–");
  set("last-error", s.lastError || "none");
  set("latency", s.ended ? "stream ended" : s.latency == null ? "–" : `${s.latency.toFixed(1)} s`);
  set("latency-wall", s.ended ? "–" : s.latencyWall == null ? "–" : `${s.latencyWall.toFixed(1)} s`);
  set("rendition", s.rendition || "–");
  set("bitrate", formatBitrate(s.bitrate));
  set("bytes-http", formatBytes(s.bytesHttp));
  set("bytes-p2p", formatBytes(s.bytesP2p));
  set("peers", s.peers);
  set("bytes-up", formatBytes(s.bytesUploaded));
  set("p2p-role", s.p2pRole ?? "–");
  set("p2p-rejected", s.p2pRejected);

  const failures = s.segmentFailures + s.manifestFailures + s.partFailures;
  const verified = s.verifiedSegments + s.verifiedParts;
  const badge = $("badge");
  const state = s.fatalError ? "bad" : failures ? "warn" : verified ? "ok" : "wait";
  const what = [s.verifiedSegments || !s.verifiedParts ? `${s.verifiedSegments} segments` : "", s.verifiedParts ? `${s.verifiedParts} parts` : ""]
    .filter(Boolean).join(", ");
  badge.className = `badge ${state}`;
  badge.textContent = {
    ok: `verified ✓ ${what}`,
    warn: `verified ✓ ${what}, refused ✗ ${failures}`,
    bad: `player error: ${s.fatalError}`,
    wait: "waiting for verified data…",
  }[state];

  const list = $("errors");
  if (list.childElementCount !== stats.errors.length || list.dataset.last !== String(stats.errors.at(-1)?.t)) {
    list.replaceChildren(...stats.errors.slice(-6).reverse().map((e) => {
      const li = document.createElement("li");
      li.textContent = `${new Date(e.t).toLocaleTimeString()} ${e.message}`;
      return li;
    }));
    list.dataset.last = String(stats.errors.at(-1)?.t);
  }
}

export function renderChart(stats) {
  const canvas = $("chart");
  if (canvas && canvas.clientWidth) drawChart(canvas, stats.series());
}
