// Consent Ledger from JavaScript: check a consent, grant it with
// expected_seq, revoke it, and follow a durable feed that acts on the
// revocation. See README.md here and docs/clients.md.
//
// Environment:
//   NATS_URL            consentd's address (default nats://127.0.0.1:4222)
//   CONSENT_CREDS       .creds of a writer (check, status, request, grant, revoke)
//   CONSENT_FEED_CREDS  .creds of a subscriber (the feed); default CONSENT_CREDS
//   CONSENT_USER, CONSENT_FEED_USER  user names for the inbox prefix _INBOX_<name>;
//                       default: the name in each .creds file
//   CONSENT_TENANT      the tenant, only for credentials of every tenant (admin.creds)
//   CONSENT_SUBJECT     the person (default: a new one each run)
//   CONSENT_PURPOSE     default marketing_email
//   CONSENT_DURABLE     the feed's durable name (default mailer-example)
//   CONSENT_FEED_TIMEOUT_MS  how long to wait for the revocation on the feed (default 30000)

import { randomUUID } from "node:crypto";
import { ConsentClient, ConsentError, connectConsent, stateAfter } from "./consent.mjs";
import { eventHash } from "./hash.mjs";

const env = process.env;
const servers = env.NATS_URL || "nats://127.0.0.1:4222";
if (!env.CONSENT_CREDS) {
  console.error("example: set CONSENT_CREDS to a .creds file (consentctl user add NAME --role writer --out FILE)");
  process.exit(2);
}
const subject = env.CONSENT_SUBJECT || `js-${randomUUID()}@example.com`;
const purpose = env.CONSENT_PURPOSE || "marketing_email";
const durable = env.CONSENT_DURABLE || "mailer-example";
const tenant = env.CONSENT_TENANT || undefined;

const nc = await connectConsent({ servers, credsFile: env.CONSENT_CREDS, user: env.CONSENT_USER });
const fc = env.CONSENT_FEED_CREDS
  ? await connectConsent({ servers, credsFile: env.CONSENT_FEED_CREDS, user: env.CONSENT_FEED_USER })
  : nc;
const app = new ConsentClient(nc, { tenant });
const mailer = new ConsentClient(fc, { tenant });

// The feed first, so that it sees the changes below: a durable consumer
// starting with the next change (a durable that exists resumes after its
// last acknowledged change instead).
const { feed, consumer } = await mailer.openFeed({ purposes: [purpose], durable, deliver: "new" });
console.log(`feed: consumer ${feed.consumer} via ${feed.api_prefix}, filters ${feed.filters.join(" ")}`);

// 1. A check of a consent nobody asked for: 403 consent required, with the status.
const q = { subject, purpose };
let c = await app.check(q);
console.log(`check: allowed=${c.allowed} state=${c.status.state} (${c.reason})`);

// Another 403: forbidden, the credentials do not allow the request (here:
// another tenant than the credentials'). No body; not a consent answer.
if (!tenant) {
  try {
    await app.status({ ...q, tenant: "globex" });
  } catch (err) {
    if (!(err instanceof ConsentError) || err.code !== 403 || err.consentRequired) throw err;
    console.log(`status in tenant globex: ${err.description} (${err.code})`);
  }
}

// 2. Ask, then grant with expected_seq: the grant lands only if the
// consent's last event is still the one we read. A grant decided on a stale
// read (here: the seq read before the request) gets 409; read again, decide
// again.
const before = await app.status(q);
const requested = await app.request({
  ...q,
  description: "Offers by email, about once a month",
  actor: "signup-form",
  idempotency_key: randomUUID(),
});
console.log(`requested at seq ${requested.seq}`);

async function grantExpecting(expectedSeq) {
  return app.grant({ ...q, actor: "subject", method: "dialog", ttl: "8760h", expected_seq: expectedSeq, idempotency_key: randomUUID() });
}
let granted;
try {
  granted = await grantExpecting(before.seq);
} catch (err) {
  if (!(err instanceof ConsentError) || err.code !== 409) throw err;
  console.log(`grant with expected_seq ${before.seq}: conflict (${err.code}): ${err.description}`);
  const now = await app.status(q);
  granted = await grantExpecting(now.seq);
  console.log(`granted at seq ${granted.seq} with expected_seq ${now.seq}`);
}

