package auth

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/jwt/v2"
)

// The change feed across accounts. A client account has no JetStream API
// of its own and must never create consumers (a consumer it could
// configure could deliver the stream anywhere in SVC). So the service
// creates each feed's consumer in SVC (ledger.ServeFeed) and GrantFeed
// lets the tenant's account read that one consumer:
//
//   - SVC exports, each only to holders of an activation (TokenReq),
//     $JS.API.CONSUMER.INFO.*.*, $JS.API.CONSUMER.MSG.NEXT.*.* (response
//     type stream: one pull request gets many messages) and $JS.ACK.>;
//   - the tenant's account imports, with an activation for exactly that
//     consumer's subjects, INFO and MSG.NEXT of the consumer under
//     FeedAPIPrefix (consent.js.API.CONSUMER.…: the account's own
//     $JS.API.> is answered by the server's implicit import, "JetStream
//     not enabled", first) and the consumer's $JS.ACK subjects unchanged
//     (the acknowledgement subject is the reply subject of each message).
//
// A consumer name is one subject token, so an export cannot cover "the
// consumers of acme" with a wildcard: each consumer gets its own imports.
// Nothing else of the JetStream API is reachable: CONSUMER.CREATE, STREAM.*
// and other tenants' consumers get "no responders".
//
// The $JS.ACK subjects are those of nats-server's default feature flag
// js_ack_fc_v2=false; a server with that flag on sends acknowledgement
// subjects these imports do not cover.

// FeedAPIPrefix is the JetStream API prefix under which a client account
// imports its feeds' consumers (jetstream.NewWithAPIPrefix).
const FeedAPIPrefix = "consent.js.API"

// feedExports are SVC's exports for the feed.
func feedExports() []*jwt.Export {
	return []*jwt.Export{
		{Name: "feed info", Subject: "$JS.API.CONSUMER.INFO.*.*", Type: jwt.Service, TokenReq: true, ResponseType: jwt.ResponseTypeSingleton},
		{Name: "feed next", Subject: "$JS.API.CONSUMER.MSG.NEXT.*.*", Type: jwt.Service, TokenReq: true, ResponseType: jwt.ResponseTypeStream},
		{Name: "feed ack", Subject: "$JS.ACK.>", Type: jwt.Service, TokenReq: true, ResponseType: jwt.ResponseTypeSingleton},
		// Not the feed's, but kept with it: the service's own $SRV
		// discovery, INFO and STATS (see ServiceInfoSubjects).
		{Name: "service info", Subject: ServiceInfoSubjects, Type: jwt.Service, TokenReq: true, ResponseType: jwt.ResponseTypeStream},
	}
}

// ensureFeedExports adds the feed exports to SVC's claims when they are
// missing (an authority created before them) and saves SVC.
func (a *Authority) ensureFeedExports() error {
	added := false
	for _, e := range feedExports() {
		found := false
		for _, have := range a.svc.claims.Exports {
			if have.Subject == e.Subject {
				found = true
				break
			}
		}
		if !found {
			a.svc.claims.Exports.Add(e)
			added = true
		}
	}
	if !added {
		return nil
	}
	return a.saveAccount(a.svc)
}

// GrantFeed lets the client account of tenantToken (a tenant, or
// AllTenantsToken) read the consumer of stream that the service opened for
// it: it adds the consumer's imports (see FeedAPIPrefix) to the account,
// saves it and pushes it to the running server, and returns FeedAPIPrefix.
// Granting a consumer again changes nothing. It has the signature of
// ledger.FeedAuthorizer: when it adds imports it also drops those of the
// tenant's ephemeral feeds (feed~<tenant>~~…) that live, called under the
// authority's lock (and its directory's), does not list (consumers the
// server deleted after their inactivity threshold): every consumer
// imported was created before its grant, so before that listing.
//
// Errors: the account does not exist; stream or consumer is not a single
// subject token, or consumer is not named for that tenant (feed~<tenant>~…,
// wire.FeedConsumerName); the account cannot be signed or pushed.
func (a *Authority) GrantFeed(ctx context.Context, tenantToken, stream, consumer string, live func(context.Context) (map[string]bool, error)) (string, error) {
	if !validToken(stream) || !validToken(consumer) || !strings.HasPrefix(consumer, "feed~"+tenantToken+"~") {
		return "", fmt.Errorf("auth: grant feed: consumer %q of stream %q is not a feed of tenant %q", consumer, stream, tenantToken)
	}
	tenant := tenantToken
	if tenantToken == AllTenantsToken {
		tenant = AllTenants
	}
	if a.granted(tenant, "$JS.API.CONSUMER.INFO."+stream+"."+consumer) {
		return FeedAPIPrefix, nil // no need for the directory's lock
	}
	var prefix string
	err := a.change(func() error {
		var err error
		prefix, err = a.grantFeed(ctx, tenantToken, tenant, stream, consumer, live)
		return err
	})
	return prefix, err
}

