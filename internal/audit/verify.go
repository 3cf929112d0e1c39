package audit

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of VerifyOptions.
const (
	DefaultMaxProblems  = 100
	DefaultChainHistory = 1 << 16
)

// eventSubjectPrefix starts the subjects of consent events.
const eventSubjectPrefix = "consent.events."

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// Source, when set, is read instead of the stream through js (which
	// may then be nil): a consumer of every message from seq 1 that the
	// service opened (consent.v1.audit.open).
	Source *Source
	Stream string // default DefaultStream
	// Keys are the public keys whose checkpoint signatures are trusted.
	// Without keys, checkpoint signatures are not checked (their chains
	// still are).
	Keys Keyring
	// Live, when set, returns the digest of the live index; Verify
	// compares it with its fresh fold at the same sequence. It is called
	// once, before the replay starts.
	Live func(ctx context.Context) (IndexDigest, error)
	// Anchor, when set, is a chain value the auditor kept from an earlier
	// report: the stream must reach its sequence and hash to it there.
	Anchor *Anchor
	// MaxProblems bounds the problems kept in the report (all are
	// counted); default 100.
	MaxProblems int
	// ChainHistory is how many recent chain values Verify keeps to check
	// checkpoints against (a checkpoint is published a few messages after
	// the sequence it commits to); default 65536 (2 MiB).
	ChainHistory int
	// Progress, when set, is called now and then with the messages
	// checked and the number expected.
	Progress func(done, total uint64)
	// Idle is passed to Replay; default DefaultReplayIdle.
	Idle time.Duration
}

// Anchor is a chain value at a sequence, kept by an auditor from an
// earlier verification (Report.Chain and Report.ChainSeq).
type Anchor struct {
	Seq   uint64
	Chain string
}

// ParseAnchor reads an anchor written as SEQ:CHAIN (Anchor.String).
func ParseAnchor(s string) (*Anchor, error) {
	seqText, chain, ok := strings.Cut(s, ":")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	var head [32]byte
	if !ok || err != nil || seq == 0 || decodeHex32(chain, &head) != nil {
		return nil, fmt.Errorf("anchor %q: want SEQ:CHAIN, a sequence and 64 hex digits, as a verify report prints them", s)
	}
	return &Anchor{Seq: seq, Chain: strings.ToLower(chain)}, nil
}

func (a *Anchor) String() string { return fmt.Sprintf("%d:%s", a.Seq, a.Chain) }

// CheckpointRef describes a checkpoint found in the stream.
type CheckpointRef struct {
	Seq     uint64    `json:"seq"` // where the checkpoint itself is stored
	UpToSeq uint64    `json:"up_to_seq"`
	Chain   string    `json:"chain"`
	Time    time.Time `json:"time"`
	KeyID   string    `json:"key_id"`
}

// LiveComparison is the result of comparing the live index with the fresh
// fold.
type LiveComparison struct {
	Live  IndexDigest `json:"live"`
	Fresh IndexDigest `json:"fresh"` // the fresh fold at Live.IndexSeq
	Match bool        `json:"match"`
	Err   string      `json:"error,omitempty"` // why the live index could not be compared
}

