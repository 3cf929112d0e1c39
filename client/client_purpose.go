package client

import (
	"context"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
)

// SetPurpose records a change of the purpose registry
// (consent.v1.purpose.set): description, current policy version, default
// ttl. Raising the policy version makes grants of older versions outdated
// (not allowed) until the person consents again. A lower version than the
// current one is refused with wire.ErrConflict.
func (c *Client) SetPurpose(ctx context.Context, cmd events.PurposeCommand) (wire.PurposeReply, error) {
	var r wire.PurposeReply
	err := c.call(ctx, wire.SubjectPurposeSet, cmd, &r)
	return r, err
}

// GetPurpose returns one purpose of the registry (Registered false when it
// was never set).
func (c *Client) GetPurpose(ctx context.Context, q wire.PurposeQuery) (events.Purpose, error) {
	var p events.Purpose
	err := c.call(ctx, wire.SubjectPurposeGet, q, &p)
	return p, err
}

// ListPurposes returns the registered purposes of a tenant, ordered by
// name.
func (c *Client) ListPurposes(ctx context.Context, q wire.PurposeListQuery) ([]events.Purpose, error) {
	var l wire.PurposeList
	err := c.call(ctx, wire.SubjectPurposeList, q, &l)
	return l.Purposes, err
}
