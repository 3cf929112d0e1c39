package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consent/client"
	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/natstest"
	"github.com/consentledger/consent/ledger"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeReader is a StateReader over a map, whose index sequence the test
// advances. A lookup that waits for min_seq announces it on waiting.
type fakeReader struct {
	mu       sync.Mutex
	seq      uint64
	consents map[events.Key]events.Consent
	advanced chan struct{} // closed and replaced on every advance
	waiting  chan uint64
}

func newFakeReader(seq uint64, consents ...events.Consent) *fakeReader {
	f := &fakeReader{
		seq:      seq,
		consents: map[events.Key]events.Consent{},
		advanced: make(chan struct{}),
		waiting:  make(chan uint64, 16),
	}
	for _, c := range consents {
		f.consents[c.Key()] = c
	}
	return f
}

// advance stores consents and moves the index sequence to seq.
func (f *fakeReader) advance(seq uint64, consents ...events.Consent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range consents {
		f.consents[c.Key()] = c
	}
	f.seq = seq
	close(f.advanced)
	f.advanced = make(chan struct{})
}

func (f *fakeReader) wait(ctx context.Context, minSeq uint64) (uint64, error) {
	announced := false
	for {
		f.mu.Lock()
		seq, advanced := f.seq, f.advanced
		f.mu.Unlock()
		if seq >= minSeq {
			return seq, nil
		}
		if !announced {
			f.waiting <- minSeq
			announced = true
		}
		select {
		case <-advanced:
		case <-ctx.Done():
			return 0, events.ErrStale
		}
	}
}

