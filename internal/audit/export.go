package audit

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/consentledger/consent/events"
	"github.com/nats-io/nats.go/jetstream"
)

// Formats of Export.
const (
	FormatJSONL = "jsonl"
	FormatCSV   = "csv"
	// FormatRaw writes every message of the stream (events, checkpoints,
	// purpose records), each as {"seq", "stored_at", "nats_subject",
	// "payload_base64"}: the exact stored bytes, from which an auditor
	// recomputes the chain and checks the checkpoints offline
	// (docs/verify_chain.py).
	FormatRaw = "raw"
)

// DefaultClockSkew is how far recorded_at (the ledger's clock) and the
// stream's storage time (the NATS server's clock) may disagree. Export
// starts reading this long before --since and stops this long after
// --until, and selects by recorded_at.
const DefaultClockSkew = time.Minute

// ExportOptions selects the events Export writes.
type ExportOptions struct {
	Stream string // default DefaultStream
	// Since and Until select by recorded_at: Since <= recorded_at < Until.
	// Either may be nil (no bound).
	Since, Until *time.Time
	// Tenant and Purpose narrow the export to their subjects (a NATS
	// subject filter, so the server sends only those); "" for all.
	Tenant, Purpose string
	Format          string        // FormatJSONL (default) or FormatCSV
	Skew            time.Duration // default DefaultClockSkew
	Progress        func(done, total uint64)
	MaxBuffered     int           // passed to Replay
	Idle            time.Duration // passed to Replay
	// DataKey, when set, returns the data key named by a v2 event's
	// key_id, so that the export shows its personal fields; an error
	// matching events.ErrKeyErased says the key was destroyed (the event
	// is shown as erased); any other error stops the export. It is called
	// from several goroutines at once. Nil: v2 events are shown sealed.
	DataKey func(keyID string) (events.DataKey, error)
	// Open, when set (and DataKey is not), fills in the personal fields
	// of the sealed event at seq from whoever holds the keys (the
	// service's consent.v1.feed.personal); an error matching
	// events.ErrKeyErased shows the event as erased, any other stops the
	// export. It is called from several goroutines at once.
	Open func(seq uint64, ev *events.Event) error
	// Source, when set, is read instead of the stream through js (which
	// may then be nil): a consumer the service opened with this export's
	// tenant and purpose (consent.v1.audit.open); Since and Until then
	// select from every event it delivers.
	Source *Source
}

// How the personal fields of an exported event are shown (the CSV column
// "personal"; in JSON lines, see Export).
const (
	PersonalClear  = "clear"  // a v1 event: stored in the clear
	PersonalOpened = "opened" // a v2 event opened with its data key
	PersonalErased = "erased" // a v2 event whose data key was destroyed
	PersonalSealed = "sealed" // a v2 event not opened: no DataKey given, or its blob does not open
	PersonalNone   = "none"   // consent.erased, which has no personal fields
)

// ExportStats says what Export wrote.
type ExportStats struct {
	Events     uint64 // events written
	Unreadable uint64 // messages written as unreadable (see Export)
	Skipped    uint64 // read but outside Since..Until
	FirstSeq   uint64 // of the first event written
	LastSeq    uint64 // of the last event written
}

