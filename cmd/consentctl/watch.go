package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
)

// watchCommand prints consent changes live, as the Go client's Watch
// delivers them.
func watchCommand() command {
	var (
		opts    client.WatchOptions
		since   timeFlag
		stream  string
		viaFeed bool
		count   int
		forTime time.Duration
	)
	return command{
		name: "watch", args: "[PURPOSE...]", untimed: true,
		summary: "print consent changes live (Ctrl-C to stop)", nargs: [2]int{0, 64},
		flags: func(fs *flag.FlagSet) {
			fs.Uint64Var(&opts.StartSeq, "from-seq", 0, "start at stream sequence `SEQ` (default: only new changes)")
			fs.Var(&since, "since", "start at the first change stored at or after `TIME` (RFC 3339)")
			fs.StringVar(&opts.Durable, "durable", "", "resume the durable watch `NAME`: after a restart it continues where it stopped (each printed change is acknowledged)")
			fs.StringVar(&stream, "stream", wire.DefaultStream, "`NAME` of the stream consentd keeps the audit trail in")
			fs.BoolVar(&viaFeed, "service-feed", true, "let consentd open the consumer (consent.v1.feed.open), as every user of an authenticated consentd needs (no client account has JetStream); --service-feed=false creates it with the connection's own JetStream API (consentd --insecure-no-auth, or a NATS deployment whose users reach the stream)")
			fs.IntVar(&count, "count", 0, "stop after `N` changes (default: run until interrupted)")
			fs.DurationVar(&forTime, "for", 0, "stop after `DURATION` (default: run until interrupted)")
		},
		do: func(ctx context.Context, e *env, args []string) int {
			opts.Tenant, opts.Purposes = e.g.tenant, args
			if e.g.tenant == "*" {
				opts.Tenant = "*"
			}
			if since.t != nil {
				opts.StartTime = *since.t
			}
			if forTime > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, forTime)
				defer cancel()
			}
			client := client.NewClient(e.nc, client.ClientOptions{Timeout: e.g.timeout, Stream: stream, ServiceFeed: viaFeed})
			startCtx, cancel := context.WithTimeout(ctx, e.g.timeout)
			w, err := client.Watch(startCtx, opts)
			cancel()
			if err != nil {
				return e.fail(err)
			}
			defer w.Stop()
			if !e.g.json {
				fmt.Fprintf(e.stderr, "Watching %s (Ctrl-C to stop).\n%s\n", describeWatch(opts), watchHeader)
			}
			for n := 0; count == 0 || n < count; n++ {
				ch, err := w.Next(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return exitOK // interrupted, or --for elapsed
					}
					return e.fail(err)
				}
				if e.g.json {
					err = printChangeJSON(e, ch)
				} else {
					printChange(e, ch)
				}
				if err != nil {
					return e.fail(err)
				}
				ackCtx, cancel := context.WithTimeout(context.Background(), e.g.timeout)
				err = ch.Ack(ackCtx)
				cancel()
				if err != nil {
					return e.fail(fmt.Errorf("acknowledge seq %d: %w", ch.Seq, err))
				}
			}
			return exitOK
		},
	}
}

func describeWatch(o client.WatchOptions) string {
	what := "every purpose"
	if len(o.Purposes) > 0 {
		what = strings.Join(o.Purposes, ", ")
	}
	tenant := "tenant " + events.OrDefaultTenant(o.Tenant)
	if o.Tenant == "*" {
		tenant = "every tenant"
	}
	from := "new changes"
	switch {
	case o.StartSeq > 0:
		from = fmt.Sprintf("changes from seq %d", o.StartSeq)
	case !o.StartTime.IsZero():
		from = "changes since " + o.StartTime.UTC().Format(time.RFC3339)
	}
	if o.Durable != "" {
		from += " (durable watch " + o.Durable + ")"
	}
	return fmt.Sprintf("%s of %s in %s", from, what, tenant)
}

// watchHeader names the fields of printChange's lines. The time is when
// the ledger recorded the change (the stream stored it): --since goes by
// it too.
const watchHeader = "SEQ RECORDED TENANT SUBJECT PURPOSE CHANGE -> STATE, ALLOWED"

// printChange writes one line per change: sequence, recorded time, whose
// consent, what happened (when it occurred, for an event recorded well
// after it occurred; the authenticated user who recorded it, when the
// event names one) and what it leads to.
func printChange(e *env, ch *client.Change) {
	at := ch.Time.UTC().Format(time.RFC3339)
	switch {
	case ch.Err != nil:
		fmt.Fprintf(e.stdout, "%d %s unreadable: %v\n", ch.Seq, at, ch.Err)
	case ch.PurposeEvent != nil:
		p := ch.Purpose
		ttl := ""
		if p.DefaultTTL != "" {
			ttl = ", default ttl " + p.DefaultTTL
		}
		if p.Retention != "" {
			ttl += ", retention " + p.Retention
		}
		fmt.Fprintf(e.stdout, "%d %s %s purpose %s set: policy version %d%s%s\n", ch.Seq, at, p.Tenant, p.Purpose, p.PolicyVersion, ttl,
			recordedBy(ch.PurposeEvent.RecordedBy))
	default:
		ev, st := ch.Event, ch.Status
		verdict := "not allowed"
		switch {
		case st.Allowed:
			verdict = "allowed"
		case st.Outdated:
			verdict = fmt.Sprintf("not allowed: outdated, policy version %d is required", st.RequiredPolicyVersion)
		}
		occurred := ""
		if ev.IsBackdated() {
			occurred = " (occurred " + formatTime(&ev.OccurredAt) + ")"
		}
		fmt.Fprintf(e.stdout, "%d %s %s %s %s %s%s%s -> %s, %s\n", ch.Seq, at, ev.Tenant, quote(ev.SubjectID), ev.Purpose,
			strings.TrimPrefix(string(ev.Type), "consent."), occurred, recordedBy(ev.RecordedBy), st.State, verdict)
	}
}

// recordedBy is " (recorded by USER)" for an event's recorded_by, and
// nothing when it has none.
func recordedBy(user string) string {
	if user == "" {
		return ""
	}
	return " (recorded by " + user + ")"
}

// changeJSON is one line of consentctl watch --json.
type changeJSON struct {
	Seq          uint64               `json:"seq"`
	Time         time.Time            `json:"time"`
	Event        *events.Event        `json:"event,omitempty"`
	Status       *events.Status       `json:"status,omitempty"`
	PurposeEvent *events.PurposeEvent `json:"purpose_event,omitempty"`
	Purpose      *events.Purpose      `json:"purpose,omitempty"`
	Error        string               `json:"error,omitempty"`
}

func printChangeJSON(e *env, ch *client.Change) error {
	out := changeJSON{Seq: ch.Seq, Time: ch.Time.UTC(), Event: ch.Event, PurposeEvent: ch.PurposeEvent}
	switch {
	case ch.Err != nil:
		out.Error = ch.Err.Error()
	case ch.Event != nil:
		out.Status = &ch.Status
	case ch.PurposeEvent != nil:
		out.Purpose = &ch.Purpose
	}
	if err := json.NewEncoder(e.stdout).Encode(out); err != nil {
		return errors.Join(errors.New("write"), err)
	}
	return nil
}