func (f *fakeReader) Consent(ctx context.Context, k events.Key, minSeq uint64) (events.Consent, uint64, error) {
	seq, err := f.wait(ctx, minSeq)
	if err != nil {
		return events.Consent{}, 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.consents[k]
	if !ok {
		c = events.NewConsent(k)
	}
	return c, seq, nil
}

func (f *fakeReader) Consents(ctx context.Context, person events.Key, minSeq uint64) ([]events.Consent, uint64, error) {
	seq, err := f.wait(ctx, minSeq)
	if err != nil {
		return nil, 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []events.Consent
	for k, c := range f.consents {
		if k.Tenant == person.Tenant && k.SubjectID == person.SubjectID {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b events.Consent) int { return strings.Compare(a.Purpose, b.Purpose) })
	return out, seq, nil
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

// serviceEnv is a consent service on an embedded server, with a client.
type serviceEnv struct {
	svc    *ledger.Service
	client *client.Client
	nc     *nats.Conn // the client's connection, for raw requests
}

func startService(t testing.TB, r ledger.StateReader, cfg ledger.ServiceConfig) *serviceEnv {
	t.Helper()
	s, _, js := natstest.Run(t)
	stream, err := ledger.EnsureStream(t.Context(), js, ledger.StreamOptions{})
	require.NoError(t, err)
	l := ledger.New(js, stream, ledger.Options{})
	svc, err := ledger.NewService(natstest.Connect(t, s), l, r, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.Stop(context.Background()) })
	nc := natstest.Connect(t, s)
	return &serviceEnv{svc: svc, client: client.NewClient(nc, client.ClientOptions{}), nc: nc}
}

// rawRequest sends data to subj and returns the reply and its micro error
// code ("" on success).
func rawRequest(t *testing.T, nc *nats.Conn, subj string, data []byte) (msg *nats.Msg, code, description string) {
	t.Helper()
	msg, err := nc.Request(subj, data, 5*time.Second)
	require.NoError(t, err)
	return msg, msg.Header.Get(micro.ErrorCodeHeader), msg.Header.Get(micro.ErrorHeader)
}

var (
	testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	past    = testNow.Add(-time.Hour)
	future  = testNow.Add(time.Hour)
)

func consent(subjectID, purpose string, state events.State, policy int, seq uint64, expires *time.Time) events.Consent {
	return events.Consent{
		Tenant: events.DefaultTenant, SubjectID: subjectID, Purpose: purpose, State: state,
		PolicyVersion: policy, UpdatedAt: past, ExpiresAt: expires, Seq: seq, EventID: "ev-" + subjectID + "-" + purpose,
	}
}

func TestServiceRegistersEveryEndpointInAQueueGroup(t *testing.T) {
	env := startService(t, newFakeReader(0), ledger.ServiceConfig{})

	info := env.svc.Info()
	assert.Equal(t, wire.ServiceName, info.Name)
	assert.Equal(t, ledger.ServiceVersion, info.Version)
	var subjects []string
	for _, e := range info.Endpoints {
		subjects = append(subjects, e.Subject)
		assert.Equal(t, ledger.ServiceQueueGroup, e.QueueGroup, e.Subject)
	}
	assert.ElementsMatch(t, []string{
		wire.SubjectRequest, wire.SubjectGrant, wire.SubjectDeny, wire.SubjectRevoke,
		wire.SubjectStatus, wire.SubjectCheck, wire.SubjectList, wire.SubjectHistory,
		wire.SubjectPurposeSet, wire.SubjectPurposeGet, wire.SubjectPurposeList,
		wire.SubjectStatusAt, wire.SubjectReceipt, wire.SubjectIndexDigest, wire.SubjectQuarantine, wire.SubjectErase,
		wire.SubjectHoldSet, wire.SubjectHoldRelease, wire.SubjectHoldList,
	}, subjects)

	// Discoverable the way `nats micro ls` finds it.
	msg, err := env.nc.Request("$SRV.PING."+wire.ServiceName, nil, 5*time.Second)
	require.NoError(t, err)
	var ping micro.Ping
	require.NoError(t, json.Unmarshal(msg.Data, &ping))
	assert.Equal(t, wire.ServiceName, ping.Name)
	assert.Equal(t, info.ID, ping.ID)
}

func TestServiceStatusAndCheck(t *testing.T) {
	reader := newFakeReader(7,
		consent("alice@example.com", "marketing", events.StateGranted, 2, 3, &future),
		consent("bob", "marketing", events.StateGranted, 1, 4, &past),
		consent("carol", "marketing", events.StateDenied, 1, 5, nil),
	)
	tests := []struct {
		name             string
		subjectID        string
		minPolicyVersion int
		wantState        events.State
		wantAllowed      bool
		wantSeq          uint64
		wantRequired     string // description of the 403 from check
	}{
		{name: "granted", subjectID: "alice@example.com", wantState: events.StateGranted, wantAllowed: true, wantSeq: 3},
		{name: "granted at the policy asked for", subjectID: "alice@example.com", minPolicyVersion: 2, wantState: events.StateGranted, wantAllowed: true, wantSeq: 3},
		{name: "granted at an older policy", subjectID: "alice@example.com", minPolicyVersion: 3, wantState: events.StateGranted, wantSeq: 3,
			wantRequired: "consent required: granted at policy version 2, but policy version 3 is required"},
		{name: "expired", subjectID: "bob", wantState: events.StateExpired, wantSeq: 4, wantRequired: "consent required: expired"},
		{name: "denied", subjectID: "carol", wantState: events.StateDenied, wantSeq: 5, wantRequired: "consent required: denied"},
		{name: "no events", subjectID: "dave", wantState: events.StateNone, wantRequired: "consent required: none"},
	}
	for _, mode := range []struct {
		name    string
		workers int
	}{{"inline", 0}, {"worker pool", 4}} {
		t.Run(mode.name, func(t *testing.T) {
			env := startService(t, reader, ledger.ServiceConfig{Now: func() time.Time { return testNow }, LookupWorkers: mode.workers})
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					q := wire.StatusQuery{SubjectID: tt.subjectID, Purpose: "marketing", MinPolicyVersion: tt.minPolicyVersion}
					st, err := env.client.Status(t.Context(), q)
					require.NoError(t, err)
					assert.Equal(t, tt.wantState, st.State)
					assert.Equal(t, tt.wantAllowed, st.Allowed)
					assert.Equal(t, tt.wantSeq, st.Seq)
					assert.Equal(t, uint64(7), st.IndexSeq)
					assert.Equal(t, events.DefaultTenant, st.Tenant)

					checked, err := env.client.Check(t.Context(), q)
					if tt.wantRequired == "" {
						require.NoError(t, err)
						assert.Equal(t, st, checked)
						return
					}
					require.ErrorIs(t, err, wire.ErrConsentRequired)
					we, ok := errors.AsType[*wire.Error](err)
					require.True(t, ok)
					assert.Equal(t, tt.wantRequired, we.Description)
					require.NotNil(t, we.Status)
					assert.Equal(t, st, *we.Status)
					assert.Equal(t, st, checked, "Check returns the status with the error")
				})
			}
		})
	}
}

