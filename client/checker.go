package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/internal/changefeed"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A Checker answers checks for hot paths from memory. It fills an entry on
// a miss by asking the service (consent.v1.status) and keeps every entry
// coherent by following the stream itself: an ordered consumer on
// consent.events.> and consent.purposes.> updates the cached consents (the
// state after an event follows from the event alone, see events.Evolve)
// and the purposes' current policy versions. A revocation therefore
// reaches it one stream delivery after it is stored, without a round trip.
//
// It never answers from a state older than one it has seen:
//   - every cached consent carries the stream sequence of the event that
//     decided it, and is only ever replaced by a newer one;
//   - a fill asks the service with min_seq set to the last stream sequence
//     the Checker has applied, so the service's answer reflects at least
//     everything the Checker had seen when it asked;
//   - while a fill is in flight, the stream's events for that consent are
//     kept on a placeholder entry (which answers nothing yet), and the
//     fill's answer is cached only if it is newer (by the consent's event
//     sequence) than what they decided, which is cached otherwise;
//   - stream events name a person by subject key, which the Checker cannot
//     compute (a keyed scheme needs the tenant's secret): it learns a
//     person's key from the first fill's answer (its subject_key), and
//     makes the placeholder then; when the stream has moved past what that
//     answer reflects, it asks again, so that nothing the placeholder
//     missed goes unseen;
//   - purposes likewise, by the sequence their version is known at.
//
// While its connection is down the Checker cannot see revocations: it
// drops what it cached and answers every check from the service (which
// then fails with wire.ErrUnavailable) until it is connected again.

// Defaults of CheckerOptions.
const (
	DefaultCheckerEntries = 100_000
)

// minSeqTimeout bounds the Checker's wait for a min_seq it has not
// applied yet when ctx has no earlier deadline: the service's default
// (ledger.DefaultMinSeqTimeout).
const minSeqTimeout = 2 * time.Second

// CheckerOptions configures a Checker. The zero value is ready to use.
type CheckerOptions struct {
	// MaxEntries bounds the consents kept in memory; when full, an
	// arbitrary entry makes room. Default DefaultCheckerEntries.
	MaxEntries int
	// Now is the clock deciding expiry; default time.Now.
	Now func() time.Time
	// Tenant, when set (not "*"), is the only tenant the Checker follows
	// and caches: checks of other tenants go to the service every time.
	// A Checker of a client with ClientOptions.ServiceFeed in a tenant's
	// account must name that tenant (its feed is refused otherwise); by
	// default it follows every tenant.
	Tenant string
}

// CheckerStats counts what a Checker did.
type CheckerStats struct {
	Hits    uint64 // checks answered from memory
	Fills   uint64 // checks that asked the service
	Applied uint64 // stream events applied
	Entries int    // consents in memory
}

// Checker is a cached, stream-coherent consent check; see NewChecker. It
// is safe for concurrent use.
type Checker struct {
	client *Client
	opts   CheckerOptions
	cc     jetstream.ConsumeContext
	status chan nats.Status
	// With ClientOptions.ServiceFeed: the watch that follows the stream
	// instead of cc, and the end of its goroutine.
	stopFeed func()
	feedDone chan struct{}

	mu       sync.RWMutex
	consents map[consentID]*cachedConsent
	purposes map[events.PurposeKey]*cachedPurpose
	// tokens are the subject keys of the persons looked up, learnt from
	// the service's answers (Status.SubjectKey).
	tokens map[personID]string

	applied   atomic.Uint64 // the last stream sequence applied (or known to be reflected by fills)
	connected atomic.Bool
	hits      atomic.Uint64
	fills     atomic.Uint64
	events    atomic.Uint64

	notifyMu sync.Mutex
	advanced chan struct{} // closed and replaced when applied moves

	done chan struct{}
	once sync.Once
}

// cachedConsent is one consent in memory. A placeholder (filled false)
// stands for a fill in flight: the newest stream event for the consent
// seen meanwhile is kept in pending, for the fill to compare with.
type cachedConsent struct {
	key     events.Key // as the first lookup named it, with the person's id
	c       events.Consent
	filled  bool
	pending *events.Consent
	purpose *cachedPurpose // shared by the consents of one purpose
}