// Report is what Verify found.
type Report struct {
	Stream       string          `json:"stream"`
	FirstSeq     uint64          `json:"first_seq"` // the first sequence delivered
	LastSeq      uint64          `json:"last_seq"`  // the last sequence checked (the stream's last when Verify started)
	Messages     uint64          `json:"messages"`
	Events       uint64          `json:"events"`   // consent events
	Consents     uint64          `json:"consents"` // consents in the fresh fold
	Records      uint64          `json:"records"`  // other hash-chained records (purpose registry)
	Checkpoints  uint64          `json:"checkpoints"`
	Chain        string          `json:"chain,omitempty"` // H(ChainSeq): keep it as the anchor of the next verification
	ChainSeq     uint64          `json:"chain_seq,omitempty"`
	Signed       bool            `json:"signatures_checked"`
	Verified     uint64          `json:"checkpoints_verified"` // checkpoints whose chain (and signature, when Signed) verified
	UpToSeq      uint64          `json:"verified_up_to_seq"`   // the highest up_to_seq among them: the last verified sequence
	LastVerified *CheckpointRef  `json:"last_verified_checkpoint,omitempty"`
	Live         *LiveComparison `json:"live_index,omitempty"`
	Anchor       *Anchor         `json:"anchor,omitempty"`
	AnchorOK     bool            `json:"anchor_ok,omitempty"`
	Problems     []Problem       `json:"problems"`      // the first MaxProblems, by sequence
	ProblemCount uint64          `json:"problem_count"` // all problems
	Took         time.Duration   `json:"took_ns"`

	// Explained are the integrity violations of consent events that an
	// operator quarantined (events.TypeQuarantined): found, but explained
	// in the trail, so they are not problems. By sequence.
	Explained []Explained `json:"explained"`
}

// Explained is a violation a consent.quarantined event explains.
type Explained struct {
	Problem                 // the violation, as verify found it
	QuarantineSeq    uint64 `json:"quarantine_seq"` // where the consent.quarantined is stored
	QuarantineActor  string `json:"quarantine_actor"`
	QuarantineReason string `json:"quarantine_reason"`
}

func (x *Explained) String() string {
	return fmt.Sprintf("%s; quarantined at seq %d by %s: %s", x.Problem.String(), x.QuarantineSeq, x.QuarantineActor, x.QuarantineReason)
}

// OK reports whether every check passed.
func (r *Report) OK() bool { return r.ProblemCount == 0 }

// First returns the problem at the lowest sequence, or nil.
func (r *Report) First() *Problem {
	if len(r.Problems) == 0 {
		return nil
	}
	return &r.Problems[0]
}

// Verify replays the whole stream and checks it (see the package doc and
// docs/audit.md). Problems in the stream are in the Report, not errors:
// Verify returns an error only when it cannot read the stream (or ctx
// ends), with the partial report.
func Verify(ctx context.Context, js jetstream.JetStream, opts VerifyOptions) (*Report, error) {
	started := time.Now()
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.MaxProblems <= 0 {
		opts.MaxProblems = DefaultMaxProblems
	}
	if opts.ChainHistory <= 0 {
		opts.ChainHistory = DefaultChainHistory
	}
	v := newVerifier(opts)
	if opts.Live != nil {
		live, err := opts.Live(ctx)
		if err != nil {
			v.report.Live = &LiveComparison{Err: err.Error()}
		} else {
			v.report.Live = &LiveComparison{Live: live}
			v.liveSeq, v.liveWanted = live.IndexSeq, true
			v.compareLiveBefore(1) // an empty live index compares at once
		}
	}
	var end uint64
	if opts.Source != nil {
		end = opts.Source.LastSeq
	} else {
		stream, err := js.Stream(ctx, opts.Stream)
		if err != nil {
			return v.report, fmt.Errorf("stream %s: %w", opts.Stream, err)
		}
		end = stream.CachedInfo().State.LastSeq
	}
	if v.liveWanted && v.liveSeq > end {
		v.problem(Problem{Seq: v.liveSeq, Check: CheckIndex,
			Reason: fmt.Sprintf("the live index has applied seq %d, but the stream ends at seq %d", v.liveSeq, end)})
		v.liveWanted = false
	}
	v.total = end
	p := runPipeline(runtime.GOMAXPROCS(0), verifySize, v.inspect, v.fold)
	replayed, err := Replay(ctx, js, ReplayOptions{Stream: opts.Stream, EndSeq: end, Idle: opts.Idle, Source: opts.Source}, p.submit)
	p.close()
	v.finish(replayed, err == nil)
	v.report.Took = time.Since(started)
	if opts.Progress != nil {
		opts.Progress(v.report.Messages, v.total)
	}
	return v.report, err
}