func TestServiceList(t *testing.T) {
	reader := newFakeReader(9,
		consent("alice", "newsletter", events.StateDenied, 1, 2, nil),
		consent("alice", "analytics", events.StateGranted, 1, 1, nil),
		consent("bob", "analytics", events.StateGranted, 1, 3, nil),
	)
	env := startService(t, reader, ledger.ServiceConfig{Now: func() time.Time { return testNow }})

	statuses, err := env.client.List(t.Context(), wire.ListQuery{SubjectID: "alice"})
	require.NoError(t, err)
	require.Len(t, statuses, 2)
	assert.Equal(t, "analytics", statuses[0].Purpose)
	assert.True(t, statuses[0].Allowed)
	assert.Equal(t, "newsletter", statuses[1].Purpose)
	assert.Equal(t, events.StateDenied, statuses[1].State)
	for _, st := range statuses {
		assert.Equal(t, uint64(9), st.IndexSeq)
		assert.Equal(t, "alice", st.SubjectID)
	}

	// A person without events has an empty list, not null.
	msg, code, _ := rawRequest(t, env.nc, wire.SubjectList, []byte(`{"subject":"nobody"}`))
	require.Empty(t, code)
	assert.JSONEq(t, `{"statuses":[]}`, string(msg.Data))
}

func TestServiceRefusesBadRequests(t *testing.T) {
	env := startService(t, newFakeReader(0), ledger.ServiceConfig{})
	tests := []struct {
		subj, body, wantCode, wantDescription string
	}{
		{wire.SubjectStatus, `{"subject":"a","purpose":"p","colour":"red"}`, "400", "colour: is not a known field"},
		{wire.SubjectCheck, `{"subject":"a","purpose":`, "400", "(body): malformed JSON"},
		{wire.SubjectCheck, `{"subject":"a","purpose":"Marketing"}`, "400", "purpose: "},
		{wire.SubjectStatus, `{"tenant":"ACME","subject":"a","purpose":"p"}`, "400", "tenant: "},
		{wire.SubjectStatus, `{"purpose":"p"}`, "400", "subject: is required"},
		{wire.SubjectStatus, `{"subject":"a","purpose":"p","min_seq":-1}`, "400", "min_seq: must be a non-negative integer"},
		{wire.SubjectList, `[]`, "400", "(body): must be a JSON object"},
		{wire.SubjectHistory, `{"subject":"a","limit":5000}`, "400", "limit: "},
		{wire.SubjectGrant, `{"subject":"a","purpose":"p","reason":"x"}`, "400", "reason: is only allowed on deny and revoke"},
		{wire.SubjectRequest, `{"subject":"a","purpose":"p","ttl":"1y"}`, "400", "ttl: "},
		{wire.SubjectRevoke, `{"subject":"a","purpose":"p","expected_seq":"3"}`, "400", "expected_seq: must be a non-negative integer"},
		{wire.SubjectDeny, ``, "400", "(body): "},
	}
	for _, tt := range tests {
		t.Run(tt.subj+" "+tt.body, func(t *testing.T) {
			msg, code, description := rawRequest(t, env.nc, tt.subj, []byte(tt.body))
			assert.Equal(t, tt.wantCode, code)
			assert.True(t, strings.HasPrefix(description, tt.wantDescription), "description %q should start with %q", description, tt.wantDescription)
			assert.Empty(t, msg.Data)
		})
	}
}

func TestServiceRefusesRequestsOver64KiB(t *testing.T) {
	env := startService(t, newFakeReader(0), ledger.ServiceConfig{})
	subjects := []string{
		wire.SubjectRequest, wire.SubjectGrant, wire.SubjectDeny, wire.SubjectRevoke,
		wire.SubjectStatus, wire.SubjectCheck, wire.SubjectList, wire.SubjectHistory,
	}
	for _, subj := range subjects {
		t.Run(subj, func(t *testing.T) {
			// At the limit the body is read (and is not JSON); one byte over it is not.
			atLimit := []byte(strings.Repeat("x", wire.MaxRequestSize))
			_, code, _ := rawRequest(t, env.nc, subj, atLimit)
			assert.Equal(t, "400", code)

			_, code, description := rawRequest(t, env.nc, subj, append(atLimit, 'x'))
			assert.Equal(t, "413", code)
			assert.Contains(t, description, "65537 bytes")
		})
	}

	_, err := env.client.Grant(t.Context(), events.Command{SubjectID: "a", Purpose: "p", Evidence: json.RawMessage(`{"blob":"` + strings.Repeat("x", wire.MaxRequestSize) + `"}`)})
	require.ErrorIs(t, err, wire.ErrTooLarge)
}