// Export writes the stream's events, oldest first, to w, reading the
// stream with an ordered consumer in constant memory: each event is
// written and forgotten.
//
// JSON lines: one object per event, {"seq": n, "stored_at": time, "event":
// {...}}, the event being the bytes stored in the stream (canonical JSON,
// so its hash can be recomputed from the file). A message that is not a
// readable event is written as {"seq": n, "stored_at": time,
// "unreadable": why, "payload_base64": ...}, never dropped. The row of a
// v2 event (personal fields sealed) adds, after "event", one of
// "personal": {"subject", "actor", "evidence", "reason"} (those set; the
// event opened with opts.DataKey), "erased": true (its data key was
// destroyed), or "sealed": true (not opened: no opts.DataKey, or
// "open_error" says why it did not open).
//
// CSV: a header row and one row per event: seq, stored_at, recorded_at,
// occurred_at, tenant, subject, purpose, type, policy_version, expires_at,
// actor, recorded_by, method, reason, description, evidence (JSON), id,
// prev_hash, hash, subject_key, personal (PersonalClear, PersonalOpened,
// PersonalErased, PersonalSealed or PersonalNone). The personal fields
// (subject, actor, reason, evidence) of a v2 event are empty unless it was
// opened. An unreadable message is a row with its seq, stored_at and the
// reason in the description column.
//
// It returns what it wrote and, on failure, the error (invalid options as
// *events.FieldError, a stream that cannot be read, a failed write).
func Export(ctx context.Context, js jetstream.JetStream, w io.Writer, opts ExportOptions) (ExportStats, error) {
	var st ExportStats
	filter, err := ExportFilter(opts.Tenant, opts.Purpose)
	if err != nil {
		return st, err
	}
	switch opts.Format {
	case "":
		opts.Format = FormatJSONL
	case FormatJSONL, FormatCSV:
	case FormatRaw:
		if opts.Tenant != "" || opts.Purpose != "" || opts.Since != nil || opts.Until != nil {
			return st, &events.FieldError{Field: "format", Problem: "raw is the whole stream: give no tenant, purpose, since or until"}
		}
		return exportRaw(ctx, js, w, opts)
	default:
		return st, &events.FieldError{Field: "format", Problem: `must be "jsonl", "csv" or "raw"`}
	}
	if opts.Since != nil && opts.Until != nil && !opts.Until.After(*opts.Since) {
		return st, &events.FieldError{Field: "until", Problem: "must be after since"}
	}
	if opts.Skew <= 0 {
		opts.Skew = DefaultClockSkew
	}
	ro := ReplayOptions{Stream: opts.Stream, Filter: []string{filter}, MaxBuffered: opts.MaxBuffered, Idle: opts.Idle, Source: opts.Source}
	if opts.Since != nil && opts.Source == nil {
		start := opts.Since.Add(-opts.Skew)
		ro.StartTime = &start
	}
	var stopAfter time.Time
	if opts.Until != nil {
		stopAfter = opts.Until.Add(opts.Skew)
	}

	bw := bufio.NewWriterSize(w, 64<<10)
	out := newExportWriter(bw, opts.Format)
	if err := out.header(); err != nil {
		return st, err
	}
	// Decoding, the cost of an export, runs on the pipeline's workers;
	// selecting and writing, in order, on its sink.
	var writeErr atomic.Pointer[error]
	sink := func(d decoded) {
		if writeErr.Load() != nil {
			return
		}
		if d.fatal != nil {
			writeErr.Store(&d.fatal)
			return
		}
		m, ev := &d.m, d.ev
		when := m.Time // an unreadable message is selected by storage time
		if d.err == nil {
			when = ev.RecordedAt
		}
		if (opts.Since != nil && when.Before(*opts.Since)) || (opts.Until != nil && !when.Before(*opts.Until)) {
			st.Skipped++
			return
		}
		if d.err == nil {
			st.Events++
		} else {
			st.Unreadable++
		}
		if st.FirstSeq == 0 {
			st.FirstSeq = m.Seq
		}
		st.LastSeq = m.Seq
		if err := out.write(&d); err != nil {
			writeErr.Store(&err)
		}
	}
	decode := decodeMsg
	if opts.DataKey != nil {
		decode = func(m *Msg) decoded { return openMsg(decodeMsg(m), opts.DataKey) }
	} else if opts.Open != nil {
		decode = func(m *Msg) decoded { return openVia(decodeMsg(m), opts.Open) }
	}
	p := runPipeline(runtime.GOMAXPROCS(0), exportSize, decode, sink)
	var done uint64
	_, err = Replay(ctx, js, ro, func(m *Msg) error {
		if e := writeErr.Load(); e != nil {
			return *e
		}
		done++
		if opts.Progress != nil && done%1024 == 0 {
			opts.Progress(done, done+m.Pending)
		}
		if !stopAfter.IsZero() && m.Time.After(stopAfter) {
			return ErrStopReplay
		}
		return p.submit(m)
	})
	p.close()
	if opts.Progress != nil {
		opts.Progress(done, done)
	}
	if e := writeErr.Load(); e != nil && err == nil {
		err = *e
	}
	if ferr := out.flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return st, fmt.Errorf("export: %w", err)
	}
	return st, nil
}