// grantFeed is GrantFeed under the directory's lock.
func (a *Authority) grantFeed(ctx context.Context, tenantToken, tenant, stream, consumer string, live func(context.Context) (map[string]bool, error)) (string, error) {
	acc, ok := a.clients[tenant]
	if !ok {
		return "", fmt.Errorf("auth: grant feed: tenant %q has no account", tenant)
	}
	info := "$JS.API.CONSUMER.INFO." + stream + "." + consumer
	next := "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer
	ack := "$JS.ACK." + stream + "." + consumer + ".>"
	for _, im := range acc.claims.Imports {
		if string(im.Subject) == info {
			return FeedAPIPrefix, nil
		}
	}
	kept := acc.claims.Imports
	if live != nil {
		alive, err := live(ctx)
		if err != nil {
			return "", fmt.Errorf("auth: grant feed: list the feeds of %q: %w", tenantToken, err)
		}
		kept = pruneFeeds(acc.claims.Imports, stream, tenantToken, alive)
	}
	before := acc.claims.Imports
	acc.claims.Imports = kept
	for _, sub := range []struct{ remote, local string }{
		{info, FeedAPIPrefix + strings.TrimPrefix(info, "$JS.API")},
		{next, FeedAPIPrefix + strings.TrimPrefix(next, "$JS.API")},
		{ack, ""},
	} {
		act := jwt.NewActivationClaims(acc.pub)
		act.Name = "feed " + consumer
		act.ImportSubject = jwt.Subject(sub.remote)
		act.ImportType = jwt.Service
		token, err := act.Encode(a.svc.kp)
		if err != nil {
			return "", fmt.Errorf("auth: grant feed: %w", err)
		}
		acc.claims.Imports.Add(&jwt.Import{
			Name: "feed " + consumer, Account: a.svc.pub, Type: jwt.Service, Token: token,
			Subject: jwt.Subject(sub.remote), LocalSubject: jwt.RenamingSubject(sub.local),
		})
	}
	if err := a.saveAccount(acc); err != nil {
		acc.claims.Imports = before
		return "", fmt.Errorf("auth: grant feed: %w", err)
	}
	return FeedAPIPrefix, nil
}

// granted reports whether tenant's account, as last read, imports
// subject.
func (a *Authority) granted(tenant, subject string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	acc, ok := a.clients[tenant]
	if !ok {
		return false
	}
	for _, im := range acc.claims.Imports {
		if string(im.Subject) == subject {
			return true
		}
	}
	return false
}

// pruneFeeds returns imports without those of tenantToken's ephemeral
// feeds on stream that are not alive.
func pruneFeeds(imports jwt.Imports, stream, tenantToken string, alive map[string]bool) jwt.Imports {
	prefix := "feed~" + tenantToken + "~~"
	out := make(jwt.Imports, 0, len(imports))
	for _, im := range imports {
		subj := string(im.Subject)
		var name string
		for _, p := range []string{"$JS.API.CONSUMER.INFO." + stream + ".", "$JS.API.CONSUMER.MSG.NEXT." + stream + ".", "$JS.ACK." + stream + "."} {
			if rest, ok := strings.CutPrefix(subj, p); ok {
				name, _, _ = strings.Cut(rest, ".")
				break
			}
		}
		if strings.HasPrefix(name, prefix) && !alive[name] {
			continue
		}
		out = append(out, im)
	}
	return out
}

// validToken reports whether s is one literal subject token.
func validToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n")
}
