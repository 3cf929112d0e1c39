package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCommandReplyStatusIsWhatCheckAnswers walks a consent through every
// transition, with the purpose unregistered, registered at version 1 and
// raised to version 2 under existing grants: after each command, the
// status in its reply is exactly what a check with min_seq = its seq
// answers (but for index_seq, which a command reply leaves 0).
func TestCommandReplyStatusIsWhatCheckAnswers(t *testing.T) {
	st := startStack(t, stackOptions{})
	c := st.client
	expires := time.Now().Add(240 * time.Hour).UTC()

	steps := []struct {
		purposeVersion int // > 0: set the purpose to this version before the command
		kind           events.Kind
		cmd            events.Command
	}{
		{0, events.KindRequest, events.Command{}},
		{0, events.KindGrant, events.Command{ExpiresAt: &expires}},
		{0, events.KindRevoke, events.Command{}},
		{0, events.KindDeny, events.Command{}},
		{0, events.KindGrant, events.Command{}},
		{1, events.KindGrant, events.Command{}},
		{2, events.KindGrant, events.Command{PolicyVersion: 1}}, // outdated the moment it lands
		{0, events.KindRequest, events.Command{PolicyVersion: 2}},
		{0, events.KindGrant, events.Command{PolicyVersion: 2, TTL: "720h"}},
		{3, events.KindRevoke, events.Command{}},
		{0, events.KindRequest, events.Command{PolicyVersion: 3}},
		{0, events.KindDeny, events.Command{}},
		{0, events.KindGrant, events.Command{PolicyVersion: 1}},
	}
	for _, subject := range []string{"alice@example.com", "bob@example.com"} {
		purpose := "marketing_email"
		if subject == "bob@example.com" {
			purpose = "analytics" // never registered
		}
		for i, step := range steps {
			if step.purposeVersion > 0 && purpose == "marketing_email" {
				_, err := c.SetPurpose(stepCtx(t), events.PurposeCommand{Purpose: purpose, PolicyVersion: step.purposeVersion, Actor: "legal"})
				require.NoError(t, err)
			}
			cmd := step.cmd
			cmd.SubjectID, cmd.Purpose = subject, purpose
			reply, err := command(t, c, step.kind, cmd)
			require.NoError(t, err, "step %d: %s", i, step.kind)

			checked, err := c.Check(stepCtx(t), wire.StatusQuery{SubjectID: subject, Purpose: purpose, MinSeq: reply.Seq})
			if errors.Is(err, wire.ErrConsentRequired) {
				assert.False(t, reply.Status.Allowed, "step %d: check says consent required, the reply must not say allowed", i)
			} else {
				require.NoError(t, err, "step %d", i)
			}
			require.GreaterOrEqual(t, checked.IndexSeq, reply.Seq)
			checked.IndexSeq = 0
			assert.Equal(t, checked, reply.Status, "step %d: %s of %s under purpose version %d", i, step.kind, subject, step.purposeVersion)
		}
	}
}

// command sends cmd as a command of the given kind through the client.
func command(t *testing.T, c *client.Client, kind events.Kind, cmd events.Command) (wire.Reply, error) {
	switch kind {
	case events.KindRequest:
		return c.Request(stepCtx(t), cmd)
	case events.KindGrant:
		return c.Grant(stepCtx(t), cmd)
	case events.KindDeny:
		return c.Deny(stepCtx(t), cmd)
	default:
		return c.Revoke(stepCtx(t), cmd)
	}
}

// stalledRegistry is an index whose projector has stopped at seq 0: it
// keeps a purpose registry but never reaches a new sequence.
type stalledRegistry struct{ *fakeReader }

func (stalledRegistry) Purpose(ctx context.Context, k events.PurposeKey, minSeq uint64) (events.Purpose, uint64, error) {
	if minSeq == 0 {
		return events.NewPurpose(k), 0, nil
	}
	<-ctx.Done()
	return events.Purpose{}, 0, events.ErrStale
}

func (stalledRegistry) Purposes(context.Context, string, uint64) ([]events.Purpose, uint64, error) {
	return nil, 0, nil
}

// TestCommandReplyStatusWithoutTheIndex: while the index cannot reach a
// command's seq (catching up, or its consumer lost in a failover), the
// reply does not wait for it: the purpose's policy version is read from
// the stream, so a grant under an outdated policy still says not allowed,
// and one under the current policy allowed.
func TestCommandReplyStatusWithoutTheIndex(t *testing.T) {
	s, _, js := natstest.Run(t)
	stream, err := ledger.EnsureStream(t.Context(), js, ledger.StreamOptions{})
	require.NoError(t, err)
	l := ledger.New(js, stream, ledger.Options{})
	svc, err := ledger.NewService(natstest.Connect(t, s), l, stalledRegistry{newFakeReader(0)}, ledger.ServiceConfig{MinSeqTimeout: time.Minute})
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.Stop(context.Background()) })
	c := client.NewClient(natstest.Connect(t, s), client.ClientOptions{Timeout: 10 * time.Second})

	_, err = l.SetPurpose(t.Context(), events.PurposeCommand{Purpose: "marketing_email", PolicyVersion: 2, Actor: "legal"})
	require.NoError(t, err)
	outdated, err := c.Grant(stepCtx(t), events.Command{SubjectID: "alice", Purpose: "marketing_email", PolicyVersion: 1})
	require.NoError(t, err)
	assert.False(t, outdated.Status.Allowed)
	assert.True(t, outdated.Status.Outdated)
	assert.Equal(t, 2, outdated.Status.RequiredPolicyVersion)

	current, err := c.Grant(stepCtx(t), events.Command{SubjectID: "bob", Purpose: "marketing_email", PolicyVersion: 2})
	require.NoError(t, err)
	assert.True(t, current.Status.Allowed)
	assert.Equal(t, 2, current.Status.RequiredPolicyVersion)
}
