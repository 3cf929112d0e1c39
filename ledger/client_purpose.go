package ledger

import (
	"context"

	"github.com/consentledger/consent/events"
)

// SetPurpose records a change of the purpose registry
// (consent.v1.purpose.set): description, current policy version, default
// ttl. Raising the policy version makes grants of older versions outdated
// (not allowed) until the person consents again. A lower version than the
// current one is refused with ErrConflict.
func (c *Client) SetPurpose(ctx context.Context, cmd events.PurposeCommand) (PurposeReply, error) {
	var r PurposeReply
	err := c.call(ctx, SubjectPurposeSet, cmd, &r)
	return r, err
}

// GetPurpose returns one purpose of the registry (Registered false when it
// was never set).
func (c *Client) GetPurpose(ctx context.Context, q PurposeQuery) (events.Purpose, error) {
	var p events.Purpose
	err := c.call(ctx, SubjectPurposeGet, q, &p)
	return p, err
}

// ListPurposes returns the registered purposes of a tenant, ordered by
// name.
func (c *Client) ListPurposes(ctx context.Context, q PurposeListQuery) ([]events.Purpose, error) {
	var l PurposeList
	err := c.call(ctx, SubjectPurposeList, q, &l)
	return l.Purposes, err
}
