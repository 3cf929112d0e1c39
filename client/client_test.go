package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stubService answers every consent.v1 subject with answer(subject, body).
func stubService(t *testing.T, answer func(req micro.Request)) *nats.Conn {
	t.Helper()
	s := natstest.RunServer(t)
	svcConn := natstest.Connect(t, s)
	svc, err := micro.AddService(svcConn, micro.Config{
		Name: "stub", Version: "0.0.1",
		Endpoint: &micro.EndpointConfig{Subject: "consent.v1.*", Handler: micro.HandlerFunc(answer)},
	})
	require.NoError(t, err)
	require.NoError(t, svcConn.Flush())
	t.Cleanup(func() { _ = svc.Stop() })
	return natstest.Connect(t, s)
}

func TestClientMapsEveryWireCodeToItsSentinel(t *testing.T) {
	tests := []struct {
		code string
		want *wire.Error
	}{
		{"400", wire.ErrBadRequest},
		{"403", wire.ErrConsentRequired},
		{"409", wire.ErrConflict},
		{"413", wire.ErrTooLarge},
		{"503", wire.ErrUnavailable},
		{"500", wire.ErrInternal},
		{"418", wire.ErrInternal},
		{"not-a-number", wire.ErrInternal},
	}
	// The stub answers with the code the request names as its subject.
	nc := stubService(t, func(req micro.Request) {
		var q wire.StatusQuery
		_ = json.Unmarshal(req.Data(), &q)
		_ = req.Error(q.SubjectID, "described "+q.SubjectID, nil)
	})
	client := client.NewClient(nc, client.ClientOptions{})
	all := []wire.Error{*wire.ErrBadRequest, *wire.ErrConsentRequired, *wire.ErrConflict, *wire.ErrTooLarge, *wire.ErrUnavailable, *wire.ErrInternal}

	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			_, err := client.Status(t.Context(), wire.StatusQuery{SubjectID: tt.code, Purpose: "p"})
			require.ErrorIs(t, err, tt.want)
			for _, other := range all {
				if other.Code != tt.want.Code {
					assert.NotErrorIs(t, err, &other)
				}
			}
			we, ok := errors.AsType[*wire.Error](err)
			require.True(t, ok)
			assert.Equal(t, "described "+tt.code, we.Description)
		})
	}
}

func TestClientCheckCarriesTheStatusOf403(t *testing.T) {
	denied := events.Status{Tenant: "default", SubjectID: "a", Purpose: "p", State: events.StateDenied, PolicyVersion: 1, Seq: 4, EventID: "e4", IndexSeq: 9}
	nc := stubService(t, func(req micro.Request) {
		body, _ := json.Marshal(denied)
		_ = req.Error("403", "consent required: denied", body)
	})
	client := client.NewClient(nc, client.ClientOptions{})

	st, err := client.Check(t.Context(), wire.StatusQuery{SubjectID: "a", Purpose: "p"})
	require.ErrorIs(t, err, wire.ErrConsentRequired)
	we, ok := errors.AsType[*wire.Error](err)
	require.True(t, ok)
	require.NotNil(t, we.Status)
	assert.Equal(t, denied, *we.Status)
	assert.Equal(t, denied, st)
	assert.Equal(t, "consent: consent required: denied (403)", err.Error())
}

