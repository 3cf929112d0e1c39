#!/usr/bin/env python3
"""Check a Consent Ledger raw export offline: the chain and the checkpoints.

    consentctl audit export --format raw --out ledger.raw.jsonl
    python3 docs/verify_chain.py ledger.raw.jsonl [--public-key consent-signing.pub]

Each line of a raw export is one message of the stream, in order:
{"seq", "stored_at", "nats_subject", "payload_base64"}. The script

  - checks that the sequences run 1, 2, 3, ... without a gap,
  - recomputes the running chain (see docs/audit.md):
        H(0) = 32 zero bytes
        H(n) = SHA-256(H(n-1) || uint64be(n) || SHA-256(subject) || SHA-256(payload))
  - checks that each checkpoint (subject consent.checkpoints.chain) states
    the chain the stream has at its up_to_seq,
  - with --public-key and the `cryptography` package, checks each
    checkpoint's ed25519 signature (over its canonical JSON without
    "signature"; a checkpoint holds only strings and integers, so sorted
    keys without spaces is its canonical form), and
  - prints the last chain value as SEQ:CHAIN, the anchor `consentctl audit
    verify --anchor` takes.

Event hashes are docs/verify_hash.py's job. Standard library only, but for
the optional signature check. Exits 1 on any mismatch.
"""
import base64
import hashlib
import json
import struct
import sys


def load_public_key(path):
    try:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError:
        sys.exit("--public-key needs the cryptography package (pip install cryptography); "
                 "or check signatures with openssl as docs/audit.md shows")
    with open(path, "rb") as f:
        key = load_pem_public_key(f.read())
    raw = key.public_bytes_raw()
    return hashlib.sha256(raw).hexdigest()[:16], key


def main(argv):
    if len(argv) not in (1, 3) or (len(argv) == 3 and argv[1] != "--public-key"):
        sys.exit(__doc__)
    keys = {}
    if len(argv) == 3:
        key_id, key = load_public_key(argv[2])
        keys[key_id] = key

    head, heads, problems, checked = bytes(32), {}, 0, 0
    expected = 1
    with open(argv[0], encoding="utf-8") as f:
        for line in f:
            m = json.loads(line)
            seq, subject = m["seq"], m["nats_subject"]
            payload = base64.b64decode(m["payload_base64"])
            if seq != expected:
                print(f"seq {seq}: gap: expected seq {expected}; the chain cannot continue")
                return 1
            expected = seq + 1
            head = hashlib.sha256(head + struct.pack(">Q", seq)
                                  + hashlib.sha256(subject.encode()).digest()
                                  + hashlib.sha256(payload).digest()).digest()
            heads[seq] = head
            if subject != "consent.checkpoints.chain":
                continue
            cp = json.loads(payload)
            up_to = cp["up_to_seq"]
            if up_to not in heads or heads[up_to].hex() != cp["chain"]:
                problems += 1
                print(f"seq {seq}: checkpoint: messages 1 to {up_to} hash to "
                      f"{heads.get(up_to, b'').hex() or '(unknown)'}, the checkpoint says {cp['chain']}")
                continue
            if keys:
                key = keys.get(cp["key_id"])
                signed = {k: v for k, v in cp.items() if k != "signature"}
                data = json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
                try:
                    if key is None:
                        raise ValueError(f"unknown key {cp['key_id']}")
                    key.verify(bytes.fromhex(cp["signature"]), data)
                except Exception as e:  # cryptography raises InvalidSignature
                    problems += 1
                    print(f"seq {seq}: checkpoint: signature does not verify ({e or 'invalid signature'})")
                    continue
            checked += 1
            print(f"seq {seq}: checkpoint up to seq {up_to} made {cp['time']}: chain matches"
                  + (", signature valid" if keys else ""))
    if expected == 1:
        print("empty export")
        return 0
    print(f"{expected - 1} messages, {checked} checkpoints verified, {problems} problems")
    print(f"anchor: {expected - 1}:{head.hex()}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
