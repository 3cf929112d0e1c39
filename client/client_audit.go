package client

import (
	"context"
	"github.com/consentledger/consent/wire"
)

// StatusAt returns the status a consent had at q.At, folded from its
// history in the stream: by recorded time (the default), what the ledger
// had recorded by then; by occurred time, what had happened by then as
// the ledger knows it now.
func (c *Client) StatusAt(ctx context.Context, q wire.StatusAtQuery) (wire.StatusAt, error) {
	var st wire.StatusAt
	err := c.call(ctx, wire.SubjectStatusAt, q, &st)
	return st, err
}

// Receipt returns a signed receipt of one consent: its status and history
// with stream sequences and hashes. It fails with wire.ErrUnavailable when the
// service has no signing key. Check it with audit.VerifyReceipt (or
// consentctl audit verify-receipt).
func (c *Client) Receipt(ctx context.Context, q wire.ReceiptQuery) (wire.SignedReceipt, error) {
	var r wire.SignedReceipt
	err := c.call(ctx, wire.SubjectReceipt, q, &r)
	return r, err
}

// IndexDigest returns the digest of the live index at its checkpoint,
// which consentctl audit verify compares with a fresh fold of the stream.
func (c *Client) IndexDigest(ctx context.Context) (wire.IndexDigest, error) {
	var d wire.IndexDigest
	err := c.call(ctx, wire.SubjectIndexDigest, struct{}{}, &d)
	return d, err
}
