package auth

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A header as nats-server writes it: the three members among the others,
// the whole user JWT before issuer_key, and a connection name the client
// chose, which may hold anything.
const sampleInfo = `{"start":"2026-12-06T09:49:12.1Z","host":"127.0.0.1","id":7,` +
	`"acc":"ACCOUNTKEY","user":"USERKEY","name":"x\",\"acc\":\"AFORGED\\\"}","lang":"go","ver":"1.55.0",` +
	`"rtt":123456,"server":"NB","jwt":"eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJqdGkiOiJYIn0.c2ln",` +
	`"issuer_key":"ROLEKEY","name_tag":"bench","tags":["consent-role:writer","consent-tenant:acme"],` +
	`"kind":"Client","client_type":"nats","nested":{"a":[1,{"b":"}]"}],"c":null},"ok":true}`

func TestParseRequestInfo(t *testing.T) {
	require.True(t, json.Valid([]byte(sampleInfo)))
	ri, err := parseRequestInfo(sampleInfo)
	require.NoError(t, err)
	assert.Equal(t, requestInfo{Account: "ACCOUNTKEY", User: "USERKEY", IssuerKey: "ROLEKEY"}, ri, "the name's text is not read as acc")

	ri, err = parseRequestInfo(" {\n\"acc\" : \"A\\u0042\" , \"user\":\"U\",\"issuer_key\":\"I\"}\t")
	require.NoError(t, err)
	assert.Equal(t, requestInfo{Account: "AB", User: "U", IssuerKey: "I"}, ri, "white space and escapes")

	// A long run of escapes in the client's connection name, ending with
	// an escaped quote.
	name := strings.Repeat(`\\`, 2000) + `\"` + strings.Repeat(`\"`, 2000)
	ri, err = parseRequestInfo(`{"name":"` + name + `","acc":"A","user":"U","issuer_key":"I"}`)
	require.NoError(t, err)
	assert.Equal(t, requestInfo{Account: "A", User: "U", IssuerKey: "I"}, ri)

	ri, err = parseRequestInfo(`{}`)
	require.NoError(t, err)
	assert.Equal(t, requestInfo{}, ri)

	for _, bad := range []struct{ info, want string }{
		{`{"acc":"A","acc":"B"}`, `member "acc": given twice`},
		{`{"user":"A","jwt":"x","user":"B"}`, `member "user": given twice`},
		{`{"acc":1}`, `member "acc": string expected`},
		{`{"issuer_key":null}`, `member "issuer_key": string expected`},
		{`["acc","A"]`, "not a JSON object"},
		{`{"acc":"A"} {"acc":"B"}`, "data after the object"},
		{`{"acc":"A"`, `after member "acc": ',' or '}' expected`},
		{`{"acc" "A"}`, `member "acc": ':' expected`},
		{`{"jwt":"abc`, `member "jwt": unterminated string`},
		{`{"jwt":"abc\`, `member "jwt": unterminated string`},
		{`{"tags":["a"`, `member "tags": unterminated value`},
		{`{"rtt":}`, `member "rtt": value expected`},
		{`{acc:"A"}`, "member name: string expected"},
		{`{"acc":"\x"}`, `member "acc": invalid character`},
	} {
		_, err := parseRequestInfo(bad.info)
		assert.ErrorContains(t, err, bad.want, "%s", bad.info)
	}
}

// referenceInfo is parseRequestInfo written with encoding/json's tokens.
func referenceInfo(info string) (requestInfo, error) {
	var ri requestInfo
	dec := json.NewDecoder(strings.NewReader(info))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ri, errors.New("not an object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ri, err
		}
		key := tok.(string)
		var field *string
		switch key {
		case "acc":
			field = &ri.Account
		case "user":
			field = &ri.User
		case "issuer_key":
			field = &ri.IssuerKey
		}
		if field == nil {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return ri, err
			}
			continue
		}
		if seen[key] {
			return ri, errors.New("twice")
		}
		seen[key] = true
		if err := dec.Decode(field); err != nil {
			return ri, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return ri, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return ri, errors.New("data after the object")
	}
	return ri, nil
}

// On valid JSON, parseRequestInfo reads what encoding/json reads, and
// refuses what the reference refuses (the three members given twice or not
// as strings); on anything else it returns rather than panics.
func FuzzParseRequestInfo(f *testing.F) {
	for _, seed := range []string{sampleInfo, `{}`, `{"acc":"A","acc":"B"}`, `{"acc":1}`, `{"acc":"\u00e9\n"}`,
		`{"user":"U","x":[{"y":"]"}],"issuer_key":"I"}`, `{"acc":"A"`, `[]`, `{"ACC":"A"}`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, info string) {
		got, err := parseRequestInfo(info)
		if !json.Valid([]byte(info)) {
			return
		}
		want, wantErr := referenceInfo(info)
		if wantErr != nil {
			assert.Error(t, err, "%q: the reference says %v", info, wantErr)
			return
		}
		require.NoError(t, err, "%q", info)
		assert.Equal(t, want, got, "%q", info)
	})
}

func TestSubjectMatches(t *testing.T) {
	for _, c := range []struct {
		pattern, subject string
		want             bool
	}{
		{"consent.v1.check", "consent.v1.check", true},
		{"consent.v1.check", "consent.v1.checks", false},
		{"consent.v1.check", "consent.v1", false},
		{"consent.v1", "consent.v1.check", false},
		{"consent.v1.*", "consent.v1.check", true},
		{"consent.v1.*", "consent.v1.purpose.set", false},
		{"consent.v1.purpose.*", "consent.v1.purpose.set", true},
		{"consent.v1.admin.>", "consent.v1.admin.user.add", true},
		{"consent.v1.admin.>", "consent.v1.admin", false},
		{"consent.v1.>", "consent.v1.check", true},
		{"*.v1.check", "consent.v1.check", true},
		{">", "consent", true},
	} {
		assert.Equal(t, c.want, subjectMatches(c.pattern, c.subject), "%s ~ %s", c.pattern, c.subject)
	}
}