func TestServiceMinSeqWaitsWithoutHoldingUpOtherLookups(t *testing.T) {
	reader := newFakeReader(1, consent("alice", "marketing", events.StateRequested, 1, 1, nil))
	env := startService(t, reader, ledger.ServiceConfig{MinSeqTimeout: 10 * time.Second})

	type result struct {
		st  events.Status
		err error
	}
	waited := make(chan result, 1)
	go func() {
		st, err := env.client.Status(context.Background(), wire.StatusQuery{SubjectID: "alice", Purpose: "marketing", MinSeq: 2})
		waited <- result{st, err}
	}()
	require.Equal(t, uint64(2), receive(t, reader.waiting))

	// While that lookup waits, others on the same endpoint are answered.
	st, err := env.client.Status(t.Context(), wire.StatusQuery{SubjectID: "alice", Purpose: "marketing"})
	require.NoError(t, err)
	assert.Equal(t, events.StateRequested, st.State)
	assert.Equal(t, uint64(1), st.IndexSeq)

	reader.advance(2, consent("alice", "marketing", events.StateGranted, 1, 2, nil))
	r := receive(t, waited)
	require.NoError(t, r.err)
	assert.Equal(t, events.StateGranted, r.st.State, "read your writes")
	assert.Equal(t, uint64(2), r.st.IndexSeq)
}

func TestServiceMinSeqTimesOutWith503(t *testing.T) {
	env := startService(t, newFakeReader(1), ledger.ServiceConfig{MinSeqTimeout: 20 * time.Millisecond})
	for _, call := range []func() error{
		func() error {
			_, err := env.client.Status(t.Context(), wire.StatusQuery{SubjectID: "a", Purpose: "p", MinSeq: 99})
			return err
		},
		func() error {
			_, err := env.client.Check(t.Context(), wire.StatusQuery{SubjectID: "a", Purpose: "p", MinSeq: 99})
			return err
		},
		func() error {
			_, err := env.client.List(t.Context(), wire.ListQuery{SubjectID: "a", MinSeq: 99})
			return err
		},
	} {
		err := call()
		require.ErrorIs(t, err, wire.ErrUnavailable)
		assert.Contains(t, err.Error(), "min_seq")
	}
}

func TestServiceStopAnswersRequestsInFlight(t *testing.T) {
	reader := newFakeReader(1)
	env := startService(t, reader, ledger.ServiceConfig{MinSeqTimeout: 10 * time.Second})

	type result struct {
		st  events.Status
		err error
	}
	inFlight := make(chan result, 1)
	go func() {
		st, err := env.client.Status(context.Background(), wire.StatusQuery{SubjectID: "a", Purpose: "p", MinSeq: 2})
		inFlight <- result{st, err}
	}()
	receive(t, reader.waiting)

	stopped := make(chan error, 1)
	go func() { stopped <- env.svc.Stop(context.Background()) }()

	// The lookup can only finish once the index advances, and Stop waits
	// for it: its answer arrives, and only then does Stop return.
	reader.advance(2)
	r := receive(t, inFlight)
	require.NoError(t, r.err)
	assert.Equal(t, uint64(2), r.st.IndexSeq)
	require.NoError(t, receive(t, stopped))

	_, err := env.client.Status(t.Context(), wire.StatusQuery{SubjectID: "a", Purpose: "p"})
	require.ErrorIs(t, err, wire.ErrUnavailable)
	require.ErrorIs(t, err, nats.ErrNoResponders)
	require.NoError(t, env.svc.Stop(context.Background()), "Stop again returns the first result")
}

func TestServiceStopGivesUpWhenItsContextEnds(t *testing.T) {
	reader := newFakeReader(1)
	env := startService(t, reader, ledger.ServiceConfig{MinSeqTimeout: time.Minute})

	inFlight := make(chan error, 1)
	go func() {
		_, err := env.client.Status(context.Background(), wire.StatusQuery{SubjectID: "a", Purpose: "p", MinSeq: 2})
		inFlight <- err
	}()
	receive(t, reader.waiting)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, env.svc.Stop(ctx), context.Canceled)
	require.ErrorIs(t, receive(t, inFlight), wire.ErrUnavailable, "the caller is told to retry, not left waiting")
}

