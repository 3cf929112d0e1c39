// A small client of the Consent Ledger service for Node, on the official
// nats.js client (@nats-io/transport-node, @nats-io/jetstream). It is the
// code docs/clients.md walks through; example.mjs uses it.

import { connect, credsAuthenticator, errors } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { readFileSync } from "node:fs";

// ConsentError is a reply of the service that carries the micro error
// headers: Nats-Service-Error-Code (code, a number: 400, 403, 409, 413,
// 500, 503) and Nats-Service-Error (description). status is the body of a
// 403 "consent required" (the status that says why), else undefined.
export class ConsentError extends Error {
  constructor(endpoint, code, description, status) {
    super(`consent.v1.${endpoint}: ${description} (${code})`);
    this.name = "ConsentError";
    this.endpoint = endpoint;
    this.code = code;
    this.description = description;
    this.status = status;
  }

  // consentRequired: a check that is not allowed (the status says why).
  // Any other 403 starts "forbidden:": the credentials do not allow it.
  get consentRequired() {
    return this.code === 403 && this.status !== undefined;
  }
}

// userName returns the name in a .creds file's user JWT: the inbox prefix
// of the user's replies is _INBOX_<name>.
export function userName(creds) {
  const jwt = creds.toString().match(/-----BEGIN NATS USER JWT-----\s*(\S+)\s*------END NATS USER JWT------/);
  if (!jwt) throw new Error("credentials: no NATS user JWT in the file");
  const claims = JSON.parse(Buffer.from(jwt[1].split(".")[1], "base64url").toString());
  return claims.name;
}

// connectConsent connects with a .creds file and the inbox prefix its
// permissions require (_INBOX_<user>: a user may subscribe to nothing
// else, so a client without it gets no replies and times out).
export async function connectConsent({ servers, credsFile, user }) {
  const creds = readFileSync(credsFile);
  user ??= userName(creds);
  return connect({
    servers,
    authenticator: credsAuthenticator(creds),
    inboxPrefix: `_INBOX_${user}`,
    name: `consent-js-${user}`,
  });
}

export class ConsentClient {
  // nc: a connection from connectConsent. tenant: only for a user of
  // every tenant (a tenant's user is in its tenant whatever it sends).
  constructor(nc, { tenant, timeout = 5000 } = {}) {
    this.nc = nc;
    this.tenant = tenant;
    this.timeout = timeout;
  }

  // call sends one request and returns the decoded reply. A micro error
  // reply throws ConsentError; so do no responders (503: no consentd is
  // running) and a timeout (503). A permission violation (the role may not
  // use the endpoint) is nats.js's own error.
  // The client's tenant goes into every body but feed.personal's, which
  // takes none (a sequence names its tenant).
  async call(endpoint, body) {
    if (this.tenant !== undefined && body.tenant === undefined && endpoint !== "feed.personal") {
      body = { tenant: this.tenant, ...body };
    }
    let msg;
    try {
      msg = await this.nc.request(`consent.v1.${endpoint}`, JSON.stringify(body), { timeout: this.timeout });
    } catch (err) {
      if (err instanceof errors.RequestError && err.isNoResponders()) {
        throw new ConsentError(endpoint, 503, "no consent service is answering", undefined);
      }
      if (err instanceof errors.TimeoutError) {
        throw new ConsentError(endpoint, 503, "timed out waiting for the consent service", undefined);
      }
      throw err;
    }
    const code = msg.headers?.get("Nats-Service-Error-Code");
    if (code) {
      const description = msg.headers.get("Nats-Service-Error");
      const status = msg.data.length > 0 ? msg.json() : undefined;
      throw new ConsentError(endpoint, Number(code), description, status);
    }
    return msg.json();
  }

  status(q) {
    return this.call("status", q);
  }

  // check answers { allowed: true, status } or, for a 403 consent
  // required, { allowed: false, reason, status }; every other error throws.
  async check(q) {
    try {
      return { allowed: true, status: await this.call("check", q) };
    } catch (err) {
      if (err instanceof ConsentError && err.consentRequired) {
        return { allowed: false, reason: err.description, status: err.status };
      }
      throw err;
    }
  }

  request(cmd) {
    return this.call("request", cmd);
  }

  grant(cmd) {
    return this.call("grant", cmd);
  }

  deny(cmd) {
    return this.call("deny", cmd);
  }

  revoke(cmd) {
    return this.call("revoke", cmd);
  }

  // personal opens sealed events: seqs (1 to 256 stream sequences) to a
  // Map seq -> { seq, subject, actor?, evidence?, reason? } or
  // { seq, erased: true }. Subscriber, auditor or admin of the tenant.
  async personal(seqs) {
    const reply = await this.call("feed.personal", { seqs });
    return new Map(reply.personal.map((p) => [p.seq, p]));
  }

  // openFeed asks the service for a consumer of the tenant's changes
  // (subscriber or admin) and returns it with nats.js's consumer API
  // under the reply's api_prefix. Never call stream APIs through it.
  async openFeed(req) {
    const feed = await this.call("feed.open", req);
    const js = jetstream(this.nc, { apiPrefix: feed.api_prefix });
    const consumer = await js.consumers.get(feed.stream, feed.consumer);
    return { feed, consumer };
  }
}

// The state a consent event leads to. The state after an event does not
// depend on the events before it, so a feed that starts anywhere can fold
// each change on its own.
const stateOf = {
  "consent.requested": "requested",
  "consent.granted": "granted",
  "consent.denied": "denied",
  "consent.revoked": "revoked",
  "consent.expired": "expired",
  "consent.erased": "erased",
};

// stateAfter returns the state ev leads to at time now (ms): a grant whose
// expires_at has passed is expired; a quarantine names the state it
// resumes. undefined for a type this code does not know (stop and
// upgrade rather than guess).
export function stateAfter(ev, now = Date.now()) {
  const state = ev.type === "consent.quarantined" ? ev.state : stateOf[ev.type];
  if (state === "granted" && ev.expires_at && parseTime(ev.expires_at) <= now) return "expired";
  return state;
}

// allowedAfter: a granted, unexpired consent whose policy version is at
// least the purpose's current one (0 when the purpose is not registered).
export function allowedAfter(ev, currentPolicyVersion, now = Date.now()) {
  return stateAfter(ev, now) === "granted" && ev.policy_version >= currentPolicyVersion;
}

// parseTime reads an RFC 3339 time with 0 to 9 fractional digits (the
// ledger writes up to 9) into milliseconds since the epoch, keeping the
// first 3 digits, so it does not depend on how far a Date parser goes.
export function parseTime(s) {
  const ms = Date.parse(s.replace(/\.(\d+)/, (_, f) => "." + (f + "00").slice(0, 3)));
  if (Number.isNaN(ms)) throw new Error(`not an RFC 3339 time: ${s}`);
  return ms;
}