// tip is what the fresh fold keeps of one consent (or record subject):
// enough to check the next link and to keep the digest current.
type tip struct {
	seq    uint64
	hash   [32]byte
	entry  [32]byte // ConsentEntry of the folded state
	erased bool     // the event is consent.erased: the next starts a fresh chain
}

// subjectID stands for a NATS subject in the fold's maps: the first 16
// bytes of its SHA-256 (computed for the chain anyway), which keeps a
// consent's entry at a fixed, small size.
type subjectID [16]byte

func subjectIDOf(sum *[32]byte) subjectID { return subjectID(sum[:16]) }

// gapRef is a run of missing sequences, kept to name the consent it
// belonged to once a later event links to it.
type gapRef struct {
	from, to uint64
	problem  int // index in report.Problems, -1 when not kept
	named    bool
}

type verifier struct {
	opts    VerifyOptions
	report  *Report
	next    uint64 // the sequence expected next
	total   uint64
	chain   Chain
	broken  uint64 // the first missing sequence: chain values from here are unknown (0: intact)
	heads   []chainHead
	tips    map[subjectID]tip // by consent subject
	records map[subjectID]tip // by record subject (entry unused)
	digest  StateDigest
	gaps    []gapRef
	// violations are the integrity violations found on consent subjects,
	// by sequence, until a quarantine explains them (explain).
	violations map[uint64]Problem
	explained  map[uint64]bool

	liveSeq    uint64
	liveWanted bool
}

type chainHead struct {
	seq  uint64
	head [32]byte
}

func newVerifier(opts VerifyOptions) *verifier {
	return &verifier{
		opts:    opts,
		report:  &Report{Stream: opts.Stream, Signed: opts.Keys != nil, Anchor: opts.Anchor, Problems: []Problem{}, Explained: []Explained{}},
		next:    1,
		heads:   make([]chainHead, opts.ChainHistory),
		tips:    make(map[subjectID]tip),
		records: make(map[subjectID]tip),

		violations: make(map[uint64]Problem),
		explained:  make(map[uint64]bool),
	}
}

// violation records p, an integrity violation of a consent event, which a
// later consent.quarantined on the same subject may explain.
func (v *verifier) violation(p Problem) {
	v.problem(p)
	if _, _, _, ok := events.ParseConsentSubject(p.Subject); ok {
		v.violations[p.Seq] = p
	}
}

// explain takes the violation a quarantine event at seq names off the
// problems, as explained; a quarantine that names no unexplained violation
// of its consent is a problem itself.
func (v *verifier) explain(m *Msg, ev *events.Event) {
	p, ok := v.violations[ev.QuarantinedSeq]
	if !ok || p.Subject != m.Subject {
		v.problem(Problem{Seq: m.Seq, Subject: m.Subject, Check: CheckQuarantine, Consent: refOf(ev.Key()), EventID: ev.ID,
			Reason: fmt.Sprintf("quarantines seq %d, which is not an unexplained integrity violation of this consent", ev.QuarantinedSeq)})
		return
	}
	delete(v.violations, ev.QuarantinedSeq)
	v.explained[p.Seq] = true
	v.report.ProblemCount--
	if p.Consent == nil {
		p.Consent = refOf(ev.Key())
	}
	v.report.Explained = append(v.report.Explained, Explained{Problem: p, QuarantineSeq: m.Seq, QuarantineActor: ev.Actor, QuarantineReason: ev.Reason})
}

// problem records p, keeping the first MaxProblems; it returns p's index
// in report.Problems or -1.
func (v *verifier) problem(p Problem) int {
	v.report.ProblemCount++
	if len(v.report.Problems) >= v.opts.MaxProblems {
		return -1
	}
	v.report.Problems = append(v.report.Problems, p)
	return len(v.report.Problems) - 1
}

// Kinds of message in the stream.
type msgClass uint8

const (
	classEvent      msgClass = iota // consent.events.>
	classCheckpoint                 // consent.checkpoints.>
	classRecord                     // consent.purposes.>: the purpose registry, hash-chained per subject, not folded
	classStray                      // anything else: the ledger writes nothing there
)

