package client

import (
	"context"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
)

// SetHold puts a person on legal hold (see ledger.Ledger.SetHold; admin role).
// Errors are *wire.Error: 400 naming the field, 503 without a hold bucket.
func (c *Client) SetHold(ctx context.Context, q wire.HoldRequest) (wire.HoldReply, error) {
	var r wire.HoldReply
	err := c.call(ctx, wire.SubjectHoldSet, q, &r)
	return r, err
}

// ReleaseHold lifts a person's legal hold (see ledger.Ledger.ReleaseHold; admin
// role). Errors as SetHold's.
func (c *Client) ReleaseHold(ctx context.Context, q wire.HoldRequest) (wire.HoldReply, error) {
	var r wire.HoldReply
	err := c.call(ctx, wire.SubjectHoldRelease, q, &r)
	return r, err
}

// ListHolds returns a tenant's legal holds (see ledger.Ledger.ListHolds; admin
// role). Errors as SetHold's.
func (c *Client) ListHolds(ctx context.Context, q wire.HoldListQuery) (wire.HoldListReply, error) {
	var r wire.HoldListReply
	err := c.call(ctx, wire.SubjectHoldList, q, &r)
	return r, err
}

// Erase asks the service to erase a person (see ledger.Ledger.Erase; admin
// role). Errors are *wire.Error: 400 naming the field, 409 when a consent kept
// changing meanwhile (retry: the erasure resumes where it stopped) or the
// person is on legal hold (the description names the hold).
func (c *Client) Erase(ctx context.Context, q wire.EraseRequest) (wire.EraseReply, error) {
	var r wire.EraseReply
	err := c.call(ctx, wire.SubjectErase, q, &r)
	return r, err
}

// Quarantine asks the service to append consent.quarantined for the
// message at q.Seq (see ledger.Ledger.Quarantine): an operator's recorded way past
// a message that failed the integrity checks. Errors are *wire.Error: 400 for a
// request that names no such violation, 409 when the consent changed
// meanwhile.
func (c *Client) Quarantine(ctx context.Context, q events.Quarantine) (wire.Reply, error) {
	var r wire.Reply
	err := c.call(ctx, wire.SubjectQuarantine, q, &r)
	return r, err
}

// AddUser asks the service for credentials of a new user (admin role).
// Errors are *wire.Error: 400 naming the field, 403, 409 when the name has
// credentials in force.
func (c *Client) AddUser(ctx context.Context, q wire.UserRequest) (wire.UserCreds, error) {
	var r wire.UserCreds
	err := c.call(ctx, wire.SubjectUserAdd, q, &r)
	return r, err
}

// RevokeUser takes a user's credentials away at once (admin role). Errors
// are *wire.Error: 400 naming "name" when the name has none in force.
func (c *Client) RevokeUser(ctx context.Context, q wire.UserRequest) error {
	var r wire.UserList
	return c.call(ctx, wire.SubjectUserRevoke, q, &r)
}

// Users lists the credentials issued in a tenant (admin role).
func (c *Client) Users(ctx context.Context, q wire.UserRequest) ([]wire.UserInfo, error) {
	var r wire.UserList
	err := c.call(ctx, wire.SubjectUserList, q, &r)
	return r.Users, err
}
