// fetch() with a byte limit: reads the body as a stream and stops one byte past `limit`, so a
// hostile server cannot make the page buffer more than a signed size (PROTOCOL.md §3, §13).

export class HttpError extends Error {
  constructor(status, url) {
    super(`HTTP ${status} for ${url}`);
    this.status = status;
  }
}

/**
 * GET `url` and resolve to { bytes, status, firstByteAt, endAt }. At most `limit + 1` bytes
 * are kept: a longer body resolves with exactly limit + 1 bytes so the caller can report
 * `oversize` with the protocol's own check. Rejects with HttpError on a non-2xx status.
 */
export async function fetchLimited(url, { limit, cache = "default", headers, signal } = {}) {
  const res = await fetch(url, { cache, headers, signal, credentials: "omit" });
  const firstByteAt = performance.now();
  if (!res.ok) {
    res.body?.cancel().catch(() => {});
    throw new HttpError(res.status, url);
  }
  const declared = Number(res.headers.get("content-length"));
  const chunks = [];
  let total = 0;
  if (!(declared > limit + 1) && res.body) {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.length;
      if (total > limit) { reader.cancel().catch(() => {}); break; }
    }
  } else {
    // Declared too large: do not read it at all, report one byte over the limit.
    res.body?.cancel().catch(() => {});
    chunks.push(new Uint8Array(limit + 1));
    total = limit + 1;
  }
  const bytes = new Uint8Array(Math.min(total, limit + 1));
  let off = 0;
  for (const c of chunks) {
    const n = Math.min(c.length, bytes.length - off);
    bytes.set(c.subarray(0, n), off);
    off += n;
    if (off === bytes.length) break;
  }
  return { bytes, status: res.status, firstByteAt, endAt: performance.now() };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
