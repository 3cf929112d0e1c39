package events

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateAcceptsLegalSubjects(t *testing.T) {
	subjects := []string{
		"alice@example.com",
		"a.b.c",
		"*",
		">",
		"a.*.>",
		"with space",
		"ünïcødé 🎉",
		"🎉",
		"x",
		strings.Repeat("a", MaxSubjectIDLen),
		strings.Repeat("é", MaxSubjectIDLen/2), // 256 bytes, 128 characters
		`quote " backslash \ slash /`,
		"inner  spaces\u3000kept",
	}
	for _, subject := range subjects {
		for _, kind := range Kinds {
			c := command(func(c *Command) { c.SubjectID = subject })
			assert.NoError(t, c.Validate(kind), "%s %q", kind, subject)
		}
	}
}

func TestValidateAcceptsFullCommands(t *testing.T) {
	occurred := t0
	expires := t0.Add(time.Hour)
	tests := map[Kind]Command{
		KindRequest: command(func(c *Command) {
			c.Tenant = ""
			c.PolicyVersion = 1
			c.Description = "line one\nline two\twith tab"
			c.Actor, c.Method = "svc", "dialog"
			c.OccurredAt = &occurred
			c.IdempotencyKey = strings.Repeat("k", MaxIdempotencyKeyLen)
			c.Evidence = json.RawMessage(`{"a":[1,{"b":null}]}`)
		}),
		KindGrant: command(func(c *Command) {
			c.ExpiresAt, c.OccurredAt = &expires, &occurred
			c.Evidence = json.RawMessage(`{"pad":"` + strings.Repeat("x", MaxEvidenceLen-10) + `"}`)
		}),
		KindDeny:   command(func(c *Command) { c.Reason = "no,\r\nnot now\r\n" }), // CRLF as browsers send a textarea
		KindRevoke: command(func(c *Command) { c.Reason = "changed my mind"; c.ExpectedSeq = ptr(uint64(0)) }),
	}
	for kind, c := range tests {
		assert.NoError(t, c.Validate(kind), "%s", kind)
	}
	require.Len(t, tests[KindGrant].Evidence, MaxEvidenceLen, "evidence of exactly the limit")
	withTTL := command(func(c *Command) { c.TTL = "8760h" })
	assert.NoError(t, withTTL.Validate(KindGrant))
}