// exportRaw writes every message of the stream in FormatRaw. Nothing is
// decoded; Events counts the messages written.
func exportRaw(ctx context.Context, js jetstream.JetStream, w io.Writer, opts ExportOptions) (ExportStats, error) {
	var st ExportStats
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	_, err := Replay(ctx, js, ReplayOptions{Stream: opts.Stream, MaxBuffered: opts.MaxBuffered, Idle: opts.Idle, Source: opts.Source}, func(m *Msg) error {
		st.Events++
		if opts.Progress != nil && st.Events%1024 == 0 {
			opts.Progress(st.Events, st.Events+m.Pending)
		}
		if st.FirstSeq == 0 {
			st.FirstSeq = m.Seq
		}
		st.LastSeq = m.Seq
		subject, _ := json.Marshal(m.Subject)
		line = append(line[:0], `{"seq":`...)
		line = strconv.AppendUint(line, m.Seq, 10)
		line = append(line, `,"stored_at":"`...)
		line = m.Time.UTC().AppendFormat(line, time.RFC3339Nano)
		line = append(line, `","nats_subject":`...)
		line = append(line, subject...)
		line = append(line, `,"payload_base64":"`...)
		line = base64.StdEncoding.AppendEncode(line, m.Data)
		line = append(line, "\"}\n"...)
		_, err := bw.Write(line)
		return err
	})
	if opts.Progress != nil {
		opts.Progress(st.Events, st.Events)
	}
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return st, fmt.Errorf("export: %w", err)
	}
	return st, nil
}

// decoded is a message with its event, or why it is not one.
type decoded struct {
	m   Msg
	ev  *events.Event
	err error
	// personal is how the event's personal fields are shown (Personal*);
	// openErr why a v2 event did not open; fatal an error that stops an
	// export (a data key that cannot be looked up).
	personal string
	openErr  error
	fatal    error
}

func decodeMsg(m *Msg) decoded {
	ev, err := events.Decode(m.Data)
	d := decoded{m: *m, ev: ev, err: err}
	if err == nil {
		switch {
		case ev.Type == events.TypeErased:
			d.personal = PersonalNone
		case ev.IsSealed():
			d.personal = PersonalSealed
		default:
			d.personal = PersonalClear
		}
	}
	return d
}

// openMsg opens the sealed personal fields of d's event with the data key
// dataKey gives.
func openMsg(d decoded, dataKey func(keyID string) (events.DataKey, error)) decoded {
	if d.personal != PersonalSealed {
		return d
	}
	dk, err := dataKey(d.ev.KeyID)
	switch {
	case errors.Is(err, events.ErrKeyErased):
		d.personal = PersonalErased
	case err != nil:
		d.fatal = fmt.Errorf("data key %q of the event at seq %d: %w", d.ev.KeyID, d.m.Seq, err)
	default:
		if d.openErr = d.ev.Open(dk); d.openErr == nil {
			d.personal = PersonalOpened
		}
	}
	return d
}

// openVia fills in the personal fields of d's sealed event with open.
func openVia(d decoded, open func(seq uint64, ev *events.Event) error) decoded {
	if d.personal != PersonalSealed {
		return d
	}
	err := open(d.m.Seq, d.ev)
	switch {
	case errors.Is(err, events.ErrKeyErased):
		d.personal = PersonalErased
	case err != nil:
		d.fatal = fmt.Errorf("personal fields of the event at seq %d: %w", d.m.Seq, err)
	case d.ev.SubjectID != "":
		d.personal = PersonalOpened
	}
	return d
}

// ExportFilter returns the subject filter of the consent events of a
// tenant and a purpose (either "" for all). It returns a
// *events.FieldError for an invalid tenant or purpose.
func ExportFilter(tenant, purpose string) (string, error) {
	t, p := "*", "*"
	if tenant != "" {
		if err := events.ValidateName("tenant", tenant); err != nil {
			return "", err
		}
		t = tenant
	}
	if purpose != "" {
		if err := events.ValidateName("purpose", purpose); err != nil {
			return "", err
		}
		p = purpose
	}
	if tenant == "" && purpose == "" {
		return events.StreamSubjects, nil
	}
	return eventSubjectPrefix + t + "." + p + ".*", nil
}

