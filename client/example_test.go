package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/projector"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// runConsent starts what consentd runs, in-process: an embedded NATS
// server with JetStream, the stream, the projector and the consent
// service. It returns a connection for clients and a function that stops
// everything.
func runConsent() (*nats.Conn, func()) {
	dir, err := os.MkdirTemp("", "consent-example-")
	if err != nil {
		log.Fatal(err)
	}
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, SyncAlways: true, NoLog: true, NoSigs: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		log.Fatal("NATS server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		log.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	if err != nil {
		log.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	idx, err := projector.Open(filepath.Join(dir, "index"), projector.IndexOptions{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	projectorCtx, stopProjector := context.WithCancel(ctx)
	projected := make(chan error, 1)
	go func() { projected <- projector.New(js, idx, projector.Options{Logger: quiet}).Run(projectorCtx) }()

	// The service gets a connection of its own: Stop drains it.
	svcConn, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		log.Fatal(err)
	}
	svc, err := ledger.NewService(svcConn, ledger.New(js, stream, ledger.Options{}), idx, ledger.ServiceConfig{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	clientConn, err := nats.Connect(s.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	return clientConn, func() {
		clientConn.Close()
		_ = svc.Stop(ctx)
		stopProjector()
		<-projected
		_ = idx.Close()
		nc.Close()
		s.Shutdown()
		s.WaitForShutdown()
		_ = os.RemoveAll(dir)
	}
}

// A service records a grant, then checks it before acting. Passing the
// grant's seq as min_seq makes the check read its own write.
func Example() {
	nc, stop := runConsent()
	defer stop()
	c := client.NewClient(nc, client.ClientOptions{})
	ctx := context.Background()

	grant, err := c.Grant(ctx, events.Command{
		SubjectID: "alice@example.com",
		Purpose:   "marketing_email",
		Actor:     "subject",
		Method:    "dialog",
		TTL:       "8760h",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("recorded", grant.Event.Type, "at seq", grant.Seq)

	st, err := c.Check(ctx, wire.StatusQuery{SubjectID: "alice@example.com", Purpose: "marketing_email", MinSeq: grant.Seq})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("marketing_email:", st.State, "allowed:", st.Allowed)

	_, err = c.Check(ctx, wire.StatusQuery{SubjectID: "alice@example.com", Purpose: "newsletter", MinSeq: grant.Seq})
	fmt.Println("newsletter:", err)
	// Output:
	// recorded consent.granted at seq 1
	// marketing_email: granted allowed: true
	// newsletter: consent: consent required: none (403)
}

// Check fails with an error matching wire.ErrConsentRequired, which
// carries the status that did not allow the action.
func ExampleClient_Check() {
	nc, stop := runConsent()
	defer stop()
	c := client.NewClient(nc, client.ClientOptions{})
	ctx := context.Background()

	deny, err := c.Deny(ctx, events.Command{SubjectID: "bob", Purpose: "analytics", Reason: "no tracking"})
	if err != nil {
		log.Fatal(err)
	}

	_, err = c.Check(ctx, wire.StatusQuery{SubjectID: "bob", Purpose: "analytics", MinSeq: deny.Seq})
	if we, ok := errors.AsType[*wire.Error](err); ok && errors.Is(err, wire.ErrConsentRequired) {
		fmt.Println("do not track bob:", we.Status.State, "since seq", we.Status.Seq)
	}
	// Output:
	// do not track bob: denied since seq 1
}

// Commands carry optimistic concurrency (expected_seq) and idempotency
// keys; the errors they can meet match the sentinels of package wire.
func ExampleClient_Grant() {
	nc, stop := runConsent()
	defer stop()
	c := client.NewClient(nc, client.ClientOptions{})
	ctx := context.Background()

	none := uint64(0) // "this consent has no events yet"
	first, err := c.Request(ctx, events.Command{
		SubjectID: "carol", Purpose: "newsletter", Description: "A weekly newsletter",
		IdempotencyKey: "signup-7", ExpectedSeq: &none,
	})
	if err != nil {
		log.Fatal(err)
	}
	retry, err := c.Request(ctx, events.Command{
		SubjectID: "carol", Purpose: "newsletter", Description: "A weekly newsletter",
		IdempotencyKey: "signup-7", ExpectedSeq: &none,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("retry appended nothing:", retry.Duplicate, retry.Seq == first.Seq)

	_, err = c.Grant(ctx, events.Command{SubjectID: "carol", Purpose: "newsletter", ExpectedSeq: &none})
	fmt.Println("stale expected_seq is a conflict:", errors.Is(err, wire.ErrConflict))

	granted, err := c.Grant(ctx, events.Command{SubjectID: "carol", Purpose: "newsletter", ExpectedSeq: &first.Seq})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(granted.Status.State, "at seq", granted.Seq, "chained to the request:", granted.Event.PrevHash == first.Event.Hash)

	_, err = c.Status(ctx, wire.StatusQuery{SubjectID: "carol", Purpose: "News Letter"})
	fmt.Println(errors.Is(err, wire.ErrBadRequest), err)
	// Output:
	// retry appended nothing: true true
	// stale expected_seq is a conflict: true
	// granted at seq 2 chained to the request: true
	// true consent: purpose: "News Letter" must match ^[a-z0-9][a-z0-9_-]{0,63}$ (400)
}

// A subscriber follows every change from the start of the stream, each
// with the status it leads to. A durable watch (WatchOptions.Durable)
// would resume after a restart, and acknowledge what it handled.
func ExampleClient_Watch() {
	nc, stop := runConsent()
	defer stop()
	c := client.NewClient(nc, client.ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := c.Grant(ctx, events.Command{SubjectID: "dave", Purpose: "newsletter"}); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Revoke(ctx, events.Command{SubjectID: "dave", Purpose: "newsletter"}); err != nil {
		log.Fatal(err)
	}

	w, err := c.Watch(ctx, client.WatchOptions{Purposes: []string{"newsletter"}, StartSeq: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Stop()
	for range 2 {
		ch, err := w.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ch.Seq, ch.Event.Type, "allowed:", ch.Status.Allowed)
	}
	// Output:
	// 1 consent.granted allowed: true
	// 2 consent.revoked allowed: false
}

// A service that checks consent on every request keeps a Checker: it
// answers from memory, kept current by a watch of the stream, and asks the
// service only about consents it has not seen.
func ExampleNewChecker() {
	nc, stop := runConsent()
	defer stop()
	c := client.NewClient(nc, client.ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	checker, err := client.NewChecker(ctx, c, client.CheckerOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer checker.Close()

	grant, err := c.Grant(ctx, events.Command{SubjectID: "erin", Purpose: "analytics"})
	if err != nil {
		log.Fatal(err)
	}
	q := wire.StatusQuery{SubjectID: "erin", Purpose: "analytics", MinSeq: grant.Seq}
	ok, err := checker.Allowed(ctx, q)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("analytics for erin:", ok)

	revoke, err := c.Revoke(ctx, events.Command{SubjectID: "erin", Purpose: "analytics"})
	if err != nil {
		log.Fatal(err)
	}
	q.MinSeq = revoke.Seq
	ok, err = checker.Allowed(ctx, q)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("after the revocation:", ok)
	// Output:
	// analytics for erin: true
	// after the revocation: false
}
