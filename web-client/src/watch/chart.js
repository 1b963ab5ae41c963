// A small live chart of verified bytes per second by source (http, p2p) and bytes uploaded to
// peers (up, dotted), with the number of connected peers as a dashed line on its own scale
// (right). Plain canvas, redrawn once a second.

const COLORS = { http: "#3b82f6", p2p: "#22c55e", up: "#a855f7", peers: "#f59e0b" };

export function drawChart(canvas, series) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * dpr || canvas.height !== h * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 44, r: 18, t: 6, b: 14 };
  const max = Math.max(1024, ...series.map((b) => Math.max(b.http, b.p2p, b.up || 0)));
  const x = (i) => pad.l + (i / Math.max(series.length - 1, 1)) * (w - pad.l - pad.r);
  const y = (v) => h - pad.b - (v / max) * (h - pad.t - pad.b);

  ctx.strokeStyle = "#8884";
  ctx.fillStyle = "#888";
  ctx.font = "10px system-ui, sans-serif";
  ctx.lineWidth = 1;
  for (const f of [0, 0.5, 1]) {
    ctx.beginPath();
    ctx.moveTo(pad.l, y(max * f));
    ctx.lineTo(w - pad.r, y(max * f));
    ctx.stroke();
    ctx.fillText(formatBytes(max * f) + "/s", 2, y(max * f) + 3);
  }
  ctx.fillText(`${series.length} s`, pad.l, h - 2);

  for (const src of ["http", "p2p", "up"]) {
    ctx.strokeStyle = COLORS[src];
    ctx.lineWidth = 1.5;
    ctx.setLineDash(src === "up" ? [1, 2] : []);
    ctx.beginPath();
    series.forEach((b, i) => (i ? ctx.lineTo(x(i), y(b[src] || 0)) : ctx.moveTo(x(i), y(b[src] || 0))));
    ctx.stroke();
  }
  ctx.setLineDash([]);

  const maxPeers = Math.max(4, ...series.map((b) => b.peers || 0));
  const yp = (v) => h - pad.b - (v / maxPeers) * (h - pad.t - pad.b);
  ctx.strokeStyle = COLORS.peers;
  ctx.fillStyle = COLORS.peers;
  ctx.setLineDash([4, 3]);
  ctx.beginPath();
  series.forEach((b, i) => (i ? ctx.lineTo(x(i), yp(b.peers || 0)) : ctx.moveTo(x(i), yp(b.peers || 0))));
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.fillText(String(maxPeers), w - pad.r + 3, yp(maxPeers) + 8);
}

export function formatBytes(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "–";
  if (n < 1024) return `${Math.round(n)} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function formatBitrate(bps) {
  if (!bps) return "–";
  return bps >= 1e6 ? `${(bps / 1e6).toFixed(2)} Mbit/s` : `${Math.round(bps / 1e3)} kbit/s`;
}
