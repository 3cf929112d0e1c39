package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/consentledger/consent/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultDuplicates is the default Nats-Msg-Id duplicate window of the
// stream (the server's own default).
const DefaultDuplicates = 2 * time.Minute

// StreamOptions configures the CONSENT stream EnsureStream creates.
type StreamOptions struct {
	Name       string        // default DefaultStream
	Replicas   int           // default 1
	Duplicates time.Duration // Nats-Msg-Id window; default DefaultDuplicates, at least 100ms
	// SubjectKeys is the subject key scheme a new stream records in its
	// metadata (events.SubjectKeySchemeMetadata), which every Ledger over
	// it then uses: events.SubjectKeyHMAC for a ledger with a key store
	// (Options.Keys), which computes it. Default events.SubjectKeySHA256.
	// An existing stream keeps the scheme it records.
	SubjectKeys events.SubjectKeyScheme
}

func (o StreamOptions) withDefaults() StreamOptions {
	if o.Name == "" {
		o.Name = wire.DefaultStream
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Duplicates <= 0 {
		o.Duplicates = DefaultDuplicates
	}
	if o.SubjectKeys == "" {
		o.SubjectKeys = events.SubjectKeySHA256
	}
	return o
}

// Config returns the configuration EnsureStream creates the stream with:
// file storage, limits retention with no limit that could drop an event,
// deletes, purges and roll-ups denied, direct get allowed (fast reads of a
// consent's last event and batched history reads) and atomic batch publish
// allowed (the road to group commit).
func (o StreamOptions) Config() jetstream.StreamConfig {
	o = o.withDefaults()
	return jetstream.StreamConfig{
		Name:               o.Name,
		Description:        "Consent Ledger audit trail: immutable, one subject per consent",
		Subjects:           CapturedSubjects(),
		Retention:          jetstream.LimitsPolicy,
		MaxConsumers:       -1,
		MaxMsgs:            -1,
		MaxBytes:           -1,
		MaxAge:             0,
		MaxMsgsPerSubject:  -1,
		Discard:            jetstream.DiscardNew,
		Storage:            jetstream.FileStorage,
		Replicas:           o.Replicas,
		Duplicates:         o.Duplicates,
		DenyDelete:         true,
		DenyPurge:          true,
		AllowRollup:        false,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		Metadata: map[string]string{
			"consent_schema": "v1",
			// How the person's id becomes the subject token; a stream
			// without the entry uses SubjectKeySHA256.
			events.SubjectKeySchemeMetadata: string(o.SubjectKeys),
		},
	}
}

// CapturedSubjects returns the subject filters the stream captures: the
// consent events and the other kinds of message the ledger keeps beside
// them (signed checkpoints, purpose registry events). A fresh slice on
// every call.
func CapturedSubjects() []string {
	return []string{events.StreamSubjects, events.CheckpointSubjects, events.PurposeSubjects}
}

// ErrUnsafeStream is matched by the error EnsureStream returns for an
// existing stream whose settings would let events be lost or that the
// ledger cannot append to or read from.
var ErrUnsafeStream = errors.New("stream is not safe for the audit trail")

// StreamError lists what is wrong with an existing stream, one problem per
// setting, each naming the setting, its value and the consequence.
type StreamError struct {
	Stream   string
	Problems []string
}

func (e *StreamError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString("stream ")
		b.WriteString(e.Stream)
		b.WriteString(" ")
		b.WriteString(p)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrUnsafeStream) true.
func (e *StreamError) Is(target error) bool { return target == ErrUnsafeStream }

// EnsureStream creates the stream with opts.Config(), or checks an existing
// one of that name. It refuses a stream whose settings would let events be
// deleted, purged, rolled up, aged out or lost, or that the ledger cannot
// append to or read from, with a *StreamError (matching ErrUnsafeStream)
// that names every offending setting. An existing stream is never changed
// but for one thing: a subject filter of CapturedSubjects it lacks is
// added by an update (capturing more deletes nothing; a stream made by an
// older version lacks the checkpoints). Its replica count and duplicate
// window are taken as they are.
//
// An existing stream keeps the subject key scheme it records
// (StreamSubjectKeyScheme), whatever opts.SubjectKeys says; one that
// records a scheme this ledger does not know is refused (ErrUnsafeStream).
//
// Other errors come from JetStream (no JetStream, no permission, timeout),
// and a *events.FieldError naming "subject_keys" for an unknown
// opts.SubjectKeys.
func EnsureStream(ctx context.Context, js jetstream.JetStream, opts StreamOptions) (jetstream.Stream, error) {
	if opts.SubjectKeys != "" && !opts.SubjectKeys.Known() {
		return nil, &events.FieldError{Field: "subject_keys", Problem: fmt.Sprintf("%q is no subject key scheme (%s, %s)", opts.SubjectKeys, events.SubjectKeySHA256, events.SubjectKeyHMAC)}
	}
	cfg := opts.Config()
	stream, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		stream, err = js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Created by someone else since we looked, with another
			// config: check theirs.
			stream, err = js.Stream(ctx, cfg.Name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	if problems := CheckStreamConfig(stream.CachedInfo().Config); len(problems) > 0 {
		return nil, &StreamError{Stream: cfg.Name, Problems: problems}
	}
	if stream, err = addMissingSubjects(ctx, js, stream); err != nil {
		return nil, err
	}
	if err := waitForDirectGet(ctx, stream); err != nil {
		return nil, fmt.Errorf("stream %s: direct get does not answer: %w", cfg.Name, err)
	}
	return stream, nil
}

// waitForDirectGet returns once the stream answers direct gets, which the
// ledger reads with. Right after a replicated stream is created its
// replicas may not have subscribed yet, and a read gets no responders.
func waitForDirectGet(ctx context.Context, stream jetstream.Stream) error {
	// No consent can live on this subject: "_" starts no valid tenant.
	const probe = "consent.events._probe._probe._probe"
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		_, err := stream.GetLastMsgForSubject(ctx, probe)
		if err == nil || errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(delay):
		}
	}
}

