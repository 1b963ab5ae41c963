// The node dashboard at `/`: polls /api/streams every 2 s and shows the node's streams, viewers,
// peers and traffic. Titles come from signed announces but are still untrusted text, so every
// value goes in with textContent.

import { formatBitrate, formatBytes } from "../watch/chart.js";

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props);
  e.append(...children.filter((c) => c !== null && c !== undefined));
  return e;
}

function duration(s) {
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function renderNode(node) {
  $("version").textContent = `v${node.version}`;
  $("viewers").textContent = node.viewers;
  $("peers").textContent = node.peers;
  $("uptime").textContent = duration(node.uptime_s);
  const b = node.bytes_out || {};
  const kinds = [["http", "http"], ["p2p", "p2p"], ["moq_published", "into MoQ"]];
  $("bytes-out").replaceChildren(...kinds.map(([k, label]) => el("div", {}, `${label}: `, el("b", { textContent: formatBytes(b[k] || 0) }))));
  $("rtmp-url").textContent = node.rtmp_url || "RTMP ingest is off on this node";
  $("key-hint").textContent = node.stream_key_hint || "–";
  // What the ingest found wrong with the current publish (MP3 audio, a long keyframe interval…).
  const advice = node.publisher_advice || [];
  $("advice").hidden = advice.length === 0;
  $("advice").replaceChildren(...advice.map((a) => el("li", { textContent: a })));
}

function renderStream(s) {
  const master = new URL(s.master, location.href).href;
  const title = el("div", { className: "title", textContent: s.title || "Untitled stream" });
  const id = el("code", { textContent: s.id, title: "stream id (the broadcaster's public key)" });
  const fp = el("div", { className: "muted", textContent: `fingerprint ${s.id.slice(0, 4)}-${s.id.slice(4, 8)} · seq ${s.seq}` });
  const age = Number.isFinite(s.updated_ms) ? (Date.now() - s.updated_ms) / 1000 : null;
  const state = el("span", { className: `pill ${s.ended ? "ended" : "live"}`, textContent: s.ended ? "ended" : "live" });
  const updated = age === null ? null : el("div", { className: "muted", textContent: `updated ${duration(Math.max(age, 0))} ago` });
  const renditions = el("ul", { className: "renditions" }, ...s.renditions.map((r) => el("li", {
    textContent: [r.name, r.resolution, formatBitrate(r.bandwidth), r.container, `${r.segments} seg`].filter(Boolean).join(" · "),
    title: r.codecs || "",
  })));
  const links = el("div", {},
    el("a", { href: s.watch, textContent: "Watch" }), " · ",
    el("a", { href: master, textContent: "master.m3u8" }),
    el("div", {}, el("code", { textContent: master })));
  return el("tr", {},
    el("td", {}, title, id, fp), el("td", {}, state, updated), el("td", { textContent: s.viewers ?? "–" }),
    el("td", { textContent: formatBytes(s.bytes_out) }), el("td", {}, renditions), el("td", {}, links));
}

async function refresh() {
  try {
    const res = await fetch("/api/streams", { cache: "no-store" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const data = await res.json();
    renderNode(data.node);
    const rows = data.streams.map(renderStream);
    $("streams").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colSpan: 6, textContent: "No streams yet. Point OBS at the server above." }))]));
    $("banner").hidden = true;
  } catch (e) {
    $("banner").hidden = false;
    $("banner").textContent = `Cannot reach the node API: ${e.message}`;
  }
}

window.hlswarmDashboard = { refresh };
refresh();
setInterval(refresh, 2000);
