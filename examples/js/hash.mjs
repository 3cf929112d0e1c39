// Recompute an event's or purpose record's hash (docs/hashing.md): SHA-256
// of the RFC 8785 (JCS) encoding of the object without its top-level
// "hash". JCS is JavaScript's own serialization of strings and numbers,
// with object members sorted by UTF-16 code units (Array.prototype.sort's
// default order), so a few lines do it. Parse the stored bytes with
// JSON.parse: the ledger writes no number JSON.parse would change.

import { createHash } from "node:crypto";

// canonical returns the JCS encoding of a parsed JSON value.
export function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v !== null && typeof v === "object") {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

// eventHash returns the hash an event or purpose record must carry.
export function eventHash(ev) {
  const { hash, ...rest } = ev; // eslint-disable-line no-unused-vars
  return createHash("sha256").update(canonical(rest), "utf8").digest("hex");
}