func TestClientSendsEachCallToItsSubject(t *testing.T) {
	type seen struct {
		subj string
		body map[string]any
	}
	requests := make(chan seen, 1)
	nc := stubService(t, func(req micro.Request) {
		var body map[string]any
		_ = json.Unmarshal(req.Data(), &body)
		requests <- seen{req.Subject(), body}
		switch req.Subject() {
		case wire.SubjectList:
			_ = req.Respond([]byte(`{"statuses":[{"purpose":"p","state":"granted","allowed":true}]}`))
		case wire.SubjectHistory:
			_ = req.Respond([]byte(`{"events":[{"seq":3,"event":{"type":"consent.granted"}}]}`))
		case wire.SubjectStatus, wire.SubjectCheck:
			_ = req.Respond([]byte(`{"purpose":"p","state":"granted","allowed":true,"index_seq":3}`))
		default:
			_ = req.Respond([]byte(`{"seq":3,"duplicate":false,"event":{"type":"consent.granted"},"status":{"state":"granted"}}`))
		}
	})
	client := client.NewClient(nc, client.ClientOptions{})
	ctx := t.Context()
	cmd := events.Command{Tenant: "acme", SubjectID: "a", Purpose: "p"}
	wantCmd := map[string]any{"tenant": "acme", "subject": "a", "purpose": "p"}

	for _, c := range []struct {
		subj string
		call func() (any, error)
	}{
		{wire.SubjectRequest, func() (any, error) { return client.Request(ctx, cmd) }},
		{wire.SubjectGrant, func() (any, error) { return client.Grant(ctx, cmd) }},
		{wire.SubjectDeny, func() (any, error) { return client.Deny(ctx, cmd) }},
		{wire.SubjectRevoke, func() (any, error) { return client.Revoke(ctx, cmd) }},
	} {
		r, err := c.call()
		require.NoError(t, err, c.subj)
		assert.Equal(t, uint64(3), r.(wire.Reply).Seq)
		got := receive(t, requests)
		assert.Equal(t, c.subj, got.subj)
		assert.Equal(t, wantCmd, got.body)
	}

	q := wire.StatusQuery{Tenant: "acme", SubjectID: "a", Purpose: "p", MinSeq: 2}
	wantQuery := map[string]any{"tenant": "acme", "subject": "a", "purpose": "p", "min_seq": float64(2)}
	st, err := client.Status(ctx, q)
	require.NoError(t, err)
	assert.True(t, st.Allowed)
	assert.Equal(t, seen{wire.SubjectStatus, wantQuery}, receive(t, requests))
	st, err = client.Check(ctx, q)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), st.IndexSeq)
	assert.Equal(t, seen{wire.SubjectCheck, wantQuery}, receive(t, requests))

	statuses, err := client.List(ctx, wire.ListQuery{SubjectID: "a"})
	require.NoError(t, err)
	require.Len(t, statuses, 1)
	assert.Equal(t, seen{wire.SubjectList, map[string]any{"subject": "a"}}, receive(t, requests))

	h, err := client.History(ctx, wire.HistoryQuery{SubjectID: "a", AfterSeq: 2, Limit: 10})
	require.NoError(t, err)
	require.Len(t, h.Events, 1)
	assert.Equal(t, events.TypeGranted, h.Events[0].Event.Type)
	assert.Equal(t, seen{wire.SubjectHistory, map[string]any{"subject": "a", "after_seq": float64(2), "limit": float64(10)}}, receive(t, requests))
}

func TestClientWithoutAServiceIsUnavailable(t *testing.T) {
	s := natstest.RunServer(t)
	client := client.NewClient(natstest.Connect(t, s), client.ClientOptions{})

	_, err := client.Status(t.Context(), wire.StatusQuery{SubjectID: "a", Purpose: "p"})
	require.ErrorIs(t, err, wire.ErrUnavailable)
	require.ErrorIs(t, err, nats.ErrNoResponders)
	assert.Contains(t, err.Error(), "is consentd running?")
}

func TestClientBoundsCallsWithoutADeadline(t *testing.T) {
	// A service that takes the request but never answers.
	s := natstest.RunServer(t)
	silent := natstest.Connect(t, s)
	_, err := silent.Subscribe(wire.SubjectStatus, func(*nats.Msg) {})
	require.NoError(t, err)
	require.NoError(t, silent.Flush())
	client := client.NewClient(natstest.Connect(t, s), client.ClientOptions{Timeout: 20 * time.Millisecond})

	_, err = client.Status(context.Background(), wire.StatusQuery{SubjectID: "a", Purpose: "p"})
	require.ErrorIs(t, err, context.DeadlineExceeded)

	live, stop := context.WithCancel(t.Context())
	defer stop()
	_, err = client.Status(live, wire.StatusQuery{SubjectID: "a", Purpose: "p"})
	require.ErrorIs(t, err, context.DeadlineExceeded, "a context that can end but has no deadline gets the timeout too")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = client.Status(ctx, wire.StatusQuery{SubjectID: "a", Purpose: "p"})
	require.ErrorIs(t, err, context.Canceled)
}

// receive returns the next value from ch, failing the test when none
// arrives in 10s.
func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received in 10s")
		panic("unreachable")
	}
}
