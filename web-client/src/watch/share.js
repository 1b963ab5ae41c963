// Share: a watch link and a share bundle. The bundle is what another node or page needs to find
// and verify the stream: the stream id (the trust anchor) plus untrusted hints, to which we add
// the origin this page fetched the stream from (PROTOCOL.md §7.4: hints are only hints).

const EMPTY_HINTS = { http: [], libp2p: [], trackers: [], moq: [] };

export function watchLink(streamId, origin) {
  const here = new URL(location.href);
  const link = new URL(`/watch/${streamId}`, here.origin);
  if (origin !== here.origin + "/" && origin !== here.origin) link.searchParams.set("origin", origin);
  return link.href;
}

export function shareBundle(streamId, announce, origin) {
  const hints = structuredClone(announce?.hints || EMPTY_HINTS);
  const norm = (u) => u.replace(/\/+$/, "");
  if (!hints.http.some((u) => norm(u) === norm(origin))) hints.http.push(origin.endsWith("/") ? origin : origin + "/");
  return JSON.stringify({ stream: streamId, hints });
}

/** Copy text; fall back to selecting it in `output` where the async clipboard is unavailable. */
export async function copyText(text, output) {
  output.value = text;
  output.hidden = false;
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    output.select();
    try { return document.execCommand("copy"); } catch { return false; }
  }
}