func TestValidateNamesTheField(t *testing.T) {
	occurred := t0
	before := t0.Add(-time.Second)
	zero := time.Time{}
	yearZero := time.Date(0, 6, 1, 0, 0, 0, 0, time.UTC)
	bigEvidence := `{"pad":"` + strings.Repeat("x", MaxEvidenceLen) + `"}`

	tests := []struct {
		name  string
		kind  Kind
		edit  func(*Command)
		field string
	}{
		{"unknown kind", "approve", nil, "kind"},

		{"tenant uppercase", KindGrant, func(c *Command) { c.Tenant = "Acme" }, "tenant"},
		{"tenant leading dash", KindGrant, func(c *Command) { c.Tenant = "-acme" }, "tenant"},
		{"tenant leading underscore", KindGrant, func(c *Command) { c.Tenant = "_acme" }, "tenant"},
		{"tenant with dot", KindGrant, func(c *Command) { c.Tenant = "ac.me" }, "tenant"},
		{"tenant with wildcard", KindGrant, func(c *Command) { c.Tenant = "*" }, "tenant"},
		{"tenant 65 bytes", KindGrant, func(c *Command) { c.Tenant = strings.Repeat("a", 65) }, "tenant"},
		{"tenant non-ASCII", KindGrant, func(c *Command) { c.Tenant = "acmé" }, "tenant"},

		{"subject empty", KindGrant, func(c *Command) { c.SubjectID = "" }, "subject"},
		{"subject 257 bytes", KindGrant, func(c *Command) { c.SubjectID = strings.Repeat("a", 257) }, "subject"},
		{"subject 257 bytes of multibyte", KindGrant, func(c *Command) { c.SubjectID = strings.Repeat("é", 128) + "a" }, "subject"},
		{"subject invalid UTF-8", KindGrant, func(c *Command) { c.SubjectID = "al\xffice" }, "subject"},
		{"subject truncated UTF-8", KindGrant, func(c *Command) { c.SubjectID = "caf\xc3" }, "subject"},
		{"subject NUL", KindGrant, func(c *Command) { c.SubjectID = "a\x00b" }, "subject"},
		{"subject newline", KindGrant, func(c *Command) { c.SubjectID = "a\nb" }, "subject"},
		{"subject tab", KindGrant, func(c *Command) { c.SubjectID = "a\tb" }, "subject"},
		{"subject DEL", KindGrant, func(c *Command) { c.SubjectID = "a\x7fb" }, "subject"},
		{"subject C1 control", KindGrant, func(c *Command) { c.SubjectID = "a\u0085b" }, "subject"},

		{"purpose empty", KindGrant, func(c *Command) { c.Purpose = "" }, "purpose"},
		{"purpose uppercase", KindGrant, func(c *Command) { c.Purpose = "Marketing" }, "purpose"},
		{"purpose with space", KindGrant, func(c *Command) { c.Purpose = "marketing email" }, "purpose"},
		{"purpose with dot", KindGrant, func(c *Command) { c.Purpose = "marketing.email" }, "purpose"},
		{"purpose with >", KindGrant, func(c *Command) { c.Purpose = ">" }, "purpose"},
		{"purpose 65 bytes", KindGrant, func(c *Command) { c.Purpose = strings.Repeat("p", 65) }, "purpose"},

		{"policy_version negative", KindGrant, func(c *Command) { c.PolicyVersion = -1 }, "policy_version"},

		{"ttl not a duration", KindGrant, func(c *Command) { c.TTL = "one year" }, "ttl"},
		{"ttl days are not a Go unit", KindGrant, func(c *Command) { c.TTL = "365d" }, "ttl"},
		{"ttl without unit", KindGrant, func(c *Command) { c.TTL = "3600" }, "ttl"},
		{"ttl zero", KindGrant, func(c *Command) { c.TTL = "0s" }, "ttl"},
		{"ttl negative", KindGrant, func(c *Command) { c.TTL = "-1h" }, "ttl"},
		{"ttl and expires_at", KindGrant, func(c *Command) { c.TTL = "1h"; c.ExpiresAt = ptr(t0.Add(time.Hour)) }, "ttl"},
		{"ttl on request", KindRequest, func(c *Command) { c.TTL = "1h" }, "ttl"},
		{"ttl on deny", KindDeny, func(c *Command) { c.TTL = "1h" }, "ttl"},
		{"ttl on revoke", KindRevoke, func(c *Command) { c.TTL = "1h" }, "ttl"},

		{"expires_at before occurred_at", KindGrant, func(c *Command) { c.OccurredAt = &occurred; c.ExpiresAt = &before }, "expires_at"},
		{"expires_at equal to occurred_at", KindGrant, func(c *Command) { c.OccurredAt = &occurred; c.ExpiresAt = &occurred }, "expires_at"},
		{"expires_at zero", KindGrant, func(c *Command) { c.ExpiresAt = &zero }, "expires_at"},
		{"expires_at on request", KindRequest, func(c *Command) { c.ExpiresAt = ptr(t0) }, "expires_at"},
		{"expires_at on revoke", KindRevoke, func(c *Command) { c.ExpiresAt = ptr(t0) }, "expires_at"},

		{"occurred_at zero", KindGrant, func(c *Command) { c.OccurredAt = &zero }, "occurred_at"},
		{"occurred_at year 0", KindRequest, func(c *Command) { c.OccurredAt = &yearZero }, "occurred_at"},

		{"idempotency_key 129 bytes", KindGrant, func(c *Command) { c.IdempotencyKey = strings.Repeat("k", 129) }, "idempotency_key"},
		{"idempotency_key newline", KindGrant, func(c *Command) { c.IdempotencyKey = "a\nb" }, "idempotency_key"},
		{"idempotency_key invalid UTF-8", KindGrant, func(c *Command) { c.IdempotencyKey = "\xff" }, "idempotency_key"},

		{"evidence string", KindGrant, func(c *Command) { c.Evidence = json.RawMessage(`"signed"`) }, "evidence"},
		{"evidence array", KindGrant, func(c *Command) { c.Evidence = json.RawMessage(`[1]`) }, "evidence"},
		{"evidence number", KindGrant, func(c *Command) { c.Evidence = json.RawMessage(`1`) }, "evidence"},
		{"evidence null", KindGrant, func(c *Command) { c.Evidence = json.RawMessage(`null`) }, "evidence"},
		{"evidence not JSON", KindGrant, func(c *Command) { c.Evidence = json.RawMessage(`{"a":`) }, "evidence"},
		{"evidence over 4 KiB", KindGrant, func(c *Command) { c.Evidence = json.RawMessage(bigEvidence) }, "evidence"},
		{"evidence duplicate member", KindGrant, func(c *Command) { c.Evidence = json.RawMessage(`{"a":1,"a":2}`) }, "evidence"},
		{"evidence invalid UTF-8", KindGrant, func(c *Command) { c.Evidence = json.RawMessage("{\"a\":\"\xff\"}") }, "evidence"},
		{"evidence lone surrogate", KindGrant, func(c *Command) { c.Evidence = json.RawMessage(`{"a":"\udead"}`) }, "evidence"},
		{"evidence number out of range", KindGrant, func(c *Command) { c.Evidence = json.RawMessage(`{"a":1e999}`) }, "evidence"},

		{"description on grant", KindGrant, func(c *Command) { c.Description = "x" }, "description"},
		{"description on deny", KindDeny, func(c *Command) { c.Description = "x" }, "description"},
		{"description on revoke", KindRevoke, func(c *Command) { c.Description = "x" }, "description"},
		{"description too long", KindRequest, func(c *Command) { c.Description = strings.Repeat("d", MaxDescriptionLen+1) }, "description"},
		{"description control character", KindRequest, func(c *Command) { c.Description = "bell\a" }, "description"},
		{"reason on grant", KindGrant, func(c *Command) { c.Reason = "x" }, "reason"},
		{"reason on request", KindRequest, func(c *Command) { c.Reason = "x" }, "reason"},
		{"reason too long", KindRevoke, func(c *Command) { c.Reason = strings.Repeat("r", MaxReasonLen+1) }, "reason"},

		{"actor too long", KindGrant, func(c *Command) { c.Actor = strings.Repeat("a", MaxNameLen+1) }, "actor"},
		{"actor newline", KindGrant, func(c *Command) { c.Actor = "a\nb" }, "actor"},
		{"method control", KindGrant, func(c *Command) { c.Method = "api\x1b" }, "method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := command(tt.edit)
			assertFieldError(t, c.Validate(tt.kind), tt.field)
		})
	}
}