// inspected is a message after the checks that need no state, done on
// the pipeline's workers: decoding, hashes, signatures, and the digest
// entry of the state an event leads to (events.Evolve needs only the
// event).
type inspected struct {
	m        Msg
	class    msgClass
	subjSum  [32]byte // for the chain
	dataSum  [32]byte
	bad      *Problem // a failed stateless check
	ev       *events.Event
	ref      *ConsentRef
	hash     [32]byte // the event's (or record's) hash
	prevHash string
	entry    [32]byte // ConsentEntry of the state the event leads to
	cp       *Checkpoint
}

func (v *verifier) inspect(m *Msg) inspected {
	in := inspected{m: *m}
	in.subjSum = sha256.Sum256([]byte(m.Subject))
	in.dataSum = sha256.Sum256(m.Data)
	switch {
	case strings.HasPrefix(m.Subject, eventSubjectPrefix):
		in.class = classEvent
		v.inspectEvent(&in)
	case events.IsCheckpointSubject(m.Subject):
		in.class = classCheckpoint
		v.inspectCheckpoint(&in)
	case strings.HasPrefix(m.Subject, events.PurposeSubjectPrefix):
		in.class = classRecord
		v.inspectRecord(&in)
	default:
		in.class = classStray
		in.bad = &Problem{Seq: m.Seq, Subject: m.Subject, Check: CheckSubject, Reason: "the ledger writes nothing on this subject"}
	}
	return in
}

func (v *verifier) inspectEvent(in *inspected) {
	m := &in.m
	fail := func(check, reason string) {
		in.bad = &Problem{Seq: m.Seq, Subject: m.Subject, Check: check, Reason: reason, Consent: in.ref}
		if in.ev != nil {
			in.bad.EventID = in.ev.ID
		}
	}
	// The projector's rule: events.CheckMessage.
	ev, check, err := events.CheckMessage(m.Subject, m.Header.Get(events.HeaderEventType), m.Data, false)
	if ev != nil {
		in.ev, in.ref = ev, refOf(ev.Key())
	}
	switch check {
	case "":
	case events.CheckNewer:
		fail(CheckSchema, fmt.Sprintf("written by a newer ledger (%v): upgrade consentctl to verify it", err))
		return
	case events.CheckHash:
		fail(CheckHash, err.Error()+": the event was changed after it was written")
		return
	default:
		fail(check, err.Error())
		return
	}
	_ = decodeHex32(ev.Hash, &in.hash) // VerifyHash passed: 64 hex digits
	in.prevHash = ev.PrevHash
	next := events.Evolve(events.NewConsent(ev.Key()), ev, m.Seq)
	in.entry = ConsentEntry(&next)
}

// inspectRecord checks a hash-chained record that is not a consent event
// (the purpose registry): that it has a hash and a prev_hash, and that the
// hash matches.
func (v *verifier) inspectRecord(in *inspected) {
	m := &in.m
	var head struct {
		Hash     string  `json:"hash"`
		PrevHash *string `json:"prev_hash"`
	}
	fail := func(check, reason string) {
		in.bad = &Problem{Seq: m.Seq, Subject: m.Subject, Check: check, Reason: reason}
	}
	if err := json.Unmarshal(m.Data, &head); err != nil || head.Hash == "" || head.PrevHash == nil {
		fail(CheckDecode, "not a hash-chained record (a JSON object with hash and prev_hash)")
		return
	}
	sum, err := events.HashOf(m.Data)
	if err != nil || sum != head.Hash {
		fail(CheckHash, fmt.Sprintf("recorded hash %q, computed %q: the record was changed after it was written", head.Hash, sum))
		return
	}
	_ = decodeHex32(head.Hash, &in.hash)
	in.prevHash = *head.PrevHash
}

