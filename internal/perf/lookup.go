package perf

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/ledger"
	"github.com/nats-io/nats.go/micro"
)

// LookupResult is one lookup endpoint at one concurrency against a bare
// echo micro service at the same concurrency.
type LookupResult struct {
	Endpoint string // status or check
	Callers  int
	Lookup   Run
	Echo     Run
}

// LookupConfig sizes the lookup comparison.
type LookupConfig struct {
	Dir      string
	Consents int   // granted consents in the index
	Calls    int   // calls per run
	Callers  []int // concurrencies to run
}

// Lookups answers status and check through the consent service and the Go
// client, from a projector index, as consentd does (the service on an
// in-process connection, callers over loopback TCP), and the same number
// of requests to a bare echo micro service on the same kinds of
// connection, at each concurrency. The two alternate in slices so that both
// see the same machine noise.
func Lookups(ctx context.Context, cfg LookupConfig) ([]LookupResult, error) {
	s, err := StartServer(cfg.Dir, false)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	js, err := s.JetStream()
	if err != nil {
		return nil, err
	}
	if err := FillStream(ctx, js, cfg.Consents); err != nil {
		return nil, err
	}
	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	if err != nil {
		return nil, err
	}
	idx, stopIndex, err := runIndex(ctx, js, cfg.Dir)
	if err != nil {
		return nil, err
	}
	defer stopIndex()
	quiet := slog.New(slog.DiscardHandler)

	svcConn, err := s.InProcess()
	if err != nil {
		return nil, err
	}
	svc, err := ledger.NewService(svcConn, ledger.New(js, stream, ledger.Options{}), idx, ledger.ServiceConfig{Logger: quiet})
	if err != nil {
		return nil, err
	}
	defer func() { _ = svc.Stop(context.Background()) }()
	echoConn, err := s.InProcess()
	if err != nil {
		return nil, err
	}
	echo, err := micro.AddService(echoConn, micro.Config{
		Name: "echo", Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{Subject: "bench.echo", Handler: micro.HandlerFunc(func(req micro.Request) { _ = req.Respond(req.Data()) })},
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = echo.Stop() }()
	if err := echoConn.Flush(); err != nil {
		return nil, err
	}
	clientConn, err := s.TCP()
	if err != nil {
		return nil, err
	}
	client := client.NewClient(clientConn, client.ClientOptions{})
	queries := statusQueries(min(cfg.Consents, 1000))
	echoBody := []byte(`{"tenant":"acme","subject":"person-1@example.com","purpose":"marketing_email"}`)

	var out []LookupResult
	for _, endpoint := range []string{"status", "check"} {
		lookup := client.Status
		if endpoint == "check" {
			lookup = client.Check
		}
		for _, callers := range cfg.Callers {
			r := LookupResult{Endpoint: endpoint, Callers: callers}
			// Alternate slices of both so that they meet the same noise.
			const slices = 4
			per := max(cfg.Calls/slices, callers)
			for range slices {
				got, err := Drive(callers, per, func(i int) error {
					_, err := lookup(ctx, queries[i%len(queries)])
					return err
				})
				if err != nil {
					return nil, fmt.Errorf("%s: %w", endpoint, err)
				}
				bare, err := Drive(callers, per, func(int) error {
					_, err := clientConn.Request("bench.echo", echoBody, 5*time.Second)
					return err
				})
				if err != nil {
					return nil, fmt.Errorf("echo: %w", err)
				}
				r.Lookup = r.Lookup.merge(got)
				r.Echo = r.Echo.merge(bare)
			}
			out = append(out, r)
		}
	}
	return out, nil
}
