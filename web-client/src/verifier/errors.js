// Error codes of PROTOCOL.md §12. A VerifyError always carries one of these codes, so callers
// (UI, stats, test vectors) switch on `err.code` and never parse messages.

export const CODES = Object.freeze([
  "bad_signature", "wrong_key", "replay", "chain_break", "equivocation", "hash_mismatch",
  "oversize", "unknown_version", "wrong_type", "non_canonical", "malformed", "expired",
  "invalid_proof",
]);

export class VerifyError extends Error {
  constructor(code, message) {
    super(message ? `${code}: ${message}` : code);
    if (!CODES.includes(code)) throw new Error(`internal: unknown error code ${code}`);
    this.name = "VerifyError";
    this.code = code;
  }
}

/** Throw a VerifyError. Used as `fail("malformed", "why")`. */
export function fail(code, message) {
  throw new VerifyError(code, message);
}

/** The §12 code of any thrown value: VerifyErrors keep theirs, anything else is `malformed`. */
export function codeOf(err) {
  return err instanceof VerifyError ? err.code : "malformed";
}