// inspectCheckpoint checks a checkpoint's form and signature.
func (v *verifier) inspectCheckpoint(in *inspected) {
	m := &in.m
	fail := func(reason string) {
		in.bad = &Problem{Seq: m.Seq, Subject: m.Subject, Check: CheckCheckpoint, Reason: reason}
	}
	cp, err := DecodeCheckpoint(m.Data)
	if err != nil {
		fail(err.Error())
		return
	}
	if v.opts.Keys != nil {
		if err := verifyObject(v.opts.Keys, cp.KeyID, cp.Signature, m.Data, "signature"); err != nil {
			fail(err.Error() + ": the checkpoint was not signed by a trusted key, or was changed after signing")
			return
		}
	}
	in.cp = cp
}

// fold runs the checks that need what came before, in stream order: the
// sequence, the chain, the links, the fresh fold and the checkpoints'
// chains.
func (v *verifier) fold(in inspected) {
	r, m := v.report, &in.m
	if r.Messages == 0 {
		r.FirstSeq = m.Seq
	}
	r.Messages++
	if m.Seq != v.next {
		v.gap(v.next, m.Seq-1, "the stream counts it but the server did not deliver it: the message was deleted, or its stored record is corrupt (the server skips a record that fails its checksum)")
	}
	v.compareLiveBefore(m.Seq)
	v.next = m.Seq + 1
	if v.broken == 0 {
		_ = v.chain.addSums(m.Seq, &in.subjSum, &in.dataSum) // in order: checked above
		v.heads[m.Seq%uint64(len(v.heads))] = chainHead{m.Seq, v.chain.Head}
	}

	switch in.class {
	case classEvent:
		r.Events++
	case classCheckpoint:
		r.Checkpoints++
	case classRecord:
		r.Records++
	}
	switch {
	case in.bad != nil && in.class == classEvent:
		v.violation(*in.bad)
	case in.bad != nil:
		v.problem(*in.bad)
	case in.class == classEvent:
		v.foldEvent(&in)
	case in.class == classRecord:
		id := subjectIDOf(&in.subjSum)
		cur, seen := v.records[id]
		if reason, ok := v.link(in.prevHash, cur, seen, m.Seq, nil); !ok {
			v.problem(Problem{Seq: m.Seq, Subject: m.Subject, Check: CheckLink, Reason: reason})
		} else {
			v.records[id] = tip{seq: m.Seq, hash: in.hash}
		}
	case in.class == classCheckpoint:
		v.foldCheckpoint(m, in.cp)
	}

	if v.liveWanted && m.Seq == v.liveSeq {
		v.compareLive()
	}
	if a := v.opts.Anchor; a != nil && m.Seq == a.Seq {
		v.checkAnchor()
	}
	if v.opts.Progress != nil && r.Messages%4096 == 0 {
		v.opts.Progress(r.Messages, v.total)
	}
}

// gap records that sequences from..to were not delivered.
func (v *verifier) gap(from, to uint64, why string) {
	what := fmt.Sprintf("seq %d is missing", from)
	if to > from {
		what = fmt.Sprintf("seqs %d to %d (%d messages) are missing", from, to, to-from+1)
	}
	i := v.problem(Problem{Seq: from, Check: CheckGap, Reason: what + ": " + why})
	v.gaps = append(v.gaps, gapRef{from: from, to: to, problem: i})
	if v.broken == 0 {
		v.broken = from
	}
}

// foldEvent checks an event's link and folds it when it passes.
func (v *verifier) foldEvent(in *inspected) {
	m := &in.m
	id := subjectIDOf(&in.subjSum)
	cur, seen := v.tips[id]
	if reason, ok := v.link(in.prevHash, cur, seen, m.Seq, in.ref); !ok {
		v.violation(Problem{Seq: m.Seq, Subject: m.Subject, Check: CheckLink, Reason: reason, Consent: in.ref, EventID: in.ev.ID})
		return
	}
	if in.ev.Type == events.TypeQuarantined {
		v.explain(m, in.ev)
	}
	if seen {
		v.digest.Remove(cur.entry)
	}
	v.digest.Add(in.entry)
	v.tips[id] = tip{seq: m.Seq, hash: in.hash, entry: in.entry, erased: in.ev.Type == events.TypeErased}
}

