// The hlswarm verifier: everything a page (or a P2P loader) needs to check what it receives
// against a pinned stream id. Plain ES modules; no DOM, so it runs in Node tests too.

export { VerifyError, CODES, codeOf } from "./errors.js";
export { canonicalize, canonicalBytes, parseCanonical } from "./canonical.js";
export { b64urlEncode, b64urlDecodeCanonical, isHashHex, hexToBytes, bytesToHex } from "./encoding.js";
export { blake3Hex, verifySegment } from "./hash.js";
export { verifyStrict, publicKeyFromSeed, setForceFallback } from "./ed25519.js";
export { LIMITS, parseStreamId, verifySigned, validateManifest, validateAnnounce, blobSizes } from "./objects.js";
export { ManifestChain, AnnounceSlot } from "./chain.js";
export { leafHash, nodeHash, verifyInclusion, verifyConsistency, EMPTY_ROOT } from "./merkle.js";
export { renderMaster, renderMedia, formatPdt, peakBandwidth, findRendition } from "./playlist.js";
export { renderMediaLl, lastPosition, inProgress } from "./playlist_ll.js";
export { PART_LIMITS, PartChain, verifyPart } from "./part.js";
export { runVector } from "./vectors.js";
