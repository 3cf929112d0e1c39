#!/usr/bin/env python3
"""Recompute and check Consent Ledger event hashes, independently of the Go code.

Usage:
    python3 verify_hash.py EVENT.json [EVENT.json ...]   # files, one event each
    python3 verify_hash.py - < history.jsonl             # one event per line
    python3 verify_hash.py --selftest                    # RFC 8785 examples
    python3 verify_hash.py --vectors hashing-vectors.json  # the test vectors

Events given together are taken as one consent's history, oldest first: each
event's prev_hash must equal the hash of the one before ("" for the first, and
"" after a consent.erased, which ends the chain). Schema version 2 events (personal
fields sealed) verify the same way: the hash is over what is stored, no key needed.

The hash of an event is the lowercase hex SHA-256 of the RFC 8785 (JCS)
canonical JSON of the event without its top-level "hash" member. See
hashing.md next to this file. Standard library only; Python 3.8 or newer.
"""

import hashlib
import json
import math
import struct
import sys
from decimal import Decimal


def _reject_duplicates(pairs):
    obj = {}
    for name, value in pairs:
        if name in obj:
            raise ValueError("duplicate member %r" % name)
        obj[name] = value
    return obj


def _reject_constant(name):
    raise ValueError("%s is not JSON" % name)


def parse(data: bytes):
    """Parse I-JSON: UTF-8, no duplicate names, no NaN/Infinity."""
    text = data.decode("utf-8")  # strict: invalid UTF-8 raises
    return json.loads(
        text,
        object_pairs_hook=_reject_duplicates,
        parse_constant=_reject_constant,
        parse_float=float,
        parse_int=int,
    )


def number(value) -> str:
    """Serialize a number as ECMAScript's Number.prototype.toString does."""
    f = float(value)  # JCS numbers are IEEE 754 doubles, integers too
    if math.isnan(f) or math.isinf(f):
        raise ValueError("number out of range: %r" % value)
    if f == 0:
        return "0"  # also -0
    if f < 0:
        return "-" + number(-f)
    # repr gives the shortest digits that round-trip, as ECMAScript requires;
    # Decimal splits them into digits and exponent: value = 0.digits * 10**n.
    _, ds, exp = Decimal(repr(f)).normalize().as_tuple()
    digits = "".join(map(str, ds))
    k, n = len(digits), exp + len(ds)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return head + "e" + sign + str(abs(e))


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def canonical(value) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return number(value)
    if isinstance(value, str):
        return string(value)
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, dict):
        # Sort by UTF-16 code units: big-endian UTF-16 bytes sort the same way.
        names = sorted(value, key=lambda name: name.encode("utf-16-be", "surrogatepass"))
        return "{" + ",".join(string(n) + ":" + canonical(value[n]) for n in names) + "}"
    raise TypeError("unexpected JSON value %r" % (value,))


