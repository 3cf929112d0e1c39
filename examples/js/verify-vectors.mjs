// Checks hash.mjs against the test vectors of docs/hashing.md:
//   node verify-vectors.mjs [../../docs/hashing-vectors.json]
import { readFileSync } from "node:fs";
import { canonical, eventHash } from "./hash.mjs";

const file = process.argv[2] || new URL("../../docs/hashing-vectors.json", import.meta.url);
const vectors = JSON.parse(readFileSync(file, "utf8"));
let failed = 0;
let checked = 0;
for (const v of [...vectors.events, ...vectors.purposes]) {
  const ev = JSON.parse(v.payload);
  const { hash, ...rest } = ev; // eslint-disable-line no-unused-vars
  const got = eventHash(ev);
  if (canonical(rest) !== v.canonical_without_hash || got !== v.hash || (v.stored && got !== ev.hash)) {
    console.log(`FAIL ${v.name}: hash ${got}, want ${v.hash}`);
    failed++;
  }
  checked++;
}
console.log(`${checked} vectors checked, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