func TestServiceCommands(t *testing.T) {
	env := startService(t, newFakeReader(0), ledger.ServiceConfig{})
	ctx := t.Context()
	cmd := events.Command{SubjectID: "alice@example.com", Purpose: "marketing", Actor: "subject", IdempotencyKey: "grant-1"}

	granted, err := env.client.Grant(ctx, cmd)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), granted.Seq)
	assert.False(t, granted.Duplicate)
	require.NotNil(t, granted.Event)
	assert.Equal(t, events.TypeGranted, granted.Event.Type)
	assert.Equal(t, events.StateGranted, granted.Status.State)
	assert.True(t, granted.Status.Allowed)

	again, err := env.client.Grant(ctx, cmd)
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
	assert.Equal(t, granted.Seq, again.Seq)
	assert.Equal(t, granted.Event.ID, again.Event.ID)

	_, err = env.client.Deny(ctx, events.Command{SubjectID: "alice@example.com", Purpose: "marketing"})
	require.ErrorIs(t, err, wire.ErrConflict, "a grant is revoked, not denied")

	stale := uint64(0)
	_, err = env.client.Revoke(ctx, events.Command{SubjectID: "alice@example.com", Purpose: "marketing", ExpectedSeq: &stale})
	require.ErrorIs(t, err, wire.ErrConflict)
	assert.Contains(t, err.Error(), "expected_seq")

	_, err = env.client.Revoke(ctx, events.Command{SubjectID: "bob", Purpose: "marketing"})
	require.ErrorIs(t, err, wire.ErrConflict, "nothing to revoke")

	current := granted.Seq
	revoked, err := env.client.Revoke(ctx, events.Command{SubjectID: "alice@example.com", Purpose: "marketing", ExpectedSeq: &current, Reason: "unsubscribed"})
	require.NoError(t, err)
	assert.Equal(t, events.StateRevoked, revoked.Status.State)
	assert.Equal(t, granted.Event.Hash, revoked.Event.PrevHash)

	requested, err := env.client.Request(ctx, events.Command{SubjectID: "alice@example.com", Purpose: "newsletter", Description: "weekly news"})
	require.NoError(t, err)
	assert.Equal(t, events.StateRequested, requested.Status.State)

	h, err := env.client.History(ctx, wire.HistoryQuery{SubjectID: "alice@example.com"})
	require.NoError(t, err)
	require.Len(t, h.Events, 3)
	assert.Equal(t, []uint64{granted.Seq, revoked.Seq, requested.Seq}, []uint64{h.Events[0].Seq, h.Events[1].Seq, h.Events[2].Seq})
	assert.Equal(t, revoked.Event.ID, h.Events[1].Event.ID)

	h, err = env.client.History(ctx, wire.HistoryQuery{SubjectID: "alice@example.com", Purpose: "marketing", AfterSeq: granted.Seq})
	require.NoError(t, err)
	require.Len(t, h.Events, 1)
	assert.Equal(t, revoked.Seq, h.Events[0].Seq)
}

func TestServiceHandlesConcurrentCommands(t *testing.T) {
	env := startService(t, newFakeReader(0), ledger.ServiceConfig{MaxInFlight: 8})
	const n = 40
	var wg sync.WaitGroup
	seqs := make(chan uint64, n)
	for i := range n {
		wg.Go(func() {
			r, err := env.client.Grant(context.Background(), events.Command{SubjectID: "person-" + strconv.Itoa(i), Purpose: "marketing"})
			if assert.NoError(t, err) {
				seqs <- r.Seq
			}
		})
	}
	wg.Wait()
	close(seqs)
	var got []uint64
	for seq := range seqs {
		got = append(got, seq)
	}
	slices.Sort(got)
	want := make([]uint64, n)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	assert.Equal(t, want, got, "every command appended exactly once")
}

