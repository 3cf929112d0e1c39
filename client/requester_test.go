package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// heldRequests subscribes to the status subject on a connection of its own
// and hands over every request unanswered.
func heldRequests(t *testing.T, s *server.Server) <-chan *nats.Msg {
	t.Helper()
	held := make(chan *nats.Msg, 16)
	nc := natstest.Connect(t, s)
	_, err := nc.Subscribe(wire.SubjectStatus, func(m *nats.Msg) { held <- m })
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return held
}

// statusEcho answers a status query with a status of the consent it names.
func statusEcho(req micro.Request) {
	var q wire.StatusQuery
	if err := json.Unmarshal(req.Data(), &q); err != nil {
		_ = req.Error("400", err.Error(), nil)
		return
	}
	_ = req.RespondJSON(events.Status{SubjectID: q.SubjectID, Purpose: q.Purpose, State: events.StateNone})
}

func TestClientCallEndsWhenItsContextIsCancelled(t *testing.T) {
	s := natstest.RunServer(t)
	held := heldRequests(t, s)
	client := client.NewClient(natstest.Connect(t, s), client.ClientOptions{Timeout: time.Minute})

	ctx, cancel := context.WithCancel(t.Context())
	errs := make(chan error, 1)
	go func() {
		_, err := client.Status(ctx, wire.StatusQuery{SubjectID: "a", Purpose: "p"})
		errs <- err
	}()
	<-held // the call is waiting for its reply
	cancel()
	require.ErrorIs(t, <-errs, context.Canceled)
}

func TestClientCallEndsWhenTheConnectionCloses(t *testing.T) {
	s := natstest.RunServer(t)
	held := heldRequests(t, s)
	nc := natstest.Connect(t, s)
	client := client.NewClient(nc, client.ClientOptions{Timeout: time.Minute})

	// The deadline only keeps a broken test from hanging: the call must
	// end with the connection, long before it.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	errs := make(chan error, 1)
	go func() {
		_, err := client.Status(ctx, wire.StatusQuery{SubjectID: "a", Purpose: "p"})
		errs <- err
	}()
	<-held
	nc.Close()
	require.ErrorIs(t, <-errs, nats.ErrConnectionClosed)

	_, err := client.Status(ctx, wire.StatusQuery{SubjectID: "a", Purpose: "p"})
	require.ErrorIs(t, err, nats.ErrConnectionClosed, "a call on the closed connection")
}

func TestClientDropsAReplyThatCameAfterItsCallTimedOut(t *testing.T) {
	s := natstest.RunServer(t)
	held := heldRequests(t, s)
	nc := natstest.Connect(t, s)
	cli := client.NewClient(nc, client.ClientOptions{Timeout: 20 * time.Millisecond})
	q := wire.StatusQuery{SubjectID: "a", Purpose: "p"}

	_, err := cli.Status(t.Context(), q)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	late := <-held
	require.NoError(t, late.Respond([]byte(`{"subject":"late","purpose":"p","state":"granted","index_seq":1}`)))

	// The next calls each get their own reply, never the late one.
	for i := range 3 {
		errs := make(chan error, 1)
		var got string
		go func() {
			st, err := client.NewClient(nc, client.ClientOptions{Timeout: 10 * time.Second}).Status(t.Context(), q)
			got = st.SubjectID
			errs <- err
		}()
		req := <-held
		want := fmt.Sprintf("own-%d", i)
		require.NoError(t, req.Respond(fmt.Appendf(nil, `{"subject":%q,"purpose":"p","state":"none","index_seq":1}`, want)))
		require.NoError(t, <-errs)
		assert.Equal(t, want, got)
	}
}

func TestClientRoutesConcurrentRepliesToTheirCalls(t *testing.T) {
	nc := stubService(t, statusEcho)
	clients := []*client.Client{
		client.NewClient(nc, client.ClientOptions{}),
		client.NewClient(nc, client.ClientOptions{}),
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 32 {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			for i := range 50 {
				want := fmt.Sprintf("p-%d-%d", g, i)
				st, err := clients[g%2].Status(ctx, wire.StatusQuery{SubjectID: "a", Purpose: want})
				if err == nil && st.Purpose != want {
					err = fmt.Errorf("call for %s got the reply for %s", want, st.Purpose)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, 1, nc.NumSubscriptions(), "every Client on a connection shares one reply subscription")
}

func TestClientKeepsWorkingAfterItsServerRestarts(t *testing.T) {
	port := natstest.FreePort(t)
	atPort := func(o *server.Options) { o.Port = port }
	s := natstest.RunServer(t, atPort)
	reconnecting := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(10 * time.Millisecond)}
	svcConn := natstest.Connect(t, s, reconnecting...)
	svc, err := micro.AddService(svcConn, micro.Config{
		Name: "stub", Version: "0.0.1",
		Endpoint: &micro.EndpointConfig{Subject: wire.SubjectStatus, Handler: micro.HandlerFunc(statusEcho)},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.Stop() })
	require.NoError(t, svcConn.Flush(), "the server has the stub's subscription before the first request")
	nc := natstest.Connect(t, s, reconnecting...)
	client := client.NewClient(nc, client.ClientOptions{Timeout: 10 * time.Second})
	q := wire.StatusQuery{SubjectID: "a", Purpose: "before"}
	st, err := client.Status(t.Context(), q)
	require.NoError(t, err)
	require.Equal(t, "before", st.Purpose)

	s.Shutdown()
	s.WaitForShutdown()
	natstest.RunServer(t, atPort)
	for _, c := range []*nats.Conn{svcConn, nc} {
		require.Eventually(t, c.IsConnected, 10*time.Second, 10*time.Millisecond)
		require.NoError(t, c.Flush(), "the subscriptions are sent again on reconnect, before this flush")
	}
	q.Purpose = "after"
	st, err = client.Status(t.Context(), q)
	require.NoError(t, err, "the reply subscription survives the reconnect")
	assert.Equal(t, "after", st.Purpose)
}
