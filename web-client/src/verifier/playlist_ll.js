// LL-HLS media playlists (PROTOCOL.md §10.4), byte-identical to manifest-signer's
// playlist_ll.rs: the classic media playlist of a signed rendition plus its signed parts. The
// page renders these itself from the verified manifest and verified PART statements; it never
// hands a player playlist bytes from the network.
//
// Inputs, as in playlist_ll.rs:
//   LivePart        { seq, part, dur_us, hash, independent, chained }  (from a verified PART
//                   statement; chained: it names a `prev`, so part 0 continues the publish)
//   RenditionReport { name, last_msn, last_part? }             (another rendition's position)
//   LowLatency      { part_target_us, parts, reports, skip }
//     parts: this rendition's parts in (seq, part) order, those of window segments and of the
//     segment in progress; skip: a delta update (`_HLS_skip=YES`).

import { extinf, segmentTags } from "./playlist.js";

/** Microseconds as seconds with `digits` (3 or 6) fraction digits, rounded up (div_ceil). */
function secs(us, digits) {
  const div = 10 ** (6 - digits);
  const v = Math.floor((us + div - 1) / div);
  const unit = 10 ** digits;
  return `${Math.floor(v / unit)}.${String(v % unit).padStart(digits, "0")}`;
}

/** The parts of segment `seq` when they are all there (indices 0, 1, … with no gap), else null. */
function partsOf(parts, seq) {
  const start = parts.findIndex((p) => p.seq === seq);
  if (start < 0) return null;
  let end = start;
  while (end < parts.length && parts[end].seq === seq) end++;
  const run = parts.slice(start, end);
  return run.every((p, i) => p.part === i) ? run : null;
}

function partLines(parts) {
  let out = "";
  for (const p of parts) {
    out += `#EXT-X-PART:DURATION=${secs(p.dur_us, 6)},URI="seg/${p.hash}.m4s"`;
    if (p.independent) out += ",INDEPENDENT=YES";
    out += "\n";
  }
  return out;
}

/**
 * The parts of the segment in progress that the playlist lists: those of the segment numbered
 * after the window's last, from part 0 with no gap, when part 0 is chained (the segment continues
 * the window: same init, no discontinuity). Empty otherwise, and for an empty window: such parts
 * wait for the manifest, which is all that signed state can tell.
 */
export function inProgress(r, parts) {
  if (!r.segments.length) return [];
  const run = partsOf(parts, r.segments[r.segments.length - 1].seq + 1);
  return run && run[0].chained ? run : [];
}

/**
 * Where a rendition stands in its playlist: [media sequence number of its last (possibly
 * partial) segment, index of the last part listed of it or null], or null for an empty window.
 */
export function lastPosition(r, parts) {
  if (!r.segments.length) return null;
  const run = inProgress(r, parts);
  if (run.length) return [run[run.length - 1].seq, run[run.length - 1].part];
  const last = r.segments[r.segments.length - 1].seq;
  const done = partsOf(parts, last);
  return [last, done ? done[done.length - 1].part : null];
}

/** The LL-HLS media playlist of an fMP4 rendition `r` (a verified manifest's) with `ll`. */
export function renderMediaLl(r, ll) {
  const td = r.target_duration;
  const skipUntilUs = 6 * td * 1000000;
  const total = r.segments.reduce((sum, s) => sum + s.dur_us, 0);
  // A delta update leaves out the segments that start more than CAN-SKIP-UNTIL before the end.
  let skipped = 0;
  if (ll.skip) {
    let start = 0;
    for (const s of r.segments) {
      if (total - start <= skipUntilUs) break;
      start += s.dur_us;
      skipped++;
    }
  }
  let out = `#EXTM3U\n#EXT-X-VERSION:${skipped > 0 ? 9 : 6}\n#EXT-X-TARGETDURATION:${td}\n`;
  out += `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=${6 * td}.0,PART-HOLD-BACK=${secs(3 * ll.part_target_us, 3)}\n`;
  out += `#EXT-X-PART-INF:PART-TARGET=${secs(ll.part_target_us, 3)}\n`;
  out += `#EXT-X-MEDIA-SEQUENCE:${r.segments.length ? r.segments[0].seq : 0}\n#EXT-X-DISCONTINUITY-SEQUENCE:${r.disc_seq}\n`;
  if (skipped > 0) out += `#EXT-X-SKIP:SKIPPED-SEGMENTS=${skipped}\n`;
  // Parts are listed for the segments that end within the last three target durations.
  const partsFromUs = Math.max(total - 3 * td * 1000000, 0);
  const state = { init: undefined };
  let atUs = r.segments.slice(0, skipped).reduce((sum, s) => sum + s.dur_us, 0);
  for (const s of r.segments.slice(skipped)) {
    out += segmentTags(s, state);
    atUs += s.dur_us;
    if (atUs > partsFromUs) {
      const run = partsOf(ll.parts, s.seq);
      if (run) out += partLines(run);
    }
    out += extinf(s, r.container);
  }
  if (r.ended) return out + "#EXT-X-ENDLIST\n";
  // The segment in progress: its parts so far, then a hint of the next one. They are listed
  // only when the segment continues the window (numbered next, its part 0 chained), so it plays
  // with the window's init and no discontinuity: all that signed state can tell. Otherwise they
  // wait for the manifest. An empty window has neither, nor an init to play them with.
  if (r.segments.length) {
    const run = inProgress(r, ll.parts);
    out += partLines(run);
    out += `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part/${r.name}/${r.segments[r.segments.length - 1].seq + 1}.${run.length}.m4s"\n`;
  }
  for (const rep of ll.reports) {
    out += `#EXT-X-RENDITION-REPORT:URI="${rep.name}.m3u8",LAST-MSN=${rep.last_msn}`;
    if (rep.last_part !== undefined && rep.last_part !== null) out += `,LAST-PART=${rep.last_part}`;
    out += "\n";
  }
  return out;
}