def event_hash(event: dict) -> str:
    body = {name: value for name, value in event.items() if name != "hash"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def selftest() -> None:
    cases = [
        ('{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],'
         '"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}',
         '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
         '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'),
        ('{"\\u20ac":1,"\\r":2,"\\ufb33":3,"1":4,"\\ud83d\\ude00":5,"\\u0080":6,"\\u00f6":7}',
         '{"\\r":2,"1":4,"\u0080":6,"\u00f6":7,"\u20ac":1,"\U0001F600":5,"\ufb33":3}'),
        ('{"a":[-0,1e21,1e-7,1e20,5e-324,1.7976931348623157e308,0.000001,9007199254740993]}',
         '{"a":[0,1e+21,1e-7,100000000000000000000,5e-324,1.7976931348623157e+308,0.000001,9007199254740992]}'),
    ]
    for given, want in cases:
        got = canonical(parse(given.encode("utf-8")))
        if got != want:
            raise SystemExit("selftest FAILED\n given %s\n   got %s\n  want %s" % (given, got, want))
    print("selftest ok: %d RFC 8785 cases" % len(cases))


def canonical_without(payload: str, member: str) -> str:
    body = {name: value for name, value in parse(payload.encode("utf-8")).items() if name != member}
    return canonical(body)


def subject_key(tenant: str, subject: str) -> str:
    return hashlib.sha256(tenant.encode("utf-8") + b"\0" + subject.encode("utf-8")).hexdigest()[:32]


def check_vectors(path: str) -> int:
    """Check every vector of hashing-vectors.json; return the number of failures."""
    with open(path, "rb") as f:
        vectors = json.loads(f.read().decode("utf-8"))
    failures, checked = 0, 0

    def check(what, got, want):
        nonlocal failures, checked
        checked += 1
        if got != want:
            failures += 1
            print("MISMATCH %s\n  got  %r\n  want %r" % (what, got, want))

    for group in ("events", "purposes"):
        for v in vectors[group]:
            event = parse(v["payload"].encode("utf-8"))
            check(v["name"] + ": canonical", canonical_without(v["payload"], "hash"), v["canonical_without_hash"])
            check(v["name"] + ": hash", event_hash(event), v["hash"])
            check(v["name"] + ": recorded hash", event.get("hash"), v["hash"])
            if group == "events" and "subject_key" in event:
                # v2: the subject key is stored (a keyed hash: it cannot be recomputed without the tenant's secret)
                want = "consent.events.%s.%s.%s" % (event["tenant"], event["purpose"], event["subject_key"])
            elif group == "events":
                want = "consent.events.%s.%s.%s" % (event["tenant"], event["purpose"], subject_key(event["tenant"], event["subject"]))
            else:
                want = "consent.purposes.%s.%s" % (event["tenant"], event["purpose"])
            check(v["name"] + ": subject", v["nats_subject"], want)
    head = bytes(32)
    heads = {}
    for m in vectors["stream"]:
        head = hashlib.sha256(head + struct.pack(">Q", m["seq"]) + hashlib.sha256(m["nats_subject"].encode("utf-8")).digest()
                              + hashlib.sha256(m["payload"].encode("utf-8")).digest()).digest()
        heads[m["seq"]] = head.hex()
        check("chain at seq %d" % m["seq"], head.hex(), m["chain"])
    for c in vectors["checkpoints"]:
        cp = parse(c["payload"].encode("utf-8"))
        check(c["name"] + ": signed bytes", canonical_without(c["payload"], "signature"), c["canonical_without_signature"])
        check(c["name"] + ": chain", cp["chain"], heads.get(cp["up_to_seq"]))
        check(c["name"] + ": key id", hashlib.sha256(bytes.fromhex(c["public_key_hex"])).hexdigest()[:16], cp["key_id"])
    print("%s: %d checks, %d failures" % (path, checked, failures))
    if not failures:
        print("vectors ok")
    return failures


def main(argv) -> int:
    if argv == ["--selftest"]:
        selftest()
        return 0
    if len(argv) == 2 and argv[0] == "--vectors":
        return 1 if check_vectors(argv[1]) else 0
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    payloads = []
    for arg in argv:
        if arg == "-":
            payloads += [line for line in sys.stdin.buffer.read().splitlines() if line.strip()]
        else:
            with open(arg, "rb") as f:
                payloads.append(f.read())
    prev, failures = "", 0
    for i, payload in enumerate(payloads, 1):
        event = parse(payload)
        computed = event_hash(event)
        ok_hash = computed == event.get("hash")
        ok_link = event.get("prev_hash") == prev
        failures += (not ok_hash) + (not ok_link)
        print("%d %s %s hash %s%s" % (
            i, event.get("id"), computed,
            "ok" if ok_hash else "MISMATCH (recorded %s)" % event.get("hash"),
            "" if ok_link else ", prev_hash BROKEN (expected %r)" % prev))
        prev = "" if event.get("type") == "consent.erased" else event.get("hash", "")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