// addMissingSubjects adds the filters of CapturedSubjects that the stream
// lacks, by an update that changes nothing else.
func addMissingSubjects(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream) (jetstream.Stream, error) {
	cfg := stream.CachedInfo().Config
	var missing []string
	for _, subj := range CapturedSubjects() {
		if !slices.Contains(cfg.Subjects, subj) {
			missing = append(missing, subj)
		}
	}
	if len(missing) == 0 {
		return stream, nil
	}
	cfg.Subjects = append(slices.Clone(cfg.Subjects), missing...)
	updated, err := js.UpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("stream %s: add subjects %v: %w", cfg.Name, missing, err)
	}
	return updated, nil
}

// CheckStreamConfig returns one line for every setting of cfg that makes it
// unfit to hold the audit trail, each saying the setting, its value and what
// it would do to events; none for a fit stream. Count and size limits are
// accepted with the discard policy "new" (the stream fails closed: appends
// are refused, nothing is dropped).
func CheckStreamConfig(cfg jetstream.StreamConfig) []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }

	if cfg.Mirror != nil {
		add("is a mirror of %s (mirror is set): events cannot be appended to it", cfg.Mirror.Name)
	}
	if !slices.Contains(cfg.Subjects, events.StreamSubjects) {
		add("does not capture %s (subjects are %v): events would not be stored", events.StreamSubjects, cfg.Subjects)
	}
	if cfg.SubjectTransform != nil {
		add("transforms subjects (subject_transform is %s to %s): events would be stored under other subjects",
			cfg.SubjectTransform.Source, cfg.SubjectTransform.Destination)
	}
	if cfg.Storage != jetstream.FileStorage {
		add("keeps messages in memory (storage is %s): events would be lost when the server stops", strings.ToLower(cfg.Storage.String()))
	}
	if cfg.Retention != jetstream.LimitsPolicy {
		add("deletes acknowledged messages (retention is %s): events would be deleted once consumed", strings.ToLower(cfg.Retention.String()))
	}
	if !cfg.DenyDelete {
		add("allows deleting messages (deny_delete is false): events could be deleted")
	}
	if !cfg.DenyPurge {
		add("allows purge (deny_purge is false): events could be purged")
	}
	if cfg.AllowRollup {
		add("allows roll-ups (allow_rollup_hdrs is true): one message could replace a consent's events")
	}
	if cfg.MaxAge > 0 {
		add("ages out messages (max_age is %s): older events would be deleted", cfg.MaxAge)
	}
	if cfg.MaxMsgsPerSubject > 0 {
		add("limits messages per subject (max_msgs_per_subject is %d): a consent's older events would be dropped, or its new ones refused", cfg.MaxMsgsPerSubject)
	}
	if cfg.MaxMsgs > 0 && cfg.Discard != jetstream.DiscardNew {
		add("limits the message count with discard old (max_msgs is %d): the oldest events would be dropped", cfg.MaxMsgs)
	}
	if cfg.MaxBytes > 0 && cfg.Discard != jetstream.DiscardNew {
		add("limits its size with discard old (max_bytes is %d): the oldest events would be dropped", cfg.MaxBytes)
	}
	if cfg.AllowMsgTTL {
		add("allows per-message TTLs (allow_msg_ttl is true): events could be published to expire")
	}
	if cfg.SubjectDeleteMarkerTTL > 0 {
		add("places subject delete markers (subject_delete_marker_ttl is %s): messages that are not events would enter a consent's history", cfg.SubjectDeleteMarkerTTL)
	}
	if cfg.AllowMsgCounter {
		add("is a counter stream (allow_msg_counter is true): messages would be counter updates, not events")
	}
	if cfg.AllowMsgSchedules {
		add("allows message schedules (allow_msg_schedules is true): scheduled messages could roll up a consent's events")
	}
	if cfg.Sealed {
		add("is sealed (sealed is true): no event can be appended")
	}
	if cfg.NoAck {
		add("does not acknowledge publishes (no_ack is true): appends could not be confirmed")
	}
	if cfg.PersistMode == jetstream.AsyncPersistMode {
		add("acknowledges before writing (persist_mode is async): acknowledged events could be lost in a crash")
	}
	if !cfg.AllowDirect {
		add("does not allow direct get (allow_direct is false): the ledger reads histories with direct get")
	}
	if scheme := StreamSubjectKeyScheme(cfg); !scheme.Known() {
		add("keys its subjects with %q (metadata %s), a scheme this ledger does not know (%s, %s): it cannot find the consents' histories",
			scheme, events.SubjectKeySchemeMetadata, events.SubjectKeySHA256, events.SubjectKeyHMAC)
	}
	return p
}