// cachedPurpose is a purpose's required policy version, once known, as of
// the stream sequence asOf. Its fields change under the Checker's lock.
type cachedPurpose struct {
	required int
	asOf     uint64
	known    bool
}

// learn records that the purpose requires version required as of seq,
// unless something newer is known.
func (p *cachedPurpose) learn(required int, seq uint64) {
	if !p.known || seq > p.asOf {
		p.required, p.asOf, p.known = required, seq, true
	}
}

// purpose returns the cell of a purpose, made when missing. The caller
// holds the write lock.
func (k *Checker) purpose(pk events.PurposeKey) *cachedPurpose {
	p := k.purposes[pk]
	if p == nil {
		p = &cachedPurpose{}
		k.purposes[pk] = p
	}
	return p
}

// NewChecker starts a Checker over the client's connection: it follows the
// stream (ClientOptions.Stream) from its current end. It needs JetStream
// access to the stream, or with ClientOptions.ServiceFeed the service's
// feed (an ephemeral feed of opts.Tenant), and the consent service for
// fills. Close it when done; the client stays the caller's.
//
// Errors: a *events.FieldError for an invalid opts.Tenant; the errors of
// opening the stream's consumer, or of Client.Watch.
func NewChecker(ctx context.Context, client *Client, opts CheckerOptions) (*Checker, error) {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultCheckerEntries
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tenant == "" {
		opts.Tenant = "*"
	}
	if opts.Tenant != "*" {
		if err := events.ValidateName("tenant", opts.Tenant); err != nil {
			return nil, err
		}
	}
	k := &Checker{
		client:   client,
		opts:     opts,
		consents: make(map[consentID]*cachedConsent),
		purposes: make(map[events.PurposeKey]*cachedPurpose),
		tokens:   make(map[personID]string),
		advanced: make(chan struct{}),
		done:     make(chan struct{}),
	}
	if client.feed {
		if err := k.followFeed(ctx); err != nil {
			return nil, err
		}
		return k, nil
	}
	js, err := jetstream.New(client.nc)
	if err != nil {
		return nil, fmt.Errorf("consent: checker: %w", err)
	}
	stream, err := js.Stream(ctx, client.stream)
	if err != nil {
		return nil, fmt.Errorf("consent: checker: stream %s: %w", client.stream, err)
	}
	// Everything up to the stream's end now is reflected in what fills
	// return (they ask with min_seq at least this); the consumer brings
	// the rest.
	last := stream.CachedInfo().State.LastSeq
	k.applied.Store(last)
	filters := []string{events.StreamSubjects, events.PurposeSubjects}
	if opts.Tenant != "*" {
		filters = (&changefeed.Spec{Tenant: opts.Tenant}).Filters()
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    last + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("consent: checker: follow %s: %w", client.stream, err)
	}
	k.status = client.nc.StatusChanged(nats.CONNECTED, nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	k.connected.Store(client.nc.IsConnected())
	go k.watchConnection()
	k.cc, err = cons.Consume(k.apply)
	if err != nil {
		k.Close()
		return nil, fmt.Errorf("consent: checker: follow %s: %w", client.stream, err)
	}
	return k, nil
}

// followFeed follows the stream through an ephemeral feed the service
// opens (ClientOptions.ServiceFeed), from the stream's end as the service
// saw it. The watch reopens itself after a gap; when its consumer is lost
// (gone after a long disconnection), followFeed's goroutine opens a new
// one after the last change applied.
func (k *Checker) followFeed(ctx context.Context) error {
	w, err := k.client.Watch(ctx, WatchOptions{Tenant: k.opts.Tenant})
	if err != nil {
		return fmt.Errorf("consent: checker: %w", err)
	}
	if w.feedStart == 0 {
		w.Stop()
		return errors.New("consent: checker: the service's feed did not say where it starts")
	}
	w.loaded = true // the Checker keeps its own registry
	k.applied.Store(w.feedStart - 1)
	k.status = k.client.nc.StatusChanged(nats.CONNECTED, nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	k.connected.Store(k.client.nc.IsConnected())
	go k.watchConnection()
	runCtx, stop := context.WithCancel(context.Background())
	k.stopFeed, k.feedDone = stop, make(chan struct{})
	go func() {
		defer close(k.feedDone)
		defer w.Stop()
		for {
			ch, err := w.Next(runCtx)
			if err == nil {
				k.apply(ch.msg)
				continue
			}
			if runCtx.Err() != nil {
				return
			}
			// The feed failed (its consumer is gone): a new one after the
			// last change applied, once a second at most.
			select {
			case <-runCtx.Done():
				return
			case <-time.After(time.Second):
			}
			w.iter.Stop()
			from := w.lastSeq + 1
			if w.lastSeq == 0 {
				from = w.feedStart
			}
			if err := w.startFeed(runCtx, from); err == nil {
				w.lastConsSeq = 0
			}
		}
	}()
	return nil
}

// Close stops following the stream. Checks then go to the service, every
// time.
func (k *Checker) Close() {
	k.once.Do(func() {
		close(k.done)
		if k.cc != nil {
			k.cc.Stop()
		}
		if k.stopFeed != nil {
			k.stopFeed()
			<-k.feedDone
		}
		k.client.nc.RemoveStatusListener(k.status)
		k.connected.Store(false)
	})
}

// watchConnection drops the cache when the connection goes down: events
// missed meanwhile would leave it stale. The ordered consumer resumes
// after the last event it delivered once the connection is back.
func (k *Checker) watchConnection() {
	for {
		select {
		case <-k.done:
			return
		case s := <-k.status:
			switch s {
			case nats.CONNECTED:
				k.connected.Store(true)
			default:
				k.connected.Store(false)
				k.mu.Lock()
				clear(k.consents)
				clear(k.purposes)
				k.mu.Unlock()
			}
		}
	}
}

// errDisconnected answers the checks of a Checker whose connection is
// down: fail closed, at once.
var errDisconnected = &wire.Error{Code: 503, Description: "the checker's NATS connection is down; retry later"}

// Stats returns the counters so far.
func (k *Checker) Stats() CheckerStats {
	k.mu.RLock()
	n := len(k.consents)
	k.mu.RUnlock()
	return CheckerStats{Hits: k.hits.Load(), Fills: k.fills.Load(), Applied: k.events.Load(), Entries: n}
}

// AppliedSeq returns the last stream sequence the Checker reflects.
func (k *Checker) AppliedSeq() uint64 { return k.applied.Load() }

// WaitSeq returns once the Checker has applied the stream up to seq, or
// with ctx's error.
func (k *Checker) WaitSeq(ctx context.Context, seq uint64) error {
	for {
		k.notifyMu.Lock()
		advanced := k.advanced
		k.notifyMu.Unlock()
		if k.applied.Load() >= seq {
			return nil
		}
		select {
		case <-advanced:
		case <-ctx.Done():
			return ctx.Err()
		case <-k.done:
			return errors.New("consent: checker closed")
		}
	}
}

// apply is the consumer callback: it folds one stream message into the
// entries it concerns.
func (k *Checker) apply(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		return
	}
	seq := meta.Sequence.Stream
	if strings.HasPrefix(msg.Subject(), events.PurposeSubjectPrefix) {
		k.mu.Lock()
		if ev, err := events.DecodePurposeEvent(msg.Data()); err == nil && ev.Key().NATSSubject() == msg.Subject() {
			k.purpose(ev.Key()).learn(ev.PolicyVersion, seq)
		}
		k.advance(seq)
		k.mu.Unlock()
	} else if subj := msg.Subject(); strings.HasPrefix(subj, consentEventsPrefix) {
		// The projector's rule (events.CheckMessage): a message that fails
		// it marks its consent, which is then not allowed until the
		// service says otherwise.
		// A consumed message's data is its own (events.DecodeOwned).
		ev, check, _ := events.CheckMessage(subj, msg.Headers().Get(events.HeaderEventType), msg.Data(), true)
		k.mu.Lock()
		switch {
		case check == "":
			if e, ok := k.consents[idOf(ev.Key())]; ok {
				k.applyEvent(e, ev, seq)
			}
		case check != events.CheckNewer:
			k.taint(subj, seq)
		}
		k.advance(seq)
		k.mu.Unlock()
	}
	k.events.Add(1)
	k.notifyMu.Lock()
	close(k.advanced)
	k.advanced = make(chan struct{})
	k.notifyMu.Unlock()
}

// advance records that the stream is applied up to seq. The caller holds
// the write lock: a fill that makes a placeholder and then reads applied
// under it knows that every event at or below what it reads found the
// cache without the placeholder, and every later one will find it.
func (k *Checker) advance(seq uint64) {
	if seq > k.applied.Load() {
		k.applied.Store(seq)
	}
}

// consentEventsPrefix starts the subjects of consent events.
const consentEventsPrefix = "consent.events."

// applyEvent folds a checked stream event at seq into its entry. The
// caller holds the write lock.
//
// An entry marked by a failed check stays marked (only the service can
// tell what a quarantine clears: the entry is dropped and filled again).
// An event that does not link to the entry's known last event marks it,
// as the projector does. An entry filled from the service with events
// does not know its last event's hash: an event that would allow the
// action there (a grant, a quarantine) drops it, to be filled again; any
// other is applied.
func (k *Checker) applyEvent(e *cachedConsent, ev *events.Event, seq uint64) {
	key := e.key
	hashKnown := e.c.Seq == 0 || e.c.Hash != "" // no events: the link is ""
	switch {
	case e.filled && seq <= e.c.Seq:
	case e.filled && e.c.ViolationSeq != 0:
		if ev.Type == events.TypeQuarantined {
			delete(k.consents, idOf(key))
		}
	case e.filled && hashKnown && ev.PrevHash != e.c.NextPrevHash():
		e.c.ViolationSeq = seq
	case e.filled && !hashKnown && (ev.Type == events.TypeGranted || ev.Type == events.TypeQuarantined):
		delete(k.consents, idOf(key))
	case e.filled:
		e.c = evolveFor(key, ev, seq)
	case e.pending == nil || (seq > e.pending.Seq && e.pending.ViolationSeq == 0):
		c := evolveFor(key, ev, seq)
		e.pending = &c
	}
}

// consentID names a consent whatever names its person: tenant, purpose
// and subject key. Events of schema version 2 and consent.erased name the
// person by the subject key only; lookups, by the id.
type consentID struct{ tenant, purpose, token string }

func idOf(k events.Key) consentID { return consentID{k.Tenant, k.Purpose, k.Token()} }

// personID names a person as a lookup does: tenant and (normalised) id.
type personID struct{ tenant, subject string }

// keyOf returns key with the subject key the Checker learnt for its
// person, and false when it has not learnt it. The caller holds mu.
func (k *Checker) keyOf(key events.Key) (events.Key, bool) {
	token, ok := k.tokens[personID{key.Tenant, key.SubjectID}]
	key.SubjectKey = token
	return key, ok
}

// learnToken records the subject key of key's person, as the service
// answered it. It remembers as many persons as MaxEntries consents:
// beyond that an arbitrary one is forgotten (that person's next check
// asks the service). The caller holds the write lock.
func (k *Checker) learnToken(key events.Key, token string) {
	p := personID{key.Tenant, key.SubjectID}
	if _, ok := k.tokens[p]; ok {
		return
	}
	if len(k.tokens) >= k.opts.MaxEntries {
		for other := range k.tokens {
			delete(k.tokens, other)
			break
		}
	}
	k.tokens[p] = token
}

// evolveFor is the state after ev of the consent that key names, with the
// person's id of key (a sealed event or an erasure does not carry it).
func evolveFor(key events.Key, ev *events.Event, seq uint64) events.Consent {
	c := events.Evolve(events.NewConsent(key), ev, seq)
	c.SubjectID, c.SubjectKey = key.SubjectID, key.SubjectKey
	return c
}

// taint marks the entries of the consent on the NATS subject subj, whose
// message at seq failed a check; a fill in flight answers marked. The
// caller holds the write lock.
func (k *Checker) taint(subj string, seq uint64) {
	for _, e := range k.consents {
		if !e.key.IsNATSSubject(subj) {
			continue
		}
		if e.filled {
			if e.c.ViolationSeq == 0 {
				e.c.ViolationSeq = seq
			}
			continue
		}
		if e.pending == nil || e.pending.ViolationSeq == 0 {
			c := e.c
			if e.pending != nil {
				c = *e.pending
			}
			c.Seq, c.ViolationSeq = seq, seq
			e.pending = &c
		}
	}
}

// Allowed reports whether the consent q asks about allows the action, from
// memory when it can: the fastest form of Check (no status is built). Its
// errors are those of Check but for wire.ErrConsentRequired: a consent that
// does not allow the action is (false, nil).
func (k *Checker) Allowed(ctx context.Context, q wire.StatusQuery) (bool, error) {
	if c, required, ok := k.lookup(ctx, q); ok {
		k.hits.Add(1)
		return c.ViolationSeq == 0 && c.StateAt(k.now(&c)) == events.StateGranted && c.PolicyVersion >= required, nil
	}
	st, err := k.fill(ctx, q)
	if errors.Is(err, wire.ErrConsentRequired) {
		return false, nil
	}
	return st.Allowed, err
}

// Check answers as Client.Check does: the status when the consent allows
// the action, else an *wire.Error matching wire.ErrConsentRequired carrying the
// status. The status's IndexSeq is the stream sequence the Checker has
// applied. With q.MinSeq beyond it, it waits for the stream (bounded by
// ctx and the service's default min_seq wait of 2s) and answers from memory once the stream is
// there; only if that wait fails does it ask the service.
func (k *Checker) Check(ctx context.Context, q wire.StatusQuery) (events.Status, error) {
	if c, required, ok := k.lookup(ctx, q); ok {
		k.hits.Add(1)
		st := c.View(k.now(&c), required)
		st.IndexSeq = k.applied.Load()
		st.SubjectKey = c.SubjectKey
		if !st.Allowed {
			return st, wire.ConsentRequired(st, required)
		}
		return st, nil
	}
	return k.fill(ctx, q)
}

// now returns the time to judge c at: only a consent that can expire needs
// the clock (which costs more than the rest of a cached check).
func (k *Checker) now(c *events.Consent) time.Time {
	if c.ExpiresAt == nil {
		return time.Time{}
	}
	return k.opts.Now()
}

// lookup returns the cached consent and the policy version it must have,
// when the Checker can answer q from memory. A q.MinSeq the stream has not
// reached yet is waited for first (bounded by 2s, the service's default min_seq wait).
func (k *Checker) lookup(ctx context.Context, q wire.StatusQuery) (events.Consent, int, bool) {
	if !k.connected.Load() {
		return events.Consent{}, 0, false
	}
	if q.MinSeq > k.applied.Load() {
		waitCtx, cancel := context.WithTimeout(ctx, minSeqTimeout)
		err := k.WaitSeq(waitCtx, q.MinSeq)
		cancel()
		if err != nil {
			return events.Consent{}, 0, false // the service decides
		}
	}
	subject, err := events.NormalizeSubjectID(q.SubjectID)
	if err != nil {
		return events.Consent{}, 0, false // fill refuses it
	}
	key := events.Key{Tenant: q.Tenant, SubjectID: subject, Purpose: q.Purpose}
	if key.Tenant == "" {
		key.Tenant = events.DefaultTenant
	}
	k.mu.RLock()
	key, ok := k.keyOf(key)
	var e *cachedConsent
	if ok {
		e, ok = k.consents[idOf(key)]
	}
	var c events.Consent
	required := q.MinPolicyVersion
	if ok {
		ok = e.filled && e.purpose.known
		c = e.c
		if required <= 0 {
			required = e.purpose.required
		}
	}
	k.mu.RUnlock()
	return c, required, ok
}

// fill asks the service about q (with min_seq at least what the Checker
// has applied) and caches the answer unless the stream has shown a newer
// state meanwhile, which it then answers from.
func (k *Checker) fill(ctx context.Context, q wire.StatusQuery) (events.Status, error) {
	k.fills.Add(1)
	if err := q.Validate(); err != nil {
		return events.Status{}, &wire.Error{Code: 400, Description: err.Error()}
	}
	select {
	case <-k.done:
		return k.client.Check(ctx, q)
	default:
	}
	if k.opts.Tenant != "*" && events.OrDefaultTenant(q.Tenant) != k.opts.Tenant {
		return k.client.Check(ctx, q) // a tenant the Checker does not follow
	}
	if !k.connected.Load() {
		return events.Status{}, errDisconnected
	}
	key := q.Key()
	pk := events.PurposeKey{Tenant: key.Tenant, Purpose: key.Purpose}
	k.mu.Lock()
	key, known := k.keyOf(key)
	if known {
		k.placeholder(key, pk)
	}
	ask := wire.StatusQuery{Tenant: key.Tenant, SubjectID: q.SubjectID, Purpose: q.Purpose, MinSeq: max(q.MinSeq, k.applied.Load())}
	k.mu.Unlock()

	var st events.Status
	var err error
	for {
		st, err = k.client.Status(ctx, ask)
		k.mu.Lock()
		if err != nil || known {
			break
		}
		// The person's subject key, learnt from the answer (a service
		// that does not send it keys subjects by sha256-16, which it
		// names). The placeholder exists from here on: the events the
		// stream brought before it, after what the answer reflects, are
		// in the answer asked for again.
		token := st.SubjectKey
		if token == "" {
			token = events.SubjectKey(key.Tenant, key.SubjectID)
		}
		k.learnToken(key, token)
		key.SubjectKey, known = token, true
		k.placeholder(key, pk)
		applied := k.applied.Load()
		if applied <= st.IndexSeq {
			break
		}
		ask.MinSeq = applied
		k.mu.Unlock()
	}
	id := idOf(key)
	e := k.consents[id]
	if err != nil {
		if e != nil && !e.filled {
			delete(k.consents, id)
		}
		k.mu.Unlock()
		return events.Status{}, err
	}
	p := k.purpose(pk)
	p.learn(st.RequiredPolicyVersion, st.IndexSeq)
	// The newest of: the service's answer, what the stream showed during
	// the fill, what another fill cached meanwhile.
	c := consentOf(st)
	c.SubjectKey = key.SubjectKey
	if e != nil {
		if e.pending != nil && e.pending.Seq > c.Seq {
			c = *e.pending
		}
		if e.filled && e.c.Seq >= c.Seq {
			c = e.c
		}
		e.c, e.filled, e.pending = c, true, nil
	} // else dropped meanwhile (the connection went down): answer, do not cache
	required := p.required
	k.mu.Unlock()

	if q.MinPolicyVersion > 0 {
		required = q.MinPolicyVersion
	}
	out := c.View(k.opts.Now(), required)
	out.IndexSeq = max(st.IndexSeq, k.applied.Load())
	out.SubjectKey = key.SubjectKey
	if !out.Allowed {
		return out, wire.ConsentRequired(out, required)
	}
	return out, nil
}

// placeholder makes the entry of key (which has its subject key) when
// there is none, for a fill in flight. The caller holds the write lock.
func (k *Checker) placeholder(key events.Key, pk events.PurposeKey) {
	id := idOf(key)
	if _, ok := k.consents[id]; !ok {
		k.makeRoom()
		k.consents[id] = &cachedConsent{key: key, c: events.NewConsent(key), purpose: k.purpose(pk)}
	}
}

// makeRoom evicts an arbitrary filled entry when the cache is full.
// Placeholders stay: they track a fill in flight. The caller holds mu.
func (k *Checker) makeRoom() {
	if len(k.consents) < k.opts.MaxEntries {
		return
	}
	for key, e := range k.consents {
		if e.filled {
			delete(k.consents, key)
			return
		}
	}
}

// consentOf is the state a status describes: what View needs to judge it
// again later. A status expired by the clock is kept as expired (it stays
// so).
func consentOf(st events.Status) events.Consent {
	c := events.Consent{
		Tenant: st.Tenant, SubjectID: st.SubjectID, Purpose: st.Purpose,
		State: st.State, PolicyVersion: st.PolicyVersion, ExpiresAt: st.ExpiresAt,
		Seq: st.Seq, EventID: st.EventID, ViolationSeq: st.ViolationSeq,
	}
	if st.UpdatedAt != nil {
		c.UpdatedAt = *st.UpdatedAt
	}
	return c
}
