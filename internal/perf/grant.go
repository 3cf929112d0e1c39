package perf

import (
	"context"
	"fmt"
	"strconv"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/ledger"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// GrantConfig sizes the durable grant comparison.
type GrantConfig struct {
	Dir     string // parent of the server's store directory
	Callers int    // concurrent callers
	Grants  int    // grants per measured run
	// Group configures group commit; nil uses the defaults.
	Group *ledger.GroupCommit
}

// GrantResult holds the runs of the durable grant comparison, all on one
// server that fsyncs every write.
type GrantResult struct {
	Callers int
	// Bare: Callers goroutines each publishing a grant-sized message with
	// an expected subject sequence and a message id, one at a time.
	Bare Run
	// BareBatch: atomic batches of Callers such messages, one at a time;
	// a latency is one batch's.
	BareBatch Run
	// Alone: Ledger.Append of grants by Callers callers, each event
	// published alone.
	Alone Run
	// Group: the same with group commit.
	Group      Run
	GroupStats ledger.GroupCommitStats
}

// Grants runs the durable grant comparison.
func Grants(ctx context.Context, cfg GrantConfig) (GrantResult, error) {
	res := GrantResult{Callers: cfg.Callers}
	s, err := StartServer(cfg.Dir, true)
	if err != nil {
		return res, err
	}
	defer s.Close()
	js, err := s.JetStream()
	if err != nil {
		return res, err
	}
	stream, err := ledger.EnsureStream(ctx, js, ledger.StreamOptions{})
	if err != nil {
		return res, err
	}
	bareCfg := ledger.StreamOptions{Name: "BARE"}.Config()
	bareCfg.Subjects = []string{"bare.>"}
	if _, err := js.CreateStream(ctx, bareCfg); err != nil {
		return res, err
	}
	l, err := startGrantLedgers(ctx, js, stream, cfg.Dir, cfg.Group)
	if err != nil {
		return res, err
	}
	defer l.stop()
	alone, grouped, payload := l.alone, l.grouped, l.payload

	// The runs without group commit are slow (one fsync each): a quarter
	// of the grants gives their rate as well.
	slow := max(cfg.Grants/4, cfg.Callers*4)
	if res.Bare, err = Drive(cfg.Callers, slow, func(i int) error {
		_, err := js.PublishMsg(ctx, bareMsg("bare.single."+strconv.Itoa(i), payload))
		return err
	}); err != nil {
		return res, fmt.Errorf("bare publish: %w", err)
	}
	batches := max(cfg.Grants/cfg.Callers, 4)
	if res.BareBatch, err = Drive(1, batches, func(i int) error {
		return bareBatch(ctx, js.Conn(), "bare.batch."+strconv.Itoa(i), cfg.Callers, payload)
	}); err != nil {
		return res, fmt.Errorf("bare atomic batch: %w", err)
	}
	if res.Alone, err = Drive(cfg.Callers, slow, func(i int) error {
		_, err := alone.Append(ctx, events.KindGrant, grantCommand("alone", i))
		return err
	}); err != nil {
		return res, fmt.Errorf("grant: %w", err)
	}
	if res.Group, err = Drive(cfg.Callers, cfg.Grants, func(i int) error {
		_, err := grouped.Append(ctx, events.KindGrant, grantCommand("group", i))
		return err
	}); err != nil {
		return res, fmt.Errorf("grant with group commit: %w", err)
	}
	res.GroupStats, _ = grouped.GroupCommitStats()
	return res, nil
}

func grantCommand(prefix string, i int) events.Command {
	return events.Command{SubjectID: prefix + "-" + strconv.Itoa(i) + "@example.com", Purpose: "marketing_email"}
}

func bareMsg(subj string, payload []byte) *nats.Msg {
	return &nats.Msg{Subject: subj, Data: payload, Header: nats.Header{
		jetstream.MsgIDHeader:               []string{nuid.Next()},
		jetstream.ExpectedLastSubjSeqHeader: []string{"0"},
	}}
}

// bareBatch commits n messages as one atomic batch.
func bareBatch(ctx context.Context, nc *nats.Conn, prefix string, n int, payload []byte) error {
	id := nuid.Next()
	for i := 1; i <= n; i++ {
		m := bareMsg(prefix+"."+strconv.Itoa(i), payload)
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i))
		if i < n {
			if err := nc.PublishMsg(m); err != nil {
				return err
			}
			continue
		}
		m.Header.Set("Nats-Batch-Commit", "1")
		resp, err := nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return err
		}
		if err := ackError(resp.Data); err != nil {
			return err
		}
	}
	return nil
}

// grantLedgers are the two ledgers a grant comparison drives over one
// stream, and a stored grant to publish bare.
type grantLedgers struct {
	alone, grouped *ledger.Ledger
	payload        []byte // a grant as the ledger stored it
	stop           func() // stops the projector
}

// startGrantLedgers starts, as in consentd, a projector keeping an index
// of stream in dir (it tells appends their consents' last states,
// ledger.Options.Tips) and two ledgers over it, one publishing each event
// alone and one with group commit (group, or the default), and appends
// one warm-up grant whose stored bytes are the bare publishes' payload.
func startGrantLedgers(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream, dir string, group *ledger.GroupCommit) (*grantLedgers, error) {
	idx, stopProjector, err := runIndex(ctx, js, dir)
	if err != nil {
		return nil, err
	}
	if group == nil {
		group = &ledger.GroupCommit{}
	}
	l := &grantLedgers{
		alone:   ledger.New(js, stream, ledger.Options{Tips: idx}),
		grouped: ledger.New(js, stream, ledger.Options{GroupCommit: group, Tips: idx}),
		stop:    stopProjector,
	}
	first, err := l.alone.Append(ctx, events.KindGrant, grantCommand("warm-up", 0))
	if err == nil {
		var stored *jetstream.RawStreamMsg
		if stored, err = stream.GetMsg(ctx, first.Seq); err == nil {
			l.payload = stored.Data
		}
	}
	if err != nil {
		stopProjector()
		return nil, err
	}
	return l, nil
}