// exportWriter writes records in one format.
type exportWriter struct {
	bw     *bufio.Writer
	csv    *csv.Writer
	record []string
	line   []byte
}

func newExportWriter(bw *bufio.Writer, format string) *exportWriter {
	e := &exportWriter{bw: bw}
	if format == FormatCSV {
		e.csv = csv.NewWriter(bw)
		e.record = make([]string, len(csvColumns))
	}
	return e
}

var csvColumns = []string{"seq", "stored_at", "recorded_at", "occurred_at", "tenant", "subject", "purpose", "type",
	"policy_version", "expires_at", "actor", "recorded_by", "method", "reason", "description", "evidence", "id", "prev_hash", "hash",
	"subject_key", "personal"}

func (e *exportWriter) header() error {
	if e.csv != nil {
		return e.csv.Write(csvColumns)
	}
	return nil
}

func (e *exportWriter) write(d *decoded) error {
	m, decodeErr := &d.m, d.err
	if e.csv != nil {
		return e.writeCSV(d)
	}
	b := e.line[:0]
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, m.Seq, 10)
	b = append(b, `,"stored_at":"`...)
	b = m.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if decodeErr == nil {
		b = append(b, `,"event":`...)
		b = append(b, m.Data...)
		b = appendPersonal(b, d)
	} else {
		reason, _ := json.Marshal(decodeErr.Error())
		b = append(b, `,"unreadable":`...)
		b = append(b, reason...)
		b = append(b, `,"payload_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, m.Data)
		b = append(b, '"')
	}
	b = append(b, "}\n"...)
	e.line = b
	_, err := e.bw.Write(b)
	return err
}

// appendPersonal appends the members of a JSON lines row that show the
// personal fields of a v2 event (see Export).
func appendPersonal(b []byte, d *decoded) []byte {
	switch d.personal {
	case PersonalOpened:
		ev := d.ev
		b = append(b, `,"personal":{"subject":`...)
		b = appendJSONString(b, ev.SubjectID)
		if ev.Actor != "" {
			b = append(b, `,"actor":`...)
			b = appendJSONString(b, ev.Actor)
		}
		if len(ev.Evidence) > 0 {
			b = append(b, `,"evidence":`...)
			b = append(b, ev.Evidence...)
		}
		if ev.Reason != "" {
			b = append(b, `,"reason":`...)
			b = appendJSONString(b, ev.Reason)
		}
		b = append(b, '}')
	case PersonalErased:
		b = append(b, `,"erased":true`...)
	case PersonalSealed:
		b = append(b, `,"sealed":true`...)
		if d.openErr != nil {
			b = append(b, `,"open_error":`...)
			b = appendJSONString(b, d.openErr.Error())
		}
	}
	return b
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always encodes
	return append(b, q...)
}

func (e *exportWriter) writeCSV(d *decoded) error {
	m, ev, decodeErr := &d.m, d.ev, d.err
	r := e.record
	clear(r)
	r[0] = strconv.FormatUint(m.Seq, 10)
	r[1] = m.Time.UTC().Format(time.RFC3339Nano)
	if decodeErr != nil {
		r[14] = "unreadable: " + decodeErr.Error()
		return e.csv.Write(r)
	}
	r[2] = ev.RecordedAt.UTC().Format(time.RFC3339Nano)
	r[3] = ev.OccurredAt.UTC().Format(time.RFC3339Nano)
	r[4], r[5], r[6], r[7] = ev.Tenant, ev.SubjectID, ev.Purpose, string(ev.Type)
	r[8] = strconv.Itoa(ev.PolicyVersion)
	if ev.ExpiresAt != nil {
		r[9] = ev.ExpiresAt.UTC().Format(time.RFC3339Nano)
	}
	r[10], r[11], r[12], r[13], r[14] = ev.Actor, ev.RecordedBy, ev.Method, ev.Reason, ev.Description
	r[15] = string(ev.Evidence)
	r[16], r[17], r[18] = ev.ID, ev.PrevHash, ev.Hash
	r[19], r[20] = ev.SubjectKey, d.personal
	return e.csv.Write(r)
}

func (e *exportWriter) flush() error {
	if e.csv != nil {
		e.csv.Flush()
		if err := e.csv.Error(); err != nil {
			return err
		}
	}
	return e.bw.Flush()
}
