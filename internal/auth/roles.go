package auth

import (
	"fmt"

	"github.com/nats-io/jwt/v2"
)

// Role names what a user may do; each role is a scoped signing key of a
// client account, and the key's template holds the permissions.
type Role string

// The roles. Every user of every role may subscribe only to its own inbox
// prefix, _INBOX_<name>.>.
const (
	// Checker looks consents up: status, check, list.
	Checker Role = "checker"
	// Writer records consents (request, grant, deny, revoke) and looks
	// them up as a Checker does.
	Writer Role = "writer"
	// Subscriber reads its tenant's change feed: it opens feeds
	// (feed.open, feed.purposes) and reads the consumers the service
	// opened for its tenant through the imports GrantFeed adds (see
	// FeedAPIPrefix). It may also look consents up as a Checker does
	// (the feed shows all that and more), which a ledger.Checker, a
	// local view kept by the feed, needs.
	Subscriber Role = "subscriber"
	// Auditor reads the evidence: history, status_at, receipt,
	// index_digest. It records nothing.
	Auditor Role = "auditor"
	// Admin may do everything: purposes (purpose.*), the break-glass
	// operations (admin.>) and every endpoint of the other roles.
	Admin Role = "admin"
)

// Roles lists every role, in the order of the role table in
// docs/security.md.
var Roles = []Role{Checker, Writer, Subscriber, Auditor, Admin}

// The endpoints of each role, as the client sends them (before the
// account's import maps them to consent.v1.<tenant>.…).
var (
	checkerSubjects = []string{"consent.v1.status", "consent.v1.check", "consent.v1.list"}
	writerSubjects  = append([]string{"consent.v1.request", "consent.v1.grant", "consent.v1.deny", "consent.v1.revoke"}, checkerSubjects...)
	// The auditor's: the audit endpoints, $SRV, and audit.open with the
	// consumer API of the consumers it opens (audit verify and export
	// read the stream through them).
	auditorSubjects = []string{
		"consent.v1.history", "consent.v1.status_at", "consent.v1.receipt", "consent.v1.index_digest", "consent.v1.audit.open", "consent.v1.feed.personal",
		FeedAPIPrefix + ".CONSUMER.INFO.*.*", FeedAPIPrefix + ".CONSUMER.MSG.NEXT.*.*", ServiceInfoSubjects,
	}
	// The subscriber's: the feed endpoints, and the consumer API and
	// acknowledgements of the consumers its account imports (GrantFeed);
	// the account has no other route for these subjects.
	subscriberSubjects = append([]string{
		"consent.v1.feed.open", "consent.v1.feed.purposes", "consent.v1.feed.personal",
		FeedAPIPrefix + ".CONSUMER.INFO.*.*", FeedAPIPrefix + ".CONSUMER.MSG.NEXT.*.*", "$JS.ACK.>",
	}, checkerSubjects...)
	adminSubjects = append(append(append([]string{"consent.v1.purpose.*", "consent.v1.admin.>"}, writerSubjects...), auditorSubjects...), subscriberSubjects...)
)

// Subjects returns the subjects the role may publish to, as the client
// sends them; nil for an unknown role.
func (r Role) Subjects() []string {
	switch r {
	case Checker:
		return append([]string(nil), checkerSubjects...)
	case Writer:
		return append([]string(nil), writerSubjects...)
	case Subscriber:
		return append([]string(nil), subscriberSubjects...)
	case Auditor:
		return append([]string(nil), auditorSubjects...)
	case Admin:
		return append([]string(nil), adminSubjects...)
	}
	return nil
}

// Validate returns an error naming the role unless it is one of Roles.
func (r Role) Validate() error {
	for _, known := range Roles {
		if r == known {
			return nil
		}
	}
	return fmt.Errorf("role %q: must be one of checker, writer, subscriber, auditor, admin", string(r))
}

// InboxPrefix is the inbox prefix a user must give its client
// (nats.CustomInboxPrefix, the nats tool's --inbox-prefix): its
// permissions allow subscribing to nothing else.
func InboxPrefix(userName string) string { return "_INBOX_" + userName }

// template is the permission template of the role's scoped signing key.
func (r Role) template() jwt.UserPermissionLimits {
	scope := jwt.NewUserScope() // no connection, data or payload limits
	t := scope.Template
	if subjects := r.Subjects(); len(subjects) > 0 {
		t.Pub.Allow.Add(subjects...)
	} else {
		t.Pub.Deny.Add(">") // an empty allow list would allow everything
	}
	t.Sub.Allow.Add(InboxPrefix("{{name()}}") + ".>")
	return t
}