// A command that passes Validate also passes Decide from a state that
// allows it, and seals: validation leaves nothing for a 500 to find.
func TestValidatedCommandsSeal(t *testing.T) {
	expires := t0.Add(time.Hour)
	for _, kind := range Kinds {
		c := command(func(c *Command) {
			c.SubjectID = "ünïcødé 🎉 a.*.> \"q\""
			c.Evidence = json.RawMessage(` { "n" : 1.50 , "s" : "\u00e9" } `)
			switch kind {
			case KindRequest:
				c.Description = "d"
			case KindGrant:
				c.ExpiresAt = &expires
			default:
				c.Reason = "r"
			}
		})
		require.NoError(t, c.Validate(kind))
		ev, err := Decide(consentIn(t, StateGranted), kind, c, t0)
		if kind == KindDeny || kind == KindRequest {
			require.ErrorIs(t, err, ErrForbidden)
			ev, err = Decide(NewConsent(testKey), kind, c, t0)
		}
		require.NoError(t, err)
		ev.ID = "id"
		payload, err := ev.Seal()
		require.NoError(t, err)
		got, err := Decode(payload)
		require.NoError(t, err)
		require.NoError(t, VerifyHash(payload, got))
		assert.JSONEq(t, `{"n":1.5,"s":"é"}`, string(got.Evidence))
	}
}