func TestServiceStatsCountAsyncAnswersAndShowIndexHealth(t *testing.T) {
	health := map[string]any{"index_seq": 7, "ready": true}
	env := startService(t, newFakeReader(0), ledger.ServiceConfig{Health: func() any { return health }})

	_, err := env.client.Revoke(t.Context(), events.Command{SubjectID: "a", Purpose: "p"})
	require.ErrorIs(t, err, wire.ErrConflict)
	_, err = env.client.Grant(t.Context(), events.Command{SubjectID: "a", Purpose: "p"})
	require.NoError(t, err)

	// What `nats micro stats` and `nats micro info` read.
	msg, err := env.nc.Request("$SRV.STATS."+wire.ServiceName, nil, 5*time.Second)
	require.NoError(t, err)
	var stats micro.Stats
	require.NoError(t, json.Unmarshal(msg.Data, &stats))
	data := map[string]map[string]any{}
	for _, e := range stats.Endpoints {
		var d map[string]any
		require.NoError(t, json.Unmarshal(e.Data, &d), e.Subject)
		data[e.Subject] = d
	}
	assert.Equal(t, float64(1), data[wire.SubjectRevoke]["answered_async"])
	assert.Equal(t, float64(1), data[wire.SubjectRevoke]["async_errors"])
	assert.Equal(t, "409:cannot revoke: there is no consent to revoke for this person and purpose", data[wire.SubjectRevoke]["last_async_error"])
	assert.Equal(t, float64(1), data[wire.SubjectGrant]["answered_async"])
	assert.Equal(t, float64(0), data[wire.SubjectGrant]["async_errors"])
	assert.Equal(t, float64(0), data[wire.SubjectGrant]["in_flight"])
	for _, subj := range []string{wire.SubjectStatus, wire.SubjectCheck, wire.SubjectList} {
		assert.Equal(t, map[string]any{"index_seq": float64(7), "ready": true}, data[subj]["index"], subj)
	}
	assert.NotContains(t, data[wire.SubjectGrant], "index")
}

func TestNewServiceRefusesMissingParts(t *testing.T) {
	s, nc, _ := natstest.Run(t)
	_, err := ledger.NewService(natstest.Connect(t, s), nil, newFakeReader(0), ledger.ServiceConfig{})
	require.Error(t, err)
	_, err = ledger.NewService(nc, &ledger.Ledger{}, nil, ledger.ServiceConfig{})
	require.Error(t, err)
}

// FuzzServiceRequests sends arbitrary bodies to every endpoint: each gets
// an answer, never a 500, and a 400 names the field at fault.
func FuzzServiceRequests(f *testing.F) {
	for _, seed := range []string{
		`{"subject":"alice","purpose":"marketing"}`,
		`{"subject":"alice","purpose":"marketing","min_seq":1,"min_policy_version":2}`,
		`{"tenant":"acme","subject":"a.b*>","purpose":"p","ttl":"1h","idempotency_key":"k","expected_seq":0}`,
		`{"subject":"alice","after_seq":3,"limit":2}`,
		`{"subject":"","purpose":"p"}`,
		`{"subject":"a","purpose":"p","evidence":{"ip":"192.0.2.1"},"occurred_at":"2026-01-02T15:04:05Z"}`,
		`{"subject":"a","purpose":"p","expires_at":"yesterday"}`,
		`[]`, `null`, `"x"`, `{`, `{}{}`, ``,
	} {
		f.Add([]byte(seed))
	}
	reader := newFakeReader(1, consent("alice", "marketing", events.StateGranted, 1, 1, nil))
	env := startService(f, reader, ledger.ServiceConfig{MinSeqTimeout: 10 * time.Millisecond})
	subjects := []string{
		wire.SubjectRequest, wire.SubjectGrant, wire.SubjectDeny, wire.SubjectRevoke,
		wire.SubjectStatus, wire.SubjectCheck, wire.SubjectList, wire.SubjectHistory,
		wire.SubjectPurposeSet, wire.SubjectPurposeGet, wire.SubjectPurposeList,
	}
	fieldProblem := regexp.MustCompile(`^.+: \S`) // "<field>: <problem>"
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, subj := range subjects {
			msg, err := env.nc.Request(subj, body, 5*time.Second)
			require.NoError(t, err, subj)
			code, description := msg.Header.Get(micro.ErrorCodeHeader), msg.Header.Get(micro.ErrorHeader)
			switch code {
			case "":
				assert.True(t, json.Valid(msg.Data), subj)
			case "400":
				assert.Regexp(t, fieldProblem, description, subj)
			case "403", "409", "413", "503":
			default:
				t.Errorf("%s %q: code %s %q", subj, body, code, description)
			}
		}
	})
}