// link checks prevHash against the previous event (or record) of the same
// subject: its hash, or "" after a consent.erased, which ends the chain
// (events.Consent.NextPrevHash). When it fails after a gap, the gap is
// named after ref: the missing message is most likely the one the link
// points to.
func (v *verifier) link(prevHash string, cur tip, seen bool, seq uint64, ref *ConsentRef) (string, bool) {
	if seen && cur.erased {
		if prevHash == "" {
			return "", true
		}
		return v.blameGap(fmt.Sprintf("prev_hash is %q, but the consent's previous event (seq %d) is consent.erased, after which a consent starts a fresh chain (want \"\")", prevHash, cur.seq), cur.seq, seq, ref), false
	}
	if !seen {
		if prevHash == "" {
			return "", true
		}
		return v.blameGap(fmt.Sprintf("prev_hash is %q, but verify saw no earlier event of this consent (want \"\")", prevHash), 0, seq, ref), false
	}
	var prev [32]byte
	if decodeHex32(prevHash, &prev) == nil && prev == cur.hash {
		return "", true
	}
	return v.blameGap(fmt.Sprintf("prev_hash is %q, but the consent's previous event (seq %d) has hash %x", prevHash, cur.seq, cur.hash), cur.seq, seq, ref), false
}

// blameGap names the first unnamed gap between after and before (both
// exclusive) after ref, and says so in reason.
func (v *verifier) blameGap(reason string, after, before uint64, ref *ConsentRef) string {
	for i := range v.gaps {
		g := &v.gaps[i]
		if g.named || g.from <= after || g.to >= before {
			continue
		}
		g.named = true
		if g.problem >= 0 {
			p := &v.report.Problems[g.problem]
			p.Consent = ref
			p.Reason += fmt.Sprintf("; the consent's event at seq %d links to an event verify never received, so the missing message was most likely this consent's", before)
		}
		return reason + fmt.Sprintf("; the event it links to is most likely the missing seq %d", g.from)
	}
	return reason
}

// foldCheckpoint checks a checkpoint's chain against the stream's.
func (v *verifier) foldCheckpoint(m *Msg, cp *Checkpoint) {
	r := v.report
	fail := func(reason string) {
		v.problem(Problem{Seq: m.Seq, Subject: m.Subject, Check: CheckCheckpoint, Reason: reason})
	}
	if cp.UpToSeq >= m.Seq {
		fail(fmt.Sprintf("commits to seq %d, which is not before its own seq", cp.UpToSeq))
		return
	}
	if v.broken != 0 && cp.UpToSeq >= v.broken {
		fail(fmt.Sprintf("cannot be checked: it commits to seq %d, and the chain is broken by the gap at seq %d", cp.UpToSeq, v.broken))
		return
	}
	h := v.heads[cp.UpToSeq%uint64(len(v.heads))]
	if h.seq != cp.UpToSeq {
		fail(fmt.Sprintf("cannot be checked: it commits to seq %d, more than %d messages before it", cp.UpToSeq, len(v.heads)))
		return
	}
	var want [32]byte
	if decodeHex32(cp.Chain, &want) != nil || want != h.head {
		from := uint64(1)
		if r.LastVerified != nil {
			from = r.LastVerified.UpToSeq + 1
		}
		fail(fmt.Sprintf("the stream's messages 1 to %d hash to chain %x, but the checkpoint signed %s at %s: a message between seq %d and seq %d was changed, inserted or removed after the checkpoint was made, even though every event hash checks out",
			cp.UpToSeq, h.head, cp.Chain, cp.Time.Format(time.RFC3339), from, cp.UpToSeq))
		return
	}
	r.Verified++
	if cp.UpToSeq >= r.UpToSeq {
		r.UpToSeq = cp.UpToSeq
		r.LastVerified = &CheckpointRef{Seq: m.Seq, UpToSeq: cp.UpToSeq, Chain: cp.Chain, Time: cp.Time, KeyID: cp.KeyID}
	}
}

