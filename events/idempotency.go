package events

import (
	"crypto/sha256"
	"encoding/hex"
)

// idempotencyMsgIDPrefix starts every Nats-Msg-Id derived from an
// idempotency key, so that it can never equal an event id (a UUID).
const idempotencyMsgIDPrefix = "idem-"

// IdempotencyMsgID returns the Nats-Msg-Id of an event appended with the
// caller's idempotency key to natsSubject (a consent's or a purpose's
// subject): "idem-" and the lowercase hex of the first 16 bytes of SHA-256
// over natsSubject, one zero byte and key.
//
// JetStream drops a repeated Nats-Msg-Id stream-wide inside its duplicate
// window. Deriving it from the subject, which names the tenant, the purpose
// and the person, scopes a key to one consent there too: two tenants (or two
// consents of one tenant) that pick the same key never meet, and neither
// ever gets the other's event as a duplicate.
func IdempotencyMsgID(natsSubject, key string) string {
	h := sha256.New()
	h.Write([]byte(natsSubject))
	h.Write([]byte{0})
	h.Write([]byte(key))
	var sum [sha256.Size]byte
	return idempotencyMsgIDPrefix + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// StoredUnderKey reports whether a message on natsSubject whose
// Nats-Msg-Id is msgID was stored under the idempotency key key: its id is
// IdempotencyMsgID(natsSubject, key), or key itself, which is how ledgers
// before the derived ids stored it (the message being on natsSubject keeps
// that match to one consent as well).
func StoredUnderKey(natsSubject, msgID, key string) bool {
	return key != "" && (msgID == key || msgID == IdempotencyMsgID(natsSubject, key))
}
