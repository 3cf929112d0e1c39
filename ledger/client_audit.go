package ledger

import "context"

// StatusAt returns the status a consent had at q.At, folded from its
// history in the stream: by recorded time (the default), what the ledger
// had recorded by then; by occurred time, what had happened by then as
// the ledger knows it now.
func (c *Client) StatusAt(ctx context.Context, q StatusAtQuery) (StatusAt, error) {
	var st StatusAt
	err := c.call(ctx, SubjectStatusAt, q, &st)
	return st, err
}

// Receipt returns a signed receipt of one consent: its status and history
// with stream sequences and hashes. It fails with ErrUnavailable when the
// service has no signing key. Check it with audit.VerifyReceipt (or
// consentctl audit verify-receipt).
func (c *Client) Receipt(ctx context.Context, q ReceiptQuery) (SignedReceipt, error) {
	var r SignedReceipt
	err := c.call(ctx, SubjectReceipt, q, &r)
	return r, err
}

// IndexDigest returns the digest of the live index at its checkpoint,
// which consentctl audit verify compares with a fresh fold of the stream.
func (c *Client) IndexDigest(ctx context.Context) (IndexDigest, error) {
	var d IndexDigest
	err := c.call(ctx, SubjectIndexDigest, struct{}{}, &d)
	return d, err
}
