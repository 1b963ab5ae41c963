// Deterministic playlists (PROTOCOL.md §10), byte-identical to playlist.rs. The page renders
// these itself from a verified manifest; it never uses playlist bytes from the network.

/**
 * BANDWIDTH of a manifest without `bandwidth` (protocol 1.0 signers): the highest single-segment
 * bit rate in the window, exact (BigInt floor), 0 for an empty window. As playlist.rs.
 */
export function peakBandwidth(r) {
  let peak = 0n;
  for (const s of r.segments) {
    const dur = BigInt(Math.max(s.dur_us, 1));
    const bw = (BigInt(s.size) * 8n * 1000000n) / dur;
    if (bw > peak) peak = bw;
  }
  return peak;
}

const pad = (n, w) => String(n).padStart(w, "0");

/** `<int>.<frac>` with a fixed number of fraction digits, from an integer and a divisor. */
function fixed(n, div, digits) {
  return `${Math.floor(n / div)}.${pad(n % div, digits)}`;
}

/** BANDWIDTH of one rendition on its own: `bandwidth`, else the window peak; at least 1 (BigInt). */
function bandwidthOf(r) {
  const bw = r.bandwidth !== undefined ? BigInt(r.bandwidth) : peakBandwidth(r);
  return bw < 1n ? 1n : bw;
}

/** GROUP-ID of the alternative audio renditions (revision 1.4). */
export const AUDIO_GROUP = "audio";

/** One EXT-X-STREAM-INF and its URI line; `audio` is the group it plays with, or undefined. */
function streamInf(r, audio) {
  let out = `#EXT-X-STREAM-INF:BANDWIDTH=${bandwidthOf(r) + (audio ? audio.bandwidth : 0n)}`;
  if (r.average_bandwidth !== undefined) {
    out += `,AVERAGE-BANDWIDTH=${BigInt(r.average_bandwidth) + (audio ? audio.averageBandwidth : 0n)}`;
  }
  if (r.codecs !== undefined) out += `,CODECS="${[r.codecs, ...(audio ? audio.codecs : [])].join(",")}"`;
  if (r.resolution !== undefined) out += `,RESOLUTION=${r.resolution}`;
  if (r.frame_rate_milli !== undefined) out += `,FRAME-RATE=${fixed(r.frame_rate_milli, 1000, 3)}`;
  if (audio) out += `,AUDIO="${AUDIO_GROUP}"`;
  return `${out}\n${r.name}.m3u8\n`;
}

/**
 * §10.1 master playlist. Without both audio renditions (`kind: "audio"`, revision 1.4) and
 * other renditions, every rendition is an EXT-X-STREAM-INF, kind ignored. With both, the audio
 * renditions are the EXT-X-MEDIA group "audio" and every other rendition a variant of it, its
 * BANDWIDTH, AVERAGE-BANDWIDTH and CODECS counting the audio in. As playlist.rs.
 */
export function renderMaster(m) {
  let out = "#EXTM3U\n#EXT-X-VERSION:6\n";
  // Only while every window segment begins with a keyframe (protocol 1.3 `independent`).
  if (m.renditions.every((r) => r.segments.every((s) => s.independent !== false))) out += "#EXT-X-INDEPENDENT-SEGMENTS\n";
  const audio = m.renditions.filter((r) => r.kind === "audio");
  const video = m.renditions.filter((r) => r.kind !== "audio");
  if (audio.length === 0 || video.length === 0) {
    for (const r of m.renditions) out += streamInf(r, undefined);
    return out;
  }
  audio.forEach((a, i) => {
    out += `#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="${AUDIO_GROUP}",NAME="${a.name}",DEFAULT=${i === 0 ? "YES" : "NO"},AUTOSELECT=YES`;
    if (a.channels !== undefined) out += `,CHANNELS="${a.channels}"`;
    out += `,URI="${a.name}.m3u8"\n`;
  });
  const max = (xs) => xs.reduce((acc, x) => (x > acc ? x : acc), 0n);
  const group = {
    bandwidth: max(audio.map(bandwidthOf)),
    averageBandwidth: max(audio.filter((a) => a.average_bandwidth !== undefined).map((a) => BigInt(a.average_bandwidth))),
    codecs: [...new Set(audio.filter((a) => a.codecs !== undefined).map((a) => a.codecs))],
  };
  for (const v of video) out += streamInf(v, group);
  return out;
}

/** §10.2 media playlist of one rendition. */
export function renderMedia(r) {
  let out = "#EXTM3U\n";
  out += `#EXT-X-VERSION:${r.container === "fmp4" ? 6 : 3}\n`;
  out += `#EXT-X-TARGETDURATION:${r.target_duration}\n`;
  out += `#EXT-X-MEDIA-SEQUENCE:${r.segments.length ? r.segments[0].seq : 0}\n`;
  out += `#EXT-X-DISCONTINUITY-SEQUENCE:${r.disc_seq}\n`;
  const state = { init: undefined };
  for (const s of r.segments) out += segmentTags(s, state) + extinf(s, r.container);
  if (r.ended) out += "#EXT-X-ENDLIST\n";
  return out;
}

/**
 * The tags before a segment's EXTINF: a discontinuity, its init when it differs from the last
 * EXT-X-MAP written (`state.init`, updated), its program date-time. Shared with playlist_ll.js.
 */
export function segmentTags(s, state) {
  let out = s.disc ? "#EXT-X-DISCONTINUITY\n" : "";
  if (s.init !== undefined && s.init !== state.init) {
    out += `#EXT-X-MAP:URI="seg/${s.init}.mp4"\n`;
    state.init = s.init;
  }
  if (s.pdt_ms !== undefined) out += `#EXT-X-PROGRAM-DATE-TIME:${formatPdt(s.pdt_ms)}\n`;
  return out;
}

/** A segment's EXTINF line and URI. */
export function extinf(s, container) {
  return `#EXTINF:${fixed(s.dur_us, 1000000, 6)},\nseg/${s.hash}.${container === "fmp4" ? "m4s" : "ts"}\n`;
}

/**
 * Unix ms as `YYYY-MM-DDTHH:MM:SS.mmmZ`, proleptic Gregorian UTC. Not Date#toISOString: that
 * throws above year 275760 and writes `+0YYYYY` above 9999, while the reference writes the
 * plain year (`{y:04}`). H. Hinnant's civil_from_days, as in playlist.rs.
 */
export function formatPdt(ms) {
  const secs = Math.floor(ms / 1000);
  const days = Math.floor(secs / 86400);
  const rem = secs % 86400;
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const mo = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (mo <= 2 ? 1 : 0);
  return `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${pad(Math.floor(rem / 3600), 2)}:` +
    `${pad(Math.floor(rem / 60) % 60, 2)}:${pad(rem % 60, 2)}.${pad(ms % 1000, 3)}Z`;
}

/** The rendition named `name` in a manifest body, or undefined. */
export function findRendition(m, name) {
  return m.renditions.find((r) => r.name === name);
}