// compareLiveBefore compares the live index when the next message to
// apply is past the live index's sequence (a gap jumped over it, or the
// index is empty).
func (v *verifier) compareLiveBefore(seq uint64) {
	if v.liveWanted && seq > v.liveSeq {
		v.compareLive()
	}
}

func (v *verifier) compareLive() {
	v.liveWanted = false
	c := v.report.Live
	c.Fresh = IndexDigest{IndexSeq: c.Live.IndexSeq, Consents: v.digest.Count(), Digest: v.digest.Sum()}
	c.Match = c.Fresh == c.Live
	if !c.Match {
		v.problem(Problem{Seq: c.Live.IndexSeq, Check: CheckIndex, Reason: fmt.Sprintf(
			"at seq %d the live index holds %d consents with digest %s, a fresh fold of the stream %d consents with digest %s: the index was changed or folded differently; rebuild it from the stream (delete the index directory and restart consentd)",
			c.Live.IndexSeq, c.Live.Consents, c.Live.Digest, c.Fresh.Consents, c.Fresh.Digest)})
	}
}

func (v *verifier) checkAnchor() {
	a := v.opts.Anchor
	switch {
	case v.broken != 0 && a.Seq >= v.broken:
		v.problem(Problem{Seq: a.Seq, Check: CheckAnchor, Reason: fmt.Sprintf("cannot be checked: the chain is broken by the gap at seq %d", v.broken)})
	case v.chain.HeadHex() != a.Chain:
		v.problem(Problem{Seq: a.Seq, Check: CheckAnchor, Reason: fmt.Sprintf("the stream's messages 1 to %d hash to chain %s, the anchor says %s: the history up to the anchor was changed since it was taken", a.Seq, v.chain.HeadHex(), a.Chain)})
	default:
		v.report.AnchorOK = true
	}
}

// finish checks what the end of the replay tells and completes the report.
func (v *verifier) finish(end ReplayEnd, complete bool) {
	r := v.report
	r.LastSeq = end.EndSeq
	r.Consents = v.digest.Count()
	if complete && end.EndSeq >= v.next {
		v.gap(v.next, end.EndSeq, "the stream counts it but the server did not deliver it: the message was deleted, or its stored record is corrupt (the server skips a record that fails its checksum)")
		v.compareLiveBefore(end.EndSeq + 1)
	}
	if complete && v.liveWanted {
		v.compareLive()
	}
	if a := v.opts.Anchor; complete && a != nil && a.Seq > end.EndSeq {
		v.problem(Problem{Seq: a.Seq, Check: CheckAnchor, Reason: fmt.Sprintf("the stream ends at seq %d, before the anchor's seq %d: messages were lost from its end", end.EndSeq, a.Seq)})
	}
	if v.broken == 0 && v.chain.Seq > 0 {
		r.Chain, r.ChainSeq = v.chain.HeadHex(), v.chain.Seq
	}
	if len(v.explained) > 0 {
		r.Problems = slices.DeleteFunc(r.Problems, func(p Problem) bool {
			return v.explained[p.Seq] && p.Subject != "" && p.Check != CheckQuarantine
		})
	}
	slices.SortStableFunc(r.Problems, func(a, b Problem) int { return cmp.Compare(a.Seq, b.Seq) })
	slices.SortStableFunc(r.Explained, func(a, b Explained) int { return cmp.Compare(a.Seq, b.Seq) })
}

// MarshalText writes the anchor as SEQ:CHAIN.
func (a *Anchor) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText reads an anchor written as SEQ:CHAIN.
func (a *Anchor) UnmarshalText(b []byte) error {
	p, err := ParseAnchor(string(b))
	if err != nil {
		return err
	}
	*a = *p
	return nil
}
