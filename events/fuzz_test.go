package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"
)

// seedEvents adds the golden events and near-valid variants of them.
func seedEvents(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no golden events: %v", err)
	}
	for _, file := range files {
		payload, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(payload)
		f.Add(bytes.Replace(payload, []byte(`"v":1`), []byte(`"v":2`), 1))
		f.Add(bytes.Replace(payload, []byte(`"subject"`), []byte(`"Subject"`), 1))
		f.Add(bytes.Replace(payload, []byte(`{`), []byte(`{"actor":"x",`), 1))
		f.Add(bytes.Replace(payload, []byte(`,"subject"`), []byte(`,"recorded_by":"alice@acme","subject"`), 1))
		f.Add(append(payload[:len(payload):len(payload)], '}'))
		f.Add(payload[:len(payload)/2])
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"v":1,"id":"x","type":"consent.granted","tenant":"t","subject":"s","purpose":"p",` +
		`"occurred_at":"2026-01-01T00:00:00Z","recorded_at":"2026-01-01T00:00:00Z","policy_version":1,` +
		`"evidence":{"a":[1,2.5e3,"\u00e9\ud83d\ude00"]},"prev_hash":"","hash":"h"}`))
}

// FuzzDecode: Decode never panics; what it accepts is a valid event that
// seals, decodes again to the same event, and verifies. DecodeOwned gives
// the same event and error.
func FuzzDecode(f *testing.F) {
	seedEvents(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, err := Decode(payload)
		evOwned, errOwned := DecodeOwned(bytes.Clone(payload))
		if !reflect.DeepEqual(ev, evOwned) || fmt.Sprint(err) != fmt.Sprint(errOwned) {
			t.Fatalf("DecodeOwned differs from Decode:\n%+v, %v\n%+v, %v", ev, err, evOwned, errOwned)
		}
		if err != nil {
			if ev != nil {
				t.Fatalf("event and error both returned: %v", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) && !errors.Is(err, ErrNewerSchema) && !errors.Is(err, ErrUnknownType) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		if err := ev.Key().Validate(); err != nil {
			t.Fatalf("accepted an event with an invalid key: %v", err)
		}
		if !ev.Type.Known() || ev.V < 1 || ev.V > SchemaVersion || ev.ID == "" || ev.Hash == "" {
			t.Fatalf("accepted an incomplete event: %+v", ev)
		}
		sealed, err := ev.Seal()
		if err != nil {
			t.Fatalf("accepted event does not seal: %v", err)
		}
		again, err := Decode(sealed)
		if err != nil {
			t.Fatalf("sealed event does not decode: %v\n%s", err, sealed)
		}
		if err := VerifyHash(sealed, again); err != nil {
			t.Fatalf("sealed event does not verify: %v", err)
		}
		// Re-encoded by encoding/json (as a history reply does), it still
		// verifies: the hash covers content, not spelling.
		reencoded, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyHash(reencoded, again); err != nil {
			t.Fatalf("re-encoded event does not verify: %v\n%s", err, reencoded)
		}
		resealed, err := again.Seal()
		if err != nil || !bytes.Equal(sealed, resealed) {
			t.Fatalf("seal is not stable: %v\n%s\n%s", err, sealed, resealed)
		}
	})
}

// FuzzDecodeCommand: decoding and validating a command never panics and
// fails only with a *FieldError; a command that validates is decided from
// the empty state (or refused by the table), sealed, and read back.
func FuzzDecodeCommand(f *testing.F) {
	seeds := []string{
		`{"subject":"alice@example.com","purpose":"marketing_email"}`,
		`{"tenant":"acme","subject":"a.*.> 🎉","purpose":"p","policy_version":2,"description":"d\nx"}`,
		`{"subject":"s","purpose":"p","ttl":"8760h","evidence":{"ip":"203.0.113.7","n":4.50},"actor":"subject","method":"dialog"}`,
		`{"subject":"s","purpose":"p","expires_at":"2027-01-01T00:00:00Z","occurred_at":"2026-01-01T00:00:00+01:00"}`,
		`{"subject":"s","purpose":"p","reason":"no","idempotency_key":"k","expected_seq":0}`,
		`{"subject":"s","purpose":"p","ttl":"1h","expires_at":"2027-01-01T00:00:00Z"}`,
		`{"subject":"s","purpose":"p","occurred_at":"9999-12-31T23:00:00Z","ttl":"2h"}`,
		`{"subject":"s","purpose":"p","occurred_at":"0000-01-01T00:30:00+01:00"}`,
		`{"subject":"s","purpose":"p","expires_at":"2020-01-01T00:00:00Z"}`,
		`{"subject":"s","purpose":"p","evidence":{"a":1,"a":2}}`,
		`{"subject":"s","purpose":"p","evidence":null}`,
		`{"subject":"","purpose":"P"}`,
		`{"Subject":"s","purpose":"p"}`,
		`{"subject":"s","purpose":"p"}}`,
		`{"subject":"s","policy_version":-1}`,
		`[]`,
		``,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := DecodeCommand(body)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("decode error is not a *FieldError naming a field: %T %v", err, err)
			}
			return
		}
		for _, kind := range Kinds {
			if err := c.Validate(kind); err != nil {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field == "" {
					t.Fatalf("%s: validation error is not a *FieldError naming a field: %T %v", kind, err, err)
				}
				continue
			}
			ev, err := Decide(NewConsent(c.Key()), kind, c, now)
			if err != nil {
				var fe *FieldError
				if !errors.Is(err, ErrForbidden) && !errors.As(err, &fe) {
					t.Fatalf("%s: unexpected Decide error %T %v", kind, err, err)
				}
				if errors.Is(err, ErrForbidden) && kind != KindRevoke {
					t.Fatalf("%s from none refused: %v", kind, err)
				}
				continue
			}
			ev.ID = "fuzz"
			payload, err := ev.Seal()
			if err != nil {
				t.Fatalf("%s: a validated command does not seal: %v", kind, err)
			}
			got, err := Decode(payload)
			if err != nil {
				t.Fatalf("%s: sealed event does not decode: %v\n%s", kind, err, payload)
			}
			if err := VerifyHash(payload, got); err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			if got.Key() != c.Key() || got.Type != kind.EventType() {
				t.Fatalf("%s: round trip changed the event: %+v", kind, got)
			}
		}
	})
}

// FuzzCanonical: Canonical never panics, refuses what encoding/json
// refuses, and what it accepts it writes as valid, equal, canonical JSON
// (canonicalizing again changes nothing).
func FuzzCanonical(f *testing.F) {
	seedEvents(f)
	seeds := []string{
		`{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001,-0,1e21,1e-7]}`,
		`{"\u20ac":1,"\r":2,"\ufb33":3,"1":4,"\ud83d\ude00":5,"\u0080":6,"\u00f6":7}`,
		`{"s":"\b\f\n\r\t\u0000\u001f\"\\\/\u2028"}`,
		`{"a":{"b":[{"c":[]},{}]},"a2":[true,false,null]}`,
		`{"a":1,"a":2}`,
		`{"a":"\ud800"}`,
		`{"a":"\udc00\ud800"}`,
		`{"a":1e400}`,
		`{"a":01}`,
		`{"a":1}}`,
		"{\"a\":\"\xff\"}",
		`[1]`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := Canonical(data)
		var obj map[string]any
		stdErr := json.Unmarshal(data, &obj)
		if err != nil {
			if !errors.Is(err, ErrNotCanonicalizable) {
				t.Fatalf("error does not match ErrNotCanonicalizable: %v", err)
			}
			if out != nil {
				t.Fatal("output and error both returned")
			}
			return
		}
		if stdErr != nil || obj == nil {
			t.Fatalf("accepted what encoding/json refuses (%v): %q", stdErr, data)
		}
		if !utf8.Valid(out) || !json.Valid(out) {
			t.Fatalf("output is not valid JSON: %q", out)
		}
		var back map[string]any
		if err := json.Unmarshal(out, &back); err != nil || !reflect.DeepEqual(obj, back) {
			t.Fatalf("output differs in meaning from the input: %v\n in: %q\nout: %q", err, data, out)
		}
		again, err := Canonical(out)
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("not idempotent: %v\n%q\n%q", err, out, again)
		}
		if _, err := HashOf(data); err != nil {
			t.Fatalf("HashOf fails on canonicalizable input: %v", err)
		}
	})
}

// FuzzSeal holds Seal's direct writer to its definition through
// encoding/json and Canonical: the same bytes and hash for every event it
// takes, and the general path for the rest.
func FuzzSeal(f *testing.F) {
	f.Add(1, "id-1", "consent.granted", "default", "person-1@example.com", "marketing_email", int64(1764115200123456789), int64(0), 3,
		"", true, int64(1795651200000000000), "", "", "", "", "", []byte(nil))
	f.Add(1, "id-2", "consent.granted", "acme", "person-2@example.com", "marketing_email", int64(1764115200123456789), int64(0), 3,
		"", false, int64(0), "subject", "alice@acme", "dialog", "", "0123abcd", []byte(nil))
	f.Add(1, "id\u2028<&>", "t\"\\", "a\x00b", "p\n\r\t\b\f\x1f", "\x7f", int64(-9223372036854775807), int64(3600), -7,
		"d", false, int64(0), "actor", "u\u2028\"@\x01", "m", "r", "0123abcd", []byte(` {"b": 1.50, "a": "<x>", "c": [1e3, "\u00e9\ud83d\ude00", null, true]} `))
	f.Add(999999999999999, "\xff", "", "", "", "", int64(0), int64(-50400), 1000000000000000, "", true, int64(253402300800000000), "", "\xfe@acme", "", "", "", []byte(`{"a":1,"a":2}`))
	for _, evidence := range []string{`null`, `"\ud800"`, `[1,]`, `{"a":01}`, `1e400`, "\"\xff\"", `{"a":{"b":{"c":[[[]]]}}}`, `{} x`, ` `} {
		f.Add(1, "id", "consent.granted", "t", "s", "p", int64(0), int64(0), 1, "", false, int64(0), "", "", "", "", "", []byte(evidence))
	}
	f.Fuzz(func(t *testing.T, v int, id, typ, tenant, subjectID, purpose string, occurredNano, offsetSec int64, policyVersion int,
		description string, withExpiry bool, expiresNano int64, actor, recordedBy, method, reason, prevHash string, evidence []byte) {
		at := time.Unix(0, occurredNano).In(time.FixedZone("z", int(offsetSec%(30*3600))))
		ev := Event{V: v, ID: id, Type: Type(typ), Tenant: tenant, SubjectID: subjectID, Purpose: purpose,
			OccurredAt: at, RecordedAt: at.Add(time.Second), PolicyVersion: policyVersion, Description: description,
			Actor: actor, RecordedBy: recordedBy, Method: method, Reason: reason, PrevHash: prevHash, Hash: "stale"}
		if withExpiry {
			exp := time.Unix(0, expiresNano).UTC()
			ev.ExpiresAt = &exp
		}
		if len(evidence) > 0 {
			ev.Evidence = json.RawMessage(evidence)
		}
		general := ev
		want, wantErr := general.sealGeneral()
		fast := ev
		got, ok := fast.sealFast()
		if !ok {
			if fast.Hash != ev.Hash {
				t.Fatal("a declined event was changed")
			}
			return
		}
		if wantErr != nil {
			t.Fatalf("sealFast took an event the general path refuses: %v", wantErr)
		}
		if string(got) != string(want) || fast.Hash != general.Hash || string(fast.Evidence) != string(general.Evidence) {
			t.Fatalf("sealFast differs:\n got %s (hash %s)\nwant %s (hash %s)", got, fast.Hash, want, general.Hash)
		}
	})
}

// The events the ledger writes take the direct path.
func TestSealTakesTheDirectPath(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden events: %v", err)
	}
	checked := 0
	for _, file := range files {
		payload, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := Decode(payload)
		if err != nil {
			continue // a purpose event
		}
		got, ok := ev.sealFast()
		if !ok || string(got) != string(payload) {
			t.Errorf("%s: the direct path did not write the golden payload (ok %v):\n%s", file, ok, got)
		}
		checked++
	}
	if checked < 3 {
		t.Fatalf("only %d golden events without evidence", checked)
	}
}