// Read your write: min_seq makes the check wait for the index to have it.
c = await app.check({ ...q, min_seq: granted.seq });
console.log(`check: allowed=${c.allowed} state=${c.status.state} seq=${c.status.seq}`);

// 3. The person unsubscribes.
const revoked = await app.revoke({ ...q, reason: "unsubscribed from the footer link", idempotency_key: randomUUID() });
console.log(`revoked at seq ${revoked.seq}`);

// 4. The mailer's durable feed: act on each change, acknowledge it, stop
// after the revocation above.
const deadline = Date.now() + Number(env.CONSENT_FEED_TIMEOUT_MS || 30000);
let done = false;
let verified = 0;
while (!done) {
  if (Date.now() > deadline) throw new Error(`feed: the revocation at seq ${revoked.seq} did not arrive in time`);
  const batch = [];
  const msgs = await consumer.fetch({ max_messages: 64, expires: 5000 });
  for await (const m of msgs) batch.push(m);

  // Only consent.events.<tenant>.<purpose>.<key> carry consent events; the
  // feed also delivers the purpose registry (consent.purposes.…).
  const changes = [];
  for (const m of batch) {
    // Every event and purpose record carries its hash (docs/hashing.md):
    // one that does not verify was not written by the ledger.
    const body = m.json();
    if (eventHash(body) !== body.hash) throw new Error(`feed: seq ${m.seq}: the hash does not verify`);
    verified++;
    if (m.subject.startsWith("consent.events.")) changes.push({ m, ev: body });
    else if (m.subject.startsWith("consent.purposes.")) console.log(`feed: purpose record at seq ${m.seq}: policy version ${body.policy_version}`);
  }

  // Sealed events (schema v2) carry no person's id: ask feed.personal for
  // all of the batch at once (at most 256 seqs a request).
  const sealed = changes.filter((x) => x.ev.sealed).map((x) => x.m.seq);
  const personal = sealed.length > 0 ? await mailer.personal(sealed) : new Map();

  for (const m of batch) {
    const change = changes.find((x) => x.m === m);
    if (change) await act(m.seq, change.ev, personal.get(m.seq));
    await m.ackAck(); // confirmed: once it returns, this change is not delivered again
    if (m.seq === revoked.seq) done = true;
  }
}

// act decides from the event alone when it can: any state but granted is
// never allowed. Whether a grant allows mailing also depends on its expiry
// and on the purpose's policy version now: the service's status with
// min_seq (the change's seq) says, so no client re-implements that rule.
async function act(seq, ev, opened) {
  if (ev.type === "consent.erased" || opened?.erased) {
    // No id: match what you keep by tenant, purpose and subject_key.
    console.log(`feed: seq ${seq} ${ev.type}: forget subject_key ${ev.subject_key} of tenant ${ev.tenant}`);
    return;
  }
  // A sealed event's id comes from feed.personal; a v1 event carries it.
  const id = ev.sealed ? opened.subject : ev.subject;
  const from = ev.sealed ? " (id from feed.personal)" : "";
  const state = stateAfter(ev);
  if (state === undefined) throw new Error(`feed: seq ${seq}: unknown event type ${ev.type}: upgrade this client`);
  if (state === "revoked" || state === "denied" || state === "expired") {
    console.log(`feed: seq ${seq} ${ev.type}: stop mailing ${id}${from}`);
  } else if (state === "granted") {
    const now = await mailer.status({ subject: id, purpose: ev.purpose, min_seq: seq });
    const verdict = now.allowed ? "may mail" : `not mailing (now ${now.state}${now.outdated ? ", outdated" : ""})`;
    console.log(`feed: seq ${seq} ${ev.type}: ${verdict} ${id}${from}`);
  } else {
    console.log(`feed: seq ${seq} ${ev.type}: ${id}${from} is ${state}, not allowed`);
  }
}

console.log(`feed: ${verified} hashes verified`);
await fc.drain();
if (fc !== nc) await nc.drain();
console.log("done");
